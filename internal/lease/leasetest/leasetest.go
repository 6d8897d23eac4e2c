// Package leasetest is the scenario every lease.Store passes, driven
// through real Coordinators: workers joining, sharing fairly, dying and
// stopping, with no partition ever delivered by two workers at once.
package leasetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/lease"
)

// recorder is a lease.Handler that records which partitions it delivers
// and fails the test when a partition is delivered by two workers at once.
type recorder struct {
	name  string
	mu    *sync.Mutex
	owner map[int]string    // shared by all workers: partition → worker delivering it
	at    map[int]time.Time // shared: when each partition was last acquired
	t     *testing.T
}

func (r *recorder) Acquire(ctx context.Context, p int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.owner[p]; ok {
		r.t.Errorf("%s acquired partition %d while %s still delivers it", r.name, p, o)
	}
	r.owner[p] = r.name
	r.at[p] = time.Now()
	return nil
}

func (r *recorder) Release(ctx context.Context, p int) error { r.stop(p); return nil }
func (r *recorder) Lost(p int)                               { r.stop(p) }

func (r *recorder) stop(p int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owner[p] == r.name {
		delete(r.owner, p)
	}
}

// cuttable is a lease.Store that can be cut off, as a worker whose process
// died: every call fails from then on.
type cuttable struct {
	lease.Store
	cut atomic.Bool
}

var errCut = errors.New("connection cut")

func (c *cuttable) Create(ctx context.Context, k string, v []byte) (uint64, error) {
	if c.cut.Load() {
		return 0, errCut
	}
	return c.Store.Create(ctx, k, v)
}
func (c *cuttable) Update(ctx context.Context, k string, v []byte, rev uint64) (uint64, error) {
	if c.cut.Load() {
		return 0, errCut
	}
	return c.Store.Update(ctx, k, v, rev)
}
func (c *cuttable) Delete(ctx context.Context, k string, rev uint64) error {
	if c.cut.Load() {
		return errCut
	}
	return c.Store.Delete(ctx, k, rev)
}
func (c *cuttable) Keys(ctx context.Context, prefix string) ([]string, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Store.Keys(ctx, prefix)
}

// Run shares 8 partitions among workers whose keys expire ttl after their
// last write, each with the store newStore returns (one per worker, as
// each process has its own): one worker takes all, a second and a third
// join and get their fair share, a worker that dies (its store cut,
// nothing released) has its partitions taken over only after its fence
// closed, a worker that stops hands its partitions over at once; no
// partition is ever held by two workers.
func Run(t *testing.T, newStore func() lease.Store, ttl time.Duration) {
	var mu sync.Mutex
	owner := map[int]string{}
	acquired := map[int]time.Time{}
	type worker struct {
		c     *lease.Coordinator
		store *cuttable
		stop  func()
		done  chan error
	}
	start := func(name string) *worker {
		w := &worker{store: &cuttable{Store: newStore()}, done: make(chan error, 1)}
		w.c = lease.New(lease.Options{
			Store: w.store, Worker: name, Partitions: 8, TTL: ttl,
			Handler: &recorder{name: name, mu: &mu, owner: owner, at: acquired, t: t},
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		ctx, stop := context.WithCancel(t.Context())
		w.stop = stop
		go func() { w.done <- w.c.Run(ctx) }()
		return w
	}
	counts := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		n := map[string]int{}
		for _, o := range owner {
			n[o]++
		}
		return n
	}
	waitShares := func(want map[string]int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if fmt.Sprint(counts()) == fmt.Sprint(want) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("partitions per worker = %v, want %v", counts(), want)
	}

	a := start("a")
	waitShares(map[string]int{"a": 8})
	b := start("b")
	waitShares(map[string]int{"a": 4, "b": 4})
	c := start("c")
	waitShares(map[string]int{"a": 3, "b": 3, "c": 2})
	for _, w := range []*worker{a, b, c} {
		for _, p := range w.c.Owned() {
			if err := w.c.Fence(p); err != nil {
				t.Errorf("fence of a held partition: %v", err)
			}
		}
	}
	if err := a.c.Fence(slices.Max(c.c.Owned())); err == nil {
		t.Errorf("worker a passed the fence of a partition worker c holds")
	}

	// b dies: nothing is released, its leases expire, a and c share.
	bOwned := b.c.Owned()
	b.store.cut.Store(true)
	cutAt := time.Now()
	b.stop()
	<-b.done
	mu.Lock()
	for _, p := range bOwned { // the dead worker's handler is gone with it
		delete(owner, p)
	}
	mu.Unlock()
	waitShares(map[string]int{"a": 4, "c": 4})
	mu.Lock()
	for _, p := range bOwned {
		// b renewed at most ttl/3 before the cut; its fence closed ttl/2
		// after that renewal, and nobody may take over before.
		if wait := acquired[p].Sub(cutAt); wait < ttl/2-ttl/3 {
			t.Errorf("partition %d of the dead worker was taken over %s after it died, before its fence closed", p, wait)
		}
	}
	mu.Unlock()
	t.Logf("a dead worker's partitions were taken over %s after it died (ttl %s)", time.Since(cutAt).Round(time.Millisecond), ttl)

	// c stops cleanly: a takes everything without waiting for expiry.
	c.stop()
	if err := <-c.done; err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	waitShares(map[string]int{"a": 8})
	if d := time.Since(began); d >= ttl {
		t.Errorf("hand-over after a clean stop took %s, as long as an expiry (ttl %s)", d, ttl)
	}
	a.stop()
	<-a.done
}
