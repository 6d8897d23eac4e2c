// Package capture reads a MySQL or MariaDB source: a consistent, lock-free
// full load of the selected tables and then the binlog, turning every row
// change and DDL into change records published on the stream in order.
package capture

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/stream"
)

// Table states, in DMS's words.
const (
	StateBeforeLoad = "Before load"
	StateFullLoad   = "Full load"
	StateCompleted  = "Table completed"
	StateError      = "Table error"
)

// Phases of a capture run.
const (
	PhaseStarting  = "starting"
	PhaseLoading   = "loading"
	PhaseStreaming = "streaming"
	PhaseDone      = "done"
)

// TableProgress is the capture state of one table, saved in the checkpoint.
type TableProgress struct {
	State        string     `json:"state"`
	LoadPosition string     `json:"load_position,omitempty"` // snapshot position of the last chunk published
	LoadRows     uint64     `json:"full_load_rows"`          // rows published by the load so far
	LoadStart    *time.Time `json:"full_load_start,omitempty"`
	LoadEnd      *time.Time `json:"full_load_end,omitempty"`
	Error        string     `json:"error,omitempty"`
	// LoadMethod tells how the table is loaded: in chunks by its primary
	// key (or a unique NOT NULL key), or in one pass, and why (DMS says
	// "No primary key").
	LoadMethod string   `json:"load_method,omitempty"`
	LoadKey    []string `json:"load_key,omitempty"` // the columns chunks are read by
	// LastKey holds the key values of the last row of the last chunk
	// published, as the SELECT returned them: the next chunk starts after
	// it, also after a restart.
	LastKey [][]byte `json:"last_key,omitempty"`
	// Chunks is the number of chunks of the load published.
	Chunks uint64 `json:"full_load_chunks,omitempty"`
	// Reload: the load was requested while CDC runs (binlake reload).
	Reload bool `json:"reload,omitempty"`
	// Defined: a control record with the table's definition was published.
	Defined bool `json:"defined,omitempty"`
	// EstimatedRows is information_schema.TABLES.TABLE_ROWS when the load
	// started (a statistic for InnoDB): what full-load progress is measured against.
	EstimatedRows uint64 `json:"estimated_rows,omitempty"`
	// SchemaError: the table's binlog events cannot be decoded with the
	// schema history (Error says why); they are left out from there.
	SchemaError bool `json:"schema_error,omitempty"`
	// Truncate: the table's next chunk starts with a truncate-table
	// record, so the load supersedes everything before it in the lake
	// (binlake run --resnapshot: the changes of a purged binlog are
	// missing, deletes among them).
	Truncate bool `json:"truncate,omitempty"`
}

// State is the capture checkpoint.
type State struct {
	FormatVersion int    `json:"format_version"`
	Flavor        string `json:"flavor"`
	ServerID      uint32 `json:"server_id"`
	Epoch         uint32 `json:"epoch"`
	BinlogFile    string `json:"binlog_file,omitempty"` // CDC resumes here, at a transaction boundary
	BinlogPos     uint32 `json:"binlog_pos,omitempty"`
	// GTIDSet is the source's GTID set at BinlogFile:BinlogPos (empty when
	// unknown): CDC resumes by it on another server (a fail-over).
	GTIDSet   string `json:"gtid_set,omitempty"`
	NextChunk uint64 `json:"next_chunk"`
	// LastRecord is the last CDC record published, at BinlogFile:BinlogPos:
	// the prev-transaction-id and prev-transaction-record-id of the next one.
	LastRecord *change.TransactionRef    `json:"last_record,omitempty"`
	Tables     map[string]*TableProgress `json:"tables"`
	// Schemas is the schema history: the columns of each table by binlog
	// position, for table maps without column names (schema.go).
	Schemas *SchemaHistory `json:"schema_history,omitempty"`
	SavedAt time.Time      `json:"saved_at"`
}

const stateFormatVersion = 1

// Options configure a Capture.
type Options struct {
	Config   *config.Config
	Producer stream.Producer
	StateDir string
	Logger   *slog.Logger
	// CheckpointEvery is how often CDC saves its position (default 1s).
	CheckpointEvery time.Duration
}

// Capture is the source side of a task.
type Capture struct {
	opts  Options
	cfg   *config.Config
	log   *slog.Logger
	prod  stream.Producer
	out   *emitter // encodes and publishes on prod, in order
	path  string
	src   *source
	parts int

	mu    sync.Mutex
	state State
	phase string
	lagAt time.Time // commit time of the last transaction published
	buf   []byte

	retention Retention // the source's binlog retention, under mu (observe.go)
	// downSince is when capture lost the source (zero: it reads the
	// binlog); downErr the last error meeting it.
	downSince time.Time
	downErr   string
	// fullMetadata: the source writes binlog_row_metadata=FULL, so table
	// maps name their columns and the schema history is only a fallback.
	fullMetadata bool
}

