package eventstream

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"libx.net/eventstream/internal/kafka"
	"libx.net/eventstream/internal/transport"
)

// DefaultDistributedConfig returns a distributed-mode configuration for the
// given Kafka seed brokers ("host:port"), with history and stats on and every
// Kafka setting at its documented default:
//
//	bus, err := eventstream.New(eventstream.DefaultDistributedConfig([]string{"localhost:9092"}))
func DefaultDistributedConfig(brokers []string) *Config {
	c := DefaultConfig()
	c.Mode = ModeDistributed
	c.Kafka = &KafkaConfig{Brokers: append([]string(nil), brokers...)}
	return c
}

// KafkaConfig configures distributed mode, where the bus is a franz-go
// client: Emit produces one record per event (idempotent producer, acks from
// all in-sync replicas) and every subscription is a member of its Kafka
// consumer group. Zero fields take the defaults documented on them.
//
// Record format: the value is the JSON of Data; the key is the partition key
// (WithKey); the headers are the event's headers — W3C trace context
// (traceparent, tracestate, baggage, as franz-go's kotel writes them) and
// user headers — plus, by default, the CloudEvents Kafka binary-mode
// attributes ce_specversion, ce_id, ce_source, ce_type (the topic, unless a
// ce_type header was given), ce_time and content-type, so that CloudEvents
// consumers read our events and we read theirs. RecordFormatCompact
// replaces those six with one binary header (see RecordFormat).
//
// Reading records, ours or a foreign producer's: Event.Raw is the value as
// it is; Event.Data is its decoded JSON (map[string]any, []any, string,
// float64, bool or nil, as encoding/json decodes into an `any`), or nil when
// the value is not JSON (see NonJSON: by default such records are still
// delivered, and Event.Unmarshal reports the decode error) or when
// DecodeData is DecodeDataNever. Event.ID is the compact header's id, else
// ce_id, else "<topic>-<partition>-<offset>", stable across re-deliveries;
// Event.Time is the compact header's time, else ce_time, else the record's
// timestamp; Event.Key is the
// record key; Event.Record is its partition and offset. ID, Key and the
// header values are copies a handler may keep; Raw is the record's own
// memory (with the rest of its fetch), so copy the bytes to keep them
// beyond the handler. Every header is in
// Event.Headers except those the event carries in its own fields or that
// hold the value the bus writes anyway (ce_id, ce_time, ce_specversion
// "1.0", content-type "application/json", ce_type equal to the topic).
//
// Delivery is at least once: an offset is committed only after its handler
// (or the dead-letter write that followed its last attempt) finished; a
// crash or a lost member re-delivers what was handled but not committed,
// a clean Close re-delivers nothing that was handled (Off, with
// concurrency above 1, may hand the group's other members a few events
// finished after one it left unstarted). A dead-letter write that fails
// (a missing dead-letter topic with DisableTopicCreation, a record the
// broker refuses) is retried with backoff while the event's partition
// waits; if Close comes first, the event stays uncommitted and the group's
// next member gets it again. Order is kept
// per partition; events with the same key share a partition, and with
// WithConcurrency(n) a key's events still run one at a time, in order.
//
// A subscription is live when On returns: the member has its assignment,
// and a new group's starting offsets are committed (see InitialOffset).
// Close stops fetching at the end offsets the subscribed topics had when it
// began, finishes those events' handlers (within Config.ShutdownTimeout),
// commits, leaves the groups and flushes the producer.
//
// Handlers run on the bus's one pool, sized by Config.Pool and shared
// fairly with every other subscription; Config.Memory's BufferSize bounds,
// per unit of a subscription's concurrency, the fetched records queued or
// in hand (that subscription's fetching pauses while its queue is full,
// no other's), and its history and metrics switches work as in memory mode.
type KafkaConfig struct {
	// Brokers are the seed brokers, "host:port". Required.
	Brokers []string
	// ClientID names the client to the brokers (their logs, quotas,
	// metrics). Default "eventstream".
	ClientID string

	// DisableTopicCreation stops the bus from creating missing topics
	// (including dead-letter topics): Emit and On then fail with a
	// *KafkaError naming the topic. Default false: topics are created
	// through the admin API on first use; a cluster that refuses is
	// reported the same way, with the broker's reason.
	DisableTopicCreation bool
	// Partitions of topics the bus creates. Default 0: the broker's
	// num.partitions.
	Partitions int32
	// ReplicationFactor of topics the bus creates. Default 0: the broker's
	// default.replication.factor.
	ReplicationFactor int16
	// TopicConfigs are set on topics the bus creates (for example
	// "retention.ms"). Default none.
	TopicConfigs map[string]string

	// InitialOffset is where a brand-new consumer group starts:
	// InitialOffsetLatest (the default) delivers only events emitted after
	// On returns, as in memory mode; InitialOffsetEarliest also delivers
	// the records already in the topic. Groups with committed offsets
	// resume from them either way.
	InitialOffset InitialOffset
	// CommitInterval is how often handled offsets are committed while
	// consuming; they are also committed on every rebalance, on Off and on
	// Close. A crash re-delivers at most about this much. Default 1s.
	CommitInterval time.Duration
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a crashed process) before moving its partitions.
	// Default 45s (franz-go's); the broker bounds it with
	// group.min.session.timeout.ms (6s by default).
	SessionTimeout time.Duration
	// HeartbeatInterval is how often members heartbeat; a rebalance (a
	// member joining or leaving) is noticed within it. Default 3s.
	HeartbeatInterval time.Duration
	// JoinTimeout bounds how long On waits for the subscription's first
	// assignment. Default 30s.
	JoinTimeout time.Duration
	// FetchMaxWait is how long a broker may hold a fetch that has no new
	// records. It does not delay records that arrive (the broker answers
	// at once), but bounds how long a member waits after a rebalance
	// before its next fetch. Default 500ms (Kafka's fetch.max.wait.ms).
	FetchMaxWait time.Duration
	// NonJSON says what happens to a record whose value is not JSON (a
	// foreign producer's text or binary payload). Default NonJSONDeliver.
	NonJSON NonJSONPolicy
	// DecodeData says whether consumed events carry their decoded value
	// in Event.Data. Default DecodeDataAlways; DecodeDataNever saves the
	// decoding (and its allocations) for handlers that call
	// Event.Unmarshal, which reads Raw either way.
	DecodeData DataDecoding
	// RecordFormat is the layout of the records Emit writes. Default
	// RecordFormatCloudEvents; RecordFormatCompact writes one small
	// header instead of six. Consumers read both, whatever this says.
	RecordFormat RecordFormat
	// Source is the CloudEvents ce_source of emitted events. Default
	// "/eventstream/" + ClientID. RecordFormatCompact does not write it.
	Source string

	// Linger is how long the producer holds records to batch them before
	// sending. Default 0: every record is sent at once, and records emitted
	// while a request is in flight are batched anyway (so asynchronous
	// emits batch under load). A Linger delays every Emit by up to its
	// value.
	Linger time.Duration
	// MaxBufferedRecords bounds the records the producer holds before the
	// broker acknowledged them; Emit waits (until its context is done)
	// when it is reached. Default 50,000 (franz-go's).
	MaxBufferedRecords int
	// DeliveryTimeout bounds how long the producer keeps trying to write a
	// record (retries through broker restarts and leader changes
	// included) before it fails it: a blocking Emit then returns the
	// error, a WithAsync Emit's callback gets it, and a dead-letter write
	// is tried again later. Default 120s, as Kafka's Java producer
	// (delivery.timeout.ms); without a bound a record for an unreachable
	// cluster would wait forever.
	DeliveryTimeout time.Duration

	// TLS, when not nil, encrypts the connections (for example
	// &tls.Config{} for a broker with a publicly trusted certificate).
	TLS *tls.Config
	// SASL, when not nil, authenticates the connections.
	SASL *SASLConfig

	// ClientOptions are franz-go options added to every client the bus
	// builds; ProducerOptions only to the producer, ConsumerOptions only to
	// the consumers. They are applied after the bus's own, so where they
	// set the same thing they win: ClientID, TLS and SASL (kgo.ClientID,
	// kgo.DialTLSConfig, kgo.SASL), SessionTimeout, HeartbeatInterval,
	// FetchMaxWait, Linger and MaxBufferedRecords (kgo.SessionTimeout,
	// kgo.HeartbeatInterval, kgo.FetchMaxWait, kgo.ProducerLinger,
	// kgo.MaxBufferedRecords) — prefer the fields, which are validated.
	// Options that change what the bus relies on (consumer group, topics,
	// auto-commit, partition callbacks) break its guarantees.
	ClientOptions   []kgo.Opt
	ProducerOptions []kgo.Opt
	ConsumerOptions []kgo.Opt
}

