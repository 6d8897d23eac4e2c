package kafka_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/kafka"
)

// groupWorker is a deliver worker in miniature: a Group sharing the topic
// with others, a loop that fetches its partitions and acknowledges what it
// reads (all but what skip says), and the hand-overs run in that loop
// between fetches, as delivery runs them.
type groupWorker struct {
	name  string
	g     *kafka.Group
	parts *stream.Partitioned
	ops   chan func()
	stop  func()
	done  chan error
	b     *board
	skip  func(*stream.Delivered) bool // leave unacknowledged
}

// board is what every worker reports to: who delivers each partition, and
// every position read, by whom.
type board struct {
	t     *testing.T
	mu    sync.Mutex
	owner map[int]string
	seen  map[string][]string // position → workers that read it
}

func (w *groupWorker) do(fn func()) {
	done := make(chan struct{})
	w.ops <- func() { fn(); close(done) }
	<-done
}

func (w *groupWorker) Acquire(ctx context.Context, p int) error {
	var err error
	w.do(func() {
		w.b.mu.Lock()
		if o, ok := w.b.owner[p]; ok {
			w.b.t.Errorf("%s acquired partition %d while %s delivers it", w.name, p, o)
		}
		w.b.owner[p] = w.name
		w.b.mu.Unlock()
		err = w.parts.Assign(ctx, p)
	})
	return err
}

func (w *groupWorker) Release(ctx context.Context, p int) error {
	var err error
	w.do(func() { err = w.parts.Revoke(p); w.b.release(w.name, p) })
	return err
}

func (w *groupWorker) Lost(p int) {
	go w.do(func() { w.parts.Revoke(p); w.b.release(w.name, p) })
}

func (b *board) release(name string, p int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.owner[p] == name {
		delete(b.owner, p)
	}
}

func (b *board) shares() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := map[string]int{}
	for _, o := range b.owner {
		n[o]++
	}
	return n
}

func startGroupWorker(t *testing.T, st *kafka.Stream, b *board, name string, skip func(*stream.Delivered) bool) *groupWorker {
	w := &groupWorker{name: name, ops: make(chan func()), done: make(chan error, 1), b: b, skip: skip}
	w.g = st.Group(kafka.GroupOptions{Name: "binlake.test.deliver", SessionTimeout: 3 * time.Second})
	w.g.Handle(w)
	w.parts = stream.NewPartitioned(func(ctx context.Context, p int) (stream.Consumer, error) {
		return w.g.Partition(p), nil
	})
	ctx, stop := context.WithCancel(t.Context())
	w.stop = stop
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for loopCtx.Err() == nil {
			for more := true; more; {
				select {
				case op := <-w.ops:
					op()
				default:
					more = false
				}
			}
			msgs, err := w.parts.Fetch(loopCtx, 100, 20*time.Millisecond)
			if err != nil && loopCtx.Err() == nil {
				t.Errorf("%s: fetch: %v", name, err)
				return
			}
			for _, m := range msgs {
				b.mu.Lock()
				b.seen[m.Position] = append(b.seen[m.Position], name)
				if b.owner[m.Partition] != name {
					t.Errorf("%s read %s of partition %d, which it does not deliver", name, m.Position, m.Partition)
				}
				b.mu.Unlock()
				if w.skip == nil || !w.skip(m) {
					m.Ack(loopCtx)
				}
			}
		}
	}()
	go func() {
		err := w.g.Run(ctx) // leaves, handing over through the loop
		stopLoop()
		<-loopDone
		w.parts.Close()
		w.g.Close()
		w.done <- err
	}()
	return w
}

