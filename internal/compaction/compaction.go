// Package compaction keeps the change log in few, large objects and
// expires it by age (delivery.compaction, delivery.retention).
//
// A run of small consecutive objects of one table partition is merged
// into one object named, as delivery names objects, for the whole range:
// its first record's position to its last one's, in the directory of the
// first object. Readers (package lake, validate, the snapshot tables,
// delivery's recovery) skip an object that another object's range covers
// (objectkey.Covered), so from the moment the merged object is written
// every record is read once from it, and before that once from its parts:
// no reader sees a gap or a duplicate at any moment. The parts are
// deleted only after delivery.compaction.grace, so that a reader that
// listed the lake before the merged object was there can still read them.
//
// Every step can be interrupted. A merged object appears whole or not at
// all and its name is a function of its parts, so a run that stops before
// or after writing it leaves a lake readers read exactly, and the next run
// merges again (the same key) or finds the parts covered. The time an
// object was first seen covered is kept in a journal object,
// <root>_binlake/compaction/<task>.json; a crash before it is written only
// delays the deletes.
package compaction

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objectkey"
	"github.com/binlake/binlake/internal/objstore"
)

// Options configure a Compactor.
type Options struct {
	Config *config.Config
	Bucket objstore.Bucket
	Logger *slog.Logger
	// Now is the clock of the grace period and of retention; time.Now
	// when nil.
	Now func() time.Time
}

// Compactor compacts and expires one task's change log. It must be its
// only compactor: a task runs one (delivery.compaction), `binlake compact`
// only while no task runs.
type Compactor struct {
	cfg    *config.Config
	bucket objstore.Bucket
	log    *slog.Logger
	now    func() time.Time
	root   string

	mu     sync.Mutex           // one run at a time
	newest map[string]time.Time // newest commit time of objects read for retention (objects never change)
}