// InitialOffset is where a new consumer group starts reading.
type InitialOffset string

// Initial offsets.
const (
	InitialOffsetLatest   InitialOffset = "latest"
	InitialOffsetEarliest InitialOffset = "earliest"
)

// NonJSONPolicy says what happens to a record whose value is not JSON.
type NonJSONPolicy int

const (
	// NonJSONDeliver hands the event to the handler with Data nil and the
	// bytes in Raw (Event.Unmarshal then reports the JSON error).
	NonJSONDeliver NonJSONPolicy = iota
	// NonJSONDeadLetter sends the record to the dead-letter topic, with a
	// reason naming the decode error (a *DecodeError), without calling the
	// handler. Records that are dead letters already are delivered, so a
	// dead-letter subscriber sees them.
	NonJSONDeadLetter
)

// DataDecoding says whether consumed events carry their decoded value.
type DataDecoding int

const (
	// DecodeDataAlways decodes every record's JSON value into Event.Data
	// before the handler runs (map[string]any, []any, string, float64,
	// bool or nil).
	DecodeDataAlways DataDecoding = iota
	// DecodeDataNever leaves Event.Data nil: handlers read the payload
	// with Event.Unmarshal (into their own type, from Raw), or Raw itself.
	// A value that is not JSON is still recognized when NonJSON is
	// NonJSONDeadLetter (the value is checked, not decoded); with
	// NonJSONDeliver, Event.Unmarshal reports it.
	DecodeDataNever
)

