package capture

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
)

// Watermark snapshots, for MySQL, whose consistent snapshots do not tell
// their binlog position (MariaDB's binlog_snapshot_file/position do), and
// which RDS and Aurora do not let take FLUSH TABLES WITH READ LOCK. The
// idea is DBLog's (Netflix), cut down to the instant a snapshot starts:
//
//  1. L: a write to the watermark table, committed. The server commits in
//     binlog order (binlog_order_commits), so every transaction before L in
//     the binlog is visible to a snapshot started after L returns; a
//     transaction the binlog reader has read already is one of them.
//  2. START TRANSACTION WITH CONSISTENT SNAPSHOT: the chunk's snapshot S.
//  3. H: a second write, on another connection. Every transaction S sees
//     committed before H, so it lies before H in the binlog.
//
// W, where the reader publishes the chunk, is the end of H's transaction.
// The transactions between the reader's position when it scheduled the
// chunk (before L) and H are the only ones S may or may not see: a row of
// the chunk whose key one of them changed is left out, and that key's
// binlog events, which carry whole rows and come before W, give its state.
// A table without a usable key changed in that window is read again, and
// so is a table whose definition changed in it. The window is the few
// milliseconds between L and H, so little is left out or read again.

// watermarkColumns is the watermark table's definition; binlake creates it
// when it may.
const watermarkColumns = "(task VARCHAR(255) NOT NULL PRIMARY KEY, mark VARCHAR(255) NOT NULL)"

// watermarkHook, set by tests, runs between a chunk's snapshot and its high
// watermark: a change committed then is in the binlog before W but not in
// the snapshot.
var watermarkHook atomic.Pointer[func(wm, t TableName, after [][]byte)]

// watermarks is the loader's side of the watermark snapshots.
type watermarks struct {
	table TableName
	task  string
	nonce string // this loader's, in every mark it writes

	mu    sync.Mutex // ready, for the chunk reads
	ready bool       // the table exists and holds the task's row

	open int      // chunks whose H the reader has not reached
	seen []uint64 // chunks whose H is in the transaction under way
}

func newWatermarks(cfg *config.Config) *watermarks {
	schema, table, _ := strings.Cut(cfg.FullLoad.Watermarks(), ".")
	b := make([]byte, 6)
	rand.Read(b)
	return &watermarks{table: TableName{schema, table}, task: cfg.Task, nonce: hex.EncodeToString(b)}
}

// useWatermarks reports whether chunk snapshots use watermarks.
func useWatermarks(cfg *config.Config, flavor string) bool {
	switch cfg.FullLoad.SnapshotMode() {
	case config.SnapshotWatermark:
		return true
	case config.SnapshotAuto:
		return flavor == "mysql"
	}
	return false
}

// mark is the value a chunk's low or high watermark writes.
func (w *watermarks) mark(seq uint64, high bool) string {
	side := "l"
	if high {
		side = "h"
	}
	return "binlake:" + w.nonce + ":" + strconv.FormatUint(seq, 10) + ":" + side
}

// highMark parses a high watermark of this loader, returning its chunk.
func (w *watermarks) highMark(v any) (uint64, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return 0, false
	}
	rest, ok := strings.CutPrefix(s, "binlake:"+w.nonce+":")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, ":h")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	return seq, err == nil
}

func (w *watermarks) quoted() string {
	return quoteIdent(w.table.Schema) + "." + quoteIdent(w.table.Table)
}

