// Package lakehouse keeps each table's current rows beside the change log
// (delivery.tables). The change log is the truth, but what an analyst
// queries is the table as it is now: the Snapshotter compacts the change
// log into plain Parquet files per table, rows sorted by key, named by a
// small JSON manifest that says up to which stream-positions they are
// exact (snapshot, docs/format.md#snapshot-tables), or commits it to an
// Apache Iceberg table (iceberg, docs/format.md#iceberg-tables).
//
// A run is incremental: it starts from the previous manifest and reads
// only the change-log objects whose names say they hold records after the
// positions the manifest covers, per partition. It applies them in
// stream-position order (last record per key wins, deletes remove,
// truncate and drop empty the table, DDL reshapes older rows as the server
// did) and rewrites only the files whose key ranges changed, or all of them
// after a truncate or a schema change. New files are written first and the
// manifest last, so a reader that follows the manifest never sees a half
// snapshot; files the new manifest no longer names are deleted once
// delivery.snapshot.grace has passed.
package lakehouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
)

// Options configure a Snapshotter.
type Options struct {
	Config *config.Config
	Bucket objstore.Bucket
	Logger *slog.Logger
	// Now is the clock of the grace period; time.Now when nil.
	Now func() time.Time
}

// Snapshotter writes the snapshot tables of one task's change log. It
// must be the only writer of those snapshots: a task makes them itself
// (delivery.tables: snapshot), `binlake snapshot` only while no task runs.
type Snapshotter struct {
	cfg    *config.Config
	bucket objstore.Bucket
	log    *slog.Logger
	now    func() time.Time
	root   string
	ice    *icebergSink // delivery.tables: iceberg

	mu sync.Mutex // one run at a time
}

// New returns a Snapshotter for a validated config.
func New(opts Options) (*Snapshotter, error) {
	s := &Snapshotter{cfg: opts.Config, bucket: opts.Bucket, log: opts.Logger, now: opts.Now, root: opts.Config.Delivery.Root()}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Config.Delivery.Tables == config.TablesIceberg {
		loc, err := IcebergLocationOf(opts.Config)
		if err != nil {
			return nil, fmt.Errorf("delivery.tables: iceberg: %w", err)
		}
		cat, err := OpenIcebergCatalog(loc)
		if err != nil {
			return nil, fmt.Errorf("delivery.tables: iceberg: %w", err)
		}
		s.ice = &icebergSink{cat: cat, loc: loc, deleteMode: opts.Config.Delivery.Iceberg.DeleteMode}
	}
	return s, nil
}

// Root is the root of the change log's key template, under which the
// snapshots live (Dir).
func (s *Snapshotter) Root() string { return s.root }

// TableResult is what a run did to one table.
type TableResult struct {
	Schema, Table string
	Generation    int64  // of the manifest now in the lake (0: none)
	Rows          int64  // rows in the snapshot
	Files         int    // files in the snapshot
	Records       int    // change-log records applied by this run
	Written       int    // files written by this run
	ExactThrough  string // see Manifest.ExactThrough
	// Skipped says why the table has no snapshot.
	Skipped string
	Err     error
}

// object is a change-log object of a table.
type object = lake.Listed

// Run brings every table's snapshot up to the change log in the lake. A
// table that fails does not stop the others; their errors are joined.
func (s *Snapshotter) Run(ctx context.Context) ([]TableResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tables, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	var out []TableResult
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		var res TableResult
		if s.ice != nil {
			res = s.icebergTable(ctx, name, tables[name])
		} else {
			res = s.table(ctx, name, tables[name])
		}
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("snapshot of %s: %w", name, res.Err))
		}
		out = append(out, res)
	}
	return out, errors.Join(errs...)
}