// RecordFormat is the layout of the records Emit writes.
type RecordFormat string

// Record formats.
const (
	// RecordFormatCloudEvents writes the CloudEvents Kafka binary-mode
	// attributes as headers (ce_specversion, ce_id, ce_source, ce_type,
	// ce_time, content-type): CloudEvents consumers read the records.
	RecordFormatCloudEvents RecordFormat = "cloudevents"
	// RecordFormatCompact writes the event's id and time in one binary
	// header, "eventstream" (version byte 1, a flags byte 0, the Unix
	// seconds in 8 bytes and the nanoseconds in 4, big-endian, then the
	// id), and no ce_* or content-type header: the value is JSON. The event's own headers
	// (trace context, user headers) are written as in the CloudEvents
	// format. Faster to write and to read (franz-go allocates a string
	// per header key on every fetch); consumers of this bus read both
	// formats on one topic, recognized per record.
	RecordFormatCompact RecordFormat = "compact"
)

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASLConfig authenticates the bus to the brokers. Its String, GoString,
// LogValue and MarshalJSON hide the password, so the config may be printed,
// logged (alone or nested in a Config, with any slog handler) or encoded.
type SASLConfig struct {
	// Mechanism is SASLPlain, SASLScramSHA256 or SASLScramSHA512.
	Mechanism string
	Username  string
	Password  string
}

// String implements fmt.Stringer without the password.
func (s SASLConfig) String() string {
	return "SASL{" + s.Mechanism + " user=" + s.Username + " password=[REDACTED]}"
}

// GoString implements fmt.GoStringer without the password.
func (s SASLConfig) GoString() string { return s.String() }

// LogValue implements slog.LogValuer without the password.
func (s SASLConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mechanism", s.Mechanism), slog.String("username", s.Username),
		slog.String("password", "[REDACTED]"))
}

// MarshalJSON implements json.Marshaler without the password: slog's JSON
// handler encodes a Config logged as a whole this way, not through LogValue.
// The password reads "[REDACTED]", so an encoded config cannot
// authenticate when decoded again.
func (s SASLConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct{ Mechanism, Username, Password string }{s.Mechanism, s.Username, "[REDACTED]"})
}

// Defaults of KafkaConfig, in one place.
const (
	defaultClientID          = "eventstream"
	defaultCommitInterval    = time.Second
	defaultJoinTimeout       = 30 * time.Second
	defaultSessionTimeout    = 45 * time.Second
	defaultHeartbeatInterval = 3 * time.Second
	defaultFetchMaxWait      = 500 * time.Millisecond
	defaultDeliveryTimeout   = 120 * time.Second
)