// New returns a Capture; Run starts it.
func New(opts Options) *Capture {
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = time.Second
	}
	return &Capture{
		opts:  opts,
		cfg:   opts.Config,
		log:   opts.Logger,
		prod:  opts.Producer,
		path:  filepath.Join(opts.StateDir, "capture.json"),
		parts: max(opts.Config.Stream.Partitions, 1),
		phase: PhaseStarting,
		state: State{FormatVersion: stateFormatVersion, Tables: map[string]*TableProgress{}},
	}
}

// Phase tells what the capture is doing.
func (c *Capture) Phase() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.phase
}

// LastCommit is the source commit time of the newest transaction published.
func (c *Capture) LastCommit() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lagAt
}

// Tables returns a copy of every table's progress.
func (c *Capture) Tables() map[string]TableProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]TableProgress, len(c.state.Tables))
	for k, v := range c.state.Tables {
		out[k] = *v
	}
	return out
}

func (c *Capture) setPhase(p string) {
	c.mu.Lock()
	c.phase = p
	c.mu.Unlock()
}

// Run captures until ctx is cancelled (CDC) or, for a full-load task, until
// the load is published. On return every record it published is durable on
// the stream and the checkpoint says where to resume.
func (c *Capture) Run(ctx context.Context) error {
	c.out = newEmitter(c.prod)
	defer c.out.close()
	if _, err := checkpoint.Load(c.path, &c.state); err != nil {
		return err
	}
	if c.state.FormatVersion != stateFormatVersion {
		return fmt.Errorf("capture checkpoint %s has format version %d, this binlake reads %d", c.path, c.state.FormatVersion, stateFormatVersion)
	}
	if c.state.Tables == nil {
		c.state.Tables = map[string]*TableProgress{}
	}
	if err := c.applyResnapshot(); err != nil {
		return err
	}
	src, err := openSource(ctx, c.cfg.Source.MySQL)
	if err != nil {
		return err
	}
	defer src.Close()
	c.src = src
	findings := src.preflight(ctx, c.cfg)
	if resnapped, err := c.resnapshotWhenLost(findings); err != nil {
		return err
	} else if resnapped {
		findings = src.preflight(ctx, c.cfg)
	}
	if bad := failed(findings); len(bad) > 0 {
		return &FailedError{Version: src.version, Findings: bad}
	}
	for _, f := range findings {
		if f.Level == LevelWarn {
			c.log.Warn("source check: "+f.Check, "detail", f.Detail, "fix", f.Fix)
		}
	}
	// Another server than the checkpoint's (the preflight refused it
	// without a GTID set): resume after the GTID set, one epoch up.
	if err := c.followServer(src.serverID); err != nil {
		return err
	}
	c.state.Flavor = src.flavor
	c.log.Info("source connected", "version", src.version, "flavor", src.flavor, "server_id", src.serverID)

	tables, err := src.listTables(ctx, c.cfg.Selected)
	if err != nil {
		return err
	}
	c.fullMetadata = src.fullRowMetadata(ctx)
	if c.state.Schemas == nil {
		// Read before the start position is taken (below, if this is the
		// first start): a DDL in between is read from the binlog.
		h, err := src.seedSchemaHistory(ctx, tables)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.state.Schemas = h
		c.mu.Unlock()
	}
	var toLoad []TableName
	c.mu.Lock()
	for _, t := range tables {
		p := c.state.Tables[t.String()]
		if p == nil {
			p = &TableProgress{State: StateBeforeLoad}
			c.state.Tables[t.String()] = p
		}
		if c.cfg.Migration == config.MigrationCDC && p.State != StateCompleted && !p.Reload {
			p.State = StateCompleted // CDC only: nothing to load
		}
		if p.State != StateCompleted {
			toLoad = append(toLoad, t)
		}
	}
	initial := slices.ContainsFunc(toLoad, func(t TableName) bool { return !c.state.Tables[t.String()].Reload })
	c.mu.Unlock()
	reloads, err := c.takeReloads(ctx, func(t TableName) bool { return slices.Contains(toLoad, t) })
	if err != nil {
		return err
	}
	toLoad = append(toLoad, reloads...)
	c.observeSource(ctx, toLoad)

	if len(toLoad) == 0 && c.cfg.Migration == config.MigrationFullLoad {
		c.setPhase(PhaseDone)
		return c.save(ctx)
	}
	// The binlog reader runs from the first start on: it publishes every
	// change of the selected tables, and the full load's chunks in between
	// (load.go).
	if c.state.BinlogFile == "" && c.state.GTIDSet == "" {
		file, pos, given, err := c.cfg.StartPosition()
		if err != nil {
			return err
		}
		if gtids, ok := c.cfg.StartGTIDSet(); ok {
			c.log.Info("CDC starts", "after_gtid_set", gtids, "from", "cdc_start_position")
			c.state.GTIDSet = gtids
		} else {
			my := c.cfg.Source.MySQL
			if at, ok := c.cfg.StartTime(); ok {
				if file, pos, err = src.positionAt(ctx, mysqlConn{my.Host, my.Port, my.User, my.Password, my.ServerID}, at); err != nil {
					return fmt.Errorf("cdc_start_position: %w", err)
				}
				given = true
				c.log.Info("cdc_start_position: the first transaction at or after the time", "time", at, "file", file, "pos", pos)
			} else if !given {
				if file, pos, err = src.binlogPosition(ctx); err != nil {
					return err
				}
			}
			c.log.Info("CDC starts", "file", file, "pos", pos, "from", map[bool]string{true: "cdc_start_position", false: "the binlog's end"}[given])
			c.state.BinlogFile, c.state.BinlogPos = file, pos
			c.state.GTIDSet = src.gtidAt(ctx, file, pos)
			if src.flavor != mysql.MariaDBFlavor && given {
				c.state.GTIDSet = "" // MySQL tells the set at the binlog's end only
			}
		}
		if err := c.save(ctx); err != nil {
			return err
		}
	} else if c.state.BinlogFile != "" && c.state.GTIDSet == "" && src.flavor == mysql.MariaDBFlavor {
		// A checkpoint from before GTIDs were kept.
		c.state.GTIDSet = src.gtidAt(ctx, c.state.BinlogFile, c.state.BinlogPos)
	}
	if initial {
		c.setPhase(PhaseLoading)
	} else {
		c.setPhase(PhaseStreaming)
	}
	err = c.streamAndReconnect(ctx, toLoad, initial)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		// Stopped: whichever step the stop interrupted, the checkpoint
		// gets everything decided since the last save (a table's error,
		// the last commit), not just what the 1 s timer saw.
		err = errors.Join(err, c.save(context.WithoutCancel(ctx)))
	}
	c.setPhase(PhaseDone)
	return err
}

