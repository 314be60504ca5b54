// Package e2e holds the end-to-end checks of EventStream's observability
// assets in ../grafana: the dashboards decode with grafana-foundation-sdk's
// types and follow the project's conventions, every query uses the metric and
// label names the library exports, and (with EVENTSTREAM_PROMETHEUS_URL set)
// every panel query and alert expression evaluates against a real Prometheus.
// It is a module of its own so that its test dependencies stay out of the
// library's go.mod.
package e2e
