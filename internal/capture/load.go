package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlake/binlake/internal/change"
)

// The full load, DBLog style: each table is read in chunks by primary key,
// each chunk in a short snapshot whose binlog position W is exact, while the
// binlog reader keeps streaming every change of every selected table. The
// reader is the only publisher: when it is about to pass W it publishes the
// chunk's rows there, as load records at W/0/<chunk>/<row>. A chunk read at
// W holds its keys' rows as of W, so in stream-position order it supersedes,
// for its key range, every change before W, and the changes after W follow
// it. Positions on every partition therefore stay monotonic, and the lake
// replays to the source.
//
// The reader schedules chunk reads at transaction boundaries and waits for
// each new snapshot's W before it reads on (a few milliseconds), so it
// never passes a W unseen. Should the reader already have read an event
// at or after W (a transaction can reach the binlog stream before it is
// visible to a new snapshot), the chunk is thrown away and read again. It
// waits for a chunk's rows only when it reaches the chunk's W.

// tableLoad is the reader's view of a table being loaded.
type tableLoad struct {
	name    TableName
	keyCols []string // the key the saved last key belongs to
	next    [][]byte // the key the next chunk starts after (a chunk read may not be published yet)
	reading bool     // a chunk read of the table runs
	final   bool     // the table's last chunk is read (or being read)
	fails   int      // failed chunk reads in a row
	// alongside counts the chunks whose read started before the reader had
	// taken in the outcome of an earlier chunk's read (split reads: without
	// them, a table's next chunk waits for that).
	alongside int
}

// loader drives the full load from inside the binlog reader.
type loader struct {
	c        *Capture
	size     int
	parallel int
	tables   []*tableLoad // tables to load, in load order
	inflight []*chunk     // scheduled chunks, not yet published
	seq      uint64
	initial  bool // the task's own full load runs (not only reloads)

	// floor is the binlog end when the reader started: everything published
	// before a restart lies before it, so no chunk may be published below it.
	floor binPos
	// at is where the reader has read to (the end of the last event);
	// data is the start of the last event of a transaction it read (zero:
	// none yet).
	at, data binPos

	lastPoll time.Time // reload requests are looked for at most once a second
	retried  uint64    // chunks read again because the reader was past their W

	// wm is set when chunk snapshots use watermarks (watermark.go).
	wm *watermarks
}

// maxChunkFails is how many reads of one chunk may fail in a row before the
// table is marked "Table error".
const maxChunkFails = 5

func (c *Capture) newLoader(ctx context.Context, toLoad []TableName, start binPos) (*loader, error) {
	l := &loader{c: c, size: c.cfg.FullLoad.Chunk(), parallel: c.cfg.FullLoad.Readers(), at: start, initial: len(toLoad) > 0}
	file, pos, err := c.src.binlogPosition(ctx)
	if err != nil {
		return nil, sourceLost(err)
	}
	n, err := change.BinlogFileNumber(file)
	if err != nil {
		return nil, err
	}
	l.floor = binPos{n, uint64(pos)}
	if useWatermarks(c.cfg, c.src.flavor) {
		l.wm = newWatermarks(c.cfg)
	}
	// Each chunk read holds a connection; so does a one-pass read until the
	// reader has taken its rows.
	c.src.db.SetMaxOpenConns(max(8, l.parallel+4))
	c.mu.Lock()
	for _, t := range toLoad {
		l.add(t, c.state.Tables[t.String()])
	}
	c.mu.Unlock()
	return l, nil
}

// add queues a table; p is its progress (under c.mu).
func (l *loader) add(t TableName, p *TableProgress) {
	tl := &tableLoad{name: t}
	if p != nil && len(p.LastKey) > 0 {
		tl.keyCols, tl.next = p.LoadKey, p.LastKey
		l.c.log.Info("full load resumes after the last chunk published", "table", t.String(), "chunks", p.Chunks, "rows", p.LoadRows, "key", p.LoadKey)
	}
	l.tables = append(l.tables, tl)
}