// New returns a Compactor for a validated config.
func New(opts Options) (*Compactor, error) {
	c := &Compactor{cfg: opts.Config, bucket: opts.Bucket, log: opts.Logger, now: opts.Now, root: opts.Config.Delivery.Root(), newest: map[string]time.Time{}}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Result is what a run did.
type Result struct {
	Merged  int // objects written, each merged from several
	Parts   int // objects merged into them
	Deleted int // merged-away objects deleted after the grace period
	Expired int // objects deleted by retention
}

// journal is what a run leaves for the next: when each covered object was
// first seen covered.
type journal struct {
	Covered map[string]time.Time `json:"covered"`
}

// JournalKey is where the journal of task lives.
func JournalKey(root, task string) string { return root + "_binlake/compaction/" + task + ".json" }

// Run makes one pass: it deletes the merged-away objects whose grace
// period is over, expires objects older than delivery.retention, and
// merges runs of small objects (with delivery.compaction.enabled).
func (c *Compactor) Run(ctx context.Context) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var res Result
	now := c.now().UTC()
	j, err := c.readJournal(ctx)
	if err != nil {
		return res, err
	}
	listed, err := lake.ListTask(ctx, c.bucket, c.root, c.cfg.Task, c.cfg.Delivery.ErrorRoots())
	if err != nil {
		return res, err
	}
	grace := c.cfg.Delivery.Compaction.Grace.D()
	seen := map[string]time.Time{}
	groups := map[string][]lake.Listed{}
	for _, l := range listed {
		if l.Covered {
			since, ok := j.Covered[l.Key]
			if !ok {
				since = now
			}
			if now.Sub(since) < grace {
				seen[l.Key] = since
				continue
			}
			if err := c.bucket.Delete(ctx, l.Key); err != nil {
				return res, fmt.Errorf("deleting %s, merged into another object: %w", l.Key, err)
			}
			res.Deleted++
			continue
		}
		g := fmt.Sprintf("%s|%d", l.Table, l.Partition)
		groups[g] = append(groups[g], l)
	}
	var errs []error
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		objs := groups[g]
		slices.SortFunc(objs, func(a, b lake.Listed) int { return cmp.Compare(a.First, b.First) })
		if c.cfg.Delivery.Retention > 0 {
			n, err := c.expire(ctx, objs, now)
			res.Expired += n
			objs = objs[n:]
			if err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if !c.cfg.Delivery.Compaction.Enabled {
			continue
		}
		for _, run := range c.plan(objs) {
			merged, err := c.merge(ctx, run)
			if err != nil {
				errs = append(errs, err)
			}
			for _, parts := range merged {
				res.Merged++
				res.Parts += len(parts)
				for _, l := range parts {
					seen[l.Key] = now
				}
			}
		}
	}
	// The journal names what is covered now; deleted objects drop out.
	if !maps.Equal(seen, j.Covered) {
		if err := c.writeJournal(ctx, journal{Covered: seen}); err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

func (c *Compactor) readJournal(ctx context.Context) (journal, error) {
	j := journal{Covered: map[string]time.Time{}}
	body, err := c.bucket.Get(ctx, JournalKey(c.root, c.cfg.Task))
	if errors.Is(err, objstore.ErrNotFound) {
		return j, nil
	}
	if err != nil {
		return j, fmt.Errorf("reading the compaction journal: %w", err)
	}
	if err := json.Unmarshal(body, &j); err != nil {
		return j, fmt.Errorf("reading the compaction journal %s: %w", JournalKey(c.root, c.cfg.Task), err)
	}
	if j.Covered == nil {
		j.Covered = map[string]time.Time{}
	}
	return j, nil
}

func (c *Compactor) writeJournal(ctx context.Context, j journal) error {
	body, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := c.bucket.Put(ctx, JournalKey(c.root, c.cfg.Task), append(body, '\n')); err != nil {
		return fmt.Errorf("writing the compaction journal: %w", err)
	}
	return nil
}

// plan cuts a table partition's objects, in stream order, into runs to
// merge: consecutive objects of one format and compression, each smaller
// than half the target size, together at most the target size, two or
// more.
func (c *Compactor) plan(objs []lake.Listed) [][]lake.Listed {
	target := int64(c.cfg.Delivery.Compaction.TargetSize)
	var runs [][]lake.Listed
	var cur []lake.Listed
	var size int64
	end := func() {
		if len(cur) >= 2 {
			runs = append(runs, cur)
		}
		cur, size = nil, 0
	}
	for _, o := range objs {
		if o.Size >= target/2 {
			end()
			continue
		}
		if len(cur) > 0 && (o.Ext != cur[0].Ext || size+o.Size > target) {
			end()
		}
		cur = append(cur, o)
		size += o.Size
	}
	end()
	return runs
}

// merge writes the objects of run as one object, or, when some cannot go
// together (Parquet objects of different table definitions, CSV objects
// with and without a header), each stretch of those that can; it returns
// the parts of each object written.
func (c *Compactor) merge(ctx context.Context, run []lake.Listed) ([][]lake.Listed, error) {
	bodies := make([][]byte, len(run))
	kinds := make([]string, len(run)) // objects of one kind can be merged
	for i, l := range run {
		b, err := c.bucket.Get(ctx, l.Key)
		if err != nil {
			return nil, fmt.Errorf("reading %s to merge it: %w", l.Key, err)
		}
		bodies[i] = b
		switch {
		case l.Ext == ".parquet":
			def, err := lake.ParquetTableDef(l.Key, b)
			if err != nil {
				return nil, err
			}
			kinds[i] = string(def)
		case strings.HasPrefix(l.Ext, ".csv"):
			text, err := lake.Decompress(l.Key, b)
			if err != nil {
				return nil, err
			}
			kinds[i] = fmt.Sprint(bytes.HasPrefix(text, []byte("Op,")))
		}
	}
	var out [][]lake.Listed
	for i := 0; i < len(run); {
		j := i + 1
		for j < len(run) && kinds[j] == kinds[i] {
			j++
		}
		if j-i >= 2 {
			if err := c.write(ctx, run[i:j], bodies[i:j], kinds[i]); err != nil {
				return out, err
			}
			out = append(out, run[i:j])
		}
		i = j
	}
	return out, nil
}

// write writes the merged object of parts, all of one kind.
func (c *Compactor) write(ctx context.Context, parts []lake.Listed, bodies [][]byte, kind string) error {
	first, last := parts[0], parts[len(parts)-1]
	key := objectkey.Format(first.Dir(), c.cfg.Task, first.Table, first.Partition, first.First, last.Last, first.Ext)
	var body []byte
	var err error
	switch {
	case first.Ext == ".parquet":
		body, err = c.mergeParquet(parts, bodies, json.RawMessage(kind))
	case strings.HasPrefix(first.Ext, ".csv"):
		body, err = mergeCSV(parts, bodies)
	default:
		body, err = mergeLines(parts, bodies)
	}
	if err != nil {
		return err
	}
	if err := verify(parts, bodies, key, body); err != nil {
		return err
	}
	if err := c.bucket.Put(ctx, key, body); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	c.log.Debug("merged change-log objects", "key", key, "objects", len(parts), "bytes", len(body))
	return nil
}

// mergeLines concatenates JSON lines objects, compressed as they were.
func mergeLines(run []lake.Listed, bodies [][]byte) ([]byte, error) {
	var text []byte
	for i, l := range run {
		t, err := lake.Decompress(l.Key, bodies[i])
		if err != nil {
			return nil, err
		}
		text = append(text, t...)
		if len(text) > 0 && text[len(text)-1] != '\n' {
			text = append(text, '\n')
		}
	}
	body, _, err := delivery.Compress(delivery.CompressionOf(run[0].Ext), text)
	return body, err
}

// mergeCSV concatenates CSV objects (all with a header or none), keeping
// the first header line.
func mergeCSV(run []lake.Listed, bodies [][]byte) ([]byte, error) {
	var text []byte
	for i, l := range run {
		t, err := lake.Decompress(l.Key, bodies[i])
		if err != nil {
			return nil, err
		}
		if i > 0 && bytes.HasPrefix(t, []byte("Op,")) {
			t = t[bytes.IndexByte(t, '\n')+1:]
		}
		text = append(text, t...)
		if len(text) > 0 && text[len(text)-1] != '\n' {
			text = append(text, '\n')
		}
	}
	body, _, err := delivery.Compress(delivery.CompressionOf(run[0].Ext), text)
	return body, err
}

// mergeParquet writes the rows of Parquet objects of the table
// definition def as one Parquet object.
func (c *Compactor) mergeParquet(run []lake.Listed, bodies [][]byte, def json.RawMessage) ([]byte, error) {
	parsed, err := change.ParseTableDef(def)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", run[0].Key, err)
	}
	names := make([]string, len(parsed.Columns))
	for i, col := range parsed.Columns {
		names[i] = col.Name
	}
	var lines []byte
	for i, l := range run {
		recs, err := lake.Decode(l.Key, bodies[i])
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if lines, err = lake.AppendDataRecord(lines, r, names); err != nil {
				return nil, fmt.Errorf("%s: %w", l.Key, err)
			}
		}
	}
	return delivery.EncodeParquet(run[0].Table, def, lines, c.cfg.Delivery.Parquet)
}

