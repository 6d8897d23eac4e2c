package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// lakeTask is a full-load-and-cdc task of the tables shop.% of a MariaDB,
// delivering to a local directory, that a test starts and stops.
type lakeTask struct {
	m       *testbed.MariaDB
	cfg     *config.Config
	lakeDir string
	stop    func()
	done    chan error
	tk      *task.Task
	logs    lockedBuffer // the task's log lines
}

// lockedBuffer is a bytes.Buffer that a logger writes while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLakeTask(t *testing.T, m *testbed.MariaDB, extraConfig string) *lakeTask {
	t.Helper()
	lt := &lakeTask{m: m, lakeDir: t.TempDir()}
	yml := fmt.Sprintf(`task: records
source:
  mysql: {host: 127.0.0.1, port: %d, user: root, password: ""}
tables:
  - include: "shop.%%"
  - exclude: "shop.ignored"
delivery:
  buffer: {size: 256KiB, interval: 1s}
  prefix: "shop/"
target: file://%s
state_dir: %s
%s`, m.Port, lt.lakeDir, filepath.Join(t.TempDir(), "state"), extraConfig)
	cfg, err := config.Parse([]byte(yml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	lt.cfg = cfg
	return lt
}

// run starts the task; lt.stop stops it, and lt.done has its outcome.
func (lt *lakeTask) run(t *testing.T) {
	t.Helper()
	lt.tk = task.New(lt.cfg, slog.New(slog.NewTextHandler(io.MultiWriter(testLog{t}, &lt.logs), nil)))
	ctx, stop := context.WithCancel(t.Context())
	lt.stop, lt.done = stop, make(chan error, 1)
	go func() { lt.done <- lt.tk.Run(ctx) }()
}

// start runs the task and waits until its full load is complete.
func (lt *lakeTask) start(t *testing.T) {
	t.Helper()
	lt.run(t)
	lt.waitLoaded(t)
}

// waitLoaded waits until the running task's full load is complete.
func (lt *lakeTask) waitLoaded(t *testing.T) {
	t.Helper()
	waitUntil(t, 60*time.Second, func() bool {
		st := lt.tk.Status()
		return st.Detail == "Load complete, replication ongoing" || st.Status == task.StatusFailed
	})
	if st := lt.tk.Status(); st.Status == task.StatusFailed {
		t.Fatalf("task failed: %s", st.Reason)
	}
}

// drain waits until the task has captured the source's binlog to its end,
// then stops it.
func (lt *lakeTask) drain(t *testing.T) {
	t.Helper()
	want := lt.m.BinlogEnd(t)
	waitUntil(t, 60*time.Second, func() bool {
		st := lt.tk.Status()
		return st.SourcePosition == want || st.Status == task.StatusFailed
	})
	lt.stop()
	if err := <-lt.done; err != nil {
		t.Fatalf("task: %v", err)
	}
}

// records returns the lake's records of table shop.<table>, in
// stream-position order, as their JSON lines.
func (lt *lakeTask) records(t *testing.T, table string) []rawRecord {
	t.Helper()
	var out []rawRecord
	for _, r := range readLakeLines(t, lt.lakeDir, lt.cfg.Delivery.Prefix) {
		if r.meta("schema-name") == "shop" && r.meta("table-name") == table {
			out = append(out, r)
		}
	}
	return out
}

// TestBeforeImage checks the before-image of update and delete records for
// each before_image setting, in exact JSON, on a table with a primary key
// (including a change of the key) and on one without.
func TestBeforeImage(t *testing.T) {
	// The JSON expected per setting, by record: operation and the row's
	// key, "" for a record that must have no before-image.
	type want struct{ op, key, before string }
	tests := []struct {
		setting string
		want    []want // in stream-position order
		nopk    []want
	}{
		{"none", []want{
			{"load", "shop.t.100", ""},
			{"insert", "shop.t.1", ""},
			{"update", "shop.t.1", ""},
			{"delete", "shop.t.1", ""},
			{"insert", "shop.t.2", ""},
			{"delete", "shop.t.2", ""},
			{"update", "shop.t.100", ""},
		}, []want{
			{"insert", "shop.nopk", ""},
			{"update", "shop.nopk", ""},
			{"delete", "shop.nopk", ""},
		}},
		{"pk-only", []want{
			{"load", "shop.t.100", ""},
			{"insert", "shop.t.1", ""},
			{"update", "shop.t.1", `{"id":1}`},
			{"delete", "shop.t.1", `{"id":1}`}, // the key change: delete of the old key...
			{"insert", "shop.t.2", ""},         // ...and insert of the new one
			{"delete", "shop.t.2", `{"id":2}`},
			{"update", "shop.t.100", `{"id":100}`},
		}, []want{
			{"insert", "shop.nopk", ""},
			{"update", "shop.nopk", `{}`},
			{"delete", "shop.nopk", `{}`},
		}},
		{"all", []want{
			{"load", "shop.t.100", ""},
			{"insert", "shop.t.1", ""},
			{"update", "shop.t.1", `{"id":1,"k":"a","n":10,"b":"AAE=","d":"1.50"}`},
			{"delete", "shop.t.1", `{"id":1,"k":"b","n":null,"b":"AAE=","d":"1.50"}`},
			{"insert", "shop.t.2", ""},
			{"delete", "shop.t.2", `{"id":2,"k":"b","n":null,"b":"AAE=","d":"1.50"}`},
			{"update", "shop.t.100", `{"id":100,"k":"loaded","n":1,"b":null,"d":null}`},
		}, []want{
			{"insert", "shop.nopk", ""},
			{"update", "shop.nopk", `{"x":1,"y":"x"}`},
			{"delete", "shop.nopk", `{"x":1,"y":"z"}`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.setting, func(t *testing.T) {
			m := testbed.NewMariaDB(t)
			if err := m.Exec(t.Context(), "CREATE DATABASE shop",
				"CREATE TABLE shop.t (id INT PRIMARY KEY, k VARCHAR(10), n INT, b BLOB, d DECIMAL(5,2))",
				"CREATE TABLE shop.nopk (x INT, y VARCHAR(10))",
				"INSERT INTO shop.t (id, k, n) VALUES (100, 'loaded', 1)"); err != nil {
				t.Fatal(err)
			}
			lt := newLakeTask(t, m, "before_image: "+tt.setting)
			lt.start(t)
			if err := m.Exec(t.Context(),
				"INSERT INTO shop.t VALUES (1, 'a', 10, x'0001', 1.5)",
				"UPDATE shop.t SET k = 'b', n = NULL WHERE id = 1",
				"UPDATE shop.t SET id = 2 WHERE id = 1",
				"DELETE FROM shop.t WHERE id = 2",
				"UPDATE shop.t SET n = 2 WHERE id = 100",
				"INSERT INTO shop.nopk VALUES (1, 'x')",
				"UPDATE shop.nopk SET y = 'z'",
				"DELETE FROM shop.nopk"); err != nil {
				t.Fatal(err)
			}
			lt.drain(t)
			check := func(table string, wants []want) {
				var recs []rawRecord
				for _, r := range lt.records(t, table) {
					if r.meta("record-type") == "data" { // table definitions come first
						recs = append(recs, r)
					}
				}
				if len(recs) != len(wants) {
					t.Fatalf("%s: %d records, want %d:\n%s", table, len(recs), len(wants), joinLines(recs))
				}
				for i, w := range wants {
					r := recs[i]
					if op, key := r.meta("operation"), r.meta("partition-key-value"); op != w.op || key != w.key {
						t.Errorf("%s record %d is %s of %s, want %s of %s", table, i, op, key, w.op, w.key)
						continue
					}
					got, ok := r.fields["before-image"]
					switch {
					case w.before == "" && ok:
						t.Errorf("%s %s of %s has a before-image %s, want none", table, w.op, w.key, got)
					case w.before != "" && string(got) != w.before:
						t.Errorf("%s %s of %s: before-image %s, want %s", table, w.op, w.key, got, w.before)
					}
					if strings.Contains(r.line, "prev-transaction") {
						t.Errorf("include_transaction_details is off, but: %s", r.line)
					}
				}
			}
			check("t", tt.want)
			check("nopk", tt.nopk)
		})
	}
}

// TestTransactionDetails checks prev-transaction-id and
// prev-transaction-record-id: each CDC record names the CDC record the task
// published before it (transactions without selected changes do not
// count), across a restart of the task.
func TestTransactionDetails(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop",
		"CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)",
		"CREATE TABLE shop.ignored (id INT PRIMARY KEY)",
		"INSERT INTO shop.t VALUES (100, 0)"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "include_transaction_details: true\nstream: {partitions: 2}")
	lt.start(t)
	if err := m.Exec(t.Context(),
		"BEGIN", "INSERT INTO shop.t VALUES (1, 1)", "INSERT INTO shop.t VALUES (2, 2)", "UPDATE shop.t SET v = 3 WHERE id = 100", "COMMIT",
		"INSERT INTO shop.ignored VALUES (1)", // a transaction that the task does not see
		"DELETE FROM shop.t WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	// A restart resumes the chain from the checkpoint.
	lt.start(t)
	if err := m.Exec(t.Context(),
		"ALTER TABLE shop.t ADD COLUMN w INT", // a control record, on both partitions
		"INSERT INTO shop.t VALUES (3, 3, 3)"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)

	recs := lt.records(t, "t")
	// The full load first defines the table on both partitions; those
	// records belong to no source transaction.
	for i := 0; i < 2 && i < len(recs); i++ {
		if op := recs[i].meta("operation"); op != "create-table" || strings.Contains(recs[i].line, "transaction") ||
			!strings.Contains(recs[i].line, `"column-order":["id","v"],"primary-key":["id"]`) {
			t.Fatalf("record %d is not the full load's table definition without transaction fields:\n%s", i, recs[i].line)
		}
	}
	recs = recs[2:]
	type step struct{ op, key string }
	steps := []step{
		{"load", "shop.t.100"},
		{"insert", "shop.t.1"}, {"insert", "shop.t.2"}, {"update", "shop.t.100"},
		{"delete", "shop.t.1"},
		{"change-columns", "shop.t"}, {"change-columns", "shop.t"},
		{"create-table", "shop.t"}, {"create-table", "shop.t"}, // the new definition
		{"insert", "shop.t.3"},
	}
	if len(recs) != len(steps) {
		t.Fatalf("%d records, want %d:\n%s", len(recs), len(steps), joinLines(recs))
	}
	for i, s := range steps {
		if op, key := recs[i].meta("operation"), recs[i].meta("partition-key-value"); op != s.op || key != s.key {
			t.Fatalf("record %d is %s of %s, want %s of %s:\n%s", i, op, key, s.op, s.key, joinLines(recs))
		}
	}
	tx := func(i int) uint64 {
		var id uint64
		if err := json.Unmarshal(recs[i].metadata["transaction-id"], &id); err != nil {
			t.Fatalf("record %d: transaction-id: %v", i, err)
		}
		return id
	}
	a, d, ddl, e := tx(1), tx(4), tx(5), tx(7)
	if tx(2) != a || tx(3) != a || tx(6) != ddl || len(map[uint64]bool{a: true, d: true, ddl: true, e: true}) != 4 {
		t.Fatalf("transactions of the records: %d %d %d %d %d %d %d", tx(1), tx(2), tx(3), tx(4), tx(5), tx(6), tx(7))
	}
	// The exact transaction fields of each record's metadata.
	wants := []string{
		1: fmt.Sprintf(`"transaction-id":%d,"transaction-record-id":1,"commit-timestamp"`, a), // the first CDC record: no previous one
		2: fmt.Sprintf(`"transaction-id":%d,"prev-transaction-id":%d,"transaction-record-id":2,"prev-transaction-record-id":1,`, a, a),
		3: fmt.Sprintf(`"transaction-id":%d,"prev-transaction-id":%d,"transaction-record-id":3,"prev-transaction-record-id":2,`, a, a),
		4: fmt.Sprintf(`"transaction-id":%d,"prev-transaction-id":%d,"transaction-record-id":1,"prev-transaction-record-id":3,`, d, a),
		5: fmt.Sprintf(`"transaction-id":%d,"prev-transaction-id":%d,"transaction-record-id":1,"prev-transaction-record-id":1,`, ddl, d),
		6: fmt.Sprintf(`"transaction-id":%d,"prev-transaction-id":%d,"transaction-record-id":1,"prev-transaction-record-id":1,`, ddl, d),
		7: fmt.Sprintf(`"transaction-id":%d,"prev-transaction-id":%d,"transaction-record-id":1,"prev-transaction-record-id":1,`, e, ddl),
	}
	for i := 1; i < len(wants); i++ {
		if !strings.Contains(recs[i].line, wants[i]) {
			t.Errorf("record %d (%s) does not hold %s:\n%s", i, steps[i].op, wants[i], recs[i].line)
		}
	}
	if strings.Contains(recs[0].line, "transaction") {
		t.Errorf("a load record has transaction fields: %s", recs[0].line)
	}
}

func joinLines(recs []rawRecord) string {
	lines := make([]string, len(recs))
	for i, r := range recs {
		lines[i] = r.line
	}
	return strings.Join(lines, "\n")
}