// loading reports whether tables remain to be loaded.
func (l *loader) loading() bool { return len(l.tables) > 0 }

// boundary runs between transactions: it looks for reload requests,
// publishes the chunks whose W the reader has reached, and schedules reads.
func (l *loader) boundary(ctx context.Context) error {
	if time.Since(l.lastPoll) >= time.Second {
		l.lastPoll = time.Now()
		if err := l.c.pickUpReloads(ctx, l); err != nil {
			return err
		}
	}
	// On a quiet binlog a new chunk's W is where the reader stands: publish
	// it at once and go on with the next, rather than wait for an event or
	// the next tick, for up to a second before reading events again.
	until := time.Now().Add(time.Second)
	for {
		if err := l.collect(ctx); err != nil {
			return err
		}
		if err := l.watermarksMissed(ctx); err != nil {
			return err
		}
		published, err := l.publishUpTo(ctx, l.at)
		if err != nil {
			return err
		}
		scheduled, err := l.schedule(ctx)
		if err != nil {
			return err
		}
		if published+scheduled == 0 || time.Now().After(until) {
			return nil
		}
	}
}

// before runs before the reader handles ev: the chunks whose W is at or
// before the event's start are published first.
func (l *loader) before(ctx context.Context, r *binlogReader, ev *replication.BinlogEvent) error {
	if len(l.inflight) == 0 || artificial(ev) {
		return nil
	}
	start, ok := eventStart(ev)
	if !ok {
		return nil
	}
	p := binPos{r.fileNum, start}
	if next := l.earliest(); next == nil || p.less(next.w) {
		return nil
	}
	if r.tx != nil {
		return fmt.Errorf("binlog event at %s:%d starts at or after a chunk's snapshot position %s inside a transaction", r.file, start, l.earliest().w)
	}
	_, err := l.publishUpTo(ctx, p)
	return err
}

// after records how far the reader has read once it handled ev.
func (l *loader) after(r *binlogReader, ev *replication.BinlogEvent) {
	if artificial(ev) {
		return
	}
	if e, ok := ev.Event.(*replication.RotateEvent); ok {
		// r.fileNum is the new file's now.
		l.at = binPos{r.fileNum, e.Position}
		return
	}
	if start, ok := eventStart(ev); ok {
		if !isHeaderEvent(ev) {
			l.data = binPos{r.fileNum, start}
		}
		if end := (binPos{r.fileNum, uint64(ev.Header.LogPos)}); l.at.less(end) {
			l.at = end
		}
	}
	if l.wm != nil && len(l.wm.seen) > 0 && r.tx == nil {
		// The transaction holding high watermarks ended here: their
		// chunks' W.
		for _, seq := range l.wm.seen {
			for _, ch := range l.inflight {
				if ch.wm && !ch.wFound && ch.seq == seq {
					ch.w, ch.wFile, ch.wFound = l.at, r.file, true
					l.wm.open--
				}
			}
		}
		l.wm.seen = l.wm.seen[:0]
	}
}

// watching reports whether watermark chunks wait for their high watermark:
// the reader then tells the loader about the changes it reads.
func (l *loader) watching() bool { return l != nil && l.wm != nil && l.wm.open > 0 }

// touch records a row image of table t that the reader read: a watermark
// chunk of t still before its W leaves that key out, or, without a key,
// must be read again.
func (l *loader) touch(t TableName, row change.Row) {
	for _, ch := range l.inflight {
		if !ch.wm || ch.wFound || ch.t.name != t {
			continue
		}
		if ch.onePass {
			ch.stale = "the table, which has no usable key, changed while the chunk's snapshot started"
			continue
		}
		ch.touched[keyString(row, ch.keyCols)] = struct{}{}
	}
}

// ddlSeen marks the watermark chunks of t still before their W (every one
// when t is not known) to be read again: the definition they read may not
// be the one in force at W.
func (l *loader) ddlSeen(t TableName, known bool) {
	for _, ch := range l.inflight {
		if ch.wm && !ch.wFound && (!known || ch.t.name == t) {
			ch.stale = "the table's definition changed while the chunk's snapshot started"
		}
	}
}

