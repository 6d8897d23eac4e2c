package lakehouse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/lake/laketest"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
)

const task = "t1"

// changeLog writes change-log objects the way delivery names them, one
// object per call of flush and partition.
type changeLog struct {
	t       *testing.T
	b       objstore.Bucket
	offset  uint64
	pending map[int][]change.Record
	def     *change.TableDef
}

func newChangeLog(t *testing.T, b objstore.Bucket) *changeLog {
	return &changeLog{t: t, b: b, offset: 1000, pending: map[int][]change.Record{}}
}

// part is the partition of a key in these tests: its last digit mod 2.
func part(key string) int { return int(key[len(key)-1]-'0') % 2 }

func (l *changeLog) next() uint64 { l.offset += 100; return l.offset }

// row writes a data record of s.items with the given column values.
func (l *changeLog) row(op change.Op, id int, cols ...any) {
	l.rowAt(op, change.Position{File: 1, Offset: l.next(), Kind: change.KindEvent}, id, cols...)
}

func (l *changeLog) rowAt(op change.Op, pos change.Position, id int, cols ...any) {
	data := change.Row{{Name: "id", Value: int64(id)}}
	for i := 0; i < len(cols); i += 2 {
		data = append(data, change.Field{Name: cols[i].(string), Value: cols[i+1]})
	}
	key := fmt.Sprintf("s.items.%d", id)
	l.pending[part(key)] = append(l.pending[part(key)], change.Record{Op: op, Schema: "s", Table: "items", Data: data,
		Position: pos, PartitionKey: key, PartitionKeyPK: true, TransactionID: 7,
		CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
}

// control writes a control record to both partitions.
func (l *changeLog) control(op change.Op, stmt string, def *change.TableDef) change.Position {
	pos := change.Position{File: 1, Offset: l.next(), Kind: change.KindEvent}
	if def != nil && stmt == "" {
		pos.Kind = change.KindLoad
		stmt = "-- binlake: table definition at this binlog position"
	}
	for p := range 2 {
		pos.B = uint64(p)
		l.pending[p] = append(l.pending[p], change.Record{Op: op, Schema: "s", Table: "items", Statement: stmt, TableDef: def,
			Position: pos, PartitionKey: "s.items", CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	}
	return pos
}

// flush writes what is pending on the given partitions (all when none) as
// one object each.
func (l *changeLog) flush(parts ...int) {
	if len(parts) == 0 {
		parts = []int{0, 1}
	}
	for _, p := range parts {
		recs := l.pending[p]
		if len(recs) == 0 {
			continue
		}
		laketest.Put(l.t, l.b, "lake/s/items/", task, "s.items", p, "none", recs...)
		delete(l.pending, p)
	}
}

func itemsDef(cols ...string) *change.TableDef {
	d := &change.TableDef{PrimaryKey: []string{"id"}, Columns: []change.ColumnDef{{Name: "id", Type: "int(11)", DataType: "int"}}}
	for i := 0; i < len(cols); i += 2 {
		dt, _, _ := strings.Cut(cols[i+1], "(")
		d.Columns = append(d.Columns, change.ColumnDef{Name: cols[i], Type: cols[i+1], DataType: dt, Nullable: true})
	}
	return d
}

func newSnapshotter(t *testing.T, b objstore.Bucket, extra string, now func() time.Time) *lakehouse.Snapshotter {
	t.Helper()
	s, err := lakehouse.New(lakehouse.Options{Config: laketest.Config(t, task, ", tables: snapshot"+extra), Bucket: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, s *lakehouse.Snapshotter) lakehouse.TableResult {
	t.Helper()
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res) != 1 {
		t.Fatalf("Run: %d tables, want 1: %+v", len(res), res)
	}
	return res[0]
}

// snapshot reads the table back as its manifest names it: rows by key.
func snapshot(t *testing.T, b objstore.Bucket) (*lakehouse.Manifest, map[string]map[string]any) {
	t.Helper()
	m, err := lakehouse.ReadManifest(context.Background(), b, "lake/", "s", "items")
	if err != nil || m == nil {
		t.Fatalf("manifest: %v %v", m, err)
	}
	rows := map[string]map[string]any{}
	last := ""
	for _, f := range m.Files {
		body, err := b.Get(context.Background(), f.Key)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := lake.Decode(f.Key, body)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(recs)) != f.Rows || recs[0].Key != f.MinKey || recs[len(recs)-1].Key != f.MaxKey {
			t.Errorf("%s: %d rows %s…%s, the manifest says %d rows %s…%s", f.Key, len(recs), recs[0].Key, recs[len(recs)-1].Key, f.Rows, f.MinKey, f.MaxKey)
		}
		for _, r := range recs {
			if r.Key <= last {
				t.Errorf("%s: key %s after %s: not sorted", f.Key, r.Key, last)
			}
			last = r.Key
			rows[r.Key] = r.Data
		}
	}
	if int64(len(rows)) != m.Rows {
		t.Errorf("manifest says %d rows, files hold %d", m.Rows, len(rows))
	}
	return m, rows
}

func n(i int) json.Number { return json.Number(fmt.Sprint(i)) }

// want builds expected rows: id → columns.
func want(rows ...map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, r := range rows {
		out[fmt.Sprintf("s.items.%s", r["id"])] = r
	}
	return out
}

func assertRows(t *testing.T, got, w map[string]map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, w) {
		for _, k := range slices.Sorted(maps.Keys(w)) {
			if !reflect.DeepEqual(got[k], w[k]) {
				t.Errorf("%s: got %v, want %v", k, got[k], w[k])
			}
		}
		for k := range got {
			if _, ok := w[k]; !ok {
				t.Errorf("%s: got %v, want no row", k, got[k])
			}
		}
	}
}

// TestSnapshotIncremental: inserts, updates, deletes and a primary-key
// change on two partitions; a second run reads only the new objects and
// rewrites only the file whose key range changed.
func TestSnapshotIncremental(t *testing.T) {
	b := objstore.NewMemory()
	l := newChangeLog(t, b)
	l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)", "price", "decimal(6,2)"))
	for i := 10; i < 40; i++ {
		l.row(change.OpLoad, i, "name", fmt.Sprint("n", i), "price", change.Decimal("1.50"))
	}
	l.flush()
	l.row(change.OpUpdate, 11, "name", "eleven", "price", nil)
	l.row(change.OpDelete, 12, "name", "n12", "price", change.Decimal("1.50"))
	// UPDATE items SET id = 41 WHERE id = 13: a delete and an insert.
	pos := change.Position{File: 1, Offset: l.next(), Kind: change.KindEvent}
	l.rowAt(change.OpDelete, pos, 13, "name", "n13", "price", change.Decimal("1.50"))
	pos.B = 1
	l.rowAt(change.OpInsert, pos, 41, "name", "n13", "price", change.Decimal("1.50"))
	l.flush()

	// Small files: several per snapshot.
	s := newSnapshotter(t, b, `, snapshot: {file_size: 2KiB, grace: 0s}`, nil)
	res := run(t, s)
	m, got := snapshot(t, b)
	exp := map[string]map[string]any{}
	for i := 10; i < 40; i++ {
		exp[fmt.Sprint("s.items.", i)] = map[string]any{"id": n(i), "name": fmt.Sprint("n", i), "price": "1.50"}
	}
	exp["s.items.11"] = map[string]any{"id": n(11), "name": "eleven", "price": nil}
	delete(exp, "s.items.12")
	delete(exp, "s.items.13")
	exp["s.items.41"] = map[string]any{"id": n(41), "name": "n13", "price": "1.50"}
	assertRows(t, got, exp)
	if len(m.Files) < 3 || res.Written != len(m.Files) || m.Generation != 1 {
		t.Fatalf("first run: %d files, %d written, generation %d; want 3 or more, all written, 1", len(m.Files), res.Written, m.Generation)
	}
	if m.ExactThrough != min(m.Partitions[0], m.Partitions[1]) || m.ExactThrough == "" {
		t.Errorf("exact_through %q, partitions %v", m.ExactThrough, m.Partitions)
	}

	// Nothing new: nothing written.
	if res := run(t, s); res.Records != 0 || res.Written != 0 || res.Generation != 1 {
		t.Errorf("a run with nothing new: %+v", res)
	}

	// One more change, to the last key: one file rewritten.
	l.row(change.OpUpdate, 39, "name", "last", "price", change.Decimal("9.99"))
	l.flush()
	res = run(t, s)
	m2, got := snapshot(t, b)
	exp["s.items.39"] = map[string]any{"id": n(39), "name": "last", "price": "9.99"}
	assertRows(t, got, exp)
	if res.Records != 1 || res.Written != 1 {
		t.Errorf("incremental run applied %d records and wrote %d files, want 1 and 1", res.Records, res.Written)
	}
	kept := 0
	for _, f := range m2.Files {
		if slices.ContainsFunc(m.Files, func(o lakehouse.File) bool { return o.Key == f.Key }) {
			kept++
		}
	}
	if kept != len(m.Files)-1 {
		t.Errorf("%d of %d files kept, want all but one", kept, len(m.Files))
	}
	// With grace 0 the replaced file is gone at once.
	var data []string
	b.List(context.Background(), lakehouse.Dir("lake/", "s", "items")+"data/", func(key string, _ int64) error { data = append(data, key); return nil })
	if len(data) != len(m2.Files) {
		t.Errorf("%d data files in the lake, the manifest names %d", len(data), len(m2.Files))
	}
	// The symlink manifest names the same files, as URLs.
	links, err := b.Get(context.Background(), lakehouse.SymlinkKey(lakehouse.Dir("lake/", "s", "items")))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range m2.Files {
		want = append(want, "mem://"+f.Key)
	}
	if got := strings.Fields(string(links)); !slices.Equal(got, want) {
		t.Errorf("symlink manifest %q, want %q", got, want)
	}
}

// TestSnapshotPartitionsApart: one partition delivers a TRUNCATE, rows
// after it and an ALTER TABLE before the other partition has delivered
// its older records. Each run applies exactly what each partition
// delivered; the older records applied later still lose to the truncate
// and still take the shape of the ALTER, as at the source.
func TestSnapshotPartitionsApart(t *testing.T) {
	b := objstore.NewMemory()
	l := newChangeLog(t, b)
	l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)"))
	for i := 10; i < 16; i++ {
		l.row(change.OpLoad, i, "name", fmt.Sprint("n", i))
	}
	l.flush()
	s := newSnapshotter(t, b, "", nil)
	run(t, s)

	// Partition 1 is slow: its update of 11 comes before the truncate.
	l.row(change.OpUpdate, 11, "name", "before truncate")
	trunc := l.control(change.OpTruncateTable, "TRUNCATE items", nil)
	l.row(change.OpInsert, 20, "name", "n20")
	l.row(change.OpInsert, 21, "name", "n21")
	alter := l.control(change.OpChangeColumns, "ALTER TABLE items ADD COLUMN qty int NOT NULL DEFAULT 3, RENAME COLUMN name TO title", nil)
	l.control(change.OpCreateTable, "", itemsDef("title", "varchar(20)", "qty", "int(11)"))
	l.row(change.OpInsert, 30, "title", "n30", "qty", int64(5))
	slow := l.pending[1]
	delete(l.pending, 1)
	l.flush(0)
	res := run(t, s)
	m, got := snapshot(t, b)
	// 20 and 30 are on partition 0; 21 (partition 1) is not delivered.
	assertRows(t, got, want(
		map[string]any{"id": n(20), "title": "n20", "qty": n(3)},
		map[string]any{"id": n(30), "title": "n30", "qty": n(5)},
	))
	if m.ExactThrough != m.Partitions[1] || m.Partitions[0] <= alter.String() {
		t.Errorf("exact_through %s, partitions %v", m.ExactThrough, m.Partitions)
	}
	trunc.B = 0 // the copy on partition 0
	if m.TruncatedAt != trunc.String() || len(m.Steps) != 2 {
		t.Errorf("manifest keeps truncated_at %s and %d schema changes, want %s and 2", m.TruncatedAt, len(m.Steps), trunc)
	}
	if res.Records == 0 {
		t.Errorf("result %+v", res)
	}

	// Partition 1 catches up: its update before the truncate is dropped,
	// 21 gets the ALTER's default and new name.
	l.pending[1] = slow
	l.flush(1)
	run(t, s)
	m, got = snapshot(t, b)
	assertRows(t, got, want(
		map[string]any{"id": n(20), "title": "n20", "qty": n(3)},
		map[string]any{"id": n(21), "title": "n21", "qty": n(3)},
		map[string]any{"id": n(30), "title": "n30", "qty": n(5)},
	))
	if len(m.Steps) != 0 || m.ExactThrough != min(m.Partitions[0], m.Partitions[1]) {
		t.Errorf("caught up: %d schema changes pending, exact_through %s of %v", len(m.Steps), m.ExactThrough, m.Partitions)
	}
	if d, err := change.ParseTableDef(m.TableDef); err != nil || len(d.Columns) != 3 || d.Columns[1].Name != "title" {
		t.Errorf("table definition %s (%v)", m.TableDef, err)
	}
}

// TestSnapshotSchemaChanges: rows in an earlier snapshot take every
// schema change after them as the server applied it: renamed, dropped and
// added columns (defaults and implicit defaults), also when no row was
// written after the DDL; a default binlake cannot compute is NULL and
// listed in the manifest.
func TestSnapshotSchemaChanges(t *testing.T) {
	b := objstore.NewMemory()
	l := newChangeLog(t, b)
	l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)", "gone", "int(11)", "price", "decimal(6,2)"))
	l.row(change.OpLoad, 10, "name", "a", "gone", int64(1), "price", change.Decimal("1.00"))
	l.row(change.OpLoad, 11, "name", "b", "gone", int64(2), "price", change.Decimal("2.00"))
	l.flush()
	s := newSnapshotter(t, b, "", nil)
	run(t, s)

	// No row is written after this ALTER: the snapshot's shape comes
	// from the statement alone.
	l.control(change.OpChangeColumns, "ALTER TABLE `s`.`items` CHANGE COLUMN name label varchar(30) NOT NULL, DROP COLUMN gone,"+
		" ADD COLUMN note varchar(10) NOT NULL DEFAULT 'new' AFTER id, ADD COLUMN stamp datetime(3) NOT NULL,"+
		" ADD COLUMN amount decimal(8,3) DEFAULT -1.5, ADD COLUMN kind enum('x','y') NOT NULL,"+
		" ADD COLUMN made timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, MODIFY price decimal(9,2)", nil)
	l.flush()
	run(t, s)
	m, got := snapshot(t, b)
	row := func(id int, label, price string) map[string]any {
		return map[string]any{"id": n(id), "note": "new", "label": label, "price": price, "stamp": "0000-00-00 00:00:00.000",
			"amount": "-1.500", "kind": "x", "made": nil}
	}
	assertRows(t, got, want(row(10, "a", "1.00"), row(11, "b", "2.00")))
	d, err := change.ParseTableDef(m.TableDef)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range d.Columns {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "id,note,label,price,stamp,amount,kind,made" {
		t.Errorf("columns after the ALTER: %v", names)
	}
	if len(m.Inexact) != 1 || m.Inexact[0].Column != "made" || !strings.Contains(m.Inexact[0].Reason, "CURRENT_TIMESTAMP") {
		t.Errorf("inexact: %+v", m.Inexact)
	}
	// The files are Parquet with typed columns: the decimal reads back
	// with its new scale.
	if got["s.items.10"]["amount"] != "-1.500" {
		t.Errorf("amount %v", got["s.items.10"]["amount"])
	}

	// A row written after the ALTER comes with its table definition.
	l.control(change.OpCreateTable, "", d)
	l.row(change.OpUpdate, 11, "note", "upd", "label", "B", "price", change.Decimal("3.00"), "stamp", "2026-01-02 03:04:05.678",
		"amount", nil, "kind", "y", "made", "2026-01-02 03:04:05")
	l.flush()
	run(t, s)
	_, got = snapshot(t, b)
	assertRows(t, got, want(row(10, "a", "1.00"), map[string]any{"id": n(11), "note": "upd", "label": "B", "price": "3.00",
		"stamp": "2026-01-02 03:04:05.678", "amount": nil, "kind": "y", "made": "2026-01-02 03:04:05"}))
}

// TestSnapshotDrop: a dropped table has an empty snapshot marked dropped,
// until it is created again.
func TestSnapshotDrop(t *testing.T) {
	b := objstore.NewMemory()
	l := newChangeLog(t, b)
	l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)"))
	l.row(change.OpLoad, 10, "name", "a")
	l.flush()
	s := newSnapshotter(t, b, "", nil)
	run(t, s)
	l.control(change.OpDropTable, "DROP TABLE items", nil)
	l.flush()
	run(t, s)
	m, got := snapshot(t, b)
	if !m.Dropped || len(got) != 0 || len(m.Files) != 0 {
		t.Errorf("after DROP TABLE: dropped %v, %d rows, %d files", m.Dropped, len(got), len(m.Files))
	}
	l.control(change.OpCreateTable, "CREATE TABLE items (id int primary key, other int)", nil)
	l.control(change.OpCreateTable, "", itemsDef("other", "int(11)"))
	l.row(change.OpInsert, 12, "other", int64(5))
	l.flush()
	run(t, s)
	m, got = snapshot(t, b)
	assertRows(t, got, want(map[string]any{"id": n(12), "other": n(5)}))
	if m.Dropped {
		t.Errorf("created again, still dropped")
	}
}

// TestSnapshotCrashAndGrace: a run that stops after writing files but
// before its manifest leaves the snapshot as it was, and the next run
// removes those files; files a new manifest replaces stay for the grace
// period and go after it.
func TestSnapshotCrashAndGrace(t *testing.T) {
	b := objstore.NewMemory()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	l := newChangeLog(t, b)
	l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)"))
	l.row(change.OpLoad, 10, "name", "a")
	l.flush()
	s := newSnapshotter(t, b, `, snapshot: {grace: 10m}`, now)
	run(t, s)
	m1, _ := snapshot(t, b)

	// A crash: files of generation 2 are there, the manifest is not.
	l.row(change.OpUpdate, 10, "name", "b")
	l.flush()
	crashing := &failManifest{Bucket: b}
	cs := newSnapshotter(t, crashing, `, snapshot: {grace: 10m}`, now)
	if _, err := cs.Run(context.Background()); err == nil {
		t.Fatal("the run whose manifest write fails succeeded")
	}
	m, got := snapshot(t, b)
	assertRows(t, got, want(map[string]any{"id": n(10), "name": "a"}))
	if m.Generation != 1 || len(crashing.written) == 0 {
		t.Fatalf("after the crash: generation %d, %d files written", m.Generation, len(crashing.written))
	}

	run(t, s)
	m2, got := snapshot(t, b)
	assertRows(t, got, want(map[string]any{"id": n(10), "name": "b"}))
	for _, key := range crashing.written {
		if _, err := b.Get(context.Background(), key); err == nil && !slices.ContainsFunc(m2.Files, func(f lakehouse.File) bool { return f.Key == key }) {
			t.Errorf("%s, written by the interrupted run, is still there", key)
		}
	}
	if len(m2.Retired) != 1 || m2.Retired[0].Key != m1.Files[0].Key {
		t.Fatalf("retired %+v, want %s", m2.Retired, m1.Files[0].Key)
	}
	if _, err := b.Get(context.Background(), m1.Files[0].Key); err != nil {
		t.Errorf("the replaced file is gone before the grace period: %v", err)
	}
	clock = clock.Add(11 * time.Minute)
	run(t, s)
	m3, _ := snapshot(t, b)
	if _, err := b.Get(context.Background(), m1.Files[0].Key); err == nil || len(m3.Retired) != 0 {
		t.Errorf("after the grace period: the replaced file is still there (%v), retired %v", err, m3.Retired)
	}
}

// failManifest is a bucket whose manifest writes fail, as if the process
// stopped right before them.
type failManifest struct {
	objstore.Bucket
	written []string
}

func (f *failManifest) Put(ctx context.Context, key string, body []byte) error {
	if strings.HasSuffix(key, "manifest.json") {
		return fmt.Errorf("stopped")
	}
	f.written = append(f.written, key)
	return f.Bucket.Put(ctx, key, body)
}

// TestIcebergTable keeps the same change log as an Iceberg table, one
// commit per run: inserts, updates, deletes and a primary-key change, a
// TRUNCATE, and an ALTER TABLE that renames, drops and adds a column with
// a default (older rows are rewritten to get it); read back with
// iceberg-go, deletes applied, the rows are exactly the replay's.
func TestIcebergTable(t *testing.T) {
	for _, mode := range []string{"copy-on-write", "merge-on-read"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			b, s := icebergSnapshotter(t, dir, mode)
			read := func() (map[string]map[string]any, *lakehouse.Manifest) { return readIceberg(t, dir) }
			l := newChangeLog(t, b)
			l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)", "price", "decimal(6,2)", "gone", "int(11)"))
			for i := 10; i < 16; i++ {
				l.row(change.OpLoad, i, "name", fmt.Sprint("n", i), "price", change.Decimal("1.50"), "gone", int64(i))
			}
			l.flush()
			run(t, s)
			got, m := read()
			if len(got) != 6 || m.Generation != 1 || m.ExactThrough == "" {
				t.Fatalf("first commit: %d rows, state %+v", len(got), m)
			}

			l.row(change.OpUpdate, 11, "name", "eleven", "price", nil, "gone", int64(0))
			l.row(change.OpDelete, 12, "name", "n12", "price", change.Decimal("1.50"), "gone", int64(12))
			pos := change.Position{File: 1, Offset: l.next(), Kind: change.KindEvent}
			l.rowAt(change.OpDelete, pos, 13, "name", "n13", "price", change.Decimal("1.50"), "gone", int64(13))
			pos.B = 1
			l.rowAt(change.OpInsert, pos, 41, "name", "n13", "price", change.Decimal("1.50"), "gone", int64(13))
			l.flush()
			run(t, s)
			got, _ = read()
			assertRows(t, got, want(
				map[string]any{"id": n(10), "name": "n10", "price": "1.50", "gone": n(10)},
				map[string]any{"id": n(11), "name": "eleven", "price": nil, "gone": n(0)},
				map[string]any{"id": n(14), "name": "n14", "price": "1.50", "gone": n(14)},
				map[string]any{"id": n(15), "name": "n15", "price": "1.50", "gone": n(15)},
				map[string]any{"id": n(41), "name": "n13", "price": "1.50", "gone": n(13)},
			))

			l.control(change.OpChangeColumns, "ALTER TABLE items RENAME COLUMN name TO title, DROP COLUMN gone, ADD COLUMN qty int NOT NULL DEFAULT 3", nil)
			l.control(change.OpCreateTable, "", itemsDef("title", "varchar(20)", "price", "decimal(6,2)", "qty", "int(11)"))
			l.row(change.OpUpdate, 10, "title", "ten", "price", change.Decimal("2.00"), "qty", int64(7))
			l.flush()
			run(t, s)
			got, m = read()
			assertRows(t, got, want(
				map[string]any{"id": n(10), "title": "ten", "price": "2.00", "qty": n(7)},
				map[string]any{"id": n(11), "title": "eleven", "price": nil, "qty": n(3)},
				map[string]any{"id": n(14), "title": "n14", "price": "1.50", "qty": n(3)},
				map[string]any{"id": n(15), "title": "n15", "price": "1.50", "qty": n(3)},
				map[string]any{"id": n(41), "title": "n13", "price": "1.50", "qty": n(3)},
			))

			l.control(change.OpTruncateTable, "TRUNCATE items", nil)
			l.row(change.OpInsert, 50, "title", "after", "price", nil, "qty", int64(1))
			l.flush()
			run(t, s)
			got, m = read()
			assertRows(t, got, want(map[string]any{"id": n(50), "title": "after", "price": nil, "qty": n(1)}))
			if m.Generation != 4 || m.ExactThrough != min(m.Partitions[0], m.Partitions[1]) {
				t.Errorf("state after 4 commits: %+v", m)
			}
		})
	}
}

// icebergSnapshotter returns a Snapshotter of the lake in dir (prefix
// lake/, two partitions) with delivery.tables: iceberg in the delete
// mode, and the lake's bucket.
func icebergSnapshotter(t *testing.T, dir, mode string) (objstore.Bucket, *lakehouse.Snapshotter) {
	t.Helper()
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`task: ` + task + `
source: {mysql: {host: db, user: u}}
tables: [{include: "s.%"}]
target: file://` + dir + `
stream: {partitions: 2}
delivery: {prefix: "lake/", tables: iceberg, iceberg: {delete_mode: ` + mode + `}}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := lakehouse.New(lakehouse.Options{Config: cfg, Bucket: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return b, s
}

// readIceberg reads s.items's Iceberg table in the lake in dir back with
// iceberg-go.
func readIceberg(t *testing.T, dir string) (map[string]map[string]any, *lakehouse.Manifest) {
	t.Helper()
	rows, m, err := lakehouse.ReadIcebergTable(context.Background(), lakehouse.FileIceberg(dir, "lake/"), "s", "items")
	if err != nil {
		t.Fatal(err)
	}
	return rows, m
}
