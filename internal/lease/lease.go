// Package lease shares a stream's partitions among the deliver workers of a
// task: each worker announces itself, takes leases on its fair share of the
// partitions, renews them, and gives partitions up when a worker joins; the
// leases of a worker that dies expire and the others take them over. It is
// the idea of the Kinesis Client Library's lease table, on a small
// compare-and-set store (NATS JetStream KV; see natsjs.LeaseStore).
//
// A lease is a key that expires ttl after its last write. A worker renews
// its leases every ttl/3 and stops writing to a partition's objects once
// ttl/2 has passed without a renewal (Fence), so a partition is written by
// at most one worker at a time as long as an object upload takes less than
// ttl/2: another worker can create the key only after it expired.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors a Store returns.
var (
	// ErrExists is returned by Create when the key exists.
	ErrExists = errors.New("key exists")
	// ErrChanged is returned by Update and Delete when the key is gone or
	// was written since the given revision.
	ErrChanged = errors.New("key changed")
)

// Store is a key-value store with compare-and-set writes whose keys expire
// a fixed time (the ttl the store was made with) after their last write.
type Store interface {
	Create(ctx context.Context, key string, value []byte) (rev uint64, err error)
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	Delete(ctx context.Context, key string, rev uint64) error
	// Keys lists the live keys that start with prefix.
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// Handler starts and stops the delivery of partitions. Both calls come
// from one goroutine. Release must stop writing the partition before it
// returns (the lease is given up right after); Lost is called instead when
// the lease was lost without being released (renewal failed), and must stop
// as fast as it can.
type Handler interface {
	Acquire(ctx context.Context, partition int) error
	Release(ctx context.Context, partition int) error
	Lost(partition int)
}

// Options configure a Coordinator.
type Options struct {
	Store      Store
	Worker     string // unique among the task's workers
	Partitions int
	TTL        time.Duration
	Handler    Handler
	Logger     *slog.Logger
}

// Coordinator holds a worker's membership and partition leases.
type Coordinator struct {
	opts Options

	mu      sync.Mutex
	owned   map[int]*held
	members int
}

type held struct {
	rev     uint64
	renewed time.Time
}

// New returns a Coordinator; Run starts it.
func New(opts Options) *Coordinator {
	return &Coordinator{opts: opts, owned: map[int]*held{}}
}

const (
	memberPrefix = "worker."
	leasePrefix  = "partition."
)

func leaseKey(p int) string { return leasePrefix + strconv.Itoa(p) }

// Owned returns the partitions this worker holds, in order.
func (c *Coordinator) Owned() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, 0, len(c.owned))
	for p := range c.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Workers is the number of live workers seen at the last round.
func (c *Coordinator) Workers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members
}

// Fence returns an error unless this worker holds partition's lease and
// renewed it less than ttl/2 ago: a worker checks it before it writes an
// object of the partition. On error the partition is given up
// (Handler.Lost): delivery drops what it buffered, and those records must
// come again before any later one is written, which only a new owner's
// consumer, started from the acknowledged prefix, guarantees.
func (c *Coordinator) Fence(partition int) error {
	c.mu.Lock()
	h := c.owned[partition]
	c.mu.Unlock()
	if h == nil {
		return fmt.Errorf("partition %d: this worker does not hold its lease", partition)
	}
	if age := time.Since(h.renewed); age > c.opts.TTL/2 {
		c.drop(partition)
		c.opts.Handler.Lost(partition)
		return fmt.Errorf("partition %d: lease not renewed for %s (the lease store is unreachable?); another worker may take it over", partition, age.Round(time.Millisecond))
	}
	return nil
}

// Run takes part in the sharing until ctx is cancelled, then releases the
// partitions it holds (each through Handler.Release) and leaves.
func (c *Coordinator) Run(ctx context.Context) error {
	tick := time.NewTicker(c.opts.TTL / 3)
	defer tick.Stop()
	var member uint64
	for {
		member = c.round(ctx, member)
		select {
		case <-ctx.Done():
			return c.leave(context.WithoutCancel(ctx), member)
		case <-tick.C:
		}
	}
}