// watermarksMissed fails the watermark chunks whose high watermark the
// reader has passed without meeting it: their writes do not reach the
// binlog the reader reads.
func (l *loader) watermarksMissed(ctx context.Context) error {
	if !l.watching() {
		return nil
	}
	for _, ch := range slices.Clone(l.inflight) {
		if !ch.wm || ch.wFound || l.at.less(ch.hBound) {
			continue
		}
		ch.stop()
		<-ch.done // the read's goroutine is done with ch
		l.remove(ch)
		ch.err = fmt.Errorf("full load of %s: the watermark written to %s is not in the binlog binlake reads (the binlog reached %s): the watermark table's schema must not be left out of the binlog (binlog_do_db, binlog_ignore_db), or set full_load.snapshot: lock", ch.t.name, l.wm.table, ch.hBound)
		if err := l.failed(ctx, ch); err != nil {
			return err
		}
	}
	return nil
}

// remove takes ch out of the chunks in flight.
func (l *loader) remove(ch *chunk) {
	n := len(l.inflight)
	l.inflight = slices.DeleteFunc(l.inflight, func(x *chunk) bool { return x == ch })
	if len(l.inflight) < n && ch.wm && !ch.wFound {
		l.wm.open--
	}
}

// rewind throws ch away with every later chunk of its table in flight,
// and the table goes on from ch's start: a table's chunks are published in
// key order, which is what its saved last key means.
func (l *loader) rewind(ch *chunk) {
	t := ch.t
	// ch may be out of the chunks in flight already (a stale chunk taken
	// for publication): its read, which a one-pass read holds open until
	// its rows are taken, ends too.
	ch.stop()
	for _, x := range slices.Clone(l.inflight) {
		if x.t == t && x.seq >= ch.seq {
			x.stop()
			l.remove(x)
		}
	}
	// The key ch starts after belongs to ch's prior key. A later chunk,
	// collected already, may have set another one (hardly: the DDL that
	// changes the key waits for the metadata lock ch's read holds).
	t.keyCols, t.next, t.reading, t.final = ch.prevKey, ch.after, false, false
	if ch.restart {
		t.next = nil
	}
}

// artificial reports events the server makes up for the stream (the
// rotate and format description at its start, heartbeats): they have no
// place in the binlog.
func artificial(ev *replication.BinlogEvent) bool {
	if _, ok := ev.Event.(*replication.HeartbeatEvent); ok {
		return true
	}
	return ev.Header.LogPos == 0
}

func eventStart(ev *replication.BinlogEvent) (uint64, bool) {
	h := ev.Header
	if h.LogPos == 0 || h.LogPos < h.EventSize {
		return 0, false
	}
	return uint64(h.LogPos - h.EventSize), true
}

// isHeaderEvent reports events that describe the binlog file rather than
// change data; a snapshot position may lie before them although the reader
// has read them.
func isHeaderEvent(ev *replication.BinlogEvent) bool {
	switch ev.Event.(type) {
	case *replication.FormatDescriptionEvent, *replication.RotateEvent, *replication.PreviousGTIDsEvent,
		*replication.MariadbGTIDListEvent, *replication.MariadbBinlogCheckPointEvent:
		return true
	}
	return ev.Header.EventType == replication.STOP_EVENT
}

// earliest is the scheduled chunk with the lowest W (the first scheduled
// among equals): the next to publish.
func (l *loader) earliest() *chunk {
	var best *chunk
	for _, ch := range l.inflight {
		if ch.wm && !ch.wFound {
			continue // W not known yet
		}
		if best == nil || ch.w.less(best.w) || (ch.w == best.w && ch.seq < best.seq) {
			best = ch
		}
	}
	return best
}

// publishUpTo publishes, in W order, every scheduled chunk whose W is at or
// before p, and returns how many. The reader is at a transaction boundary.
func (l *loader) publishUpTo(ctx context.Context, p binPos) (int, error) {
	n := 0
	for {
		ch := l.earliest()
		if ch == nil || p.less(ch.w) {
			return n, nil
		}
		l.remove(ch)
		if err := l.publish(ctx, ch); err != nil {
			return n, err
		}
		n++
	}
}

