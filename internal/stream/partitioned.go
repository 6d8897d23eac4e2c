package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Partitioned is a Consumer over a changing set of partitions, each read by
// a consumer of its own: a deliver worker assigns the partitions whose
// leases it takes and revokes those it gives up.
type Partitioned struct {
	open func(ctx context.Context, partition int) (Consumer, error)

	mu    sync.Mutex
	parts map[int]Consumer
	next  int // round-robin start of the next Fetch
}

// NewPartitioned returns a Partitioned that opens a partition's consumer
// with open.
func NewPartitioned(open func(ctx context.Context, partition int) (Consumer, error)) *Partitioned {
	return &Partitioned{open: open, parts: map[int]Consumer{}}
}

// Assign starts reading partition.
func (p *Partitioned) Assign(ctx context.Context, partition int) error {
	c, err := p.open(ctx, partition)
	if err != nil {
		return fmt.Errorf("partition %d: %w", partition, err)
	}
	p.mu.Lock()
	old := p.parts[partition]
	p.parts[partition] = c
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Revoke stops reading partition, closing its consumer (which sends the
// acknowledgements still buffered).
func (p *Partitioned) Revoke(partition int) error {
	p.mu.Lock()
	c := p.parts[partition]
	delete(p.parts, partition)
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

// Assigned returns the partitions being read, in order.
func (p *Partitioned) Assigned() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.parts))
	for k := range p.parts {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Fetch returns up to max messages from the assigned partitions: first
// whatever each has ready, then, when none had any, waiting on each in turn
// for its part of wait. With no partition assigned it waits and returns
// nothing.
func (p *Partitioned) Fetch(ctx context.Context, max int, wait time.Duration) ([]*Delivered, error) {
	parts := p.Assigned()
	if len(parts) == 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
			return nil, nil
		}
	}
	p.mu.Lock()
	start := p.next % len(parts)
	p.next++
	p.mu.Unlock()
	parts = append(parts[start:], parts[:start]...)
	var out []*Delivered
	for _, step := range []time.Duration{time.Millisecond, max64(wait/time.Duration(len(parts)), time.Millisecond)} {
		for _, part := range parts {
			if len(out) >= max {
				return out, nil
			}
			p.mu.Lock()
			c := p.parts[part]
			p.mu.Unlock()
			if c == nil {
				continue // revoked meanwhile
			}
			got, err := c.Fetch(ctx, max-len(out), step)
			out = append(out, got...)
			if err != nil {
				return out, fmt.Errorf("partition %d: %w", part, err)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return out, nil
}

func max64(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// Pending sums the pending messages of the assigned partitions.
func (p *Partitioned) Pending(ctx context.Context) (uint64, error) {
	var n uint64
	for _, part := range p.Assigned() {
		p.mu.Lock()
		c := p.parts[part]
		p.mu.Unlock()
		if c == nil {
			continue
		}
		k, err := c.Pending(ctx)
		if err != nil {
			return n, fmt.Errorf("partition %d: %w", part, err)
		}
		n += k
	}
	return n, nil
}

// Close closes every partition's consumer.
func (p *Partitioned) Close() error {
	var errs []error
	for _, part := range p.Assigned() {
		errs = append(errs, p.Revoke(part))
	}
	return errors.Join(errs...)
}