func waitShares(t *testing.T, b *board, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if fmt.Sprint(b.shares()) == fmt.Sprint(want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("partitions per worker = %v, want %v", b.shares(), want)
}

func pos(p, i int) string { return fmt.Sprintf("0000/0000000001/%016d/1/%010d/0000000000", i, p) }

// TestGroupSharesPartitions shares 6 partitions among deliver workers in a
// consumer group on a 3-broker kfake cluster while records keep coming: one
// worker takes all, a second and a third join and get two each, one leaves
// and the others take its partitions. No partition is read by two workers
// at once, and every record is read exactly once, because a worker commits
// what it acknowledged before the group hands a partition on. Then a worker
// that leaves 5 records of partition 0 unacknowledged hands over: the next
// owner reads exactly those again, from the committed offset.
func TestGroupSharesPartitions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const partitions = 6
	st, err := kafka.Open(t.Context(), kafka.Options{
		Brokers: c.ListenAddrs(), Topic: "binlake.test", Partitions: partitions, Create: true,
		MaxMessageBytes: 1 << 20, StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := st.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var published atomic.Int64
	var pubMu sync.Mutex
	var all []string
	publish := func(n int) {
		pubMu.Lock()
		defer pubMu.Unlock()
		for range n {
			i := int(published.Add(1))
			p := i % partitions
			m := &stream.Message{Partition: p, Table: "s.t", Position: pos(p, i), Op: "insert", CommitTime: time.Now(), Data: []byte(`{}`)}
			if err := prod.Publish(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			all = append(all, m.Position)
		}
		if err := prod.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	publish(600)
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for {
			select {
			case <-stopPub:
				return
			case <-time.After(20 * time.Millisecond):
				publish(12)
			}
		}
	}()

	b := &board{t: t, owner: map[int]string{}, seen: map[string][]string{}}
	a := startGroupWorker(t, st, b, "a", nil)
	waitShares(t, b, map[string]int{"a": 6})
	w2 := startGroupWorker(t, st, b, "b", nil)
	waitShares(t, b, map[string]int{"a": 3, "b": 3})
	w3 := startGroupWorker(t, st, b, "c", nil)
	waitShares(t, b, map[string]int{"a": 2, "b": 2, "c": 2})
	if n := a.g.Workers(); n != 3 {
		t.Errorf("worker a counts %d workers in the group, want 3", n)
	}
	for _, w := range []*groupWorker{a, w2, w3} {
		for _, p := range w.g.Owned() {
			if err := w.g.Fence(p); err != nil {
				t.Errorf("%s: fence of a partition it delivers: %v", w.name, err)
			}
		}
	}
	if err := a.g.Fence(w3.g.Owned()[0]); err == nil {
		t.Errorf("worker a passed the fence of a partition worker c delivers")
	}
	time.Sleep(300 * time.Millisecond)
	w2.stop()
	if err := <-w2.done; err != nil {
		t.Fatal(err)
	}
	waitShares(t, b, map[string]int{"a": 3, "c": 3})
	time.Sleep(300 * time.Millisecond)
	close(stopPub)
	<-pubDone

	waitRead := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			b.mu.Lock()
			n := len(b.seen)
			b.mu.Unlock()
			if n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("read %d of %d records", n, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitRead(len(all))
	b.mu.Lock()
	for _, p := range all {
		if got := b.seen[p]; len(got) != 1 {
			t.Errorf("%s read %d times (by %v), want once", p, len(got), got)
		}
	}
	b.mu.Unlock()
	t.Logf("%d records read exactly once across 3 rebalances", len(all))

	// c leaves 5 records of partition 0 unacknowledged and leaves; a
	// reads exactly those again.
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	w3.stop()
	if err := <-w3.done; err != nil {
		t.Fatal(err)
	}
	b.seen = map[string][]string{}
	var unacked []string
	skipper := startGroupWorker(t, st, b, "d", func(m *stream.Delivered) bool {
		if m.Partition != 0 || len(unacked) >= 5 {
			return false
		}
		unacked = append(unacked, m.Position)
		return true
	})
	waitShares(t, b, map[string]int{"d": 6})
	publish(60) // 10 per partition
	waitRead(60)
	skipper.stop()
	if err := <-skipper.done; err != nil {
		t.Fatal(err)
	}
	if len(unacked) != 5 {
		t.Fatalf("left %d records unacknowledged, want 5", len(unacked))
	}
	b.seen = map[string][]string{}
	e := startGroupWorker(t, st, b, "e", nil)
	waitShares(t, b, map[string]int{"e": 6})
	time.Sleep(time.Second)
	e.stop()
	if err := <-e.done; err != nil {
		t.Fatal(err)
	}
	var again []string
	for p := range b.seen {
		again = append(again, p)
	}
	slices.Sort(again)
	// The first unacknowledged record holds the committed offset back:
	// everything of partition 0 from it on comes again.
	var want []string
	for _, p := range all[len(all)-60:] {
		if p >= unacked[0] && p[len(p)-21:len(p)-11] == "0000000000" {
			want = append(want, p)
		}
	}
	slices.Sort(want)
	if !slices.Equal(again, want) {
		t.Errorf("after the hand-over the next owner read %v, want %v (partition 0 from the first record left unacknowledged)", again, want)
	}

	// The committed offsets are the partitions' ends: everything is
	// acknowledged.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "binlake.test.deliver"
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	committed := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			committed[rp.Partition] = rp.Offset
		}
	}
	for p := range int32(partitions) {
		n := int64(0)
		for _, x := range all {
			if x[len(x)-21:len(x)-11] == fmt.Sprintf("%010d", p) {
				n++
			}
		}
		if committed[p] != n {
			t.Errorf("partition %d: committed offset %d, want %d (its end)", p, committed[p], n)
		}
	}
}
