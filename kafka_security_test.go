package eventstream_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// selfSigned returns a server TLS config for 127.0.0.1 and a client config
// trusting it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kfake"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

// logBuffer is a slog handler target safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TLS and every SASL mechanism work against a cluster that requires them.
func TestKafkaTLSAndSASL(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	const user, pass = "svc-orders", "correct horse battery staple"
	brokers := eventstreamtest.KafkaCluster(t, kfake.TLS(serverTLS), kfake.EnableSASL(),
		kfake.Superuser(eventstream.SASLPlain, user, pass),
		kfake.Superuser(eventstream.SASLScramSHA256, user, pass),
		kfake.Superuser(eventstream.SASLScramSHA512, user, pass))
	for _, mech := range []string{eventstream.SASLPlain, eventstream.SASLScramSHA256, eventstream.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			b := newKafkaBus(t, brokers, func(c *eventstream.Config) {
				c.Kafka.TLS = clientTLS
				c.Kafka.SASL = &eventstream.SASLConfig{Mechanism: mech, Username: user, Password: pass}
				c.Kafka.ClientID = "orders"
			})
			topic := eventstreamtest.Topic(t)
			got := newEvents()
			if _, err := b.On(topic, got.handler); err != nil {
				t.Fatal(err)
			}
			if err := b.Emit(context.Background(), topic, "secure"); err != nil {
				t.Fatal(err)
			}
			if e := got.wait(t, 1)[0]; e.Data != "secure" {
				t.Fatalf("data %v", e.Data)
			}
		})
	}
}

// A wrong password is a clear error at New, and the password appears in
// no error, no log line (at debug level, franz-go's own logs included), no
// span and no printed config.
func TestKafkaCredentialsNotLeaked(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	const user, pass, wrong = "svc-orders", "correct horse battery staple", "Tr0ub4dor&3-wrong"
	brokers := eventstreamtest.KafkaCluster(t, kfake.TLS(serverTLS), kfake.EnableSASL(),
		kfake.Superuser(eventstream.SASLScramSHA512, user, pass))
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))

	cfg := kafkaTestConfig(brokers)
	cfg.Kafka.TLS = clientTLS
	cfg.Kafka.SASL = &eventstream.SASLConfig{Mechanism: eventstream.SASLScramSHA512, Username: user, Password: wrong}
	cfg.Kafka.ClientOptions = []kgo.Opt{kgo.RetryTimeout(2 * time.Second)}
	_, authErr := eventstream.New(cfg, eventstream.WithLogger(logger), eventstream.WithTracerProvider(tp))
	if authErr == nil {
		t.Fatal("New succeeded with a wrong password")
	}
	if !errors.Is(authErr, eventstream.ErrKafka) || !strings.Contains(authErr.Error(), "SASL") {
		t.Errorf("the error does not point at the SASL settings: %v", authErr)
	}
	logger.Info("config", "kafka", cfg.Kafka, "sasl", cfg.Kafka.SASL)

	// And a working bus, logging at debug, with spans.
	cfg.Kafka.SASL.Password = pass
	b, err := eventstream.New(cfg, eventstream.WithLogger(logger), eventstream.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	topic := eventstreamtest.Topic(t)
	got := newEvents()
	if _, err := b.On(topic, got.handler); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	var spans strings.Builder
	for _, s := range sr.Ended() {
		fmt.Fprintf(&spans, "%s %v %v\n", s.Name(), s.Attributes(), s.Status())
	}
	for what, text := range map[string]string{
		"error":   authErr.Error(),
		"logs":    logs.String(),
		"spans":   spans.String(),
		"%+v":     fmt.Sprintf("%+v %+v %#v", cfg.Kafka, *cfg.Kafka.SASL, *cfg.Kafka.SASL),
		"%v":      fmt.Sprint(cfg.Kafka.SASL, *cfg.Kafka.SASL),
		"slog":    slogText(cfg.Kafka.SASL),
		"new err": fmt.Sprintf("%+v %#v", authErr, authErr),
	} {
		for _, secret := range []string{pass, wrong} {
			if strings.Contains(text, secret) {
				t.Errorf("a password appears in the %s:\n%s", what, text)
			}
		}
	}
	if !strings.Contains(logs.String(), "kafka client") {
		t.Error("franz-go's debug logs were not captured; the check above saw nothing of them")
	}
}

func slogText(v any) string {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "v", v)
	return buf.String()
}

// The SASL password appears in no encoding of the config, alone or nested
// in a Config: encoding/json, fmt's verbs, and slog's JSON and text handlers
// (which encode a nested struct with encoding/json and fmt, not LogValue).
func TestSASLPasswordRedacted(t *testing.T) {
	const secret = "s3cret-Passw0rd"
	cfg := eventstream.DefaultDistributedConfig([]string{"broker:9092"})
	cfg.Kafka.SASL = &eventstream.SASLConfig{Mechanism: eventstream.SASLScramSHA256, Username: "svc", Password: secret}
	sasl := *cfg.Kafka.SASL
	// A Config with TLS set cannot be encoded as JSON (tls.Config holds
	// functions); here TLS is nil, as in most logged configs.
	marshal := func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	}

	encodings := map[string]func() (string, error){
		"json.Marshal(config)":    func() (string, error) { return marshal(cfg) },
		"json.Marshal(kafka)":     func() (string, error) { return marshal(cfg.Kafka) },
		"json.Marshal(sasl)":      func() (string, error) { return marshal(sasl) },
		"json.Marshal(*sasl)":     func() (string, error) { return marshal(cfg.Kafka.SASL) },
		"%v":                      func() (string, error) { return fmt.Sprintf("%v %v %v %v", cfg, *cfg, *cfg.Kafka, sasl), nil },
		"%+v":                     func() (string, error) { return fmt.Sprintf("%+v %+v %+v %+v", cfg, *cfg, *cfg.Kafka, sasl), nil },
		"%#v":                     func() (string, error) { return fmt.Sprintf("%#v %#v %#v %#v", cfg, *cfg, *cfg.Kafka, sasl), nil },
		"%s":                      func() (string, error) { return fmt.Sprintf("%s %s", sasl, cfg.Kafka.SASL), nil },
		"slog JSON, nested":       func() (string, error) { return slogWith(slog.NewJSONHandler, "config", cfg), nil },
		"slog JSON, kafka":        func() (string, error) { return slogWith(slog.NewJSONHandler, "kafka", *cfg.Kafka), nil },
		"slog JSON, sasl":         func() (string, error) { return slogWith(slog.NewJSONHandler, "sasl", sasl), nil },
		"slog text, nested":       func() (string, error) { return slogWith(slog.NewTextHandler, "config", cfg), nil },
		"slog text, config value": func() (string, error) { return slogWith(slog.NewTextHandler, "config", *cfg), nil },
		"slog text, kafka":        func() (string, error) { return slogWith(slog.NewTextHandler, "kafka", *cfg.Kafka), nil },
		"slog text, sasl":         func() (string, error) { return slogWith(slog.NewTextHandler, "sasl", cfg.Kafka.SASL), nil },
	}
	for name, encode := range encodings {
		out, err := encode()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the password:\n%s", name, out)
		}
		if !strings.Contains(out, "svc") && !strings.Contains(name, "nested") && !strings.Contains(name, "config") {
			t.Errorf("%s lost the username too (redacting everything proves nothing):\n%s", name, out)
		}
	}
}

func slogWith[H slog.Handler](newHandler func(io.Writer, *slog.HandlerOptions) H, key string, v any) string {
	var buf bytes.Buffer
	slog.New(newHandler(&buf, nil)).Info("config", key, v)
	return buf.String()
}