// prepare makes sure the watermark table exists and holds the task's row:
// created when missing (CREATE needs the privilege), else only used.
func (w *watermarks) prepare(ctx context.Context, conn *sql.Conn, flavor string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ready {
		return nil
	}
	fix := fmt.Sprintf("create it on the source (CREATE DATABASE IF NOT EXISTS %s; CREATE TABLE IF NOT EXISTS %s %s) and GRANT INSERT, UPDATE, SELECT ON %s TO binlake's user, or set full_load.snapshot: lock (FLUSH TABLES WITH READ LOCK per chunk, needs RELOAD)",
		quoteIdent(w.table.Schema), w.quoted(), watermarkColumns, w.quoted())
	if flavor == "mysql" {
		var order int
		if err := conn.QueryRowContext(ctx, "SELECT @@global.binlog_order_commits").Scan(&order); err == nil && order == 0 {
			return fmt.Errorf("full load: watermark snapshots need binlog_order_commits=ON (the server commits in binlog order), it is OFF: SET GLOBAL binlog_order_commits=ON, or set full_load.snapshot: lock")
		}
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", w.table.Schema, w.table.Table).Scan(&n); err != nil {
		return fmt.Errorf("full load: looking for the watermark table %s: %w", w.table, err)
	}
	if n == 0 {
		for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + quoteIdent(w.table.Schema), "CREATE TABLE IF NOT EXISTS " + w.quoted() + " " + watermarkColumns} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("full load: creating the watermark table %s (full_load.watermark_table): %w; %s", w.table, err, fix)
			}
		}
	}
	if _, err := conn.ExecContext(ctx, "INSERT IGNORE INTO "+w.quoted()+" (task, mark) VALUES (?, '')", w.task); err != nil {
		return fmt.Errorf("full load: writing to the watermark table %s: %w; %s", w.table, err, fix)
	}
	w.ready = true
	return nil
}

// snapshot starts the chunk's snapshot on conn between its two watermarks
// and returns the binlog end after H (the reader must meet H before it).
func (w *watermarks) snapshot(ctx context.Context, s *source, conn *sql.Conn, ch *chunk) (binPos, error) {
	seq := ch.seq
	if err := w.prepare(ctx, conn, s.flavor); err != nil {
		return binPos{}, err
	}
	write := "UPDATE " + w.quoted() + " SET mark = ? WHERE task = ?"
	if _, err := conn.ExecContext(ctx, write, w.mark(seq, false), w.task); err != nil {
		return binPos{}, fmt.Errorf("full load: writing the low watermark to %s: %w", w.table, err)
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return binPos{}, fmt.Errorf("full load: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return binPos{}, fmt.Errorf("full load: %w", err)
	}
	if hook := watermarkHook.Load(); hook != nil {
		(*hook)(w.table, ch.t.name, ch.after)
	}
	other, err := s.db.Conn(ctx)
	if err != nil {
		return binPos{}, fmt.Errorf("full load: %w", err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, write, w.mark(seq, true), w.task); err != nil {
		return binPos{}, fmt.Errorf("full load: writing the high watermark to %s: %w", w.table, err)
	}
	file, pos, err := s.binlogPositionOn(ctx, other)
	if err != nil {
		return binPos{}, err
	}
	num, err := change.BinlogFileNumber(file)
	if err != nil {
		return binPos{}, err
	}
	return binPos{num, uint64(pos)}, nil
}

// sawRows looks for this loader's high watermarks in a rows event of the
// watermark table: each one's chunk gets its W at the end of the
// transaction (loader.after).
func (w *watermarks) sawRows(e *replication.RowsEvent) {
	col := 1
	for i, name := range e.Table.ColumnNameString() {
		if name == "mark" {
			col = i
		}
	}
	for _, row := range e.Rows {
		if col < len(row) {
			if seq, ok := w.highMark(row[col]); ok {
				w.seen = append(w.seen, seq)
			}
		}
	}
}

// keyString is the identity of a row's key for the chunks' lists of keys
// changed between their watermarks: its key columns' JSON values. The
// binlog and the SELECT give each value the same JSON (the type zoo).
func keyString(row change.Row, keyCols []string) string {
	b := make([]byte, 0, 32)
	for _, name := range keyCols {
		for _, f := range row {
			if f.Name == name {
				b = change.AppendValue(b, f.Value)
				break
			}
		}
		b = append(b, 0)
	}
	return string(b)
}
