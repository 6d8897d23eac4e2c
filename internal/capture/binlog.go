package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
)

// binlogPosition is the server's current binlog end.
func (s *source) binlogPosition(ctx context.Context) (string, uint32, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return "", 0, err
	}
	defer conn.Close()
	return s.binlogPositionOn(ctx, conn)
}

func (s *source) binlogPositionOn(ctx context.Context, conn *sql.Conn) (string, uint32, error) {
	rows, err := conn.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		// MySQL 8.4 renamed it.
		rows, err = conn.QueryContext(ctx, "SHOW BINARY LOG STATUS")
	}
	if err != nil {
		return "", 0, fmt.Errorf("reading the binlog position (grant REPLICATION CLIENT): %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return "", 0, fmt.Errorf("the source reports no binlog position: is the binary log enabled (--log-bin)?")
	}
	vals := make([]sql.NullString, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := rows.Scan(dest...); err != nil {
		return "", 0, err
	}
	var pos uint32
	fmt.Sscan(vals[1].String, &pos)
	return vals[0].String, pos, nil
}

// txn collects the records of the transaction being read; they are
// published when its commit is seen, stamped with the commit time.
type txn struct {
	id      uint64
	records txBuffer
	// xid is the XA transaction id of an XA transaction (XA START): its
	// records wait for XA COMMIT, or are dropped at XA ROLLBACK.
	xid string
	// start is where the transaction's first event starts: an XA
	// transaction prepared but not yet committed holds the checkpoint
	// there, so that a restart reads it again.
	startFile string
	startPos  uint32
	// gtid is the transaction's GTID ("" when the source writes none);
	// gsetBefore the reader's GTID set before it, kept for a prepared XA
	// transaction, which holds the checkpoint at its start.
	gtid, gsetBefore string
	// defined: tables whose definition this transaction publishes (true)
	// or makes stale with a DDL (false); applied to the checkpoint state at
	// commit, so an unpublished transaction changes nothing.
	defined map[string]bool
}

// setDefined records, for the commit, whether table's definition is on the
// stream.
func (tx *txn) setDefined(table string, v bool) {
	if tx.defined == nil {
		tx.defined = map[string]bool{}
	}
	tx.defined[table] = v
}

// binlogDialHook, set by tests, runs between followFailover and the binlog
// connection, with the source's port.
var binlogDialHook atomic.Pointer[func(port int)]

// streamBinlog reads the binlog from the checkpoint until ctx is cancelled
// (or, for a full-load task, until the load is published), loading the
// tables toLoad on the way (load.go); initial tells that they are the task's
// own full load rather than reloads.
func (c *Capture) streamBinlog(ctx context.Context, toLoad []TableName, initial bool) error {
	if err := c.followFailover(ctx); err != nil {
		return err
	}
	my := c.cfg.Source.MySQL
	if hook := binlogDialHook.Load(); hook != nil {
		(*hook)(my.Port)
	}
	cfg := replication.BinlogSyncerConfig{
		ServerID:                my.ServerID,
		Flavor:                  c.src.flavor,
		Host:                    my.Host,
		Port:                    uint16(my.Port),
		User:                    my.User,
		Password:                my.Password,
		TLSConfig:               c.src.tls,
		Charset:                 "utf8mb4",
		TimestampStringLocation: time.UTC,
		RenderJSONAsMySQLText:   true,
		HeartbeatPeriod:         my.Heartbeat.D(),
		// A read fails after three heartbeats of silence (idleconn.go),
		// rather than through go-mysql's ReadTimeout, which moves the
		// deadline before every packet.
		Dialer: idleDialer(3 * my.Heartbeat.D()),
		// A lost connection ends the stream, and capture reads again from
		// its checkpoint, a transaction boundary (capture.go): go-mysql's
		// own retry resumes after the last event, which may be inside a
		// transaction whose table map the new connection does not send.
		DisableRetrySync: true,
		// The syncer decodes events ahead of the reader into a channel of
		// this many (default 10240): with large rows events (a big
		// transaction, 8 KiB of rows each) that alone is hundreds of MiB.
		EventCacheCount: eventReadAhead,
		Logger:          slog.New(discardHandler{}),
	}
	undecoded := &sync.Map{}
	cfg.RowsEventDecodeFunc = decodeRows(undecoded)
	syncer := replication.NewBinlogSyncer(cfg)
	defer syncer.Close()

	var err error
	c.mu.Lock()
	file, pos, gtids := c.state.BinlogFile, c.state.BinlogPos, c.state.GTIDSet
	c.mu.Unlock()
	r := &binlogReader{c: c, cols: map[*replication.TableMapEvent][]binlogColumn{}, fixed: map[TableName]map[string]colKind{},
		hist: map[*replication.TableMapEvent]*TableSchema{}, ddlp: newDDLParser(), undecoded: undecoded}
	if gtids != "" || c.src.flavor == mysql.MariaDBFlavor {
		// MariaDB always writes GTIDs; MySQL does with gtid_mode=ON,
		// and then the start told the set.
		if r.gset, err = mysql.ParseGTIDSet(c.src.flavor, gtids); err != nil {
			c.log.Warn("the checkpoint's GTID set does not parse: CDC resumes by binlog file and position only", "gtid_set", gtids, "err", err)
			r.gset = nil
		}
	}
	var streamer *replication.BinlogStreamer
	if file == "" {
		// By GTID: on another server than the checkpoint's (a fail-over),
		// or from cdc_start_position. The server tells the file first.
		c.log.Info("streaming binlog", "after_gtid_set", gtids)
		if r.gset == nil {
			return fmt.Errorf("starting binlog stream by GTID set %q: it does not parse as a %s GTID set", gtids, c.src.flavor)
		}
		if streamer, err = syncer.StartSyncGTID(r.gset.Clone()); err != nil {
			return sourceLost(fmt.Errorf("starting binlog stream after GTID set %s: %w", gtids, err))
		}
		if err := c.sameServerAfterDial(ctx); err != nil {
			return err
		}
		if file, pos, err = firstRotate(ctx, streamer); err != nil {
			return sourceLost(fmt.Errorf("starting binlog stream after GTID set %s: %w", gtids, err))
		}
		c.log.Info("GTID set found in the binlog", "gtid_set", gtids, "file", file, "pos", pos)
	} else {
		c.log.Info("streaming binlog", "file", file, "pos", pos)
		if streamer, err = syncer.StartSync(mysql.Position{Name: file, Pos: pos}); err != nil {
			return sourceLost(fmt.Errorf("starting binlog stream at %s:%d: %w", file, pos, err))
		}
		if err := c.sameServerAfterDial(ctx); err != nil {
			return err
		}
	}
	r.file, r.pos = file, pos
	c.setSourceDown(nil) // the source answers
	if err := removeSpillFiles(c.opts.StateDir); err != nil {
		return err
	}
	defer r.discardAll()
	if r.fileNum, err = change.BinlogFileNumber(file); err != nil {
		return err
	}
	load, err := c.newLoader(ctx, toLoad, binPos{r.fileNum, uint64(pos)})
	if err != nil {
		return err
	}
	r.load = load
	load.initial = initial
	defer load.stop()
	fullLoadOnly := c.cfg.Migration == config.MigrationFullLoad
	// GetEvent returns at least every tick, so that the load's chunks are
	// published and scheduled on an idle binlog too; the streamer lets
	// GetEvent be called again after its context expired.
	const tick = 100 * time.Millisecond
	var evCtx context.Context
	cancel := func() {}
	defer func() { cancel() }()
	lastSave := time.Now()
	for {
		if r.tx == nil {
			if err := load.boundary(ctx); err != nil {
				if ctx.Err() != nil {
					return c.save(context.WithoutCancel(ctx))
				}
				return err
			}
			if fullLoadOnly && !load.loading() {
				c.log.Info("full load published", "binlog_file", r.file, "binlog_pos", r.pos, "chunks_read_again", load.retried)
				return c.save(ctx)
			}
		}
		if evCtx == nil || evCtx.Err() != nil {
			cancel()
			evCtx, cancel = withTimeout(ctx, tick)
		}
		ev, err := streamer.GetEvent(evCtx)
		if err != nil {
			if ctx.Err() != nil {
				return c.save(context.WithoutCancel(ctx))
			}
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return sourceLost(fmt.Errorf("reading binlog at %s:%d: %w", r.file, r.pos, err))
		}
		if err := load.before(ctx, r, ev); err != nil {
			if ctx.Err() != nil {
				return c.save(context.WithoutCancel(ctx))
			}
			return err
		}
		committed, err := r.handle(ctx, ev)
		if err != nil {
			return err
		}
		load.after(r, ev)
		if committed && time.Since(lastSave) >= c.opts.CheckpointEvery {
			if err := c.save(ctx); err != nil {
				return err
			}
			lastSave = time.Now()
		}
	}
}

// firstRotate reads a binlog stream started by GTID up to the rotate event
// that names the file it starts in, and returns that file and the position
// of the first event after it.
func firstRotate(ctx context.Context, streamer *replication.BinlogStreamer) (string, uint32, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			return "", 0, err
		}
		if e, ok := ev.Event.(*replication.RotateEvent); ok {
			return string(e.NextLogName), uint32(e.Position), nil
		}
	}
}

