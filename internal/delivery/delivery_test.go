package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objectkey"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/memstream"
)

func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`task: t1
source: {mysql: {host: h, user: u}}
tables: [{include: "s.%"}]
target: file:///unused
` + extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// publish writes n insert records alternating over tables s.a and s.b and
// partitions 0 and 1, in position order.
func publish(t *testing.T, l *memstream.Log, from, n int) []string {
	t.Helper()
	p := l.Producer()
	var positions []string
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := from; i < from+n; i++ {
		table := []string{"a", "b"}[i%2]
		part := (i / 2) % 2
		rec := &change.Record{
			Op: change.OpInsert, Schema: "s", Table: table,
			Data:       change.Row{{Name: "id", Value: int64(i)}, {Name: "v", Value: strings.Repeat("x", 100)}},
			CommitTime: base.Add(time.Duration(i) * time.Second),
			Position:   change.Position{File: 1, Offset: uint64(1000 + 10*i), Kind: change.KindEvent},
		}
		rec.PartitionKey = fmt.Sprintf("s.%s.%d", table, i)
		rec.PartitionKeyPK = true
		m := &stream.Message{Partition: part, Table: "s." + table, Position: rec.Position.String(), Op: "insert", CommitTime: rec.CommitTime, Data: rec.AppendJSON(nil)}
		if err := p.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		positions = append(positions, m.Position)
	}
	return positions
}

// drain runs a delivery until everything on the log is delivered.
func drain(t *testing.T, cfg *config.Config, l *memstream.Log, b objstore.Bucket, dir string) *Delivery {
	t.Helper()
	d := New(Options{Config: cfg, Consumer: l.Consumer(), Bucket: b, StateDir: dir, Logger: quiet})
	done := make(chan struct{})
	close(done)
	if err := d.Run(context.Background(), done); err != nil {
		t.Fatalf("drain: %v", err)
	}
	return d
}

// assertExactlyOnce checks that the lake holds each position exactly once.
func assertExactlyOnce(t *testing.T, b objstore.Bucket, want []string) {
	t.Helper()
	recs, err := lake.Read(context.Background(), b, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.Position]++
	}
	for _, p := range want {
		if seen[p] != 1 {
			t.Errorf("position %s is in the lake %d times, want once", p, seen[p])
		}
	}
	if len(recs) != len(want) {
		t.Errorf("the lake holds %d records, want %d", len(recs), len(want))
	}
}

// crashingBucket simulates a crash around the nth data-object upload: the
// delivery's context is cancelled, and the upload either happened (after)
// or not (before).
type crashingBucket struct {
	objstore.Bucket
	mu     sync.Mutex
	n      int
	after  bool
	cancel context.CancelFunc
}

var errCrash = errors.New("simulated crash")

func (c *crashingBucket) Put(ctx context.Context, key string, body []byte) error {
	if strings.Contains(key, "_binlake/") {
		return c.Bucket.Put(ctx, key, body)
	}
	c.mu.Lock()
	c.n--
	n := c.n
	c.mu.Unlock()
	if n != 0 {
		return c.Bucket.Put(ctx, key, body)
	}
	if c.after {
		if err := c.Bucket.Put(ctx, key, body); err != nil {
			return err
		}
	}
	c.cancel()
	return errCrash
}

