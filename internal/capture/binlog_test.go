package capture_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestSavepointInsideTransaction checks that a SAVEPOINT and a ROLLBACK TO
// SAVEPOINT, which the binlog holds as statements inside the transaction,
// do not end it: its records share one transaction-id, numbered on.
func TestSavepointInsideTransaction(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "")
	lt.start(t)
	if err := m.Exec(t.Context(), "BEGIN", "INSERT INTO shop.t VALUES (1)", "SAVEPOINT a", "INSERT INTO shop.t VALUES (2)",
		"ROLLBACK TO SAVEPOINT a", "INSERT INTO shop.t VALUES (3)", "RELEASE SAVEPOINT a", "INSERT INTO shop.t VALUES (4)", "COMMIT"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	var got []rawRecord
	for _, r := range lt.records(t, "t") {
		if r.meta("operation") == "insert" {
			got = append(got, r)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d inserts, want 3:\n%s", len(got), joinLines(got))
	}
	for i, r := range got {
		if string(r.metadata["transaction-id"]) != string(got[0].metadata["transaction-id"]) || string(r.metadata["transaction-id"]) == "0" {
			t.Errorf("insert %d has transaction-id %s, the first %s", i, r.metadata["transaction-id"], got[0].metadata["transaction-id"])
		}
		if want := []string{"1", "2", "3"}[i]; string(r.metadata["transaction-record-id"]) != want {
			t.Errorf("insert %d has transaction-record-id %s, want %s", i, r.metadata["transaction-record-id"], want)
		}
	}
}

// TestStatementFormatChange has a session switch to binlog_format=STATEMENT
// while CDC runs: the table it changes goes to "Table error" with the
// reason and the fix, its later changes are left out, and the other tables
// (and the rest of that transaction's rows) go on.
func TestStatementFormatChange(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)", "CREATE TABLE shop.u (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "")
	lt.start(t)
	if err := m.Exec(ctx, "INSERT INTO shop.t VALUES (1)",
		"SET SESSION binlog_format = 'STATEMENT'", "INSERT INTO shop.t VALUES (2)", "SET SESSION binlog_format = 'ROW'",
		"INSERT INTO shop.u VALUES (1)", "INSERT INTO shop.t VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	var ts *task.TableStatus
	for _, tb := range lt.tk.Status().Tables {
		if tb.Schema == "shop" && tb.Table == "t" {
			ts = &tb
		}
	}
	if ts == nil || ts.State != capture.StateError || !strings.Contains(ts.Error, "as a statement, not as rows") || !strings.Contains(ts.Error, "INSERT INTO shop.t VALUES (2)") {
		t.Fatalf("shop.t status %+v, want %q with the statement in the reason", ts, capture.StateError)
	}
	if !strings.Contains(lt.logs.String(), "binlake reload --table shop.t") {
		t.Errorf("the log does not give the fix:\n%s", lt.logs.String())
	}
	var got []string
	for _, name := range []string{"t", "u"} {
		for _, r := range lt.records(t, name) {
			if r.meta("operation") == "insert" {
				got = append(got, fmt.Sprintf("%s:%d", name, r.id(t)))
			}
		}
	}
	if want := "[t:1 u:1]"; fmt.Sprint(got) != want {
		t.Errorf("inserts in the lake %v, want %s (shop.t left out after the statement)", got, want)
	}
}

// TestRotateAndPurgeWhileRunning rotates the binlog twice while CDC runs
// (FLUSH BINARY LOGS) and purges the files capture has read (PURGE BINARY
// LOGS): every change, in each file, arrives once, in order.
func TestRotateAndPurgeWhileRunning(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "")
	lt.start(t)
	if err := m.Exec(ctx, "INSERT INTO shop.t VALUES (1, 1)", "FLUSH BINARY LOGS", "INSERT INTO shop.t VALUES (2, 1)", "UPDATE shop.t SET v = 2 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	// Purge what capture has read, while it runs.
	read := m.BinlogEnd(t)
	waitUntil(t, 30*time.Second, func() bool { return lt.tk.Status().SourcePosition == read })
	file, _, _ := strings.Cut(read, ":")
	if err := m.Exec(ctx, "FLUSH BINARY LOGS", fmt.Sprintf("PURGE BINARY LOGS TO '%s'", file), "DELETE FROM shop.t WHERE id = 2", "INSERT INTO shop.t VALUES (3, 3)"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	var got []string
	files := map[string]bool{}
	for _, r := range lt.records(t, "t") {
		if op := r.meta("operation"); op != "create-table" {
			got = append(got, fmt.Sprintf("%s:%d:%s", op, r.id(t), r.data["v"]))
			files[strings.Split(r.meta("stream-position"), "/")[1]] = true
		}
	}
	if want := "[insert:1:1 insert:2:1 update:1:2 delete:2:1 insert:3:3]"; fmt.Sprint(got) != want {
		t.Errorf("records %v, want %s", got, want)
	}
	if len(files) != 3 {
		t.Errorf("the records came from binlog files %v, want 3 files", files)
	}
}

// TestSourceRestartAndSilentCut restarts MariaDB while CDC runs, then cuts
// the network to it silently (a proxy that stops forwarding and closes
// nothing): capture notices the cut by the binlog heartbeat's read
// timeout, says so in the status (source_unreachable), reads the binlog
// again from its checkpoint once the source answers, and every change
// arrives once, in order.
func TestSourceRestartAndSilentCut(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	proxy := testbed.NewTCPProxy(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
	lt := newLakeTask(t, m, "")
	lt.cfg.Source.MySQL.Port = proxy.Port
	lt.cfg.Source.MySQL.Heartbeat = config.Duration(time.Second)
	lt.start(t)
	next := 0
	write := func(n int) {
		t.Helper()
		var stmts []string
		for range n {
			next++
			stmts = append(stmts, fmt.Sprintf("INSERT INTO shop.t VALUES (%d, %d)", next, next), fmt.Sprintf("UPDATE shop.t SET v = v + 1 WHERE id = %d", next))
		}
		if err := m.Exec(ctx, stmts...); err != nil {
			t.Fatal(err)
		}
	}
	captured := func() {
		t.Helper()
		want := m.BinlogEnd(t)
		waitUntil(t, 60*time.Second, func() bool { return lt.tk.Status().SourcePosition == want })
	}
	write(20)
	captured()

	// A restart of the source.
	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	write(20)
	captured()

	// A silent cut.
	proxy.Stall()
	write(20)
	waitUntil(t, 30*time.Second, func() bool {
		for _, w := range lt.tk.Status().Warnings {
			if w.Code == task.WarnSourceUnreachable {
				return true
			}
		}
		return false
	})
	// Reconnecting through the dead network fails too (by the read
	// timeout of the handshake), and is tried again.
	time.Sleep(6 * time.Second)
	proxy.Resume()
	captured()
	waitUntil(t, 30*time.Second, func() bool { return len(lt.tk.Status().Warnings) == 0 })
	write(20)
	lt.drain(t)

	var got []string
	for _, r := range lt.records(t, "t") {
		if op := r.meta("operation"); op != "create-table" {
			got = append(got, fmt.Sprintf("%s:%d:%s", op, r.id(t), r.data["v"]))
		}
	}
	var want []string
	for i := 1; i <= next; i++ {
		want = append(want, fmt.Sprintf("insert:%d:%d", i, i), fmt.Sprintf("update:%d:%d", i, i+1))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records in the lake:\n%v\nwant\n%v", got, want)
	}
	if !strings.Contains(lt.logs.String(), "the source is unreachable") {
		t.Errorf("the log does not say the source was unreachable")
	}
}

// TestSourceRestartDuringLoad restarts MariaDB in the middle of a chunked
// full load, with a writer changing the table: chunk reads that meet the
// restart are read again (they do not count toward putting the table in
// "Table error"), the binlog is read again from the checkpoint, and the
// load completes with the lake equal to the source.
func TestSourceRestartDuringLoad(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.big (id INT PRIMARY KEY, v INT)",
		"INSERT INTO shop.big SELECT seq, seq FROM shop.seq_1_to_20000"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "full_load: {chunk_size: 50}")
	lt.cfg.Source.MySQL.Heartbeat = config.Duration(time.Second)
	lt.tk = task.New(lt.cfg, slog.New(slog.NewTextHandler(io.MultiWriter(testLog{t}, &lt.logs), nil)))
	runCtx, stop := context.WithCancel(ctx)
	lt.stop, lt.done = stop, make(chan error, 1)
	go func() { lt.done <- lt.tk.Run(runCtx) }()
	chunks := func() uint64 {
		for _, tb := range lt.tk.Status().Tables {
			if tb.Table == "big" {
				return tb.FullLoadRows + tb.LoadRowsRead
			}
		}
		return 0
	}
	waitUntil(t, 60*time.Second, func() bool { return chunks() >= 2000 })
	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(ctx, "UPDATE shop.big SET v = -v WHERE id % 100 = 0", "DELETE FROM shop.big WHERE id % 1000 = 1"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 120*time.Second, func() bool {
		st := lt.tk.Status()
		return st.Detail == "Load complete, replication ongoing" || st.Status == task.StatusFailed
	})
	for _, tb := range lt.tk.Status().Tables {
		if tb.Table == "big" && tb.State != capture.StateCompleted {
			t.Fatalf("shop.big is %q (%s) after the restart, want %q", tb.State, tb.Error, capture.StateCompleted)
		}
	}
	lt.drain(t)
	src, err := capture.ReadTable(ctx, lt.cfg.Source.MySQL, "shop", "big")
	if err != nil {
		t.Fatal(err)
	}
	rp := lt.replay(t)
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake twice, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	mm := lake.Compare(rp.Tables["shop.big"], src)
	for i, x := range mm {
		if i == 5 {
			break
		}
		t.Errorf("big: %s", x)
	}
	if len(mm) > 0 || len(src) != 19980 {
		t.Errorf("big: %d mismatches, source %d rows (want 19980)", len(mm), len(src))
	}
}