// schedule starts chunk reads while fewer than parallel run: the next chunk
// of each table whose previous chunk's rows are in hand, in table order. It
// returns how many it started.
func (l *loader) schedule(ctx context.Context) (int, error) {
	n := 0
	for len(l.inflight) < l.parallel {
		i := slices.IndexFunc(l.tables, func(t *tableLoad) bool { return !t.reading && !t.final })
		if i < 0 {
			return n, nil
		}
		t := l.tables[i]
		l.seq++
		rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		ch := &chunk{t: t, seq: l.seq, after: t.next, prevKey: t.keyCols, size: l.size, stop: stop,
			known: make(chan struct{}), rows: make(chan change.Row, l.size), done: make(chan struct{})}
		// When no other table waits for a reader slot, the table's next
		// chunk may be read while this one is: the chunk first reads where
		// it ends (split), and the table waits no longer for its rows.
		waiting := 0
		for _, x := range l.tables {
			if !x.reading && !x.final {
				waiting++
			}
		}
		// With one slot, no other read could use the boundary.
		ch.split = l.parallel > 1 && (waiting == 1 || l.parallel-len(l.inflight) > waiting)
		ch.alongside = slices.ContainsFunc(l.inflight, func(x *chunk) bool { return x.t == t && !x.collected })
		ch.scheduled = time.Now()
		go l.c.readChunk(rctx, ch, l.wm)
		select {
		case <-ch.known:
		case <-ctx.Done():
			stop()
			return n, ctx.Err()
		}
		if ch.err != nil {
			stop()
			if err := l.failed(ctx, ch); err != nil {
				return n, err
			}
			continue
		}
		if ch.wm {
			// W is where the reader will meet the high watermark; it
			// notes the keys changed until then (touch).
			ch.touched = map[string]struct{}{}
			l.wm.open++
		} else if ch.w.less(l.floor) || !l.data.less(ch.w) {
			// The reader has read past W already: read the chunk again at
			// the next boundary.
			stop()
			l.retried++
			l.c.log.Debug("chunk snapshot behind the binlog reader; reading it again", "table", t.name.String(), "snapshot", ch.w.String(), "reader", l.data.String(), "floor", l.floor.String())
			return n, nil
		}
		n++
		if ch.alongside {
			t.alongside++
		}
		t.reading = true
		t.final = ch.onePass
		if ch.upTo != nil {
			// The next chunk starts after upTo and may be read now. Its
			// snapshot starts after this one's, so its W is not before
			// this W and it is published after this chunk: a table's
			// chunks are published in key order, which is what its saved
			// last key means.
			t.keyCols, t.next, t.reading = ch.keyCols, ch.upTo, false
		}
		l.inflight = append(l.inflight, ch)
		l.c.mu.Lock()
		if p := l.c.state.Tables[t.name.String()]; p != nil && p.State != StateFullLoad {
			now := time.Now().UTC()
			p.State, p.LoadStart, p.LoadEnd, p.Error = StateFullLoad, &now, nil, ""
		}
		l.c.mu.Unlock()
	}
	return n, nil
}

// collect takes in the chunk reads that finished: their tables may go on
// with the next chunk.
func (l *loader) collect(ctx context.Context) error {
	for _, ch := range slices.Clone(l.inflight) {
		if ch.onePass || ch.collected {
			continue // a one-pass read finishes when it is published
		}
		select {
		case <-ch.done:
		default:
			continue
		}
		if err := l.finished(ctx, ch); err != nil {
			return err
		}
	}
	return nil
}