// eventReadAhead is how many binlog events are read and decoded ahead of
// the reader: enough to keep it busy, few enough to bound the memory.
const eventReadAhead = 512

// withTimeout is context.WithTimeout; the read loop renews it each tick.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

type binlogReader struct {
	c       *Capture
	file    string
	fileNum uint64
	pos     uint32 // end of the last event read
	tx      *txn
	cols    map[*replication.TableMapEvent][]binlogColumn
	// hist holds, for a table map without column names, the schema
	// history's version it was decoded with (nil entries: none).
	hist map[*replication.TableMapEvent]*TableSchema
	// mapped keeps, per table id, the last table map with column names
	// and its decoded columns: every transaction brings its own table
	// map, nearly always the same as the last one, and decoding its
	// columns again was a tenth of the reader's work on small
	// transactions. Emptied by every DDL, as fixed is.
	mapped map[uint64]mappedTable
	ddlp   *ddlParser
	// load is the full load the reader drives (nil in tests of the
	// decoder alone).
	load *loader
	// undecoded holds the rows events go-mysql could not decode, with why
	// (decodeRows); nil in tests of the decoder alone.
	undecoded *sync.Map
	// fixed caches, per table, its INET6/INET4/UUID columns, which the
	// table map cannot tell from BINARY(n); emptied by every DDL.
	fixed map[TableName]map[string]colKind
	// selected caches the selection rules' answer per table: the rules
	// are compiled on each Config.Selected call, and rows events come by
	// the thousand.
	selected map[TableName]bool
	// prepared holds the XA transactions prepared and not yet committed or
	// rolled back, by xid.
	prepared map[string]*txn
	// gset is the GTID set of the transactions read up to pos (nil: the
	// source has no GTIDs, or capture does not know the set at its start).
	gset mysql.GTIDSet
	// inner is set while the events of a compressed transaction payload
	// (MySQL 8's binlog_transaction_compression) are handled: they have no
	// binlog position of their own.
	inner *innerEvent
}

