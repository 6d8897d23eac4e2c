// Package memstream is an in-memory stream for unit tests: one ordered log
// shared by producers and consumers, with acknowledgements, so a test can
// "restart" a consumer and have every unacknowledged message delivered again.
package memstream

import (
	"context"
	"sync"
	"time"

	"github.com/binlake/binlake/internal/stream"
)

// Log is the stored stream.
type Log struct {
	mu    sync.Mutex
	msgs  []stream.Message
	acked map[uint64]bool
	added chan struct{}
}

// New returns an empty log.
func New() *Log {
	return &Log{acked: map[uint64]bool{}, added: make(chan struct{})}
}

var (
	_ stream.Producer = (*Producer)(nil)
	_ stream.Consumer = (*Consumer)(nil)
)

// Producer appends to the log.
type Producer struct{ l *Log }

// Producer returns a producer of the log.
func (l *Log) Producer() *Producer { return &Producer{l: l} }

// Publish appends m.
func (p *Producer) Publish(ctx context.Context, m *stream.Message) error {
	p.l.mu.Lock()
	p.l.msgs = append(p.l.msgs, *m)
	close(p.l.added)
	p.l.added = make(chan struct{})
	p.l.mu.Unlock()
	return nil
}

// Flush is a no-op: the log is always durable.
func (p *Producer) Flush(ctx context.Context) error { return nil }

// Close does nothing.
func (p *Producer) Close() error { return nil }

// Consumer reads the log from the first unacknowledged message, like a
// durable consumer recreated after a restart.
type Consumer struct {
	l    *Log
	next uint64 // index of the next message to hand out
}

// Consumer returns a new consumer positioned at the first unacknowledged
// message.
func (l *Log) Consumer() *Consumer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next uint64
	for next < uint64(len(l.msgs)) && l.acked[next+1] {
		next++
	}
	return &Consumer{l: l, next: next}
}

// Fetch hands out up to max messages, skipping acknowledged ones.
func (c *Consumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]*stream.Delivered, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c.l.mu.Lock()
		var out []*stream.Delivered
		for c.next < uint64(len(c.l.msgs)) && len(out) < max {
			seq := c.next + 1
			c.next++
			if c.l.acked[seq] {
				continue
			}
			out = append(out, stream.NewDelivered(c.l.msgs[seq-1], seq, func(context.Context) error {
				c.l.mu.Lock()
				c.l.acked[seq] = true
				c.l.mu.Unlock()
				return nil
			}))
		}
		added := c.l.added
		c.l.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, nil
		case <-added:
		}
	}
}

// Pending is the number of messages not yet handed out.
func (c *Consumer) Pending(ctx context.Context) (uint64, error) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return uint64(len(c.l.msgs)) - c.next, nil
}

// Close does nothing.
func (c *Consumer) Close() error { return nil }

// Unacked is the number of stored messages not acknowledged.
func (l *Log) Unacked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs) - len(l.acked)
}