// finished records a chunk read whose rows are all in hand.
func (l *loader) finished(ctx context.Context, ch *chunk) error {
	t := ch.t
	if ch.collected {
		return nil
	}
	ch.collected = true
	if ch.upTo != nil && ch.err == nil && ch.n != ch.size {
		<-ch.done
		ch.err = fmt.Errorf("full load of %s: the chunk read %d rows in the snapshot in which its last key was that of row %d", t.name, ch.n, ch.size)
	}
	if ch.err != nil {
		l.remove(ch)
		return l.failed(ctx, ch)
	}
	// A read that worked ends the table's run of failed reads, unless an
	// earlier chunk of the table is still being read: a later chunk's
	// success must not hide an earlier one that fails every time (it
	// rewinds the table to itself and would be read again for ever).
	if !slices.ContainsFunc(l.inflight, func(x *chunk) bool { return x.t == t && x.seq < ch.seq && !x.collected }) {
		t.fails = 0
	}
	if ch.upTo != nil {
		return nil // the table went on at upTo already
	}
	t.reading = false
	t.keyCols = ch.keyCols
	if ch.n > 0 {
		t.next = ch.last
	} else if ch.restart {
		t.next = nil
	}
	if ch.n < ch.size {
		t.final = true
	}
	return nil
}

