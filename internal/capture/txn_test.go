package capture_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/testbed"
)

// TestLargeTransaction commits a transaction a hundred times larger than
// source.mysql.transaction_memory: it passes through a spill file and
// arrives whole and in order, as one transaction. Two-phase XA
// transactions, which the binlog holds before they are decided, are
// published at their XA COMMIT, and a prepared one rolled back (20000 rows,
// spilled) leaves nothing in the lake, nor its spill file.
func TestLargeTransaction(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop",
		"CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(100), d DECIMAL(10,2))",
		"CREATE TABLE shop.xa (id INT PRIMARY KEY, v VARCHAR(100))",
		"CREATE TABLE shop.other (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "")
	lt.cfg.Source.MySQL.TransactionMemory = 64 << 10
	lt.start(t)
	spills := func() []string {
		names, err := filepath.Glob(filepath.Join(lt.cfg.StateDir, "txn-*.spill"))
		if err != nil {
			t.Fatal(err)
		}
		return names
	}

	const n = 20000
	if err := m.Exec(ctx, "BEGIN",
		fmt.Sprintf("INSERT INTO shop.big SELECT seq, CONCAT('row ', seq, REPEAT('x', 40)), seq / 100 FROM shop.seq_1_to_%d", n),
		"UPDATE shop.big SET v = 'updated' WHERE id <= 10",
		"COMMIT"); err != nil {
		t.Fatal(err)
	}
	// Prepared, then rolled back from another connection, with a
	// transaction committed in between.
	if err := m.Exec(ctx, "XA START 'gone'", fmt.Sprintf("INSERT INTO shop.xa SELECT seq, 'never' FROM shop.seq_1_to_%d", n),
		"XA END 'gone'", "XA PREPARE 'gone'"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, func() bool { return len(spills()) == 1 })
	if err := m.Exec(ctx, "INSERT INTO shop.other VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	xaEnd(t, m, "XA ROLLBACK 'gone'")
	// Prepared, then committed after another transaction; and one phase.
	if err := m.Exec(ctx, "XA START 'kept'", "INSERT INTO shop.xa VALUES (1, 'a'), (2, 'b'), (3, 'c')", "XA END 'kept'", "XA PREPARE 'kept'"); err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(ctx, "INSERT INTO shop.other VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	xaEnd(t, m, "XA COMMIT 'kept'")
	if err := m.Exec(ctx, "XA START 'one'", "INSERT INTO shop.xa VALUES (4, 'd')", "XA END 'one'", "XA COMMIT 'one' ONE PHASE"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)

	var data []rawRecord
	for _, r := range lt.records(t, "big") {
		if r.meta("record-type") == "data" {
			data = append(data, r)
		}
	}
	if len(data) != n+10 {
		t.Fatalf("big: %d data records, want %d", len(data), n+10)
	}
	txid := string(data[0].metadata["transaction-id"])
	for i, r := range data {
		op, id := "insert", i+1
		v := fmt.Sprintf(`"row %d%s"`, id, strings.Repeat("x", 40))
		if i >= n {
			op, id, v = "update", i-n+1, `"updated"`
		}
		if r.meta("operation") != op || r.id(t) != id || string(r.data["v"]) != v || string(r.metadata["transaction-id"]) != txid ||
			string(r.metadata["transaction-record-id"]) != fmt.Sprint(i+1) {
			t.Fatalf("big record %d: %s\nwant %s of id %d, v %s, transaction %s record %d", i, r.line, op, id, v, txid, i+1)
		}
	}
	if !strings.Contains(lt.logs.String(), "from its spill file") {
		t.Error("the large transaction was not spilled to disk")
	}
	if s := spills(); len(s) != 0 {
		t.Errorf("spill files left: %v", s)
	}

	var got []string
	for _, r := range lt.records(t, "xa") {
		if r.meta("record-type") == "data" {
			got = append(got, fmt.Sprintf("%s %d %s", r.meta("operation"), r.id(t), r.data["v"]))
		}
	}
	if want := []string{`insert 1 "a"`, `insert 2 "b"`, `insert 3 "c"`, `insert 4 "d"`}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("xa records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The committed XA's rows take their place at XA COMMIT, after the
	// insert committed while it was prepared.
	var other2 string
	for _, r := range lt.records(t, "other") {
		if r.meta("operation") == "insert" && r.id(t) == 2 {
			other2 = r.meta("stream-position")
		}
	}
	for _, r := range lt.records(t, "xa") {
		if r.meta("record-type") == "data" && r.id(t) <= 3 && r.meta("stream-position") <= other2 {
			t.Errorf("xa row %d at %s, before other row 2 at %s that committed before it", r.id(t), r.meta("stream-position"), other2)
		}
	}
}

// xaEnd runs stmt, an XA COMMIT or ROLLBACK of a transaction another
// session prepared and left: the server hands the transaction over from the
// disconnected session asynchronously, and answers XAER_NOTA until then.
func xaEnd(t *testing.T, m *testbed.MariaDB, stmt string) {
	t.Helper()
	var err error
	waitUntil(t, 30*time.Second, func() bool {
		err = m.Exec(t.Context(), stmt)
		return err == nil || !strings.Contains(err.Error(), "XAER_NOTA")
	})
	if err != nil {
		t.Fatal(err)
	}
}