// innerEvent places an event of a transaction payload: its records take
// the payload event's start as their offset, and their row's number in the
// whole payload as their record number, so that they sort in the payload's
// order, before the next event of the binlog.
type innerEvent struct {
	start uint64
	rows  uint64 // rows in the payload's events before this one
}

// recordNumber is the A of a record's position for the a-th row of the
// rows event being handled.
func (r *binlogReader) recordNumber(a uint64) uint64 {
	if r.inner == nil {
		return a
	}
	return r.inner.rows + a
}

// payload handles the events of a compressed transaction payload, which
// go-mysql has decompressed and parsed, one by one as if they were in the
// binlog at the payload's place.
func (r *binlogReader) payload(ctx context.Context, h *replication.EventHeader, e *replication.TransactionPayloadEvent, start uint64) (bool, error) {
	if len(e.Events) == 0 && e.UncompressedSize > 0 {
		return false, fmt.Errorf("binlog %s at %d: a compressed transaction payload of %d bytes decoded to no event", r.file, start, e.UncompressedSize)
	}
	committed := false
	var rows uint64
	for _, ev := range e.Events {
		if ev.Header.Timestamp == 0 {
			ev.Header.Timestamp = h.Timestamp
		}
		ev.Header.LogPos = 0 // no position of its own; r.pos moves past the payload below
		r.inner = &innerEvent{start: start, rows: rows}
		c, err := r.handle(ctx, ev)
		r.inner = nil
		if err != nil {
			return false, err
		}
		committed = committed || c
		if re, ok := ev.Event.(*replication.RowsEvent); ok {
			n := uint64(len(re.Rows))
			if re.Type() == replication.EnumRowsEventTypeUpdate {
				n /= 2
			}
			rows += n
		}
	}
	if h.LogPos > 0 {
		r.pos = h.LogPos
	}
	if committed && r.tx == nil {
		r.commitPosition()
	}
	return committed, nil
}

