// Package delivery turns the stream into objects in the lake (the job
// Firehose does in the AWS pipeline): it buffers records per table and
// partition until a size or an interval is reached, encodes them as JSON
// lines, compresses, writes one object per flush and acknowledges the stream
// only once the object is stored.
package delivery

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream"
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
	Stored     map[string]string      `json:"stored"`
	Tables     map[string]*TableStats `json:"tables"`
	Duplicates uint64                 `json:"duplicates_dropped"`
	SavedAt    time.Time              `json:"saved_at"`
}

const stateFormatVersion = 1

// Options configure a Delivery.
type Options struct {
	Config   *config.Config
	Consumer stream.Consumer
	Bucket   objstore.Bucket
	StateDir string
	Logger   *slog.Logger
}

// Delivery is the lake side of a task.
type Delivery struct {
	cfg    *config.Config
	cons   stream.Consumer
	bucket objstore.Bucket
	log    *slog.Logger
	path   string

	buffers map[bufKey]*buffer

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
}

// New returns a Delivery; Run starts it.
func New(opts Options) *Delivery {
	return &Delivery{
		cfg:     opts.Config,
		cons:    opts.Consumer,
		bucket:  opts.Bucket,
		log:     opts.Logger,
		path:    filepath.Join(opts.StateDir, "delivery.json"),
		buffers: map[bufKey]*buffer{},
		state:   State{FormatVersion: stateFormatVersion, Stored: map[string]string{}, Tables: map[string]*TableStats{}},
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
	return nil
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
// closed and everything on the stream has been delivered.
func (d *Delivery) Run(ctx context.Context, drain <-chan struct{}) error {
	if err := d.Load(); err != nil {
		return err
	}
	draining := false
	for {
		if !draining {
			select {
			case <-drain:
				draining = true
			default:
			}
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
		for _, m := range msgs {
			if err := d.add(ctx, m); err != nil {
				return err
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

func (d *Delivery) add(ctx context.Context, m *stream.Delivered) error {
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
		// Delivered again while its first copy waits in the buffer; that
		// copy's acknowledgement covers it.
		return nil
	}
	if b == nil {
		b = &buffer{key: k, opened: time.Now(), oldest: m.CommitTime}
		d.mu.Lock()
		d.buffers[k] = b
		d.mu.Unlock()
	}
	if b.first == nil {
		b.first = m
	}
	d.mu.Lock()
	b.data.Write(m.Data)
	b.data.WriteByte('\n')
	d.mu.Unlock()
	b.msgs = append(b.msgs, m)
	b.last = m.Position
	if m.CommitTime.After(b.newest) {
		b.newest = m.CommitTime
	}
	count(&b.counts, &b.reloaded, m)
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
		if p.Kind == change.KindLoad && change.Op(m.Op) == change.OpTruncateTable {
			// The marker of a restarted full load: the load is counted anew.
			*reloaded = true
			s.FullLoadRows = 0
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

// flush writes the buffer as one object, records the new stored position,
// then acknowledges its messages.
func (d *Delivery) flush(ctx context.Context, b *buffer) error {
	if len(b.msgs) == 0 {
		d.mu.Lock()
		delete(d.buffers, b.key)
		d.mu.Unlock()
		return nil
	}
	body, ext, err := d.encode(b.data.Bytes())
	if err != nil {
		return err
	}
	key := d.objectKey(b, ext)
	if err := d.bucket.Put(ctx, key, body); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	d.mu.Lock()
	d.state.Stored[b.key.String()] = b.last
	st := d.state.Tables[b.key.table]
	if st == nil {
		st = &TableStats{}
		d.state.Tables[b.key.table] = st
	}
	if b.reloaded {
		st.FullLoadRows = 0
	}
	st.FullLoadRows += b.counts.FullLoadRows
	st.Inserts += b.counts.Inserts
	st.Updates += b.counts.Updates
	st.Deletes += b.counts.Deletes
	st.DDLs += b.counts.DDLs
	st.Objects++
	st.Bytes += uint64(len(body))
	st.LastObject = key
	st.LastUpdateTime = time.Now().UTC()
	if b.newest.After(st.LastCommitTime) {
		st.LastCommitTime = b.newest
	}
	d.state.SavedAt = time.Now().UTC()
	err = checkpoint.Save(d.path, &d.state)
	delete(d.buffers, b.key)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for _, m := range b.msgs {
		if err := m.Ack(ctx); err != nil {
			// Not fatal: the message comes again and is dropped as stored.
			d.log.Warn("acknowledging a delivered message failed", "position", m.Position, "err", err)
		}
	}
	d.log.Debug("object written", "key", key, "records", len(b.msgs), "bytes", len(body))
	return nil
}

func (d *Delivery) encode(lines []byte) ([]byte, string, error) {
	switch d.cfg.Delivery.Compression {
	case "none":
		return append([]byte(nil), lines...), ".json", nil
	default:
		var out bytes.Buffer
		out.Grow(len(lines) / 4)
		zw := gzip.NewWriter(&out)
		if _, err := zw.Write(lines); err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		return out.Bytes(), ".json.gz", nil
	}
}

// objectKey names an object by what it holds, so that names sort in stream
// order within a table partition:
//
//	<prefix><schema>/<table>/YYYY/MM/DD/HH/<task>-<partition>-<first position>-<last position><ext>
//
// The time is the commit time of the oldest record, in UTC.
func (d *Delivery) objectKey(b *buffer, ext string) string {
	schema, table, _ := strings.Cut(b.key.table, ".")
	t := b.oldest.UTC()
	var sb strings.Builder
	sb.WriteString(d.cfg.Delivery.Prefix)
	sb.WriteString(schema)
	sb.WriteByte('/')
	sb.WriteString(table)
	fmt.Fprintf(&sb, "/%04d/%02d/%02d/%02d/", t.Year(), t.Month(), t.Day(), t.Hour())
	sb.WriteString(d.cfg.Task)
	fmt.Fprintf(&sb, "-p%04d-", b.key.partition)
	sb.WriteString(compactPosition(b.first.Position))
	sb.WriteByte('-')
	sb.WriteString(compactPosition(b.last))
	sb.WriteString(ext)
	return sb.String()
}

// compactPosition drops the separators of a stream-position; the fields are
// fixed-width, so the digits sort the same way.
func compactPosition(p string) string { return strings.ReplaceAll(p, "/", "") }

// Duplicates is the number of re-sent records dropped because the lake
// already held them.
func (d *Delivery) Duplicates() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.Duplicates
}
