package capture_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestTableDefinitions checks the control records that carry table
// definitions: before a table's first rows when it is first seen in the
// binlog (a table created after the start), after each DDL, none after
// DROP TABLE, and a new definition when the table is created again.
func TestTableDefinitions(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "")
	lt.start(t)
	if err := m.Exec(t.Context(),
		"CREATE TABLE shop.later (id BIGINT UNSIGNED NOT NULL, k VARCHAR(5), PRIMARY KEY (id))",
		"INSERT INTO shop.later VALUES (18446744073709551615, 'a')",
		"ALTER TABLE shop.later ADD COLUMN d DECIMAL(10,3) NULL",
		"INSERT INTO shop.later VALUES (1, 'b', 2.5)",
		"DROP TABLE shop.later",
		"CREATE TABLE shop.later (id INT PRIMARY KEY)",
		"INSERT INTO shop.later VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	recs := lt.records(t, "later")
	def1 := `"table-def":{"columns":{"id":{"type":"bigint unsigned","data-type":"bigint","nullable":false},"k":{"type":"varchar","data-type":"varchar","nullable":true}},"column-order":["id","k"],"primary-key":["id"]}`
	def2 := `"table-def":{"columns":{"id":{"type":"bigint unsigned","data-type":"bigint","nullable":false},"k":{"type":"varchar","data-type":"varchar","nullable":true},"d":{"type":"decimal(10,3)","data-type":"decimal","nullable":true}},"column-order":["id","k","d"],"primary-key":["id"]}`
	def3 := `"table-def":{"columns":{"id":{"type":"int","data-type":"int","nullable":false}},"column-order":["id"],"primary-key":["id"]}`
	// The stream has 4 partitions: each control record is there 4 times.
	// DDL records carry the statement; the definition follows right before
	// the table's next rows, from their table map.
	type want struct{ op, contains, lacks string }
	var wants []want
	four := func(w want) {
		for range 4 {
			wants = append(wants, w)
		}
	}
	four(want{"create-table", `"statement":"CREATE TABLE shop.later (id BIGINT`, "table-def"})
	four(want{"create-table", def1, ""})
	wants = append(wants, want{"insert", `"id":18446744073709551615`, ""})
	four(want{"change-columns", `"statement":"ALTER TABLE`, "table-def"})
	four(want{"create-table", def2, ""})
	wants = append(wants, want{"insert", `"d":"2.500"`, ""})
	four(want{"drop-table", `"statement":"DROP TABLE`, "table-def"})
	four(want{"create-table", `"statement":"CREATE TABLE shop.later (id INT`, "table-def"})
	four(want{"create-table", def3, ""})
	wants = append(wants, want{"insert", `"data":{"id":7}`, ""})
	if len(recs) != len(wants) {
		t.Fatalf("%d records of shop.later, want %d:\n%s", len(recs), len(wants), joinLines(recs))
	}
	for i, w := range wants {
		r := recs[i]
		if op := r.meta("operation"); op != w.op || !strings.Contains(r.line, w.contains) || (w.lacks != "" && strings.Contains(r.line, w.lacks)) {
			t.Errorf("record %d: want %s with %s (without %q):\n%s", i, w.op, w.contains, w.lacks, r.line)
		}
	}
}

// TestTableDefinitionAtFirstSight: a CDC-only task started at an earlier
// binlog position (cdc_start_position) captures the changes from there, and
// defines the table right before its first rows.
func TestTableDefinitionAtFirstSight(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	start := m.BinlogEnd(t)
	if err := m.Exec(t.Context(), "INSERT INTO shop.t VALUES (1, 'x')"); err != nil { // before the task starts
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "migration: cdc\ncdc_start_position: "+start)
	lt.tk = task.New(lt.cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)))
	ctx, stop := context.WithCancel(t.Context())
	lt.stop, lt.done = stop, make(chan error, 1)
	go func() { lt.done <- lt.tk.Run(ctx) }()
	waitUntil(t, 60*time.Second, func() bool { return lt.tk.Status().Detail == "Replication ongoing" })
	if err := m.Exec(t.Context(), "INSERT INTO shop.t VALUES (2, 'y')"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	recs := lt.records(t, "t")
	if len(recs) != 6 {
		t.Fatalf("%d records, want 4 definitions and 2 inserts:\n%s", len(recs), joinLines(recs))
	}
	for i := range 4 {
		if recs[i].meta("operation") != "create-table" || !strings.Contains(recs[i].line, `"column-order":["id","v"]`) ||
			!strings.Contains(recs[i].line, "-- binlake: table definition at this binlog position") {
			t.Errorf("record %d is not the table's definition:\n%s", i, recs[i].line)
		}
	}
	if recs[4].meta("partition-key-value") != "shop.t.1" || recs[5].meta("partition-key-value") != "shop.t.2" {
		t.Errorf("the inserts do not follow the definition:\n%s", joinLines(recs))
	}
}