// TestExactlyOnceAcrossCrashes crashes delivery before and after object
// uploads at many points and checks that, once resumed, every record is in
// the lake exactly once — although the batches after a resume differ from
// the ones before.
func TestExactlyOnceAcrossCrashes(t *testing.T) {
	for _, after := range []bool{false, true} {
		for crashAt := 1; crashAt <= 6; crashAt++ {
			t.Run(fmt.Sprintf("after=%v/put%d", after, crashAt), func(t *testing.T) {
				cfg := testConfig(t, "delivery: {buffer: {size: 1KiB, interval: 0s}, prefix: lake/}\n")
				dir := t.TempDir()
				mem := objstore.NewMemory()
				l := memstream.New()
				want := publish(t, l, 0, 40)

				ctx, cancel := context.WithCancel(context.Background())
				cb := &crashingBucket{Bucket: mem, n: crashAt, after: after, cancel: cancel}
				d := New(Options{Config: cfg, Consumer: l.Consumer(), Bucket: cb, StateDir: dir, Logger: quiet})
				drainNow := make(chan struct{})
				close(drainNow)
				// 40 records in 4 (table, partition) buffers of 1 KiB make
				// at least 4 objects before the drain ends.
				err := d.Run(ctx, drainNow)
				if err == nil && crashAt <= 4 {
					t.Fatal("delivery did not stop at the simulated crash")
				}
				// More records arrive while delivery is down; batch
				// boundaries after the restart are not the ones before.
				want = append(want, publish(t, l, 40, 17)...)
				d = drain(t, cfg, l, mem, dir)
				assertExactlyOnce(t, mem, want)
				if l.Unacked() != 0 {
					t.Errorf("%d messages left unacknowledged", l.Unacked())
				}
				st := d.Stats()
				if got := st["s.a"].Inserts + st["s.b"].Inserts; got != uint64(len(want)) {
					t.Errorf("stats count %d inserts, want %d", got, len(want))
				}
			})
		}
	}
}

// TestRedeliveryAfterCommitIsDropped replays the whole stream to a delivery
// whose checkpoint says everything is stored: nothing is written again.
func TestRedeliveryAfterCommitIsDropped(t *testing.T) {
	cfg := testConfig(t, "delivery: {buffer: {size: 4KiB, interval: 0s}}\n")
	dir := t.TempDir()
	mem := objstore.NewMemory()
	l := memstream.New()
	want := publish(t, l, 0, 30)
	drain(t, cfg, l, mem, dir)

	replay := memstream.New()
	publish(t, replay, 0, 30)
	d := drain(t, cfg, replay, mem, dir)
	assertExactlyOnce(t, mem, want)
	if d.Duplicates() != 30 {
		t.Errorf("duplicates dropped = %d, want 30", d.Duplicates())
	}
}

// TestCheckpointRebuiltFromLake loses the delivery checkpoint: the stored
// positions come back from the object names.
func TestCheckpointRebuiltFromLake(t *testing.T) {
	for _, prefix := range []string{"lake/", "x/{yyyy}/{partition}/", "{task}/"} {
		t.Run(prefix, func(t *testing.T) {
			cfg := testConfig(t, fmt.Sprintf("delivery: {buffer: {size: 2KiB, interval: 0s}, prefix: %q}\n", prefix))
			dir := t.TempDir()
			mem := objstore.NewMemory()
			l := memstream.New()
			want := publish(t, l, 0, 25)
			drain(t, cfg, l, mem, dir)
			if err := os.Remove(filepath.Join(dir, "delivery.json")); err != nil {
				t.Fatal(err)
			}
			replay := memstream.New()
			publish(t, replay, 0, 25)
			want = append(want, publish(t, replay, 25, 5)...)
			drain(t, cfg, replay, mem, dir)
			assertExactlyOnce(t, mem, want)
		})
	}
}

// TestFlushBySize checks that objects are not much smaller than the buffer
// size: each holds at least size bytes of JSON lines, except the last one
// written on drain.
func TestFlushBySize(t *testing.T) {
	cfg := testConfig(t, "delivery: {buffer: {size: 2KiB, interval: 900s}, compression: none, prefix: lake/}\n")
	mem := objstore.NewMemory()
	l := memstream.New()
	publish(t, l, 0, 120)
	drain(t, cfg, l, mem, t.TempDir())
	sizes := map[string][]int{}
	var order []string
	mem.List(context.Background(), "lake/", func(key string, size int64) error {
		if strings.Contains(key, "_binlake/") {
			return nil
		}
		k, _, ok := parseObjectName("t1", key)
		if !ok {
			t.Errorf("object name %s does not parse", key)
		}
		if _, seen := sizes[k]; !seen {
			order = append(order, k)
		}
		sizes[k] = append(sizes[k], int(size))
		return nil
	})
	if len(order) != 4 {
		t.Fatalf("objects for %d (table, partition) pairs, want 4: %v", len(order), order)
	}
	for _, k := range order {
		s := sizes[k]
		for i, n := range s[:len(s)-1] {
			if n < 2048 || n > 2048+400 {
				t.Errorf("%s object %d holds %d bytes, want 2 KiB plus less than one record", k, i, n)
			}
		}
	}
}

