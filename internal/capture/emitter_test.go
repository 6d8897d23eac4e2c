package capture

import (
	"runtime"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/stream/memstream"
)

// TestEmitterBuffersAfterHugeRecord encodes a job holding one 8 MiB record,
// then a job of small records: the small records' shared buffers are sized
// from their own kind, not from the huge one (256 buffers of its size
// would be gigabytes), and every record arrives whole, in order.
func TestEmitterBuffersAfterHugeRecord(t *testing.T) {
	log := memstream.New()
	e := newEmitter(log.Producer())
	defer e.close()
	ctx := t.Context()
	rec := func(n int, v string) *change.Record {
		return &change.Record{Op: change.OpInsert, Schema: "s", Table: "t",
			Data:     change.Row{{Name: "id", Value: int64(n)}, {Name: "v", Value: v}},
			Position: change.Position{File: 1, Offset: 4, Kind: change.KindEvent, A: uint64(n)}}
	}
	huge := strings.Repeat("x", 8<<20)
	if err := e.add(ctx, rec(0, huge), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := e.flush(ctx); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for n := 1; n <= jobRecords; n++ {
		if err := e.add(ctx, rec(n, "small"), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.flush(ctx); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("%d small records after an 8 MiB one allocated %d MiB, want under 8", jobRecords, alloc>>20)
	}
	got, err := log.Consumer().Fetch(ctx, 2*jobRecords, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != jobRecords+1 {
		t.Fatalf("%d messages, want %d", len(got), jobRecords+1)
	}
	for n, m := range got {
		want := string(rec(n, "small").AppendJSON(nil))
		if n == 0 {
			want = string(rec(0, huge).AppendJSON(nil))
		}
		// The metadata timestamp differs: compare what precedes it.
		cut := strings.Index(want, `"timestamp"`)
		if len(m.Data) < cut || string(m.Data[:cut]) != want[:cut] {
			t.Fatalf("message %d: %.200s, want %.200s", n, m.Data, want)
		}
	}
}
