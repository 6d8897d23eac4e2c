// Package stream defines the durable, partitioned, ordered log between
// capture and delivery (the job Kinesis Data Streams does in the AWS
// pipeline). Backends live in subpackages; each passes the conformance suite
// in streamtest.
package stream

import (
	"context"
	"time"
)

// Message is one record on the stream. Data is the record's DMS JSON form;
// the other fields travel as headers so that consumers can route, order and
// deduplicate without parsing Data.
type Message struct {
	Partition  int
	Table      string // "schema.table"
	Position   string // metadata.stream-position
	Op         string
	CommitTime time.Time
	// Key is the record's partition key (DMS partition-key-value, e.g.
	// "schema.table.42"). It is optional: backends with a native key
	// (Kafka's record key) carry it, others may drop it.
	Key  string
	Data []byte
}

// Producer appends messages. Messages of one partition are stored in the
// order Publish was called.
type Producer interface {
	// Publish queues m; it may return before m is durable.
	Publish(ctx context.Context, m *Message) error
	// Flush waits until every message published so far is durable, or
	// returns the first error any of them met.
	Flush(ctx context.Context) error
	Close() error
}

// Lagger is implemented by consumers that know how far behind the newest
// stored message they are (Kinesis's MillisBehindLatest).
type Lagger interface {
	Lag() time.Duration
}

// Backlogger is implemented by consumers that can tell cheaply how many
// stored messages they have not read yet (NATS: the last message's
// metadata; Kafka: one ListOffsets request), for the status and metrics.
type Backlogger interface {
	Backlog() uint64
}

// Unwrapper is implemented by consumers that wrap another one (Unbatcher).
type Unwrapper interface {
	Unwrap() Consumer
}

// As finds the first consumer in c's chain of wrapped consumers that
// implements T (Lagger, Backlogger).
func As[T any](c Consumer) (T, bool) {
	for c != nil {
		if t, ok := c.(T); ok {
			return t, true
		}
		u, ok := c.(Unwrapper)
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Delivered is a message handed to a consumer, to be acknowledged once its
// effect is durable. Unacknowledged messages are delivered again.
type Delivered struct {
	Message
	Seq uint64 // the backend's sequence number, for logs
	ack func(context.Context) error
}

// NewDelivered is used by backends to build a Delivered.
func NewDelivered(m Message, seq uint64, ack func(context.Context) error) *Delivered {
	return &Delivered{Message: m, Seq: seq, ack: ack}
}

// Ack acknowledges d.
func (d *Delivered) Ack(ctx context.Context) error { return d.ack(ctx) }

// Consumer reads the stream from its durable position.
type Consumer interface {
	// Fetch returns up to max messages, waiting at most wait for the first.
	// It returns an empty slice, not an error, when nothing arrived.
	Fetch(ctx context.Context, max int, wait time.Duration) ([]*Delivered, error)
	// Pending is the number of stored messages not yet handed to this consumer.
	Pending(ctx context.Context) (uint64, error)
	Close() error
}