// verify reads the merged object back and checks that it holds exactly
// the records of its parts, in order, before it is written: a merge never
// loses or changes a record.
func verify(run []lake.Listed, bodies [][]byte, key string, body []byte) error {
	if strings.HasPrefix(run[0].Ext, ".csv") {
		// CSV objects need their table definitions to be decoded; the
		// lines are the parts' lines.
		return nil
	}
	want := map[int]lake.Record{}
	n := 0
	for i, l := range run {
		recs, err := lake.Decode(l.Key, bodies[i])
		if err != nil {
			return err
		}
		for _, r := range recs {
			r.Object = ""
			want[n] = r
			n++
		}
	}
	got, err := lake.Decode(key, body)
	if err != nil {
		return fmt.Errorf("reading back the merged %s: %w", key, err)
	}
	if len(got) != n {
		return fmt.Errorf("the merged %s holds %d records, its parts %d: not written", key, len(got), n)
	}
	for i, r := range got {
		r.Object = ""
		w := want[i]
		a, _ := json.Marshal(r)
		b, _ := json.Marshal(w)
		if !bytes.Equal(a, b) {
			return fmt.Errorf("the merged %s differs from its parts at %s: not written", key, w.Position)
		}
	}
	return nil
}

// expire deletes a table partition's oldest objects while their newest
// record was committed more than delivery.retention ago, and, with
// snapshot tables, is in the table's snapshot. It returns how many it
// deleted: objs[:n].
func (c *Compactor) expire(ctx context.Context, objs []lake.Listed, now time.Time) (int, error) {
	if len(objs) == 0 {
		return 0, nil
	}
	// With current-state tables, an object stays until the table holds
	// its records: the table's next run starts from there, and nothing
	// else holds them once the object is gone.
	snapshot, held := c.cfg.Delivery.Tables != config.TablesNone, ""
	if snapshot {
		schema, table, _ := strings.Cut(objs[0].Table, ".")
		parts, err := lakehouse.Held(ctx, c.cfg, c.bucket, schema, table)
		if err != nil {
			return 0, err
		}
		held = parts[objs[0].Partition]
	}
	cutoff := now.Add(-c.cfg.Delivery.Retention.D())
	for i, o := range objs {
		if i == len(objs)-1 {
			return i, nil // the newest object stays: its name says where delivery is
		}
		if snapshot && o.Last > held {
			return i, nil
		}
		newest, err := c.newestCommit(ctx, o)
		if err != nil {
			return i, err
		}
		if !newest.Before(cutoff) {
			return i, nil
		}
		if err := c.bucket.Delete(ctx, o.Key); err != nil {
			return i, fmt.Errorf("expiring %s: %w", o.Key, err)
		}
		delete(c.newest, o.Key)
		c.log.Debug("expired a change-log object", "key", o.Key, "newest_commit", newest)
	}
	return len(objs), nil
}

// newestCommit is the newest commit time of an object's records.
func (c *Compactor) newestCommit(ctx context.Context, o lake.Listed) (time.Time, error) {
	if t, ok := c.newest[o.Key]; ok {
		return t, nil
	}
	body, err := c.bucket.Get(ctx, o.Key)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading %s for its age: %w", o.Key, err)
	}
	var times []time.Time
	if strings.HasPrefix(o.Ext, ".csv") {
		if times, err = lake.CSVCommitTimes(o.Key, body); err != nil {
			return time.Time{}, err
		}
	} else {
		recs, err := lake.Decode(o.Key, body)
		if err != nil {
			return time.Time{}, err
		}
		for _, r := range recs {
			times = append(times, r.CommitTime)
		}
	}
	var newest time.Time
	for _, t := range times {
		if t.After(newest) {
			newest = t
		}
	}
	c.newest[o.Key] = newest
	return newest, nil
}
