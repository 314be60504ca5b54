package telemetry

// Internals the tests check against.
var DurationBuckets = durationBuckets[:]
