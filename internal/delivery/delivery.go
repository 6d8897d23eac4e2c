// Package delivery turns the stream into objects in the lake (the job
// Firehose does in the AWS pipeline): it buffers records per table and
// partition until a size or an interval is reached, encodes them as JSON
// lines, Parquet or CSV, compresses, writes one object per flush and
// acknowledges the stream only once the object is stored.
package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/keytemplate"
	"github.com/binlake/binlake/internal/objectkey"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/transform"
)

// TableStats counts what was delivered for one table, exactly once: records
// dropped as re-sends are not counted.
type TableStats struct {
	FullLoadRows   uint64    `json:"full_load_rows"`
	Inserts        uint64    `json:"inserts"`
	Updates        uint64    `json:"updates"`
	Deletes        uint64    `json:"deletes"`
	DDLs           uint64    `json:"ddls"`
	Objects        uint64    `json:"objects"`
	Bytes          uint64    `json:"bytes"` // object bytes written
	LastObject     string    `json:"last_object,omitempty"`
	LastUpdateTime time.Time `json:"last_update_time,omitzero"`
	LastCommitTime time.Time `json:"last_commit_time,omitzero"` // newest source commit delivered
}

// State is the delivery checkpoint.
type State struct {
	FormatVersion int `json:"format_version"`
	// Stored maps "<partition>|<schema.table>" to the stream-position of the
	// last record of that table on that partition durably in the lake.
	Stored map[string]string      `json:"stored"`
	Tables map[string]*TableStats `json:"tables"`
	// Pending holds the object being written for a (partition, table), saved
	// before the upload starts: after a crash, the object's presence in the
	// lake decides whether its records are stored.
	Pending map[string]*Intent `json:"pending,omitempty"`
	// TableDefs maps "<partition>|<schema.table>" to the table definition
	// in effect at its Stored position: the last one a control record in
	// the lake carried. Parquet and CSV objects are written in its shape.
	TableDefs map[string]json.RawMessage `json:"table_defs,omitempty"`

	Duplicates uint64    `json:"duplicates_dropped"`
	SavedAt    time.Time `json:"saved_at"`
}

// Intent is an object about to be written.
type Intent struct {
	Key    string     `json:"key"`
	Last   string     `json:"last_position"`
	Counts TableStats `json:"counts"`
	Reload bool       `json:"reload,omitempty"`
	Newest time.Time  `json:"newest_commit_time"`
	Size   int        `json:"size"`
	// TableDef is the last table definition the object's control records
	// carry; it becomes the (partition, table)'s definition when stored.
	TableDef json.RawMessage `json:"table_def,omitempty"`
	// Errors are the error output objects of the flush, written before
	// Key: they count only if Key is stored.
	Errors []string `json:"error_keys,omitempty"`
}

const stateFormatVersion = 1

// Options configure a Delivery.
type Options struct {
	Config   *config.Config
	Consumer stream.Consumer
	Bucket   objstore.Bucket
	StateDir string
	Logger   *slog.Logger
	// Transform, if not nil, is applied to every record before it is
	// buffered (see transform.Pipeline).
	Transform *transform.Pipeline
	// FlushOnDrain makes a closed drain channel flush what is buffered and
	// return, instead of delivering everything on the stream first: for a
	// deliver-only process, whose stream keeps filling while capture runs
	// elsewhere.
	FlushOnDrain bool
	// Fence, if not nil, is asked before each object of a partition is
	// written; an error means this process may no longer write the
	// partition (its lease is lost), and the object's records are dropped
	// unacknowledged for the partition's new owner. See AcquirePartition.
	Fence func(partition int) error
}

// Delivery is the lake side of a task.
type Delivery struct {
	cfg    *config.Config
	cons   stream.Consumer
	bucket objstore.Bucket
	log    *slog.Logger
	path   string

	keys      *keytemplate.Template
	errKeys   map[string]*keytemplate.Template // error output, by kind
	tf        *transform.Pipeline
	flushOnly bool // Options.FlushOnDrain
	fence     func(partition int) error
	ctl       control // partition hand-overs, run by Run between fetches
	buffers   map[bufKey]*buffer
	fetched   string    // position of the newest record fetched from the stream
	fetchedAt time.Time // its commit time

	defs map[bufKey]*tableDef // the table definition after the newest record buffered

	mu    sync.Mutex
	state State
}

type bufKey struct {
	table     string
	partition int
}

func (k bufKey) String() string { return strconv.Itoa(k.partition) + "|" + k.table }