// applyGTID adds tx's GTID to the reader's GTID set.
func (r *binlogReader) applyGTID(tx *txn) {
	if tx == nil || tx.gtid == "" || r.gset == nil {
		return
	}
	if err := r.gset.Update(tx.gtid); err != nil {
		r.c.log.Warn("GTID set no longer tracked: a GTID does not parse; CDC resumes by binlog file and position only", "gtid", tx.gtid, "err", err)
		r.gset = nil
	}
}

func (r *binlogReader) gsetString() string {
	if r.gset == nil {
		return ""
	}
	return r.gset.String()
}

// isSelected is Config.Selected, cached per table.
func (r *binlogReader) isSelected(t TableName) bool {
	v, ok := r.selected[t]
	if !ok {
		if r.selected == nil {
			r.selected = map[TableName]bool{}
		}
		v = r.c.cfg.Selected(t.Schema, t.Table)
		r.selected[t] = v
	}
	return v
}

// handle processes one event and reports whether a transaction boundary was
// passed (the checkpoint may then move).
func (r *binlogReader) handle(ctx context.Context, ev *replication.BinlogEvent) (bool, error) {
	h := ev.Header
	start := uint64(0)
	if h.LogPos >= h.EventSize {
		start = uint64(h.LogPos - h.EventSize)
	}
	if r.inner != nil {
		start = r.inner.start
	}
	switch e := ev.Event.(type) {
	case *replication.TransactionPayloadEvent:
		return r.payload(ctx, h, e, start)
	case *replication.RotateEvent:
		r.file = string(e.NextLogName)
		n, err := change.BinlogFileNumber(r.file)
		if err != nil {
			return false, err
		}
		r.fileNum, r.pos = n, uint32(e.Position)
		if r.tx == nil {
			r.commitPosition()
			return true, nil
		}
		return false, nil
	case *replication.MariadbGTIDEvent:
		r.begin(e.GTID.SequenceNumber, start)
		if r.gset != nil {
			r.tx.gtid = e.GTID.String()
		}
	case *replication.GTIDEvent:
		r.begin(uint64(e.GNO), start)
		if r.gset != nil {
			if next, err := e.GTIDNext(); err == nil {
				r.tx.gtid = next.String()
			}
		}
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		switch strings.ToUpper(q) {
		case "BEGIN":
			if r.tx == nil {
				r.begin(0, start)
			}
		case "COMMIT":
			return r.commit(ctx, h)
		default:
			if r.tx != nil && isSavepoint(q) {
				break // inside the transaction: not its end
			}
			if verb, xid, ok := parseXA(q); ok {
				return r.xa(ctx, verb, xid, h, start)
			}
			if t, ok := parseDML(q, string(e.Schema)); ok {
				// A change written as a statement (binlog_format STATEMENT
				// or MIXED in the session that made it): its rows are not
				// in the binlog. Part of its transaction, not its end.
				r.statementDML(t, q, start)
				break
			}
			if err := r.ddl(ctx, e, h, start); err != nil {
				return false, err
			}
			return r.commit(ctx, h)
		}
	case *replication.RowsEvent:
		if err := r.rows(ctx, e, start); err != nil {
			return false, err
		}
	case *replication.XIDEvent:
		return r.commit(ctx, h)
	default:
		if h.EventType == replication.XA_PREPARE_LOG_EVENT && r.tx != nil && r.tx.xid != "" {
			return r.xaPrepared(h)
		}
	}
	if h.LogPos > 0 {
		r.pos = h.LogPos
	}
	return false, nil
}

// statementDML puts a selected table changed by a statement in "Table
// error": the lake would silently miss the change otherwise.
func (r *binlogReader) statementDML(t TableName, q string, start uint64) {
	if !r.isSelected(t) {
		return
	}
	if len(q) > 100 {
		q = q[:100] + "…"
	}
	r.c.tableError(t, fmt.Sprintf("a change of the table is in the binlog as a statement, not as rows, at %s:%d (%s): the session that made it did not use binlog_format=ROW, and its rows cannot be known", r.file, start, q),
		"SET GLOBAL binlog_format=ROW on the source (sessions keep the format they started with: reconnect them), then binlake reload --table "+t.String())
}

// isSavepoint reports the savepoint statements that the binlog holds
// inside a transaction (SAVEPOINT, ROLLBACK TO [SAVEPOINT], RELEASE
// SAVEPOINT); any other statement there ends the transaction.
func isSavepoint(q string) bool {
	f := strings.Fields(strings.ToUpper(q))
	switch {
	case len(f) >= 2 && f[0] == "SAVEPOINT":
		return true
	case len(f) >= 3 && f[0] == "ROLLBACK" && f[1] == "TO":
		return true
	case len(f) >= 3 && f[0] == "RELEASE" && f[1] == "SAVEPOINT":
		return true
	}
	return false
}

