package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/config"
)

// GTIDs, fail-over and purged binlogs.
//
// The checkpoint holds the binlog file and position CDC resumes at, and the
// source's GTID set there. On the server that wrote the checkpoint CDC
// resumes by file and position. On another one (the checkpoint's server_id
// differs: a replica promoted after a fail-over) file and position mean
// nothing, and CDC resumes after the GTID set instead, one epoch higher, so
// that every position read there sorts after every position read before.
// A checkpoint whose binlog file is gone (purged) cannot resume at all: the
// changes in between are lost to binlake, and `binlake run --resnapshot`
// loads the tables again.

// gtidAt is the source's GTID set at file:pos ("" when it has none, or
// for MySQL, whose set is only known at the binlog's end, at another
// position).
func (s *source) gtidAt(ctx context.Context, file string, pos uint32) string {
	if s.flavor != mysql.MariaDBFlavor {
		g, err := s.executedGTIDSet(ctx)
		if err != nil {
			return ""
		}
		return g
	}
	var g sql.NullString
	if err := s.db.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", file, pos).Scan(&g); err != nil {
		return ""
	}
	return g.String
}

// executedGTIDSet is MySQL's @@gtid_executed when gtid_mode is ON.
func (s *source) executedGTIDSet(ctx context.Context) (string, error) {
	var mode string
	if err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_mode").Scan(&mode); err != nil || mode != "ON" {
		return "", err
	}
	var g string
	err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&g)
	return g, err
}

// followFailover runs before every reading of the binlog, the first and
// each one after a lost connection: followServer with the server_id the
// source answers now.
func (c *Capture) followFailover(ctx context.Context) error {
	id, err := c.sourceServerID(ctx)
	if err != nil {
		return err
	}
	return c.followServer(id)
}

// followServer makes id the server CDC reads. On another server than the
// one the checkpoint's position was read on (a replica promoted, at a start
// or behind the same address while binlake runs: a moved virtual IP, a DNS
// name, a cloud database's endpoint) that binlog file and position mean
// nothing, and CDC resumes after the GTID set of what it has published,
// one epoch up, so that every position read there sorts after every one
// read before. Without a GTID set it cannot resume, and says what to do.
func (c *Capture) followServer(id uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.state
	prev := st.ServerID
	switch {
	case id == prev:
		return nil
	case prev == 0 || (st.BinlogFile == "" && st.GTIDSet == ""):
		st.ServerID, c.src.serverID = id, id // no position to follow
		return nil
	case st.GTIDSet == "":
		return fmt.Errorf("the source is now server_id %d, but CDC was reading server_id %d without a GTID set (a fail-over?): "+
			"its binlog position %s:%d means nothing on the new server; point source.mysql back at server_id %d, "+
			"or run `binlake run --resnapshot` to load every table again (and turn GTIDs on, gtid_mode=ON on MySQL, so that the next fail-over is followed)",
			id, prev, st.BinlogFile, st.BinlogPos, prev)
	}
	c.log.Warn("the source is another server than the one CDC was reading (a fail-over?): CDC resumes after the GTID set it has published, one epoch up",
		"server_id", id, "was_server_id", prev, "gtid_set", st.GTIDSet, "epoch", st.Epoch+1)
	st.Epoch++
	st.BinlogFile, st.BinlogPos, st.ServerID = "", 0, id
	c.src.serverID = id
	return nil
}

// sourceServerID asks the source its server_id.
func (c *Capture) sourceServerID(ctx context.Context) (uint32, error) {
	var id uint32
	if err := c.src.db.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id); err != nil {
		return 0, sourceLost(fmt.Errorf("reading the source's server_id: %w", err))
	}
	return id, nil
}