// normalize validates k and returns a copy with the defaults filled in.
func (k *KafkaConfig) normalize() (KafkaConfig, error) {
	if k == nil {
		return KafkaConfig{}, &ConfigError{Field: "Kafka", Reason: `distributed mode needs Config.Kafka with brokers (see DefaultDistributedConfig)`}
	}
	n := *k
	if len(n.Brokers) == 0 {
		return n, &ConfigError{Field: "Kafka.Brokers", Reason: "no seed brokers given"}
	}
	for i, b := range n.Brokers {
		if b == "" {
			return n, &ConfigError{Field: "Kafka.Brokers", Reason: "broker " + strconv.Itoa(i) + " is empty"}
		}
	}
	n.Brokers = append([]string(nil), n.Brokers...)
	if n.ClientID == "" {
		n.ClientID = defaultClientID
	}
	if n.Source == "" {
		n.Source = "/eventstream/" + n.ClientID
	}
	switch {
	case n.Partitions < 0:
		return n, &ConfigError{Field: "Kafka.Partitions", Reason: "must not be negative (0 means the broker's default)"}
	case n.ReplicationFactor < 0:
		return n, &ConfigError{Field: "Kafka.ReplicationFactor", Reason: "must not be negative (0 means the broker's default)"}
	}
	switch n.InitialOffset {
	case "":
		n.InitialOffset = InitialOffsetLatest
	case InitialOffsetLatest, InitialOffsetEarliest:
	default:
		return n, &ConfigError{Field: "Kafka.InitialOffset", Reason: "unknown value " + quote(string(n.InitialOffset)) + `, want "latest" or "earliest"`}
	}
	if n.NonJSON != NonJSONDeliver && n.NonJSON != NonJSONDeadLetter {
		return n, &ConfigError{Field: "Kafka.NonJSON", Reason: "unknown policy " + strconv.Itoa(int(n.NonJSON))}
	}
	if n.DecodeData != DecodeDataAlways && n.DecodeData != DecodeDataNever {
		return n, &ConfigError{Field: "Kafka.DecodeData", Reason: "unknown value " + strconv.Itoa(int(n.DecodeData))}
	}
	switch n.RecordFormat {
	case "":
		n.RecordFormat = RecordFormatCloudEvents
	case RecordFormatCloudEvents, RecordFormatCompact:
	default:
		return n, &ConfigError{Field: "Kafka.RecordFormat", Reason: "unknown value " + quote(string(n.RecordFormat)) + `, want "cloudevents" or "compact"`}
	}
	fetchMaxWait := defaultFetchMaxWait
	for _, d := range []struct {
		field string
		v     *time.Duration
		def   time.Duration
	}{
		{"Kafka.CommitInterval", &n.CommitInterval, defaultCommitInterval},
		{"Kafka.SessionTimeout", &n.SessionTimeout, defaultSessionTimeout},
		{"Kafka.HeartbeatInterval", &n.HeartbeatInterval, defaultHeartbeatInterval},
		{"Kafka.JoinTimeout", &n.JoinTimeout, defaultJoinTimeout},
		{"Kafka.Linger", &n.Linger, 0},
		{"Kafka.FetchMaxWait", &n.FetchMaxWait, fetchMaxWait},
		{"Kafka.DeliveryTimeout", &n.DeliveryTimeout, defaultDeliveryTimeout},
	} {
		switch {
		case *d.v < 0:
			return n, &ConfigError{Field: d.field, Reason: "must not be negative"}
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if n.HeartbeatInterval >= n.SessionTimeout {
		return n, &ConfigError{Field: "Kafka.HeartbeatInterval", Reason: "must be shorter than SessionTimeout"}
	}
	if n.MaxBufferedRecords < 0 {
		return n, &ConfigError{Field: "Kafka.MaxBufferedRecords", Reason: "must not be negative"}
	}
	if n.SASL != nil {
		switch n.SASL.Mechanism {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		default:
			return n, &ConfigError{Field: "Kafka.SASL.Mechanism", Reason: "unknown mechanism " + quote(n.SASL.Mechanism) +
				`, want "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"`}
		}
		if n.SASL.Username == "" {
			return n, &ConfigError{Field: "Kafka.SASL.Username", Reason: "empty"}
		}
		s := *n.SASL
		n.SASL = &s
	}
	for i, o := range append(append(append([]kgo.Opt(nil), n.ClientOptions...), n.ProducerOptions...), n.ConsumerOptions...) {
		if o == nil {
			return n, &ConfigError{Field: "Kafka.ClientOptions", Reason: "option " + strconv.Itoa(i) + " is nil"}
		}
	}
	return n, nil
}

// newDistributed builds the Kafka bus.
func newDistributed(cfg Config, o options) (EventBus, error) {
	if cfg.MQ != nil {
		if sys := cfg.MQ.System(); sys == "" || strings.ToLower(sys) != sys {
			return nil, &ConfigError{Field: "MQ", Reason: "System() must be a non-empty lower-case name, got " + quote(sys)}
		}
		b, err := newBus(cfg, o, func(h transport.Host) (transport.Transport, error) { return newAdapterTransport(h, cfg.MQ), nil })
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	kc, err := cfg.Kafka.normalize()
	if err != nil {
		return nil, err
	}
	b, err := newBus(cfg, o, func(h transport.Host) (transport.Transport, error) { return newKafkaTransport(h, kc) })
	if err != nil {
		return nil, err
	}
	b.deadLetterUndecodable = kc.NonJSON == NonJSONDeadLetter
	return b, nil
}

// newKafkaTransport builds the franz-go transport from a normalized
// KafkaConfig.
func newKafkaTransport(h transport.Host, kc KafkaConfig) (transport.Transport, error) {
	linger := kc.Linger
	format := kafka.FormatCloudEvents
	if kc.RecordFormat == RecordFormatCompact {
		format = kafka.FormatCompact
	}
	cfg := kafka.Config{
		Brokers:              kc.Brokers,
		ClientID:             kc.ClientID,
		Source:               kc.Source,
		Format:               format,
		SkipData:             kc.DecodeData == DecodeDataNever,
		CheckJSON:            kc.NonJSON == NonJSONDeadLetter,
		DisableTopicCreation: kc.DisableTopicCreation,
		Partitions:           kc.Partitions,
		ReplicationFactor:    kc.ReplicationFactor,
		TopicConfigs:         kc.TopicConfigs,
		Earliest:             kc.InitialOffset == InitialOffsetEarliest,
		CommitInterval:       kc.CommitInterval,
		SessionTimeout:       kc.SessionTimeout,
		HeartbeatInterval:    kc.HeartbeatInterval,
		JoinTimeout:          kc.JoinTimeout,
		FetchMaxWait:         kc.FetchMaxWait,
		Linger:               linger,
		MaxBufferedRecords:   kc.MaxBufferedRecords,
		DeliveryTimeout:      kc.DeliveryTimeout,
		TLS:                  kc.TLS,
		ClientOptions:        kc.ClientOptions,
		ProducerOptions:      kc.ProducerOptions,
		ConsumerOptions:      kc.ConsumerOptions,
	}
	if kc.SASL != nil {
		cfg.SASL = saslMechanism(*kc.SASL)
	}
	tr, err := kafka.New(h, cfg)
	if err != nil {
		var ke *KafkaError
		if errors.As(err, &ke) {
			return nil, err
		}
		// franz-go refused an option.
		return nil, &ConfigError{Field: "Kafka", Reason: err.Error()}
	}
	return tr, nil
}

func saslMechanism(s SASLConfig) sasl.Mechanism {
	switch s.Mechanism {
	case SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	default:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	}
}

// KafkaError reports a Kafka operation that failed: what was attempted
// (Op), the topic, and the client's or broker's error (Err), which
// errors.Is and errors.As reach (franz-go's kerr errors, context errors)
// beside ErrKafka.
type KafkaError = kafka.Error

// DecodeError says why a record's value could not be read as JSON. With
// KafkaConfig.NonJSON set to NonJSONDeadLetter, it is the reason given on
// the dead letter.
type DecodeError = kafka.DecodeError

// CloudEvents Kafka protocol binding, binary content mode: attributes are
// record headers prefixed "ce_", the data is the record value, and its media
// type is the content-type header.
const (
	HeaderCloudEventsSpecVersion = kafka.HeaderCloudEventsSpecVersion
	HeaderCloudEventsID          = kafka.HeaderCloudEventsID
	HeaderCloudEventsSource      = kafka.HeaderCloudEventsSource
	HeaderCloudEventsType        = kafka.HeaderCloudEventsType
	HeaderCloudEventsTime        = kafka.HeaderCloudEventsTime
	HeaderContentType            = kafka.HeaderContentType
)