func (r *binlogReader) commitPosition() {
	r.c.mu.Lock()
	r.c.state.BinlogFile, r.c.state.BinlogPos, r.c.state.GTIDSet = r.resumeAt()
	r.c.mu.Unlock()
}

// resumeAt is where a restart must read from once the current transaction
// is published: past it, unless an XA transaction prepared earlier waits
// for its XA COMMIT, whose records only a new reading of its events could
// give back.
func (r *binlogReader) resumeAt() (string, uint32, string) {
	file, pos, gset := r.file, r.pos, r.gsetString()
	for _, tx := range r.prepared {
		n, _ := change.BinlogFileNumber(tx.startFile)
		cur, _ := change.BinlogFileNumber(file)
		if (binPos{n, uint64(tx.startPos)}).less(binPos{cur, uint64(pos)}) {
			file, pos, gset = tx.startFile, tx.startPos, tx.gsetBefore
		}
	}
	return file, pos, gset
}

// discardAll drops the transactions not published, and their spill files,
// when the reader stops.
func (r *binlogReader) discardAll() {
	if r.tx != nil {
		r.tx.records.discard()
	}
	for _, tx := range r.prepared {
		tx.records.discard()
	}
}

// begin starts a transaction at its first event (GTID or BEGIN).
func (r *binlogReader) begin(id uint64, start uint64) {
	if r.tx != nil {
		r.tx.records.discard()
	}
	r.tx = &txn{id: id, startFile: r.file, startPos: uint32(start),
		records: txBuffer{dir: r.c.opts.StateDir, limit: int64(r.c.cfg.Source.MySQL.TransactionMemory)}}
}

// commit publishes the transaction's records and moves the resume position
// past the commit event.
func (r *binlogReader) commit(ctx context.Context, h *replication.EventHeader) (bool, error) {
	if h.LogPos > 0 {
		r.pos = h.LogPos
	}
	tx := r.tx
	r.tx = nil
	last, err := r.publish(ctx, tx, h, nil)
	if err != nil {
		return false, err
	}
	var defined map[string]bool
	if tx != nil {
		defined = tx.defined
	}
	r.c.mu.Lock()
	for table, v := range defined {
		if p := r.c.state.Tables[table]; p != nil {
			p.Defined = v
		}
	}
	r.applyGTID(tx)
	r.c.state.BinlogFile, r.c.state.BinlogPos, r.c.state.GTIDSet = r.resumeAt()
	if last != nil {
		r.c.state.LastRecord = last
	}
	r.c.mu.Unlock()
	return true, nil
}

// publish publishes a committed transaction's records, stamped with the
// commit event h's time, and removes its spill file. at, when not nil, is
// the position of an XA COMMIT that commits an XA transaction prepared
// earlier: its records take their positions there, in their order, after
// every record published since its prepare. It returns the last record
// published (nil: none).
func (r *binlogReader) publish(ctx context.Context, tx *txn, h *replication.EventHeader, at *change.Position) (*change.TransactionRef, error) {
	if tx == nil {
		return nil, nil
	}
	defer tx.records.discard()
	commitTime := time.Unix(int64(h.Timestamp), 0).UTC()
	r.c.mu.Lock()
	last := r.c.state.LastRecord
	r.c.mu.Unlock()
	details := r.c.cfg.IncludeTransactionDetails
	if n := tx.records.len(); tx.records.spilled() {
		r.c.log.Info("publishing a transaction larger than source.mysql.transaction_memory from its spill file", "records", n, "transaction_id", tx.id)
	}
	var published *change.TransactionRef
	err := tx.records.each(func(i int, rec *change.Record) error {
		rec.CommitTime = commitTime
		rec.TransactionID = tx.id
		rec.TransactionSeq = uint32(i + 1)
		if at != nil {
			rec.Position = *at
			rec.Position.A = uint64(i)
		}
		if details {
			rec.Prev = last
		}
		last = &change.TransactionRef{ID: rec.TransactionID, Seq: rec.TransactionSeq}
		published = last
		if rec.Op.IsControl() {
			return r.c.broadcast(ctx, rec)
		}
		return r.c.emit(ctx, rec)
	})
	if err == nil {
		err = r.c.out.dispatchSoon(ctx)
	}
	if err != nil {
		return nil, err
	}
	if published != nil {
		r.c.mu.Lock()
		r.c.lagAt = commitTime
		r.c.mu.Unlock()
	}
	return published, nil
}

