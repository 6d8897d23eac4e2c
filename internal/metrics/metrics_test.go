package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/metrics"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/memstream"
)

func pos(kind change.Kind, a, b uint64) string {
	return change.Position{Epoch: 0, File: 1, Offset: 100, Kind: kind, A: a, B: b}.String()
}

func TestProducerCountsRecords(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewStream(reg)
	p := m.WrapProducer(memstream.New().Producer())
	ctx := context.Background()
	msgs := []stream.Message{
		// The full load of a table: its definition (not a change), 2 rows.
		{Partition: 0, Table: "db.t", Op: "create-table", Position: pos(change.KindLoad, 1, 0)},
		{Partition: 1, Table: "db.t", Op: "create-table", Position: pos(change.KindLoad, 1, 1)},
		{Partition: 0, Table: "db.t", Op: "load", Position: pos(change.KindLoad, 2, 0)},
		{Partition: 1, Table: "db.t", Op: "load", Position: pos(change.KindLoad, 2, 1)},
		// CDC: 3 inserts, 2 updates, 1 delete.
		{Partition: 0, Table: "db.t", Op: "insert", Position: pos(change.KindEvent, 0, 0)},
		{Partition: 1, Table: "db.t", Op: "insert", Position: pos(change.KindEvent, 1, 0)},
		{Partition: 1, Table: "db.u", Op: "insert", Position: pos(change.KindEvent, 2, 0)},
		{Partition: 0, Table: "db.t", Op: "update", Position: pos(change.KindEvent, 0, 0)},
		{Partition: 0, Table: "db.t", Op: "update", Position: pos(change.KindEvent, 1, 0)},
		{Partition: 1, Table: "db.t", Op: "delete", Position: pos(change.KindEvent, 0, 0)},
		// An ALTER TABLE, broadcast to both partitions: one DDL.
		{Partition: 0, Table: "db.t", Op: "change-columns", Position: pos(change.KindEvent, 0, 0)},
		{Partition: 1, Table: "db.t", Op: "change-columns", Position: pos(change.KindEvent, 0, 1)},
	}
	for i := range msgs {
		if err := p.Publish(ctx, &msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP binlake_capture_records_total Records capture published on the stream since the process started, by table and operation (load, insert, update, delete, ddl).
# TYPE binlake_capture_records_total counter
binlake_capture_records_total{op="ddl",table="db.t"} 1
binlake_capture_records_total{op="delete",table="db.t"} 1
binlake_capture_records_total{op="insert",table="db.t"} 2
binlake_capture_records_total{op="insert",table="db.u"} 1
binlake_capture_records_total{op="load",table="db.t"} 2
binlake_capture_records_total{op="update",table="db.t"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "binlake_capture_records_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "binlake_stream_publish_duration_seconds", "binlake_stream_flush_duration_seconds"); err != nil || n != 2 {
		t.Errorf("publish and flush histograms: %d series, %v", n, err)
	}
}

func TestProducerFailure(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewStream(reg)
	p := m.WrapProducer(failingProducer{})
	msg := &stream.Message{Table: "db.t", Op: "insert", Position: pos(change.KindEvent, 0, 0)}
	if err := p.Publish(context.Background(), msg); err == nil {
		t.Fatal("Publish succeeded")
	}
	want := `
# HELP binlake_stream_failures_total Failed stream producer calls, by operation (publish, flush).
# TYPE binlake_stream_failures_total counter
binlake_stream_failures_total{operation="flush"} 0
binlake_stream_failures_total{operation="publish"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "binlake_stream_failures_total", "binlake_capture_records_total"); err != nil {
		t.Error(err)
	}
}

type failingProducer struct{}

func (failingProducer) Publish(context.Context, *stream.Message) error {
	return errors.New("stream full")
}
func (failingProducer) Flush(context.Context) error { return nil }
func (failingProducer) Close() error                { return nil }

func TestNilIsANoOp(t *testing.T) {
	var s *metrics.Stream
	inner := memstream.New().Producer()
	if p := s.WrapProducer(inner); p != stream.Producer(inner) {
		t.Error("a nil Stream wraps the producer")
	}
	var m *metrics.Target
	b := objstore.NewMemory()
	if got := m.Wrap(b); got != objstore.Bucket(b) {
		t.Error("a nil Target wraps the bucket")
	}
	if m.Refusing().Active() {
		t.Error("a nil Target refuses")
	}
}

// flaky fails every Put while down is set.
type flaky struct {
	objstore.Bucket
	down bool
}

func (f *flaky) Put(ctx context.Context, key string, body []byte) error {
	if f.down {
		return errors.New("503 SlowDown")
	}
	return f.Bucket.Put(ctx, key, body)
}

func TestTargetRefusal(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewTarget(reg)
	f := &flaky{Bucket: objstore.NewMemory()}
	b := m.Wrap(f)
	ctx := context.Background()
	if b.String() != "mem://" {
		t.Errorf("String() = %q: the wrapper hides the bucket's name", b.String())
	}
	if err := b.Put(ctx, "a", []byte("12345")); err != nil {
		t.Fatal(err)
	}
	if m.Refusing().Active() {
		t.Fatal("refusing after a successful put")
	}
	f.down = true
	for range 3 {
		if err := b.Put(ctx, "b", []byte("x")); err == nil {
			t.Fatal("put succeeded while down")
		}
	}
	r := m.Refusing()
	if !r.Active() || r.Failures != 3 || r.LastErr != "503 SlowDown" || r.Since.IsZero() {
		t.Errorf("Refusing() = %+v, want 3 failures of 503 SlowDown", r)
	}
	// A cancelled put is the shutdown, not the target's refusal.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	b.Put(cctx, "c", []byte("x"))
	if got := m.Refusing().Failures; got != 3 {
		t.Errorf("failures after a cancelled put = %d, want 3", got)
	}
	f.down = false
	if err := b.Put(ctx, "b", []byte("678")); err != nil {
		t.Fatal(err)
	}
	if m.Refusing().Active() {
		t.Error("still refusing after a successful put")
	}
	if _, err := b.Get(ctx, "nope"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Get of a missing key: %v", err)
	}
	want := `
# HELP binlake_target_operation_failures_total Failed operations on the target. Delivery retries every failed put with backoff, so for put this is also the number of upload retries.
# TYPE binlake_target_operation_failures_total counter
binlake_target_operation_failures_total{operation="delete"} 0
binlake_target_operation_failures_total{operation="get"} 1
binlake_target_operation_failures_total{operation="list"} 0
binlake_target_operation_failures_total{operation="put"} 4
# HELP binlake_target_operations_total Operations on the target (object store), by operation (put, get, list, delete).
# TYPE binlake_target_operations_total counter
binlake_target_operations_total{operation="delete"} 0
binlake_target_operations_total{operation="get"} 1
binlake_target_operations_total{operation="list"} 0
binlake_target_operations_total{operation="put"} 6
# HELP binlake_target_written_bytes_total Bytes stored on the target by successful puts: objects and completeness markers.
# TYPE binlake_target_written_bytes_total counter
binlake_target_written_bytes_total 8
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"binlake_target_operations_total", "binlake_target_operation_failures_total", "binlake_target_written_bytes_total"); err != nil {
		t.Error(err)
	}
}