// TestFlushByInterval uses a fake clock: a record waits for the interval,
// not longer.
func TestFlushByInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, "delivery: {buffer: {size: 1MiB, interval: 30s}, prefix: lake/}\n")
		mem := objstore.NewMemory()
		l := memstream.New()
		d := New(Options{Config: cfg, Consumer: l.Consumer(), Bucket: mem, StateDir: t.TempDir(), Logger: quiet})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx, make(chan struct{})) }()
		publish(t, l, 0, 1)
		count := func() int {
			n := 0
			mem.List(context.Background(), "lake/s/", func(string, int64) error { n++; return nil })
			return n
		}
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if n := count(); n != 0 {
			t.Fatalf("%d objects after 29s, want 0 (interval 30s)", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := count(); n != 1 {
			t.Fatalf("%d objects after 31s, want 1", n)
		}
		cancel()
		<-done
	})
}

// TestMarker checks the completeness marker after a drain.
func TestMarker(t *testing.T) {
	cfg := testConfig(t, "delivery: {buffer: {size: 1MiB, interval: 0s}, prefix: lake/}\n")
	mem := objstore.NewMemory()
	l := memstream.New()
	positions := publish(t, l, 0, 10)
	d := drain(t, cfg, l, mem, t.TempDir())
	body, err := mem.Get(context.Background(), d.MarkerKey("s", "b"))
	if err != nil {
		t.Fatal(err)
	}
	var m Marker
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Task != "t1" || m.Schema != "s" || m.Table != "b" {
		t.Errorf("marker names %s %s.%s", m.Task, m.Schema, m.Table)
	}
	if m.CompleteThroughPosition != positions[9] {
		t.Errorf("complete_through_position = %s, want %s", m.CompleteThroughPosition, positions[9])
	}
	if want := time.Date(2026, 11, 24, 10, 0, 9, 0, time.UTC); !m.CompleteBefore.Equal(want) {
		t.Errorf("complete_before_commit_time = %s, want %s", m.CompleteBefore, want)
	}
}