// round is one renewal and rebalancing pass; it returns the revision of
// the worker's membership key (0 when it could not be written).
func (c *Coordinator) round(ctx context.Context, member uint64) uint64 {
	log, st := c.opts.Logger, c.opts.Store
	me := []byte(c.opts.Worker)
	var err error
	if member != 0 {
		member, err = st.Update(ctx, memberPrefix+c.opts.Worker, me, member)
	}
	if member == 0 || err != nil {
		member, err = st.Create(ctx, memberPrefix+c.opts.Worker, me)
		if err != nil {
			log.Warn("lease store: cannot announce this worker", "err", err)
			member = 0
		}
	}
	// Renew what is held; a lease that cannot be renewed is lost.
	for _, p := range c.Owned() {
		c.mu.Lock()
		h := c.owned[p]
		c.mu.Unlock()
		if h == nil {
			continue // given up by Fence meanwhile
		}
		rev, err := st.Update(ctx, leaseKey(p), me, h.rev)
		switch {
		case err == nil:
			c.mu.Lock()
			h.rev, h.renewed = rev, time.Now()
			c.mu.Unlock()
		case errors.Is(err, ErrChanged):
			log.Warn("lost the lease of a partition; another worker has it", "partition", p)
			c.drop(p)
			c.opts.Handler.Lost(p)
		default:
			log.Warn("lease store: cannot renew", "partition", p, "err", err)
			if time.Since(h.renewed) > c.opts.TTL/2 {
				c.drop(p)
				c.opts.Handler.Lost(p)
			}
		}
	}
	workers, err := st.Keys(ctx, memberPrefix)
	if err != nil {
		log.Warn("lease store: cannot list workers", "err", err)
		return member
	}
	share := c.share(workers)
	owned := c.Owned()
	// Give up partitions above the share, highest first, so that a worker
	// that joined can take them.
	for i := len(owned) - 1; i >= 0 && len(owned) > share; i-- {
		c.release(ctx, owned[i])
		owned = owned[:i]
	}
	for p := 0; p < c.opts.Partitions && len(owned) < share && ctx.Err() == nil; p++ {
		if slices.Contains(owned, p) {
			continue
		}
		rev, err := st.Create(ctx, leaseKey(p), me)
		if err != nil {
			if !errors.Is(err, ErrExists) {
				log.Warn("lease store: cannot take a lease", "partition", p, "err", err)
			}
			continue
		}
		c.mu.Lock()
		c.owned[p] = &held{rev: rev, renewed: time.Now()}
		c.mu.Unlock()
		if err := c.opts.Handler.Acquire(ctx, p); err != nil {
			if ctx.Err() == nil {
				log.Error("cannot start delivering a partition; giving its lease up", "partition", p, "err", err)
			}
			c.drop(p)
			// Given up even when stopping, so that another worker need not
			// wait for the lease to expire.
			if err := st.Delete(context.WithoutCancel(ctx), leaseKey(p), rev); err != nil {
				log.Warn("lease store: cannot delete a lease given up; it will expire", "partition", p, "err", err)
			}
			continue
		}
		log.Info("took over a partition", "partition", p, "workers", len(workers))
		owned = append(owned, p)
	}
	return member
}

// share is this worker's number of partitions: the partitions divided
// evenly among the live workers in name order, the first ones taking one
// more when they do not divide.
func (c *Coordinator) share(keys []string) int {
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, strings.TrimPrefix(k, memberPrefix))
	}
	if !slices.Contains(names, c.opts.Worker) {
		names = append(names, c.opts.Worker)
	}
	slices.Sort(names)
	c.mu.Lock()
	c.members = len(names)
	c.mu.Unlock()
	rank := slices.Index(names, c.opts.Worker)
	n := c.opts.Partitions / len(names)
	if rank < c.opts.Partitions%len(names) {
		n++
	}
	return n
}

func (c *Coordinator) drop(p int) {
	c.mu.Lock()
	delete(c.owned, p)
	c.mu.Unlock()
}

// release stops delivering p and gives its lease up.
func (c *Coordinator) release(ctx context.Context, p int) {
	c.mu.Lock()
	h := c.owned[p]
	c.mu.Unlock()
	if h == nil {
		return
	}
	// Hand-overs run one after another, with no renewal round between
	// them: renew a lease that is getting old first, so that its fence
	// stays open while what is buffered for it is written.
	if time.Since(h.renewed) > c.opts.TTL/3 {
		if rev, err := c.opts.Store.Update(ctx, leaseKey(p), []byte(c.opts.Worker), h.rev); err == nil {
			c.mu.Lock()
			h.rev, h.renewed = rev, time.Now()
			c.mu.Unlock()
		}
	}
	if err := c.opts.Handler.Release(ctx, p); err != nil {
		// Not flushed: let the lease expire rather than hand the partition
		// over while this worker may still write it.
		c.opts.Logger.Error("releasing a partition failed; its lease will expire", "partition", p, "err", err)
		c.drop(p)
		c.opts.Handler.Lost(p)
		return
	}
	c.drop(p)
	c.mu.Lock()
	rev := h.rev
	c.mu.Unlock()
	if err := c.opts.Store.Delete(ctx, leaseKey(p), rev); err != nil {
		c.opts.Logger.Warn("lease store: cannot delete a released lease; it will expire", "partition", p, "err", err)
	}
	c.opts.Logger.Info("handed a partition over", "partition", p)
}

func (c *Coordinator) leave(ctx context.Context, member uint64) error {
	for _, p := range c.Owned() {
		c.release(ctx, p)
	}
	if member != 0 {
		if err := c.opts.Store.Delete(ctx, memberPrefix+c.opts.Worker, member); err != nil {
			c.opts.Logger.Warn("lease store: cannot remove this worker; it will expire", "err", err)
		}
	}
	return nil
}