type buffer struct {
	key      bufKey
	data     bytes.Buffer // JSON lines
	msgs     []*stream.Delivered
	opened   time.Time
	first    *stream.Delivered
	last     string // position of the newest record
	oldest   time.Time
	newest   time.Time
	counts   TableStats
	reloaded bool // a full-load restart marker resets the load count
	// def is the shape of a Parquet or CSV object's rows; nil for JSON
	// lines (the json format, control records, a table not yet defined).
	def    *tableDef
	newDef *tableDef // the last definition carried by a buffered control record

	errs map[string]*bytes.Buffer // error output lines of failed records, by kind
}

// dataPool keeps the memory of buffers whose object was written.
var dataPool sync.Pool

// New returns a Delivery; Run starts it.
func New(opts Options) *Delivery {
	keys, err := keytemplate.Parse(opts.Config.Delivery.Prefix, opts.Config.Delivery.KeyLayout())
	if err != nil {
		panic(fmt.Sprintf("delivery: unvalidated config: %v", err)) // config.Validate rejects it
	}
	return &Delivery{
		keys:      keys,
		errKeys:   errorKeys(opts.Config),
		tf:        opts.Transform,
		flushOnly: opts.FlushOnDrain,
		fence:     opts.Fence,
		cfg:       opts.Config,
		cons:      opts.Consumer,
		bucket:    opts.Bucket,
		log:       opts.Logger,
		path:      filepath.Join(opts.StateDir, "delivery.json"),
		buffers:   map[bufKey]*buffer{},
		defs:      map[bufKey]*tableDef{},
		state:     State{FormatVersion: stateFormatVersion, Stored: map[string]string{}, Tables: map[string]*TableStats{}},
	}
}

// Load reads the checkpoint; Run calls it, status readers may call it first.
func (d *Delivery) Load() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := checkpoint.Load(d.path, &d.state); err != nil {
		return err
	}
	if d.state.FormatVersion != stateFormatVersion {
		return fmt.Errorf("delivery checkpoint %s has format version %d, this binlake reads %d", d.path, d.state.FormatVersion, stateFormatVersion)
	}
	if d.state.Stored == nil {
		d.state.Stored = map[string]string{}
	}
	if d.state.Tables == nil {
		d.state.Tables = map[string]*TableStats{}
	}
	if d.state.Pending == nil {
		d.state.Pending = map[string]*Intent{}
	}
	if d.state.TableDefs == nil {
		d.state.TableDefs = map[string]json.RawMessage{}
	}
	return nil
}

// recover settles the objects a crash left pending: an object that is in
// the lake counts as stored (its records are dropped when the stream
// delivers them again), one that is not is forgotten (its records are
// written again, under whatever batch boundaries come). A missing
// checkpoint is rebuilt from the object keys of this task in the lake.
func (d *Delivery) recover(ctx context.Context, existed bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !existed {
		found := 0
		err := d.bucket.List(ctx, d.keys.Root(), func(key string, size int64) error {
			k, last, ok := parseObjectName(d.cfg.Task, key)
			if !ok {
				return nil
			}
			if last > d.state.Stored[k] {
				d.state.Stored[k] = last
			}
			found++
			return nil
		})
		if err != nil {
			return fmt.Errorf("rebuilding the delivery checkpoint from the lake: %w", err)
		}
		if found > 0 {
			d.log.Warn("no delivery checkpoint: rebuilt the stored positions from the lake", "objects", found)
		}
	}
	stored, err := d.storedObjects(ctx)
	if err != nil {
		return err
	}
	for k, in := range d.state.Pending {
		exists := stored(in.Key)
		if exists {
			d.commitLocked(k, in)
			d.log.Info("recovered an object written before a crash", "key", in.Key)
		} else {
			d.log.Info("an object interrupted by a crash was not stored; its records are written again", "key", in.Key)
			if err := d.deleteErrorObjects(ctx, in); err != nil {
				return err
			}
		}
		delete(d.state.Pending, k)
	}
	return d.saveLocked()
}