// sameServerAfterDial closes the gap between followFailover and the binlog
// connection: a fail-over in between would have the new server read at
// the old one's position. Asked again once the binlog connection is made,
// another server_id ends this reading as a lost source, and the next one
// follows the fail-over.
func (c *Capture) sameServerAfterDial(ctx context.Context) error {
	id, err := c.sourceServerID(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	prev := c.state.ServerID
	c.mu.Unlock()
	if prev != 0 && id != prev {
		return sourceLost(fmt.Errorf("the source became server_id %d (was %d) while the binlog connection was made: a fail-over?", id, prev))
	}
	return nil
}

// binlogFiles lists the binlog files the source still has, oldest first.
func (s *source) binlogFiles(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("listing the binlog files (grant REPLICATION CLIENT, or BINLOG MONITOR on MariaDB): %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var files []string
	for rows.Next() {
		vals := make([]any, len(cols))
		var name string
		vals[0] = &name
		for i := 1; i < len(vals); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	return files, rows.Err()
}

// checkCheckpoint tells whether CDC can resume where the task's checkpoint
// says: on this server, its binlog file must still be there; on another,
// the checkpoint must hold a GTID set. It finds nothing to say (ok false)
// without a checkpoint that has a binlog position.
func (s *source) checkCheckpoint(ctx context.Context, stateDir string) (Finding, bool) {
	var st State
	found, err := checkpoint.Load(filepath.Join(stateDir, "capture.json"), &st)
	if err != nil || !found || st.BinlogFile == "" && st.GTIDSet == "" {
		return Finding{}, false
	}
	f := Finding{Check: "checkpoint", Level: LevelOK}
	if resnapshotRequested(stateDir) {
		f.Detail = "binlake run --resnapshot: every selected table is loaded again, CDC starts at the binlog's end"
		return f, true
	}
	resnap := "run `binlake run --resnapshot` (same config): it loads every selected table again, each load superseding what the lake holds of the table, and CDC goes on from the binlog's end"
	if st.ServerID != 0 && st.ServerID != s.serverID {
		if st.GTIDSet == "" {
			f.Level = LevelFail
			f.Detail = fmt.Sprintf("the source is server_id %d, but the checkpoint was written reading server_id %d, without a GTID set: its binlog position %s:%d means nothing here", s.serverID, st.ServerID, st.BinlogFile, st.BinlogPos)
			f.Fix = "point source.mysql back at the server the task was reading, or " + resnap
			return f, true
		}
		f.Detail = fmt.Sprintf("the source is server_id %d, the checkpoint was written reading server_id %d (a fail-over?): CDC resumes after GTID set %s, at epoch %d", s.serverID, st.ServerID, st.GTIDSet, st.Epoch+1)
		f.Level = LevelWarn
		return f, true
	}
	if st.BinlogFile == "" {
		f.Detail = fmt.Sprintf("CDC resumes after GTID set %s", st.GTIDSet)
		return f, true
	}
	files, err := s.binlogFiles(ctx)
	if err != nil {
		f.Level, f.Detail, f.Fix = LevelWarn, err.Error(), "grant the privilege, so that binlake can tell a purged binlog before it reads"
		return f, true
	}
	if slices.Contains(files, st.BinlogFile) {
		f.Detail = fmt.Sprintf("CDC resumes at %s:%d, still on the source", st.BinlogFile, st.BinlogPos)
		return f, true
	}
	oldest := "none"
	if len(files) > 0 {
		oldest = files[0]
	}
	f.Level = LevelFail
	f.Detail = fmt.Sprintf("the checkpoint's binlog %s (CDC resumes at %s:%d, saved %s) is no longer on the source, whose oldest binlog is %s: "+
		"it was purged (binlog retention, PURGE BINARY LOGS, RESET MASTER), and the changes in between cannot be read again",
		st.BinlogFile, st.BinlogFile, st.BinlogPos, st.SavedAt.Format(time.RFC3339), oldest)
	f.Fix = resnap + " (or set full_load.on_binlog_loss: resnapshot, and binlake does so by itself); and keep binlogs longer than binlake may stay stopped (binlog_expire_logs_seconds / expire_logs_days)"
	f.binlogLost = true
	return f, true
}

// resnapshotWhenLost applies full_load.on_binlog_loss: resnapshot when a
// finding says the checkpoint's binlog is gone: it requests and applies a
// resnapshot, and reports true. The changes made between the checkpoint
// and the purge cannot be read any more; loading every table again is the
// only way to an exact lake.
func (c *Capture) resnapshotWhenLost(findings []Finding) (bool, error) {
	if c.cfg.FullLoad.OnBinlogLoss != config.OnBinlogLossResnapshot {
		return false, nil
	}
	i := slices.IndexFunc(findings, func(f Finding) bool { return f.binlogLost })
	if i < 0 {
		return false, nil
	}
	c.log.Warn("the checkpoint's binlog is no longer on the source (full_load.on_binlog_loss: resnapshot): every selected table is loaded again", "detail", findings[i].Detail)
	if err := RequestResnapshot(c.opts.StateDir); err != nil {
		return false, err
	}
	if err := c.applyResnapshot(); err != nil {
		return false, err
	}
	return true, nil
}

// resnapshotFile is the request binlake run --resnapshot leaves in
// state_dir until capture has applied it to its checkpoint.
const resnapshotFile = "resnapshot.json"

func resnapshotRequested(stateDir string) bool {
	_, err := os.Stat(filepath.Join(stateDir, resnapshotFile))
	return err == nil
}

// RequestResnapshot asks the task's capture to load every selected table
// again at its next start and to continue CDC from the binlog's end: the
// remedy when the checkpoint's binlog was purged.
func RequestResnapshot(stateDir string) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("resnapshot request: %w", err)
	}
	return checkpoint.Save(filepath.Join(stateDir, resnapshotFile), map[string]time.Time{"requested_at": time.Now().UTC()})
}

// applyResnapshot applies a waiting resnapshot request to the checkpoint:
// the binlog position is forgotten (CDC starts at the binlog's end), the
// epoch goes up (whatever the source's binlog files are now, every new
// position sorts after the old ones), and every table is loaded again, its
// first chunk preceded by a truncate-table record. The request is removed
// once the checkpoint is saved.
func (c *Capture) applyResnapshot() error {
	if !resnapshotRequested(c.opts.StateDir) {
		return nil
	}
	c.mu.Lock()
	st := &c.state
	st.BinlogFile, st.BinlogPos, st.GTIDSet, st.LastRecord, st.Schemas = "", 0, "", nil, nil
	st.Epoch++
	for _, p := range st.Tables {
		*p = TableProgress{State: StateBeforeLoad, EstimatedRows: p.EstimatedRows, Defined: p.Defined, Truncate: true,
			Reload: c.cfg.Migration == config.MigrationCDC}
	}
	st.SavedAt = time.Now().UTC()
	err := checkpoint.Save(c.path, st)
	n := len(st.Tables)
	epoch := st.Epoch
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.log.Warn("resnapshot: every selected table is loaded again and CDC starts at the binlog's end", "tables", n, "epoch", epoch)
	if err := os.Remove(filepath.Join(c.opts.StateDir, resnapshotFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the resnapshot request: %w", err)
	}
	return nil
}