// skip reports whether events of table t are left out: those of tables
// the selection rules do not select. Every change of a selected table is
// published, loaded or not: a chunk of the full load supersedes, for its
// keys, the changes before its snapshot (load.go).
func (r *binlogReader) skip(t TableName, start uint64) bool {
	if !r.isSelected(t) {
		return true
	}
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	p := r.c.state.Tables[t.String()]
	if p == nil {
		// A table created after the task started: the binlog has all of it.
		now := time.Now().UTC()
		r.c.state.Tables[t.String()] = &TableProgress{State: StateCompleted, LoadEnd: &now}
	}
	return p != nil && p.SchemaError
}

// decodeRows is the syncer's decoding of rows events: one it cannot decode
// (a column type go-mysql does not know, such as MariaDB's compressed
// columns) is kept, rowless, in undecoded with the reason, rather than end
// the binlog stream, which would stop every table at that event for good.
//
// The rows are decoded against a copy of their table map without its
// signedness bits: go-mysql builds a map of them for every row it decodes
// (4% of the catch-up's allocations), and the converters read unsigned
// columns from signed values as well (binlogColumn.value).
func decodeRows(undecoded *sync.Map) func(*replication.RowsEvent, []byte) error {
	var signless struct {
		sync.Mutex
		of, copy *replication.TableMapEvent
	}
	return func(e *replication.RowsEvent, data []byte) error {
		pos, err := e.DecodeHeader(data)
		if err != nil {
			return err
		}
		if tm := e.Table; tm != nil && len(tm.SignednessBitmap) > 0 {
			signless.Lock()
			if signless.of != tm {
				c := *tm
				c.SignednessBitmap = nil
				signless.of, signless.copy = tm, &c
			}
			e.Table = signless.copy
			signless.Unlock()
			defer func() { e.Table = tm }()
		}
		if err := e.DecodeData(pos, data); err != nil {
			e.Rows = nil
			undecoded.Store(e, err)
		}
		return nil
	}
}

func (r *binlogReader) rows(ctx context.Context, e *replication.RowsEvent, start uint64) error {
	if r.undecoded != nil && e.Table != nil {
		if why, ok := r.undecoded.LoadAndDelete(e); ok {
			t := TableName{Schema: string(e.Table.Schema), Table: string(e.Table.Table)}
			if r.isSelected(t) {
				r.c.tableError(t, fmt.Sprintf("a rows event at %s:%d cannot be decoded: %v", r.file, start, why),
					"change the table so that its columns are of types the binlog reader decodes (MariaDB: no COMPRESSED columns), then binlake reload --table "+t.String())
			}
			return nil
		}
	}
	err := r.rowsOf(ctx, e, start)
	if errors.Is(err, errPartialJSON) {
		// A session wrote with binlog_row_value_options=PARTIAL_JSON: the
		// table's JSON can no longer be known from the binlog.
		t := TableName{Schema: string(e.Table.Schema), Table: string(e.Table.Table)}
		r.c.tableError(t, fmt.Sprintf("an update of a JSON column is in the binlog as a partial update at %s:%d (binlog_row_value_options=PARTIAL_JSON in the session that made it): the new document is not in the binlog", r.file, start),
			"SET GLOBAL binlog_row_value_options='' on the source (sessions keep the setting they started with: reconnect them), then binlake reload --table "+t.String())
		return nil
	}
	return err
}