// failed handles a chunk read that failed: read again, or, for a table
// that is gone or keeps failing, "Table error".
func (l *loader) failed(ctx context.Context, ch *chunk) error {
	t := ch.t
	l.rewind(ch) // later chunks of the table may be in flight already
	t.fails++
	no := mysqlErrno(ch.err)
	if no == erTableDefChanged || no == erLockDeadlock || no == erLockWaitTimeout {
		t.fails = min(t.fails, 1) // the table changed under the read: just read again
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if connectionLost(ch.err) {
		// The source went away (a restart, the network), not the table:
		// the binlog reader starts again from the checkpoint once it
		// answers, and the load with it.
		t.fails = 0
		return sourceLost(ch.err)
	}
	gone := no == erNoSuchTable || errors.As(ch.err, new(noTableError))
	if !gone && t.fails < maxChunkFails {
		l.c.log.Warn("chunk read failed; reading it again", "table", t.name.String(), "err", ch.err)
		return nil
	}
	l.c.log.Error("full load of a table failed", "table", t.name.String(), "err", ch.err)
	l.c.mu.Lock()
	if p := l.c.state.Tables[t.name.String()]; p != nil {
		p.State, p.Error = StateError, ch.err.Error()
	}
	l.c.mu.Unlock()
	l.drop(t)
	return nil
}

func (l *loader) drop(t *tableLoad) {
	l.tables = slices.DeleteFunc(l.tables, func(x *tableLoad) bool { return x == t })
	if !l.loading() && l.initial {
		l.initial = false
		l.c.mu.Lock()
		if l.c.phase == PhaseLoading {
			l.c.phase = PhaseStreaming
		}
		l.c.mu.Unlock()
	}
}

// publish publishes a chunk at its W: its chunk numbers are saved first, so
// a later attempt never reuses a position; then, for a one-pass read, a
// truncate-table marker (the rows supersede every earlier row of the
// table); the table's definition if the stream does not have it yet; the
// rows; and the table's progress is saved.
func (l *loader) publish(ctx context.Context, ch *chunk) error {
	c := l.c
	if ch.stale != "" {
		// Read again, with the table's later chunks.
		l.retried++
		c.log.Info("chunk read again", "table", ch.t.name.String(), "why", ch.stale)
		l.rewind(ch)
		return nil
	}
	if !ch.onePass {
		select {
		case <-ch.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := l.finished(ctx, ch); err != nil || ch.err != nil {
			return err
		}
	}
	defer ch.stop()
	t0 := time.Now()
	t := ch.t
	name := t.name.String()
	c.mu.Lock()
	p := c.state.Tables[name]
	if p == nil {
		p = &TableProgress{}
		c.state.Tables[name] = p
	}
	needDef := !p.Defined
	truncate := ch.onePass || p.Truncate
	first := c.state.NextChunk
	c.state.NextChunk++
	if truncate {
		c.state.NextChunk++
	}
	if needDef {
		c.state.NextChunk++
	}
	epoch := c.state.Epoch
	c.mu.Unlock()
	if err := c.save(ctx); err != nil {
		return err
	}
	base := change.Position{Epoch: epoch, File: ch.w.file, Offset: ch.w.off, Kind: change.KindLoad, A: first}
	if truncate {
		stmt := "-- binlake: one-pass full load of a table without a usable key; rows before this record are superseded"
		if !ch.onePass {
			stmt = "-- binlake: the table is loaded again (binlake run --resnapshot); rows before this record are superseded"
		}
		if err := c.broadcast(ctx, &change.Record{
			Op: change.OpTruncateTable, Schema: t.name.Schema, Table: t.name.Table,
			Statement: stmt, CommitTime: ch.at, Position: base, PartitionKey: name,
		}); err != nil {
			return err
		}
		base.A++
	}
	if needDef {
		if err := c.broadcast(ctx, &change.Record{
			Op: change.OpCreateTable, Schema: t.name.Schema, Table: t.name.Table,
			Statement: "-- binlake: table definition at the full load", TableDef: &ch.info.def,
			CommitTime: ch.at, Position: base, PartitionKey: name,
		}); err != nil {
			return err
		}
		c.mu.Lock()
		p.Defined = true
		c.mu.Unlock()
		base.A++
	}
	pkIdx := ch.info.pkIndexes()
	var n uint64
	for row := range ch.rows {
		if len(ch.touched) > 0 {
			if _, ok := ch.touched[keyString(row, ch.keyCols)]; ok {
				continue // changed between the watermarks: its binlog events tell
			}
		}
		pos := base
		pos.B = n
		rec := &change.Record{Op: change.OpLoad, Schema: t.name.Schema, Table: t.name.Table, Data: row, CommitTime: ch.at, Position: pos}
		partitionKey(rec, row, pkIdx)
		if err := c.emit(ctx, rec); err != nil {
			return err
		}
		n++
		if ch.onePass && n%10000 == 0 {
			c.mu.Lock()
			p.LoadRows = n
			c.mu.Unlock()
		}
	}
	if err := c.out.dispatch(ctx); err != nil {
		return err
	}
	if ch.onePass {
		<-ch.done
		t.reading = false
		if ch.err != nil {
			// The rows published so far are superseded by the next
			// attempt's truncate-table marker.
			return l.failed(ctx, ch)
		}
	}
	now := time.Now().UTC()
	final := ch.onePass || (ch.upTo == nil && ch.n < ch.size)
	c.mu.Lock()
	if ch.restart || ch.after == nil {
		p.LoadRows, p.Chunks = 0, 0
	}
	if ch.onePass {
		p.LoadRows = 0
	}
	p.LoadRows += n
	p.Chunks++
	p.Truncate = false
	p.LoadMethod, p.LoadKey = ch.method, ch.keyCols
	p.LoadPosition = change.Position{Epoch: epoch, File: ch.w.file, Offset: ch.w.off}.String()
	if ch.n > 0 && !ch.onePass {
		p.LastKey = ch.last // rows left out between watermarks included
	}
	if final {
		p.State, p.LoadEnd, p.LastKey, p.Reload = StateCompleted, &now, nil, false
	}
	rows, chunks, start := p.LoadRows, p.Chunks, p.LoadStart
	c.mu.Unlock()
	if err := c.save(ctx); err != nil {
		return err
	}
	c.log.Debug("chunk published", "table", name, "rows", n, "snapshot", ch.wFile+":"+strconv.FormatUint(ch.w.off, 10),
		"scheduled_ago", t0.Sub(ch.scheduled), "publish", time.Since(t0))
	if final {
		secs := 0.0
		if start != nil {
			secs = now.Sub(*start).Seconds()
		}
		c.log.Info("table loaded", "table", name, "rows", rows, "chunks", chunks, "chunks_read_alongside", t.alongside, "method", ch.method, "seconds", secs)
		l.drop(t)
	}
	return nil
}

// stop ends the chunk reads still running.
func (l *loader) stop() {
	for _, ch := range l.inflight {
		ch.stop()
	}
	l.inflight = nil
}
