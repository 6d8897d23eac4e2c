package compaction_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/compaction"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/lake/laketest"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
)

const task = "t1"

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func compactor(t *testing.T, b objstore.Bucket, extra string, clock *time.Time) *compaction.Compactor {
	t.Helper()
	c, err := compaction.New(compaction.Options{Config: laketest.Config(t, task, extra), Bucket: b,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return *clock }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// record is a data record of s.items at offset, committed at commit.
func record(op change.Op, id int, offset uint64, commit time.Time) change.Record {
	return change.Record{Op: op, Schema: "s", Table: "items", Data: change.Row{{Name: "id", Value: int64(id)}, {Name: "v", Value: fmt.Sprint("v", offset)}},
		Position: change.Position{File: 1, Offset: offset, Kind: change.KindEvent}, PartitionKey: fmt.Sprint("s.items.", id), PartitionKeyPK: true,
		TransactionID: offset, CommitTime: commit}
}

// smallLog writes n objects of 3 records per partition, an hour apart.
func smallLog(t *testing.T, b objstore.Bucket, n int) {
	for i := range n {
		for p := range 2 {
			var recs []change.Record
			for r := range 3 {
				off := uint64(1000 + 100*i + 10*r + p)
				recs = append(recs, record(change.OpUpdate, 2*r+p, off, start.Add(time.Duration(i)*time.Hour)))
			}
			laketest.Put(t, b, fmt.Sprintf("lake/s/items/%02d/", i), task, "s.items", p, "gzip", recs...)
		}
	}
}

// read reads the lake as lake.Read does and fails on a duplicate record.
func read(t *testing.T, b objstore.Bucket) []string {
	t.Helper()
	recs, err := lake.Read(context.Background(), b, "lake/")
	if err != nil {
		t.Fatalf("lake.Read: %v", err)
	}
	rp := lake.ReplayRecords(recs)
	if len(rp.Duplicates) > 0 {
		t.Fatalf("%d duplicate records, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Position+" "+fmt.Sprint(r.Data))
	}
	slices.Sort(out) // objects are read in key order, which compaction changes
	return out
}

func keys(t *testing.T, b objstore.Bucket, prefix string) []string {
	var out []string
	b.List(context.Background(), prefix, func(key string, _ int64) error { out = append(out, key); return nil })
	return out
}

// TestCompaction merges small objects, is read exactly at every step, and
// deletes the merged-away objects only after the grace period.
func TestCompaction(t *testing.T) {
	b := objstore.NewMemory()
	smallLog(t, b, 6)
	before := read(t, b)
	clock := start.Add(24 * time.Hour)
	c := compactor(t, b, `, compaction: {enabled: true, target_size: 4KiB, grace: 10m}`, &clock)

	res, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Merged != 2 || res.Parts != 12 || res.Deleted != 0 {
		t.Fatalf("first run: %+v, want 2 objects merged from 12, none deleted", res)
	}
	if got := read(t, b); !reflect.DeepEqual(got, before) {
		t.Fatalf("after merging, the lake reads\n%v\nwant\n%v", got, before)
	}
	if n := len(keys(t, b, "lake/s/")); n != 14 {
		t.Errorf("%d objects while the parts wait for the grace period, want 14", n)
	}
	// Nothing new to merge; the grace period is not over.
	if res, err := c.Run(context.Background()); err != nil || res != (compaction.Result{}) {
		t.Errorf("second run: %+v %v", res, err)
	}
	clock = clock.Add(11 * time.Minute)
	if res, err := c.Run(context.Background()); err != nil || res.Deleted != 12 || res.Merged != 0 {
		t.Errorf("after the grace period: %+v %v, want 12 deleted", res, err)
	}
	if got := read(t, b); !reflect.DeepEqual(got, before) {
		t.Fatalf("after the deletes, the lake reads differently")
	}
	if n := len(keys(t, b, "lake/s/")); n != 2 {
		t.Errorf("%d objects, want 2", n)
	}
	// The merged objects are in the directory of their first part.
	for _, k := range keys(t, b, "lake/s/") {
		if !strings.HasPrefix(k, "lake/s/items/00/") {
			t.Errorf("merged object %s", k)
		}
	}
}

// failing is a bucket whose writes or deletes fail from some point on, as
// if the process stopped there.
type failing struct {
	objstore.Bucket
	puts, deletes int // how many succeed; -1: all
}

var errStopped = errors.New("stopped")

func (f *failing) Put(ctx context.Context, key string, body []byte) error {
	if f.puts == 0 {
		return errStopped
	}
	f.puts--
	return f.Bucket.Put(ctx, key, body)
}

func (f *failing) Delete(ctx context.Context, key string) error {
	if f.deletes == 0 {
		return errStopped
	}
	f.deletes--
	return f.Bucket.Delete(ctx, key)
}

// TestCompactionInterrupted stops a run after each of its writes and
// deletes in turn: the lake reads exactly the same records after each
// stop, and a run that follows finishes the work.
func TestCompactionInterrupted(t *testing.T) {
	for _, stop := range []struct {
		name           string
		puts, deletes  int
		deletesWhenDue bool
	}{
		{"before the first merged object", 0, -1, false},
		{"after the first merged object", 1, -1, false},
		{"before the journal", 2, -1, false},
		{"after the first delete", -1, 1, true},
		{"after 7 deletes", -1, 7, true},
	} {
		t.Run(stop.name, func(t *testing.T) {
			mem := objstore.NewMemory()
			smallLog(t, mem, 6)
			before := read(t, mem)
			clock := start.Add(24 * time.Hour)
			const cfg = `, compaction: {enabled: true, target_size: 4KiB, grace: 10m}`
			b := &failing{Bucket: mem, puts: -1, deletes: -1}
			if stop.deletesWhenDue {
				if _, err := compactor(t, b, cfg, &clock).Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				clock = clock.Add(11 * time.Minute)
			}
			b.puts, b.deletes = stop.puts, stop.deletes
			if _, err := compactor(t, b, cfg, &clock).Run(context.Background()); !errors.Is(err, errStopped) {
				t.Fatalf("the interrupted run: %v", err)
			}
			if got := read(t, mem); !reflect.DeepEqual(got, before) {
				t.Fatalf("after the stop, the lake reads\n%v\nwant\n%v", got, before)
			}
			// A new process finishes: merges what is left, deletes after
			// the grace period.
			c := compactor(t, mem, cfg, &clock)
			if _, err := c.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			clock = clock.Add(11 * time.Minute)
			if _, err := c.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := read(t, mem); !reflect.DeepEqual(got, before) {
				t.Fatalf("after the work is done, the lake reads differently")
			}
			if n := len(keys(t, mem, "lake/s/")); n != 2 {
				t.Errorf("%d objects in the end, want 2: %v", n, keys(t, mem, "lake/s/"))
			}
		})
	}
}

// TestCompactionParquet merges Parquet objects of one table definition,
// and not across a schema change.
func TestCompactionParquet(t *testing.T) {
	b := objstore.NewMemory()
	def := &change.TableDef{PrimaryKey: []string{"id"}, Columns: []change.ColumnDef{{Name: "id", Type: "int(11)", DataType: "int"}, {Name: "v", Type: "varchar(20)", DataType: "varchar", Nullable: true}}}
	wider := &change.TableDef{PrimaryKey: def.PrimaryKey, Columns: append(def.Columns[:2:2], change.ColumnDef{Name: "w", Type: "int(11)", DataType: "int", Nullable: true})}
	for i := range 4 {
		r := record(change.OpInsert, i, uint64(100+10*i), start)
		d := def
		if i == 3 {
			d = wider
			r.Data = append(r.Data, change.Field{Name: "w", Value: int64(9)})
		}
		laketest.PutParquet(t, b, "lake/s/items/", task, "s.items", 0, d, r)
	}
	before := read(t, b)
	clock := start
	res, err := compactor(t, b, `, compaction: {enabled: true, target_size: 1MiB, grace: 0s}`, &clock).Run(context.Background())
	if err != nil || res.Merged != 1 || res.Parts != 3 {
		t.Fatalf("%+v %v, want 1 object merged from the 3 of one definition", res, err)
	}
	if got := read(t, b); !reflect.DeepEqual(got, before) {
		t.Fatalf("the lake reads\n%v\nwant\n%v", got, before)
	}
}

// TestRetention deletes the oldest objects of each table partition whose
// records are all older than delivery.retention, never the newest one,
// and with snapshot tables only those the snapshot holds.
func TestRetention(t *testing.T) {
	b := objstore.NewMemory()
	smallLog(t, b, 6) // objects 0…5 committed at start + 0…5 h
	clock := start.Add(6*time.Hour + 30*time.Minute)
	res, err := compactor(t, b, `, retention: 3h`, &clock).Run(context.Background())
	// Cutoff start+3:30: objects of hours 0…3 go.
	if err != nil || res.Expired != 8 {
		t.Fatalf("%+v %v, want 8 expired", res, err)
	}
	for _, k := range keys(t, b, "lake/s/") {
		if strings.Contains(k, "/00/") || strings.Contains(k, "/03/") {
			t.Errorf("%s is still there", k)
		}
	}
	clock = clock.Add(100 * time.Hour)
	if res, err := compactor(t, b, `, retention: 3h`, &clock).Run(context.Background()); err != nil || res.Expired != 2 {
		t.Errorf("all old: %+v %v, want the newest of each partition kept", res, err)
	}

	// Snapshot tables: without a snapshot nothing goes; with one, what it
	// holds does.
	b = objstore.NewMemory()
	smallLog(t, b, 6)
	const snap = `, tables: snapshot, retention: 1h`
	if res, err := compactor(t, b, snap, &clock).Run(context.Background()); err != nil || res.Expired != 0 {
		t.Fatalf("no snapshot yet: %+v %v", res, err)
	}
	// A snapshot that holds partition 0 through object 2.
	held := change.Position{File: 1, Offset: 1220, Kind: change.KindEvent}.String()
	body := fmt.Sprintf(`{"format_version":1,"task":%q,"schema":"s","table":"items","partitions":{"0":%q},"files":[]}`, task, held)
	if err := b.Put(context.Background(), lakehouse.ManifestKey("lake/", "s", "items"), []byte(body)); err != nil {
		t.Fatal(err)
	}
	if res, err := compactor(t, b, snap, &clock).Run(context.Background()); err != nil || res.Expired != 3 {
		t.Fatalf("with a snapshot through object 2 of partition 0: %+v %v, want 3 expired", res, err)
	}
}