func (r *binlogReader) rowsOf(ctx context.Context, e *replication.RowsEvent, start uint64) error {
	tm := e.Table
	t := TableName{Schema: string(tm.Schema), Table: string(tm.Table)}
	watch := r.load.watching()
	if watch && t == r.load.wm.table {
		r.load.wm.sawRows(e)
	}
	if r.skip(t, start) {
		return nil
	}
	cols, ok := r.cols[tm]
	hist := r.hist[tm]
	if !ok {
		var err error
		if len(tm.ColumnName) == 0 {
			// No column names (binlog_row_metadata not FULL): the schema
			// history's version at this position.
			if hist = r.historyAt(t, start, tm); hist == nil {
				return nil // the table is in error now
			}
			cols = historyColumns(tm, hist, r.c.src.charsets)
		} else if m, ok := r.mapped[tm.TableID]; ok && sameTableMap(m.tm, tm) {
			cols = m.cols
		} else if cols, err = binlogColumns(tm, r.c.src.charsets); err != nil {
			return err
		}
		if hist == nil && mayBeFixedBinary(cols) {
			types, ok := r.fixed[t]
			if !ok {
				if types, err = r.c.src.fixedBinaryColumns(ctx, t); err != nil {
					return err
				}
				r.fixed[t] = types
			}
			markFixedBinary(cols, types)
		}
		clear(r.cols) // one table map is live per table id
		clear(r.hist)
		r.cols[tm], r.hist[tm] = cols, hist
		if hist == nil {
			if r.mapped == nil {
				r.mapped = map[uint64]mappedTable{}
			}
			r.mapped[tm.TableID] = mappedTable{tm, cols}
		}
	}
	if r.tx == nil {
		r.begin(0, start)
	}
	if err := r.define(tm, cols, hist, t, start); err != nil {
		return err
	}
	pk := make([]int, len(tm.PrimaryKey))
	for i, k := range tm.PrimaryKey {
		pk[i] = int(k)
	}
	if hist != nil {
		pk = hist.pkIndexes()
	}
	convert := func(raw []any) (change.Row, error) {
		if len(raw) != len(cols) {
			return nil, fmt.Errorf("%s: row event has %d columns, table map %d", t, len(raw), len(cols))
		}
		row := make(change.Row, len(cols))
		for i := range cols {
			v, err := cols[i].value(raw[i])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t, err)
			}
			row[i] = change.Field{Name: cols[i].name, Value: v}
		}
		if watch {
			r.load.touch(t, row)
		}
		return row, nil
	}
	base := change.Position{Epoch: r.c.state.Epoch, File: r.fileNum, Offset: start, Kind: change.KindEvent}
	add := func(op change.Op, row, before change.Row, a, b uint64) error {
		pos := base
		pos.A, pos.B = r.recordNumber(a), b
		rec := &change.Record{Op: op, Schema: t.Schema, Table: t.Table, Data: row, Position: pos}
		if op == change.OpUpdate || op == change.OpDelete {
			rec.Before = beforeImage(r.c.cfg.BeforeImage, before, pk)
		}
		partitionKey(rec, row, pk)
		return r.tx.records.add(rec)
	}
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert, replication.EnumRowsEventTypeDelete:
		op := change.OpInsert
		if e.Type() == replication.EnumRowsEventTypeDelete {
			op = change.OpDelete
		}
		for i, raw := range e.Rows {
			row, err := convert(raw)
			if err != nil {
				return err
			}
			if err := add(op, row, row, uint64(i), 0); err != nil {
				return err
			}
		}
	case replication.EnumRowsEventTypeUpdate:
		if len(e.Rows)%2 != 0 {
			return fmt.Errorf("%s: update event with an odd number of row images", t)
		}
		for i := 0; i < len(e.Rows); i += 2 {
			before, err := convert(e.Rows[i])
			if err != nil {
				return err
			}
			after, err := convert(e.Rows[i+1])
			if err != nil {
				return err
			}
			if pkChanged(before, after, pk) {
				// A key change is two records, so each key's history stays on
				// its own partition: delete of the old key, insert of the new.
				if err := add(change.OpDelete, before, before, uint64(i/2), 0); err != nil {
					return err
				}
				if err := add(change.OpInsert, after, nil, uint64(i/2), 1); err != nil {
					return err
				}
				continue
			}
			if err := add(change.OpUpdate, after, before, uint64(i/2), 0); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: unsupported rows event", t)
	}
	return nil
}

// beforeImage is the before-image of an update or delete whose row before
// the change was row: nil for none, the primary-key columns (in column
// order; none for a table without a key) for pk-only, or the whole row.
func beforeImage(mode string, row change.Row, pk []int) change.Row {
	switch mode {
	case config.BeforeImageAll:
		return row
	case config.BeforeImagePKOnly:
		img := change.Row{}
		for i := range row {
			if slices.Contains(pk, i) {
				img = append(img, row[i])
			}
		}
		return img
	}
	return nil
}

func pkChanged(before, after change.Row, pk []int) bool {
	for _, i := range pk {
		var a, b []byte
		a = change.AppendValue(a, before[i].Value)
		b = change.AppendValue(b, after[i].Value)
		if string(a) != string(b) {
			return true
		}
	}
	return false
}