func TestPrevPosition(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0000/0000000001/0000000000001000/1/0000000000/0000000001", "0000/0000000001/0000000000001000/1/0000000000/0000000000"},
		{"0000/0000000001/0000000000001000/1/0000000000/0000000000", "0000/0000000001/0000000000001000/0/9999999999/9999999999"},
		{"0000/0000000002/0000000000000000/0/0000000000/0000000000", "0000/0000000001/9999999999999999/9/9999999999/9999999999"},
	} {
		got, err := prevPosition(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("prevPosition(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
		if !(got < tc.in) {
			t.Errorf("prevPosition(%s) does not sort before it", tc.in)
		}
	}
}

func TestObjectNameRoundTrip(t *testing.T) {
	key := "x/2026/t1-wordpress-db.wp_posts-p0003-" + compactPosition("0000/0000000001/0000000000001000/1/0000000000/0000000000") + "-" + compactPosition("0000/0000000001/0000000000009000/1/0000000002/0000000001") + ".json.gz"
	k, last, ok := parseObjectName("t1", key)
	if !ok || k != "3|wordpress-db.wp_posts" || last != "0000/0000000001/0000000000009000/1/0000000002/0000000001" {
		t.Errorf("parseObjectName = %q %q %v", k, last, ok)
	}
	if _, _, ok := parseObjectName("t2", key); ok {
		t.Errorf("an object of task t1 parsed as task t2's")
	}
}

// TestPendingObjectCompacted: delivery stops right after an upload, before
// it records the object as stored; compaction then merges that object
// with the others of its table partition and deletes them. The restarted
// delivery counts the pending object as stored, since the merged object
// covers it: nothing is written twice.
func TestPendingObjectCompacted(t *testing.T) {
	cfg := testConfig(t, "delivery: {buffer: {size: 1KiB, interval: 0s}, prefix: lake/, compression: none}\n")
	dir := t.TempDir()
	mem := objstore.NewMemory()
	l := memstream.New()
	want := publish(t, l, 0, 40)
	drain(t, cfg, l, mem, dir) // an object per table partition
	want = append(want, publish(t, l, 40, 40)...)
	ctx, cancel := context.WithCancel(context.Background())
	cb := &crashingBucket{Bucket: mem, n: 3, after: true, cancel: cancel}
	drainNow := make(chan struct{})
	close(drainNow)
	if err := New(Options{Config: cfg, Consumer: l.Consumer(), Bucket: cb, StateDir: dir, Logger: quiet}).Run(ctx, drainNow); err == nil {
		t.Fatal("delivery did not stop at the simulated crash")
	}
	var state State
	if _, err := checkpoint.Load(filepath.Join(dir, "delivery.json"), &state); err != nil || len(state.Pending) != 1 {
		t.Fatalf("pending after the crash: %v %v", state.Pending, err)
	}
	var pending *Intent
	for _, in := range state.Pending {
		pending = in
	}
	// Compaction: one object per table partition, the parts deleted.
	groups := map[string][]objectkey.Name{}
	mem.List(context.Background(), "lake/", func(key string, _ int64) error {
		if n, ok := objectkey.Parse(key); ok {
			groups[fmt.Sprint(n.Head, n.Partition)] = append(groups[fmt.Sprint(n.Head, n.Partition)], n)
		}
		return nil
	})
	covered := false
	for _, parts := range groups {
		if len(parts) < 2 {
			continue
		}
		var text []byte
		for _, n := range parts {
			b, _ := mem.Get(context.Background(), n.Key)
			text = append(text, b...)
			mem.Delete(context.Background(), n.Key)
			covered = covered || n.Key == pending.Key
		}
		first, last := parts[0], parts[len(parts)-1]
		table, _ := first.Table("t1")
		mem.Put(context.Background(), objectkey.Format(first.Dir(), "t1", table, first.Partition, first.First, last.Last, first.Ext), text)
	}
	if !covered {
		t.Fatalf("the pending object %s was not merged", pending.Key)
	}
	drain(t, cfg, l, mem, dir)
	assertExactlyOnce(t, mem, want)
	// Not only as readers see it: no object holds a record a merged one
	// holds.
	seen := map[string]int{}
	mem.List(context.Background(), "lake/", func(key string, _ int64) error {
		if strings.Contains(key, "_binlake/") {
			return nil
		}
		b, _ := mem.Get(context.Background(), key)
		recs, err := lake.Decode(key, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if seen[r.Position]++; seen[r.Position] == 2 {
				t.Errorf("%s is in two objects", r.Position)
			}
		}
		return nil
	})
}

// TestResendWhileBuffered: a record capture published again after a
// restart (another stream message) that arrives while its first copy waits
// in a buffer is acknowledged at once — the first copy's message keeps it
// on the stream — while the same message delivered again waits for the
// first copy's flush, whose acknowledgement covers it.
func TestResendWhileBuffered(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t, "delivery: {buffer: {size: 1MiB, interval: 10m}}\n")
	d := New(Options{Config: cfg, Bucket: objstore.NewMemory(), StateDir: t.TempDir(), Logger: quiet})
	acked := map[uint64]int{}
	msg := func(seq uint64, offset int) *stream.Delivered {
		rec := &change.Record{Op: change.OpInsert, Schema: "s", Table: "a", Data: change.Row{{Name: "id", Value: int64(offset)}},
			CommitTime: time.Now(), Position: change.Position{File: 1, Offset: uint64(offset), Kind: change.KindEvent}}
		return stream.NewDelivered(stream.Message{Partition: 0, Table: "s.a", Position: rec.Position.String(), Op: "insert",
			CommitTime: rec.CommitTime, Data: rec.AppendJSON(nil)}, seq, func(context.Context) error { acked[seq]++; return nil })
	}
	add := func(m *stream.Delivered) {
		t.Helper()
		res, err := d.transform(ctx, []*stream.Delivered{m})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.add(ctx, m, res[0]); err != nil {
			t.Fatal(err)
		}
	}
	add(msg(1, 100))
	add(msg(1, 200))
	add(msg(1, 100)) // message 1 delivered again
	add(msg(2, 100)) // the record again, in message 2
	if acked[1] != 0 || acked[2] != 1 {
		t.Errorf("acknowledgements by message: %v; want message 2's once, message 1's none until the flush", acked)
	}
	if n := len(d.buffers[bufKey{table: "s.a"}].msgs); n != 2 {
		t.Errorf("the buffer holds %d records, want 2", n)
	}
}
