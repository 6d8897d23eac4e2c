package lakehouse

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/lake"
)

// rewrite writes the files of the new snapshot. After a truncate, a drop
// or a schema change every file is rewritten (its rows change shape or
// go); otherwise only the files whose key ranges hold changed keys, and
// new keys go to the file whose range is nearest. It returns the files of
// the new snapshot, sorted by key, and the old files they replace.
func (s *Snapshotter) rewrite(ctx context.Context, m *Manifest, st *tableState, w *writer) ([]File, []File, error) {
	old := slices.Clone(m.Files)
	slices.SortFunc(old, func(a, b File) int { return strings.Compare(a.MinKey, b.MinKey) })
	if st.dropped || st.def == nil {
		return nil, old, nil
	}
	if len(st.delta) == 0 && st.newSteps == 0 && !st.truncated {
		return old, nil, nil
	}
	w.def = st.def
	w.defJSON, _ = st.def.MarshalJSON()
	fileSize := int64(s.cfg.Delivery.Snapshot.FileSize)
	all := st.newSteps > 0 || st.truncated || tooMany(old, fileSize)

	keys := slices.Sorted(maps.Keys(st.delta))
	assigned := make([][]*row, len(old))
	var unassigned []*row // no files yet
	for _, k := range keys {
		if len(old) == 0 {
			unassigned = append(unassigned, st.delta[k])
			continue
		}
		i := max(sort.Search(len(old), func(i int) bool { return old[i].MinKey > k })-1, 0)
		assigned[i] = append(assigned[i], st.delta[k])
	}
	if all {
		for i, f := range old {
			if err := s.merge(ctx, m, st, &f, assigned[i], w); err != nil {
				return nil, nil, err
			}
		}
		if err := s.merge(ctx, m, st, nil, unassigned, w); err != nil {
			return nil, nil, err
		}
		files, err := w.close(ctx)
		return files, old, err
	}
	var files, retired []File
	for i, f := range old {
		if len(assigned[i]) == 0 {
			files = append(files, f)
			continue
		}
		if err := s.merge(ctx, m, st, &f, assigned[i], w); err != nil {
			return nil, nil, err
		}
		out, err := w.close(ctx)
		if err != nil {
			return nil, nil, err
		}
		files, retired = append(files, out...), append(retired, f)
	}
	if err := s.merge(ctx, m, st, nil, unassigned, w); err != nil {
		return nil, nil, err
	}
	out, err := w.close(ctx)
	if err != nil {
		return nil, nil, err
	}
	files = append(files, out...)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.MinKey, b.MinKey) })
	return files, retired, nil
}

// tooMany reports whether the files are more than twice as many as their
// rows need: incremental rewrites split files and deletes shrink them.
func tooMany(files []File, fileSize int64) bool {
	var total int64
	for _, f := range files {
		total += f.Bytes
	}
	return int64(len(files)) > 2*(total/fileSize+1)
}

// merge writes the rows of the old file f (nil: none) with the changed
// rows assigned to it, in key order, each in the current table shape.
func (s *Snapshotter) merge(ctx context.Context, m *Manifest, st *tableState, f *File, changed []*row, w *writer) error {
	rows := map[string]*row{}
	if f != nil {
		body, err := s.bucket.Get(ctx, f.Key)
		if err != nil {
			return fmt.Errorf("reading the snapshot file %s: %w", f.Key, err)
		}
		recs, err := lake.Decode(f.Key, body)
		if err != nil {
			return fmt.Errorf("reading the snapshot file %s: %w", f.Key, err)
		}
		for _, r := range recs {
			rows[r.Key] = &row{key: r.Key, op: r.Op, pos: r.Position, shape: m.ShapePosition, commit: r.CommitTime, txID: r.TransactionID, data: r.Data}
		}
	}
	for _, r := range changed {
		rows[r.key] = r
	}
	for _, k := range slices.Sorted(maps.Keys(rows)) {
		r := rows[k]
		if r.op == string(change.OpDelete) || r.pos <= st.truncatedAt {
			continue
		}
		st.materialize(r)
		if err := w.add(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// writer writes rows, in key order, as Parquet files of about
// delivery.snapshot.file_size.
type writer struct {
	s       *Snapshotter
	dir     string
	table   string // schema.table
	gen     int64
	def     *change.TableDef
	defJSON []byte

	n        int // files named so far
	written  int
	lines    []byte
	rows     int64
	min, max string
	out      []File
}

func (w *writer) add(ctx context.Context, r *row) error {
	start := len(w.lines)
	var err error
	if w.lines, err = jsonLine(w.lines, r, w.def); err != nil {
		return err
	}
	if start > 0 && int64(len(w.lines)) > int64(w.s.cfg.Delivery.Snapshot.FileSize) {
		line := slices.Clone(w.lines[start:])
		w.lines = w.lines[:start]
		if err := w.flush(ctx); err != nil {
			return err
		}
		w.lines = append(w.lines, line...)
	}
	if w.rows == 0 {
		w.min = r.key
	}
	w.max = r.key
	w.rows++
	return nil
}

// flush writes the rows added so far as one file.
func (w *writer) flush(ctx context.Context) error {
	if w.rows == 0 {
		return nil
	}
	body, err := delivery.EncodeParquet(w.table, w.defJSON, w.lines, w.s.cfg.Delivery.Parquet)
	if err != nil {
		return fmt.Errorf("encoding a snapshot file: %w", err)
	}
	key := fmt.Sprintf("%sdata/%010d-%05d.parquet", w.dir, w.gen, w.n)
	w.n++
	if err := w.s.bucket.Put(ctx, key, body); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	w.written++
	w.out = append(w.out, File{Key: key, Rows: w.rows, Size: int64(len(body)), Bytes: int64(len(w.lines)), MinKey: w.min, MaxKey: w.max})
	w.lines, w.rows = w.lines[:0], 0
	return nil
}

// close flushes and returns the files written since the last close.
func (w *writer) close(ctx context.Context) ([]File, error) {
	if err := w.flush(ctx); err != nil {
		return nil, err
	}
	out := w.out
	w.out = nil
	return out, nil
}
