package eventstream

// newDistributed builds the Kafka bus.
func newDistributed(cfg Config, o options) (EventBus, error) {
	return nil, &ConfigError{Field: "Mode", Reason: `"distributed" needs the Kafka transport, which this build does not have yet`}
}
