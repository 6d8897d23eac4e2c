package lease_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/lease"
	"github.com/binlake/binlake/internal/lease/leasetest"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/testbed"
)

// memStore is a lease.Store in memory whose keys expire ttl after their
// last write, and which can be made to fail every call, as a lease store
// out of reach does.
type memStore struct {
	ttl  time.Duration
	down atomic.Bool

	mu   sync.Mutex
	rev  uint64
	keys map[string]memEntry
}

type memEntry struct {
	rev     uint64
	expires time.Time
}

var errDown = errors.New("lease store unreachable")

func (m *memStore) live(key string) (memEntry, bool) {
	e, ok := m.keys[key]
	return e, ok && time.Now().Before(e.expires)
}

func (m *memStore) write(key string) uint64 {
	m.rev++
	m.keys[key] = memEntry{rev: m.rev, expires: time.Now().Add(m.ttl)}
	return m.rev
}

func (m *memStore) Create(_ context.Context, key string, _ []byte) (uint64, error) {
	if m.down.Load() {
		return 0, errDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live(key); ok {
		return 0, lease.ErrExists
	}
	return m.write(key), nil
}

func (m *memStore) Update(_ context.Context, key string, _ []byte, rev uint64) (uint64, error) {
	if m.down.Load() {
		return 0, errDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.live(key); !ok || e.rev != rev {
		return 0, lease.ErrChanged
	}
	return m.write(key), nil
}

func (m *memStore) Delete(_ context.Context, key string, rev uint64) error {
	if m.down.Load() {
		return errDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.live(key); !ok || e.rev != rev {
		return lease.ErrChanged
	}
	delete(m.keys, key)
	return nil
}

func (m *memStore) Keys(_ context.Context, prefix string) ([]string, error) {
	if m.down.Load() {
		return nil, errDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.keys {
		if _, ok := m.live(k); ok && strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out, nil
}

// events records a Handler's calls.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
}

func (e *events) Acquire(_ context.Context, p int) error {
	e.add("acquire " + string(rune('0'+p)))
	return nil
}
func (e *events) Release(_ context.Context, p int) error {
	e.add("release " + string(rune('0'+p)))
	return nil
}
func (e *events) Lost(p int) { e.add("lost " + string(rune('0'+p))) }

func (e *events) snapshot() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// TestFenceGivesUp checks that a worker whose lease store is out of reach
// fails the fence after ttl/2 and gives the partition up at that moment
// (Handler.Lost), so that what delivery dropped cannot be overtaken by later
// records; once the store is back, the partition is taken anew only after
// the old lease expired.
func TestFenceGivesUp(t *testing.T) {
	const ttl = 600 * time.Millisecond
	st := &memStore{ttl: ttl, keys: map[string]memEntry{}}
	ev := &events{}
	c := lease.New(lease.Options{Store: st, Worker: "a", Partitions: 1, TTL: ttl, Handler: ev,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: events %v", what, ev.snapshot())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("partition 0 taken", func() bool { return slices.Equal(c.Owned(), []int{0}) })
	if err := c.Fence(0); err != nil {
		t.Fatalf("fence of a fresh lease: %v", err)
	}
	st.down.Store(true)
	cut := time.Now()
	waitFor("fence closed", func() bool { return c.Fence(0) != nil })
	if since := time.Since(cut); since < ttl/2-ttl/3 {
		t.Errorf("the fence closed %s after the store went away, before ttl/2 could pass since the last renewal", since)
	}
	if got := c.Owned(); len(got) != 0 {
		t.Errorf("after the fence closed the worker still holds %v", got)
	}
	if got := ev.snapshot(); !slices.Equal(got, []string{"acquire 0", "lost 0"}) {
		t.Errorf("events %v, want [acquire 0 lost 0]", got)
	}
	st.down.Store(false)
	back := time.Now()
	waitFor("partition 0 taken again", func() bool { return slices.Equal(c.Owned(), []int{0}) })
	// Its own old lease had to expire first: ttl after the last renewal,
	// which came before the cut.
	if wait := time.Since(cut); wait < ttl-ttl/3 {
		t.Errorf("partition taken again %s after the cut (%s after the store came back), before the old lease expired", wait, time.Since(back))
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := ev.snapshot(); !slices.Equal(got, []string{"acquire 0", "lost 0", "acquire 0", "release 0"}) {
		t.Errorf("events %v", got)
	}
}

// TestBucketStore runs the lease scenario on object stores with
// conditional writes, each worker with a BucketStore of its own (its own
// sightings), as separate processes have: in memory, and in a directory.
func TestBucketStore(t *testing.T) {
	const ttl = 900 * time.Millisecond
	t.Run("memory", func(t *testing.T) {
		b := objstore.NewMemory()
		leasetest.Run(t, func() lease.Store { return lease.NewBucketStore(b, "_binlake/leases/t/", ttl) }, ttl)
	})
	t.Run("file", func(t *testing.T) {
		b, err := objstore.NewFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		leasetest.Run(t, func() lease.Store { return lease.NewBucketStore(b, "_binlake/leases/t/", ttl) }, ttl)
	})
	t.Run("s3", func(t *testing.T) { // versitygw, a real S3 server
		srv := testbed.NewS3(t)
		if err := srv.CreateBucket(t.Context(), "lake"); err != nil {
			t.Fatal(err)
		}
		b, err := objstore.NewS3(t.Context(), "lake", "cdc", objstore.S3Options{Region: srv.Region, Endpoint: srv.Endpoint,
			PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		leasetest.Run(t, func() lease.Store { return lease.NewBucketStore(b, "_binlake/leases/t/", ttl) }, ttl)
	})
}
