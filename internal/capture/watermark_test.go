package capture_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestWatermarkSnapshot loads the load tables with watermark snapshots
// (full_load.snapshot: watermark, MySQL's way, here on MariaDB) and, in
// every chunk of big, commits an update of a row of that chunk between the
// chunk's snapshot and its high watermark: the snapshot holds the old row,
// the binlog the new one before W. The chunk must leave that row to its
// binlog event. nokey, which has no key, is changed in its first
// snapshot's window the same way, and must be read again.
func TestWatermarkSnapshot(t *testing.T) {
	const chunkSize = 300
	m := testbed.NewMariaDB(t)
	createLoadTables(t, m)
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var bigChanged, nokeyChanged atomic.Int64
	wm := capture.TableName{Schema: "binlake", Table: "wm_test"}
	capture.SetWatermarkHook(t, wm, func(table capture.TableName, after [][]byte) {
		var q string
		switch table.Table {
		case "big":
			id := 5
			if after != nil {
				n, err := strconv.Atoi(string(after[0]))
				if err != nil {
					t.Errorf("big: chunk after %q", after[0])
					return
				}
				id = n + 5
			}
			q = fmt.Sprintf("UPDATE shop.big SET v = 'between the watermarks' WHERE id = %d", id)
			bigChanged.Add(1)
		case "nokey":
			if nokeyChanged.Add(1) > 1 {
				return
			}
			q = "UPDATE shop.nokey SET y = 'between' WHERE x = 7 LIMIT 1"
		default:
			return
		}
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	})
	lt := newLakeTask(t, m, fmt.Sprintf("full_load: {chunk_size: %d, parallelism: 2, snapshot: watermark, watermark_table: %s}", chunkSize, wm))
	lt.start(t)
	// No chunk read holds its snapshot once the load is done: nokey's
	// stale read, whose rows do not fit in its chunk's channel, is ended
	// too, not left waiting for a reader.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.INNODB_TRX").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d transactions still open on the source after the load", n)
			break
		}
	}
	lt.drain(t)
	checkLoadState(t, lt, chunkSize)
	assertLakeEqualsShop(t, lt)
	if bigChanged.Load() < 30 || nokeyChanged.Load() < 2 {
		t.Fatalf("big changed in %d chunk windows (want every chunk's, about 34), nokey read %d times (want 2)", bigChanged.Load(), nokeyChanged.Load())
	}
	// big's changed rows came from their binlog events, not their chunks.
	var between int
	for _, r := range lt.records(t, "big") {
		if strings.Contains(string(r.data["v"]), "between the watermarks") {
			if op := r.meta("operation"); op != "update" {
				t.Errorf("big: a row changed between the watermarks arrived as %q: %s", op, r.line)
			}
			between++
		}
	}
	if between != int(bigChanged.Load()) {
		t.Errorf("big: %d records hold the change made between the watermarks, want %d", between, bigChanged.Load())
	}
	// nokey's second read holds its change.
	var marker bool
	var changed int
	for _, r := range lt.records(t, "nokey") {
		switch op := r.meta("operation"); {
		case op == "truncate-table":
			marker, changed = true, 0
		case op == "load" && marker:
			var y string
			json.Unmarshal(r.data["y"], &y)
			if y == "between" {
				changed++
			}
		}
	}
	if changed != 1 {
		t.Errorf("nokey: %d loaded rows hold the change made in its first snapshot's window, want 1", changed)
	}
	if !strings.Contains(lt.logs.String(), "chunk read again") {
		t.Errorf("the log does not say that nokey's chunk was read again")
	}
	var mark string
	if err := db.QueryRow("SELECT mark FROM binlake.wm_test WHERE task = 'records'").Scan(&mark); err != nil || !strings.HasSuffix(mark, ":h") {
		t.Errorf("the watermark table holds %q (%v), want the last high watermark", mark, err)
	}
}

// TestWatermarkNotInBinlog: a watermark table whose schema the server
// leaves out of the binlog can never be met; the chunks fail with that
// reason and the table goes to Table error rather than wait for ever.
func TestWatermarkNotInBinlog(t *testing.T) {
	m := testbed.NewMariaDBWith(t, "--binlog-ignore-db=ops")
	if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)", "INSERT INTO shop.t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "full_load: {snapshot: watermark, watermark_table: ops.wm}")
	tk := task.New(lt.cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)))
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	defer func() { stop(); <-done }()
	var ts task.TableStatus
	waitUntil(t, 60*time.Second, func() bool {
		for _, x := range tk.Status().Tables {
			if x.Table == "t" {
				ts = x
			}
		}
		return ts.State == capture.StateError
	})
	if !strings.Contains(ts.Error, "the watermark written to ops.wm is not in the binlog binlake reads") || !strings.Contains(ts.Error, "binlog_ignore_db") {
		t.Errorf("shop.t: error %q, want the watermark missing from the binlog and the fix", ts.Error)
	}
}