// storedObjects lists the lake when objects are pending and returns
// whether a pending object is stored: listed itself, or covered by an
// object compaction made of it (and perhaps already deleted it).
func (d *Delivery) storedObjects(ctx context.Context) (func(key string) bool, error) {
	if len(d.state.Pending) == 0 {
		return func(string) bool { return false }, nil
	}
	listed := map[string]bool{}
	var names []objectkey.Name
	errorRoots := d.cfg.Delivery.ErrorRoots()
	err := d.bucket.List(ctx, d.keys.Root(), func(key string, size int64) error {
		listed[key] = true
		for _, r := range errorRoots {
			if strings.HasPrefix(key, r) {
				return nil // error output: named like objects, never compacted
			}
		}
		if n, ok := objectkey.Parse(key); ok {
			names = append(names, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checking the objects a crash left pending: %w", err)
	}
	return func(key string) bool {
		if listed[key] {
			return true
		}
		n, ok := objectkey.Parse(key)
		return ok && slices.ContainsFunc(names, func(m objectkey.Name) bool { return m.Covers(n) })
	}, nil
}

// Stats returns a copy of the per-table statistics.
func (d *Delivery) Stats() map[string]TableStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]TableStats, len(d.state.Tables))
	for k, v := range d.state.Tables {
		out[k] = *v
	}
	return out
}

// BufferedBytes is the size of the records waiting in buffers.
func (d *Delivery) BufferedBytes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, b := range d.buffers {
		n += b.data.Len()
	}
	return n
}

// Run delivers until ctx is cancelled (returning without flushing: what is
// not acknowledged is delivered again after a restart) or until drain is
// closed and everything on the stream has been delivered (with
// Options.FlushOnDrain: everything fetched so far).
func (d *Delivery) Run(ctx context.Context, drain <-chan struct{}) error {
	existed, err := checkpoint.Load(d.path, &State{})
	if err != nil {
		return err
	}
	if err := d.Load(); err != nil {
		return err
	}
	if err := d.recover(ctx, existed); err != nil {
		return err
	}
	d.loadTableDefs()
	draining := false
	for {
		if !draining {
			select {
			case <-drain:
				draining = true
			default:
			}
			if draining && d.flushOnly {
				return d.flushAll(ctx)
			}
		}
		if err := d.runControl(ctx); err != nil {
			return err
		}
		wait := 250 * time.Millisecond
		if next := d.nextDeadline(); !next.IsZero() {
			wait = min(wait, max(time.Until(next), time.Millisecond))
		}
		msgs, err := d.cons.Fetch(ctx, 1000, wait)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		results, err := d.transform(ctx, msgs)
		if err != nil {
			return err
		}
		for i, m := range msgs {
			if err := d.add(ctx, m, results[i]); err != nil {
				return err
			}
			if m.Position > d.fetched {
				d.fetched, d.fetchedAt = m.Position, m.CommitTime
			}
		}
		if err := d.flushDue(ctx, time.Now()); err != nil {
			return err
		}
		if draining && len(msgs) == 0 {
			pending, err := d.cons.Pending(ctx)
			if err != nil {
				return err
			}
			if pending == 0 {
				return d.flushAll(ctx)
			}
		}
	}
}