// streamAndReconnect runs streamBinlog and, when the source goes away (a
// restart, a network cut the binlog heartbeat's read timeout detects), runs
// it again from the checkpoint, with backoff from 1 s to 30 s, for as long
// as it takes. The transaction being read when the connection was lost is
// read again whole; the full load goes on with the chunks not yet
// published.
func (c *Capture) streamAndReconnect(ctx context.Context, toLoad []TableName, initial bool) error {
	backoff := time.Second
	for {
		began := time.Now()
		err := c.streamBinlog(ctx, toLoad, initial)
		if time.Since(began) > time.Minute {
			backoff = time.Second // it had been reading: a new outage
		}
		var lost *sourceLostError
		if err == nil || ctx.Err() != nil || !errors.As(err, &lost) {
			c.setSourceDown(nil)
			return err
		}
		c.setSourceDown(lost.err)
		c.log.Warn("the source is unreachable; reading the binlog again from the checkpoint once it answers", "err", lost.err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return c.save(context.WithoutCancel(ctx))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		c.mu.Lock()
		var still []TableName
		for _, t := range toLoad {
			if p := c.state.Tables[t.String()]; p != nil && p.State != StateCompleted && p.State != StateError {
				still = append(still, t)
			}
		}
		c.mu.Unlock()
		toLoad = still
		initial = initial && len(still) > 0
	}
}

// sourceLostError is a failure to reach the source or to go on reading
// its binlog, which reading again from the checkpoint may cure.
type sourceLostError struct{ err error }

func (e *sourceLostError) Error() string { return e.err.Error() }
func (e *sourceLostError) Unwrap() error { return e.err }

// sourceLost marks err as a sourceLostError, unless the server refused
// the binlog for good (error 1236: the binlog or GTID asked for is gone).
func sourceLost(err error) error {
	var my *mysql.MyError
	if errors.As(err, &my) && my.Code == mysql.ER_MASTER_FATAL_ERROR_READING_BINLOG {
		return err
	}
	return &sourceLostError{err}
}

// setSourceDown records that the source is unreachable (err) or answers
// again (nil).
func (c *Capture) setSourceDown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.downSince, c.downErr = time.Time{}, ""
	case c.downSince.IsZero():
		c.downSince, c.downErr = time.Now(), err.Error()
	default:
		c.downErr = err.Error()
	}
}

// SourceDown tells since when capture has not reached the source, and the
// last error (zero time: it reads the binlog).
func (c *Capture) SourceDown() (time.Time, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.downSince, c.downErr
}

// save flushes the producer and writes the checkpoint: the checkpoint never
// claims more than the stream holds.
func (c *Capture) save(ctx context.Context) error {
	if err := c.out.flush(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.state.SavedAt = time.Now().UTC()
	if c.state.Schemas != nil && c.state.BinlogFile != "" {
		if n, err := change.BinlogFileNumber(c.state.BinlogFile); err == nil {
			c.state.Schemas.prune(positionKey(c.state.Epoch, n, uint64(c.state.BinlogPos)))
		}
	}
	err := checkpoint.Save(c.path, &c.state)
	c.mu.Unlock()
	return err
}

func (c *Capture) partition(key string) int {
	if c.parts == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(c.parts))
}

// routingKey is what picks rec's partition: its partition key (table and
// primary key, so one row's changes stay in order), or its table under
// stream.partition_key: schema-table (so a whole table's do). The message
// keeps the partition key as its Key either way.
func (c *Capture) routingKey(rec *change.Record) string {
	if c.cfg.Stream.PartitionKey == config.PartitionByTable {
		return rec.Schema + "." + rec.Table
	}
	return rec.PartitionKey
}

// emit publishes a data record on its key's partition (asynchronously:
// an error comes from a later emit or the next save).
func (c *Capture) emit(ctx context.Context, rec *change.Record) error {
	return c.out.add(ctx, rec, c.partition(c.routingKey(rec)), false)
}

func (c *Capture) broadcast(ctx context.Context, rec *change.Record) error {
	parts := []int{}
	if c.cfg.Stream.PartitionKey == config.PartitionByTable {
		parts = append(parts, c.partition(rec.Schema+"."+rec.Table))
	} else {
		for p := range c.parts {
			parts = append(parts, p)
		}
	}
	for i, p := range parts {
		r := *rec
		r.Position.B = uint64(i)
		if err := c.out.add(ctx, &r, p, true); err != nil {
			return err
		}
	}
	return nil
}

// partitionKey sets the record's DMS partition key: schema.table.<pk
// values> when the table has a primary key, else schema.table. The values
// of a composite key are joined by '.', with '.' and '\' inside a value
// escaped by a '\', so that ("a.b", "c") and ("a", "b.c") stay two keys; a
// single-column key is written as it is, as DMS does.
func partitionKey(rec *change.Record, row change.Row, pk []int) {
	b := make([]byte, 0, 64)
	b = append(b, rec.Schema...)
	b = append(b, '.')
	b = append(b, rec.Table...)
	for _, i := range pk {
		if i >= len(row) {
			continue
		}
		b = append(b, '.')
		start := len(b)
		if s, ok := row[i].Value.(string); ok {
			b = append(b, s...)
		} else {
			b = change.AppendValue(b, row[i].Value)
		}
		if len(pk) > 1 && strings.ContainsAny(string(b[start:]), `.\`) {
			v := string(b[start:])
			b = b[:start]
			for j := 0; j < len(v); j++ {
				if v[j] == '.' || v[j] == '\\' {
					b = append(b, '\\')
				}
				b = append(b, v[j])
			}
		}
	}
	rec.PartitionKey = string(b)
	rec.PartitionKeyPK = len(pk) > 0
}

// schemaError puts table t in "Table error": its binlog events cannot be
// decoded with a schema binlake trusts, so they are left out from here.
// The other tables go on.
func (c *Capture) schemaError(t TableName, reason string) {
	c.tableError(t, reason, "set binlog_row_metadata=FULL on the source (table maps then name the columns), then binlake reload --table "+t.String())
}

// tableError puts table t in "Table error": its binlog events are left out
// from now on (the other tables go on) until it is loaded again.
func (c *Capture) tableError(t TableName, reason, fix string) {
	c.mu.Lock()
	p := c.state.Tables[t.String()]
	if p == nil {
		p = &TableProgress{}
		c.state.Tables[t.String()] = p
	}
	already := p.SchemaError
	p.State, p.Error, p.SchemaError = StateError, reason, true
	c.mu.Unlock()
	if !already {
		c.log.Error("table in error: its binlog events are left out", "table", t.String(), "reason", reason, "fix", fix)
	}
}

// Position is the binlog position CDC has published everything up to (a
// transaction boundary).
func (c *Capture) Position() (string, uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.BinlogFile, c.state.BinlogPos
}