// list finds the task's change-log objects, by table and partition, each
// partition's in stream order; those a compacted object covers are left
// out.
func (s *Snapshotter) list(ctx context.Context) (map[string]map[int][]object, error) {
	listed, err := lake.ListTask(ctx, s.bucket, s.root, s.cfg.Task, s.cfg.Delivery.ErrorRoots())
	if err != nil {
		return nil, err
	}
	out := map[string]map[int][]object{}
	for _, l := range listed {
		if l.Covered {
			continue
		}
		if out[l.Table] == nil {
			out[l.Table] = map[int][]object{}
		}
		out[l.Table][l.Partition] = append(out[l.Table][l.Partition], l)
	}
	for _, parts := range out {
		for _, objs := range parts {
			slices.SortFunc(objs, func(a, b object) int { return cmp.Compare(a.First, b.First) })
		}
	}
	return out, nil
}

// table brings one table's snapshot up to date.
func (s *Snapshotter) table(ctx context.Context, name string, parts map[int][]object) TableResult {
	schema, table, _ := strings.Cut(name, ".")
	res := TableResult{Schema: schema, Table: table}
	fail := func(err error) TableResult { res.Err = err; return res }
	dir := Dir(s.root, schema, table)
	m, err := ReadManifest(ctx, s.bucket, s.root, schema, table)
	if err != nil {
		return fail(err)
	}
	if m == nil {
		m = &Manifest{FormatVersion: ManifestFormatVersion, Task: s.cfg.Task, Schema: schema, Table: table, Partitions: map[int]string{}}
	}
	res.Generation, res.Rows, res.Files, res.ExactThrough = m.Generation, m.Rows, len(m.Files), m.ExactThrough
	if err := s.removeOrphans(ctx, dir, m); err != nil {
		return fail(err)
	}
	now := s.now().UTC()
	grace := s.cfg.Delivery.Snapshot.Grace.D()
	var due, kept []Retired
	for _, r := range m.Retired {
		if now.Sub(r.RetiredAt) >= grace {
			due = append(due, r)
		} else {
			kept = append(kept, r)
		}
	}
	st, covered, err := s.advance(ctx, m, parts)
	if err != nil {
		return fail(err)
	}
	if st == nil && len(due) == 0 {
		return res
	}
	if st == nil {
		if st, err = newTableState(m); err != nil {
			return fail(err)
		}
	}
	res.Records = st.records
	if st.def != nil && len(st.def.PrimaryKey) == 0 {
		res.Skipped = noKey
		return res
	}

	next := s.nextState(m, st, covered, now)
	next.Retired = kept
	w := &writer{s: s, dir: dir, table: name, gen: next.Generation}
	files, retired, err := s.rewrite(ctx, m, st, w)
	if err != nil {
		return fail(err)
	}
	if grace > 0 {
		for _, f := range retired {
			next.Retired = append(next.Retired, Retired{Key: f.Key, RetiredAt: now})
		}
	}
	next.Files, next.Rows = files, 0
	for _, f := range files {
		next.Rows += f.Rows
	}
	if err := writeManifest(ctx, s.bucket, ManifestKey(s.root, schema, table), &next); err != nil {
		return fail(err)
	}
	if err := s.writeSymlinks(ctx, dir, next.Files); err != nil {
		return fail(err)
	}
	// The new manifest is in place: the files retired long enough ago
	// may go, and with no grace period those it replaced. A crash before
	// they are deleted leaves them to removeOrphans.
	var remove []string
	for _, r := range due {
		remove = append(remove, r.Key)
	}
	if grace == 0 {
		for _, f := range retired {
			remove = append(remove, f.Key)
		}
	}
	for _, key := range remove {
		if err := s.bucket.Delete(ctx, key); err != nil {
			return fail(fmt.Errorf("deleting retired %s: %w", key, err))
		}
	}
	res.Generation, res.Rows, res.Files, res.Written, res.ExactThrough = next.Generation, next.Rows, len(next.Files), w.written, next.ExactThrough
	s.log.Debug("snapshot written", "table", name, "generation", next.Generation, "rows", next.Rows, "files", len(next.Files),
		"written", w.written, "records", st.records, "exact_through", next.ExactThrough)
	return res
}

// SymlinkKey is the key of the symlink manifest of the snapshot in dir:
// the URLs of its files, one a line, for engines that read a table
// through Hive's SymlinkTextInputFormat (Athena; see `binlake ddl`).
func SymlinkKey(dir string) string { return dir + "symlink/manifest" }

// writeSymlinks writes the symlink manifest of a snapshot's files, after
// the manifest that names them: it only ever names files of a manifest
// written, which stay at least for the grace period after a later one
// retires them. (A run that stops in between leaves it naming the
// previous snapshot's files, until the next run.)
func (s *Snapshotter) writeSymlinks(ctx context.Context, dir string, files []File) error {
	base := strings.TrimSuffix(s.bucket.String(), "/") + "/"
	var b strings.Builder
	for _, f := range files {
		b.WriteString(base + f.Key + "\n")
	}
	if err := s.bucket.Put(ctx, SymlinkKey(dir), []byte(b.String())); err != nil {
		return fmt.Errorf("writing %s: %w", SymlinkKey(dir), err)
	}
	return nil
}

// noKey is why a table without a primary key gets no current-state table.
const noKey = "no primary key: replayed by key, its rows cannot be told apart"

// advance reads the change-log records of parts that the state m does not
// cover yet and applies them, in stream-position order, to the table
// state m describes. It returns the state (nil when there was nothing
// new) and the position each partition is covered through.
func (s *Snapshotter) advance(ctx context.Context, m *Manifest, parts map[int][]object) (*tableState, map[int]string, error) {
	var todo []object
	covered := maps.Clone(m.Partitions)
	if covered == nil {
		covered = map[int]string{}
	}
	for p, objs := range parts {
		for _, o := range objs {
			if o.Last > m.Partitions[p] {
				todo = append(todo, o)
				covered[p] = max(covered[p], o.Last)
			}
		}
	}
	if len(todo) == 0 {
		return nil, covered, nil
	}
	st, err := newTableState(m)
	if err != nil {
		return nil, nil, err
	}
	recs, err := s.read(ctx, m, todo)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range recs {
		if r.Schema != m.Schema || r.Table != m.Table {
			return nil, nil, fmt.Errorf("%s holds a record of %s.%s", r.Object, r.Schema, r.Table)
		}
		if err := st.apply(r); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", r.Object, err)
		}
	}
	if len(st.delta) > 0 && st.def == nil {
		return nil, nil, errors.New("its records have no table definition before them in the change log (a lake written before binlake sent table definitions, or whose control records were deleted)")
	}
	return st, covered, nil
}

// nextState is the state after st: what the next run starts from.
func (s *Snapshotter) nextState(m *Manifest, st *tableState, covered map[int]string, now time.Time) Manifest {
	next := *m
	next.Generation = m.Generation + 1
	next.Partitions = covered
	next.ExactThrough = s.exactThrough(covered)
	next.TableDef = nil
	if st.def != nil {
		next.TableDef, _ = st.def.MarshalJSON()
	}
	next.Dropped = st.dropped
	next.Inexact = st.inexact
	next.TruncatedAt = st.truncatedAt
	next.ShapePosition = st.shapePosition(m.ShapePosition)
	next.Steps = st.pendingSteps(next.ExactThrough, s.cfg.Stream.Partitions)
	next.PartitionDefs = nil
	if s.cfg.Delivery.Format == config.FormatCSV {
		next.PartitionDefs = st.partDefs // only CSV objects need them
	}
	next.UpdatedAt = now
	return next
}

// exactThrough is the position up to which every record of the table is
// applied: the least of the partitions' (empty while a partition that can
// hold the table's records has delivered none).
func (s *Snapshotter) exactThrough(covered map[int]string) string {
	var parts []int
	if s.cfg.Stream.PartitionKey == config.PartitionByTable {
		parts = slices.Collect(maps.Keys(covered))
	} else {
		for p := range max(s.cfg.Stream.Partitions, 1) {
			parts = append(parts, p)
		}
	}
	least := ""
	for i, p := range parts {
		pos := covered[p]
		if pos == "" {
			return ""
		}
		if i == 0 || pos < least {
			least = pos
		}
	}
	return least
}

// read reads the records of objs that the manifest does not cover yet, in
// stream-position order.
func (s *Snapshotter) read(ctx context.Context, m *Manifest, objs []object) ([]record, error) {
	var in []lake.Object
	part := map[string]int{}
	// A CSV object without a header takes its columns from the table
	// definition in effect on its partition, which may be in an object
	// the manifest covers: those definitions come first.
	synthetic := map[string]bool{}
	for p, raw := range m.PartitionDefs {
		key, body := definitionObject(s.cfg.Task, m.Schema, m.Table, p, raw)
		in = append(in, lake.Object{Key: key, Body: body})
		synthetic[key] = true
	}
	for _, o := range objs {
		body, err := s.bucket.Get(ctx, o.Key)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", o.Key, err)
		}
		in = append(in, lake.Object{Key: o.Key, Body: body})
		part[o.Key] = o.Partition
	}
	recs, err := lake.DecodeObjects(in)
	if err != nil {
		return nil, err
	}
	var out []record
	for _, r := range recs {
		if synthetic[r.Object] {
			continue
		}
		p := part[r.Object]
		if r.Position <= m.Partitions[p] {
			continue // applied by an earlier run (an object compacted since)
		}
		out = append(out, record{Record: r, part: p})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Position < out[j].Position })
	for i := 1; i < len(out); i++ {
		if out[i].Position == out[i-1].Position {
			return nil, fmt.Errorf("the stream-position %s is in %s and in %s", out[i].Position, out[i-1].Object, out[i].Object)
		}
	}
	return out, nil
}

// definitionObject is a JSON lines object holding one control record with
// a table definition on partition p, placed before every real record, for
// lake.DecodeObjects to find a CSV object's columns in.
func definitionObject(task, schema, table string, p int, def []byte) (string, []byte) {
	pos := change.Position{B: uint64(p)}
	r := change.Record{Op: change.OpCreateTable, Schema: schema, Table: table, Position: pos, PartitionKey: schema + "." + table}
	if d, err := change.ParseTableDef(def); err == nil {
		r.TableDef = d
	}
	digits := strings.ReplaceAll(pos.String(), "/", "")
	key := fmt.Sprintf("_binlake/snapshot/%s-%s.%s-p%04d-%s-%s.json", task, schema, table, p, digits, digits)
	return key, append(r.AppendJSON(nil), '\n')
}

// removeOrphans deletes the files in a table's snapshot directory that
// its manifest does not name: those of a run that stopped before it wrote
// its manifest.
func (s *Snapshotter) removeOrphans(ctx context.Context, dir string, m *Manifest) error {
	known := map[string]bool{}
	for _, f := range m.Files {
		known[f.Key] = true
	}
	for _, r := range m.Retired {
		known[r.Key] = true
	}
	var orphans []string
	err := s.bucket.List(ctx, dir+"data/", func(key string, size int64) error {
		if !known[key] {
			orphans = append(orphans, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing %sdata/: %w", dir, err)
	}
	for _, key := range orphans {
		if err := s.bucket.Delete(ctx, key); err != nil {
			return fmt.Errorf("deleting %s, left by an interrupted snapshot: %w", key, err)
		}
		s.log.Info("deleted a snapshot file an interrupted run left", "key", key)
	}
	return nil
}

// Held returns, for each partition, the position through which the
// current-state table of schema.table (delivery.tables: snapshot or
// iceberg) holds the change log; nil when it has none yet. Retention
// deletes no change-log object beyond it.
func Held(ctx context.Context, cfg *config.Config, b objstore.Bucket, schema, table string) (map[int]string, error) {
	root := cfg.Delivery.Root()
	switch cfg.Delivery.Tables {
	case config.TablesSnapshot:
		m, err := ReadManifest(ctx, b, root, schema, table)
		if err != nil || m == nil {
			return nil, err
		}
		return m.Partitions, nil
	case config.TablesIceberg:
		loc, err := IcebergLocationOf(cfg)
		if err != nil {
			return nil, err
		}
		return icebergHeld(ctx, loc, schema, table)
	}
	return nil, nil
}
