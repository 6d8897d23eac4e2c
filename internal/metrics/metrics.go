// Package metrics owns binlake's Prometheus instrumentation of the
// interfaces between its stages: a wrapper around the stream producer that
// counts what capture publishes and times it, and a wrapper around the
// target bucket that counts, times and sizes every operation and remembers
// whether the target is refusing writes.
//
// Nothing here registers with the global registry: every constructor takes
// the prometheus.Registerer of the task it serves. Metric names start with
// binlake_ and end with their unit (_total, _seconds, _bytes).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlake/binlake/internal/change"
)

// Namespace prefixes every binlake metric name.
const Namespace = "binlake"

// OpLabel is the op label of a record's operation: load, insert, update,
// delete, or ddl for every control record.
func OpLabel(op string) string {
	switch change.Op(op) {
	case change.OpLoad, change.OpInsert, change.OpUpdate, change.OpDelete:
		return op
	}
	return "ddl"
}

// durationBuckets span a fast local call (100 µs) to a slow S3 upload (~100 s).
var durationBuckets = prometheus.ExponentialBuckets(0.0001, 4, 11)