func (d *Delivery) nextDeadline() time.Time {
	var next time.Time
	iv := d.cfg.Delivery.Buffer.Interval.D()
	for _, b := range d.buffers {
		if t := b.opened.Add(iv); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

func (d *Delivery) add(ctx context.Context, m *stream.Delivered, res transform.Output) error {
	k := bufKey{table: m.Table, partition: m.Partition}
	d.mu.Lock()
	stored := d.state.Stored[k.String()]
	d.mu.Unlock()
	if m.Position <= stored {
		// Already in the lake: a re-send after a restart or a retry.
		d.mu.Lock()
		d.state.Duplicates++
		d.mu.Unlock()
		return m.Ack(ctx)
	}
	b := d.buffers[k]
	if b != nil && m.Position <= b.last {
		// Delivered again while its first copy waits in the buffer. The
		// same stream message delivered again is acknowledged with the
		// first copy. A copy in another message (capture published the
		// record again after a restart) is acknowledged now: the first
		// copy's message keeps the record on the stream until the buffer
		// is stored, and leaving this one unacknowledged would hold the
		// stream's resume point, and its retention, behind it until the
		// ack wait sends it again.
		first := b.find(m.Position)
		if first != nil && first.Seq != m.Seq {
			d.mu.Lock()
			d.state.Duplicates++
			d.mu.Unlock()
			return m.Ack(ctx)
		}
		if first == nil {
			// Not a copy of a buffered record: the stream delivered the
			// partition out of position order, which its backends rule
			// out, or capture published again, after a restart, a full
			// load chunk that now holds other rows.
			d.log.Warn("a record arrived behind a later one of its table and partition", "position", m.Position, "seq", m.Seq, "buffered_last", b.last, "table", m.Table, "partition", m.Partition)
		}
		return nil
	}
	b, err := d.cutBefore(ctx, b, m)
	if err != nil {
		return err
	}
	if b == nil {
		b = &buffer{key: k, opened: time.Now(), oldest: m.CommitTime, def: d.shape(k, m)}
		if p, ok := dataPool.Get().([]byte); ok {
			b.data = *bytes.NewBuffer(p[:0])
		}
		d.mu.Lock()
		d.buffers[k] = b
		d.mu.Unlock()
	}
	if b.first == nil {
		b.first = m
	}
	d.mu.Lock()
	b.write(m, res)
	d.mu.Unlock()
	b.msgs = append(b.msgs, m)
	b.last = m.Position
	if m.CommitTime.After(b.newest) {
		b.newest = m.CommitTime
	}
	if res.Result == transform.Ok {
		count(&b.counts, &b.reloaded, m)
		d.noteTableDef(b, m)
	}
	// The buffer holds a copy: the message is kept for its position and
	// its acknowledgement only, and its data (with the decoded batch it
	// shares memory with) can go.
	m.Data = nil
	return nil
}

// find returns the buffered message at position pos, nil if none. The
// buffer holds positions in increasing order.
func (b *buffer) find(pos string) *stream.Delivered {
	i := sort.Search(len(b.msgs), func(i int) bool { return b.msgs[i].Position >= pos })
	if i < len(b.msgs) && b.msgs[i].Position == pos {
		return b.msgs[i]
	}
	return nil
}

// count adds m to the statistics; a control record broadcast to every
// partition is counted once (its copy with sub-position 0).
func count(s *TableStats, reloaded *bool, m *stream.Delivered) {
	switch change.Op(m.Op) {
	case change.OpLoad:
		s.FullLoadRows++
	case change.OpInsert:
		s.Inserts++
	case change.OpUpdate:
		s.Updates++
	case change.OpDelete:
		s.Deletes++
	default:
		p, err := change.ParsePosition(m.Position)
		if err != nil || p.B != 0 {
			return
		}
		if p.Kind == change.KindLoad {
			// binlake's own control records, not source DDL: table
			// definitions, and the marker of a restarted full load, after
			// which the load is counted anew.
			if change.Op(m.Op) == change.OpTruncateTable {
				*reloaded = true
				s.FullLoadRows = 0
			}
			return
		}
		s.DDLs++
	}
}

func (d *Delivery) flushDue(ctx context.Context, now time.Time) error {
	size := int(d.cfg.Delivery.Buffer.Size)
	iv := d.cfg.Delivery.Buffer.Interval.D()
	for _, k := range d.sortedKeys() {
		b := d.buffers[k]
		if b == nil {
			continue // dropped with its partition by an earlier flush
		}
		if b.data.Len() >= size || now.Sub(b.opened) >= iv {
			if err := d.flush(ctx, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *Delivery) flushAll(ctx context.Context) error {
	for _, k := range d.sortedKeys() {
		if err := d.flush(ctx, d.buffers[k]); err != nil {
			return err
		}
	}
	return nil
}

func (d *Delivery) sortedKeys() []bufKey {
	keys := make([]bufKey, 0, len(d.buffers))
	for k := range d.buffers {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].table != keys[j].table {
			return keys[i].table < keys[j].table
		}
		return keys[i].partition < keys[j].partition
	})
	return keys
}

// flush writes the buffer as one object, exactly once: the intent is saved
// first, then the object is uploaded (retried until it is stored), then the
// new stored position is committed, and only then are the messages
// acknowledged.
func (d *Delivery) flush(ctx context.Context, b *buffer) error {
	if b == nil {
		return nil // dropped with its partition (see dropPartition)
	}
	if len(b.msgs) == 0 {
		d.mu.Lock()
		delete(d.buffers, b.key)
		d.mu.Unlock()
		return nil
	}
	objs, err := d.errorObjects(b)
	if err != nil {
		return err
	}
	if b.data.Len() > 0 {
		body, ext, err := d.encodeObject(b)
		if err != nil {
			return err
		}
		objs = append(objs, object{d.objectKey(b, ext), body})
	}
	if len(objs) == 0 {
		return d.settleDropped(ctx, b)
	}
	key, body := objs[len(objs)-1].key, objs[len(objs)-1].body
	objs = objs[:len(objs)-1]
	in := &Intent{Key: key, Last: b.last, Counts: b.counts, Reload: b.reloaded, Newest: b.newest, Size: len(body)}
	for _, o := range objs {
		in.Errors = append(in.Errors, o.key)
	}
	if b.newDef != nil {
		in.TableDef = b.newDef.raw
	}
	if d.fence != nil {
		if err := d.fence(b.key.partition); err != nil {
			d.log.Warn("not writing an object: this worker may no longer write its partition; its records are left to the new owner", "key", key, "err", err)
			d.dropPartition(b.key.partition)
			return nil
		}
	}
	d.mu.Lock()
	d.state.Pending[b.key.String()] = in
	err = d.saveLocked()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := d.put(ctx, o.key, o.body); err != nil {
			return err
		}
	}
	if err := d.put(ctx, key, body); err != nil {
		return err
	}
	d.mu.Lock()
	d.commitLocked(b.key.String(), in)
	delete(d.state.Pending, b.key.String())
	err = d.saveLocked()
	delete(d.buffers, b.key)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	// The object is encoded and stored: its buffer's memory serves the
	// next one (growing a fresh buffer to megabytes costs more than
	// encoding it).
	dataPool.Put(b.data.Bytes()[:0]) //nolint:staticcheck
	b.data = bytes.Buffer{}
	for _, m := range b.msgs {
		if err := m.Ack(ctx); err != nil {
			// Not fatal: the message comes again and is dropped as stored.
			d.log.Warn("acknowledging a delivered message failed", "position", m.Position, "err", err)
		}
	}
	d.log.Debug("object written", "key", key, "records", len(b.msgs), "bytes", len(body))
	return d.writeMarker(ctx, b.key.table)
}

// put uploads an object, retrying with backoff while the store refuses.
func (d *Delivery) put(ctx context.Context, key string, body []byte) error {
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := d.bucket.Put(ctx, key, body)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("writing %s: %w", key, err)
		}
		d.log.Warn("the target refused a write; retrying", "key", key, "attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("writing %s: %w", key, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (d *Delivery) saveLocked() error {
	d.state.SavedAt = time.Now().UTC()
	return checkpoint.Save(d.path, &d.state)
}

// commitLocked records an object as stored and counts its records.
func (d *Delivery) commitLocked(k string, in *Intent) {
	if in.Last > d.state.Stored[k] {
		d.state.Stored[k] = in.Last
	}
	if in.TableDef != nil {
		d.state.TableDefs[k] = in.TableDef
	}
	_, table, _ := strings.Cut(k, "|")
	st := d.state.Tables[table]
	if st == nil {
		st = &TableStats{}
		d.state.Tables[table] = st
	}
	if in.Reload {
		st.FullLoadRows = 0
	}
	st.FullLoadRows += in.Counts.FullLoadRows
	st.Inserts += in.Counts.Inserts
	st.Updates += in.Counts.Updates
	st.Deletes += in.Counts.Deletes
	st.DDLs += in.Counts.DDLs
	st.Objects++
	st.Bytes += uint64(in.Size)
	st.LastObject = in.Key
	st.LastUpdateTime = time.Now().UTC()
	if in.Newest.After(st.LastCommitTime) {
		st.LastCommitTime = in.Newest
	}
}

// objectKey names an object by what it holds:
//
//	<rendered prefix template><task>-<schema>.<table>-p<partition>-<first position>-<last position><ext>
//
// The template's time is the commit time of the oldest record, in UTC.
// Within a table partition, names sort in stream order, and the name alone
// says what the object covers, whatever the template: a lost delivery
// checkpoint can be rebuilt from a listing.
func (d *Delivery) objectKey(b *buffer, ext string) string {
	return d.keyIn(d.keys, b, ext)
}

// keyIn names b's object under the key template t.
func (d *Delivery) keyIn(t *keytemplate.Template, b *buffer, ext string) string {
	schema, table, _ := strings.Cut(b.key.table, ".")
	dir := t.Render(keytemplate.Values{Schema: schema, Table: table, Task: d.cfg.Task, Partition: b.key.partition, Time: b.oldest})
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	return objectkey.Format(dir, d.cfg.Task, b.key.table, b.key.partition, b.first.Position, b.last, ext)
}

// parseObjectName reads the buffer key ("<partition>|<schema.table>") and
// the last position back from the name of an object written for task.
func parseObjectName(task, key string) (string, string, bool) {
	n, ok := objectkey.Parse(key)
	if !ok {
		return "", "", false
	}
	table, ok := n.Table(task)
	if !ok {
		return "", "", false
	}
	return bufKey{table: table, partition: n.Partition}.String(), n.Last, true
}

// compactPosition drops the separators of a stream-position.
func compactPosition(p string) string { return change.CompactPosition(p) }

// Duplicates is the number of re-sent records dropped because the lake
// already held them.
func (d *Delivery) Duplicates() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.Duplicates
}