// ddl turns a DDL statement on a selected table into a control record.
func (r *binlogReader) ddl(ctx context.Context, e *replication.QueryEvent, h *replication.EventHeader, start uint64) error {
	op, t, ok := parseDDL(string(e.Query), string(e.Schema))
	if ok {
		clear(r.fixed) // column types may have changed, and names moved
		clear(r.mapped)
		if r.load.watching() {
			r.load.ddlSeen(t, true)
		}
	}
	r.applyDDL(string(e.Query), string(e.Schema), start)
	if !ok || r.skip(t, start) {
		return nil
	}
	if r.tx == nil {
		r.begin(0, start)
	}
	rec := &change.Record{
		Op: op, Schema: t.Schema, Table: t.Table, Statement: string(e.Query),
		Position:     change.Position{Epoch: r.c.state.Epoch, File: r.fileNum, Offset: start, Kind: change.KindEvent},
		PartitionKey: t.String(),
	}
	// The table's new definition follows before its next rows, taken from
	// their table-map event: the schema in force at that binlog position
	// (reading information_schema now could see a later DDL).
	r.tx.setDefined(t.String(), false)
	return r.tx.records.add(rec)
}

// historyAt returns the schema history's version of table t at the rows
// event starting at start, checked against its table map tm; or nil, having
// put the table in "Table error", when there is none to trust.
func (r *binlogReader) historyAt(t TableName, start uint64, tm *replication.TableMapEvent) *TableSchema {
	pos := positionKey(r.c.state.Epoch, r.fileNum, start)
	r.c.mu.Lock()
	var v TableVersion
	ok := false
	if h := r.c.state.Schemas; h != nil {
		v, ok = h.at(t, pos)
	}
	r.c.mu.Unlock()
	var reason string
	switch {
	case !ok || (v.Schema == nil && v.Error == ""):
		reason = fmt.Sprintf("the binlog's table map at %s names no columns (binlog_row_metadata is not FULL) and the schema history does not know the table there", pos)
	case v.Schema == nil:
		reason = v.Error
	default:
		if err := checkTableMap(tm, v.Schema); err != nil {
			reason = fmt.Sprintf("the binlog's table map at %s does not match the schema history (was the table changed without the binlog, e.g. with sql_log_bin=0?): %v", pos, err)
		}
	}
	if reason != "" {
		r.c.schemaError(t, reason)
		return nil
	}
	return v.Schema
}

// applyDDL applies a DDL statement at start to the schema history. With
// table maps that do not name columns, a selected table whose schema it
// leaves unknown is in error at once.
func (r *binlogReader) applyDDL(query, db string, start uint64) {
	r.c.mu.Lock()
	h := r.c.state.Schemas
	if h == nil {
		r.c.mu.Unlock()
		return
	}
	failed := r.ddlp.applyDDL(h, query, db, positionKey(r.c.state.Epoch, r.fileNum, start))
	r.c.mu.Unlock()
	for t, reason := range failed {
		if r.c.fullMetadata {
			r.c.log.Warn("schema history: a DDL it cannot apply; table maps name the columns (binlog_row_metadata=FULL), so capture goes on", "table", t.String(), "reason", reason)
			continue
		}
		if r.isSelected(t) {
			r.c.schemaError(t, reason)
		}
	}
}

// define adds a create-table control record with the table's definition,
// from the rows event's table map, before the first rows of a table whose
// definition is not on the stream yet: a table of a CDC-only task, one
// created or renamed after the task started, or any table after a DDL. It
// sorts just before the rows event at start (kind 0 at the same offset).
func (r *binlogReader) define(tm *replication.TableMapEvent, cols []binlogColumn, hist *TableSchema, t TableName, start uint64) error {
	r.c.mu.Lock()
	p := r.c.state.Tables[t.String()]
	defined := p != nil && p.Defined
	if v, ok := r.tx.defined[t.String()]; ok {
		defined = v
	}
	if p == nil || defined {
		r.c.mu.Unlock()
		return nil
	}
	chunk := r.c.state.NextChunk
	r.c.state.NextChunk++
	r.c.mu.Unlock()
	r.tx.setDefined(t.String(), true)

	var def change.TableDef
	if hist != nil {
		def = hist.def()
	} else {
		def = tableMapDef(tm, cols)
	}
	return r.tx.records.add(&change.Record{
		Op: change.OpCreateTable, Schema: t.Schema, Table: t.Table,
		Statement: "-- binlake: table definition at this binlog position", TableDef: &def,
		Position:     change.Position{Epoch: r.c.state.Epoch, File: r.fileNum, Offset: start, Kind: change.KindLoad, A: chunk},
		PartitionKey: t.String(),
	})
}

type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }
