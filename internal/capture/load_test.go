package capture_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// loadTables are the tables of the chunked-load tests, with how each must
// be loaded.
var loadTables = []struct{ name, method string }{
	{"big", capture.MethodPrimaryKey}, // INT key, 10,000 rows
	{"bin", capture.MethodPrimaryKey}, // VARBINARY key with '' and bytes above 0x7f
	{"ck", capture.MethodPrimaryKey},  // (case-insensitive VARCHAR, BIGINT UNSIGNED)
	{"dec", capture.MethodPrimaryKey}, // DECIMAL key, negative values
	{"nokey", capture.MethodOnePass + ": no primary key"},
	{"uk", capture.MethodUniqueKey + " uk"}, // no primary key; UNIQUE (DATE, CHAR) NOT NULL
}

// createLoadTables creates the tables of loadTables in schema shop with rows.
func createLoadTables(t *testing.T, m *testbed.MariaDB) {
	t.Helper()
	stmts := []string{
		"CREATE DATABASE shop",
		"CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40), n INT)",
		"CREATE TABLE shop.bin (id VARBINARY(64) PRIMARY KEY, v INT)",
		"CREATE TABLE shop.ck (region VARCHAR(20) COLLATE utf8mb4_general_ci, seq BIGINT UNSIGNED, v INT, PRIMARY KEY (region, seq))",
		"CREATE TABLE shop.dec (d DECIMAL(12,3) PRIMARY KEY, v VARCHAR(20))",
		"CREATE TABLE shop.nokey (x INT, y VARCHAR(10))",
		"CREATE TABLE shop.uk (code CHAR(8) NOT NULL, k DATE NOT NULL, v INT, UNIQUE KEY uk (k, code))",
		"INSERT INTO shop.big SELECT seq, CONCAT('row ', seq), seq % 97 FROM shop.seq_1_to_10000",
		"INSERT INTO shop.bin VALUES ('', 0), (x'00', 1), (x'ff', 2), (x'7f80', 3)",
		"INSERT INTO shop.bin SELECT UNHEX(SHA1(seq)), seq FROM shop.seq_1_to_1500",
		"INSERT INTO shop.ck SELECT ELT(1 + seq % 6, 'a', 'B', 'c', 'É', 'e', 'Zz'), seq, seq FROM shop.seq_1_to_2000",
		"INSERT INTO shop.dec SELECT (CAST(seq AS SIGNED) - 600) * 1.125, seq FROM shop.seq_1_to_1200",
		"INSERT INTO shop.nokey SELECT seq % 50, 'x' FROM shop.seq_1_to_500",
		"INSERT INTO shop.uk SELECT LPAD(seq % 7, 8, 'c'), '2024-01-01' + INTERVAL (seq DIV 7) DAY, seq FROM shop.seq_1_to_1400",
	}
	if err := m.Exec(t.Context(), stmts...); err != nil {
		t.Fatal(err)
	}
}

// writer changes the load tables at random until stopped: inserts, updates,
// deletes and key changes, some in multi-statement transactions. nokey is
// left alone, because a lake keyed by table cannot tell its rows apart.
type writer struct {
	db   *sql.DB
	rng  *rand.Rand
	next int64
	n    atomic.Int64
}

func (w *writer) step(ctx context.Context) error {
	id := func(max int) int { return 1 + w.rng.IntN(max) }
	w.next++
	var stmts []string
	switch w.rng.IntN(12) {
	case 0:
		stmts = []string{fmt.Sprintf("INSERT INTO shop.big VALUES (%d, 'new', 1)", 20000+w.next)}
	case 1:
		stmts = []string{fmt.Sprintf("UPDATE shop.big SET v = CONCAT(v, '+'), n = n + 1 WHERE id = %d", id(10000))}
	case 2:
		stmts = []string{fmt.Sprintf("DELETE FROM shop.big WHERE id = %d", id(10000))}
	case 3: // a key change: delete of the old key and insert of the new one
		stmts = []string{fmt.Sprintf("UPDATE IGNORE shop.big SET id = id + 100000 WHERE id = %d", id(10000))}
	case 4:
		a, b := id(10000), id(2000)
		stmts = []string{"BEGIN",
			fmt.Sprintf("UPDATE shop.big SET n = -n WHERE id BETWEEN %d AND %d", a, a+w.rng.IntN(30)),
			fmt.Sprintf("UPDATE shop.ck SET v = v + 1 WHERE seq BETWEEN %d AND %d", b, b+w.rng.IntN(30)),
			fmt.Sprintf("INSERT INTO shop.ck VALUES ('b', %d, 0)", 10000+w.next),
			"COMMIT"}
	case 5:
		stmts = []string{fmt.Sprintf("UPDATE IGNORE shop.ck SET region = 'A' WHERE seq = %d", id(2000)),
			fmt.Sprintf("DELETE FROM shop.ck WHERE seq = %d", id(2000))}
	case 6:
		stmts = []string{fmt.Sprintf("UPDATE shop.bin SET v = v + 1 WHERE v = %d", id(1500)),
			fmt.Sprintf("INSERT IGNORE INTO shop.bin VALUES (UNHEX(SHA1(%d)), 0)", 50000+w.next),
			fmt.Sprintf("UPDATE IGNORE shop.bin SET id = CONCAT(id, x'01') WHERE v = %d", id(1500))}
	case 7:
		stmts = []string{fmt.Sprintf("UPDATE IGNORE shop.dec SET d = -d WHERE v = '%d'", id(1200)),
			fmt.Sprintf("INSERT IGNORE INTO shop.dec VALUES (%d.5, 'new')", 900+w.next),
			fmt.Sprintf("DELETE FROM shop.dec WHERE v = '%d'", id(1200))}
	case 8:
		stmts = []string{fmt.Sprintf("UPDATE shop.uk SET v = v * 2 WHERE v = %d", id(1400)),
			fmt.Sprintf("UPDATE IGNORE shop.uk SET k = k + INTERVAL 1000 DAY WHERE v = %d", id(1400)),
			fmt.Sprintf("INSERT IGNORE INTO shop.uk VALUES ('new', '2030-01-01' + INTERVAL %d DAY, 0)", w.next),
			fmt.Sprintf("DELETE FROM shop.uk WHERE v = %d", id(1400))}
	default: // a burst of single-row updates spread over the table
		for range 5 {
			stmts = append(stmts, fmt.Sprintf("UPDATE shop.big SET v = 'burst' WHERE id = %d", id(10000)))
		}
	}
	for _, s := range stmts {
		if _, err := w.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	w.n.Add(1)
	return nil
}

// run writes until ctx ends, then reports the first error.
func (w *writer) run(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			// Each step runs to its end: a statement cut off by the
			// cancelled context may still commit on the server after the
			// writer returned, behind the binlog end the test then reads.
			if err := w.step(context.WithoutCancel(ctx)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

func newWriter(t *testing.T, m *testbed.MariaDB, seed uint64) *writer {
	t.Helper()
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return &writer{db: db, rng: rand.New(rand.NewPCG(seed, 7))}
}

// captureState reads the capture checkpoint of a task.
func captureState(t *testing.T, stateDir string) capture.State {
	t.Helper()
	var st capture.State
	if _, err := checkpoint.Load(filepath.Join(stateDir, "capture.json"), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// replay reads the task's lake and replays it.
func (lt *lakeTask) replay(t *testing.T) lake.Replay {
	t.Helper()
	b, err := objstore.NewFile(lt.lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := lake.Read(context.Background(), b, lt.cfg.Delivery.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	return lake.ReplayRecords(recs)
}

// assertLakeEqualsShop replays the lake and compares each load table (but
// nokey) with the source; no stream-position may be in the lake twice.
func assertLakeEqualsShop(t *testing.T, lt *lakeTask) lake.Replay {
	t.Helper()
	var names []string
	for _, lt2 := range loadTables {
		if lt2.name != "nokey" {
			names = append(names, lt2.name)
		}
	}
	return assertLakeEquals(t, lt, names...)
}

// assertLakeEquals replays the lake and compares each table shop.<name>
// with the source; no stream-position may be in the lake twice.
func assertLakeEquals(t *testing.T, lt *lakeTask, names ...string) lake.Replay {
	t.Helper()
	ctx := context.Background()
	rp := lt.replay(t)
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake twice, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	for _, name := range names {
		src, err := capture.ReadTable(ctx, lt.cfg.Source.MySQL, "shop", name)
		if err != nil {
			t.Fatal(err)
		}
		got := rp.Tables["shop."+name]
		mm := lake.Compare(got, src)
		for i, x := range mm {
			if i == 10 {
				break
			}
			t.Errorf("%s: %s", name, x)
			if i < 2 {
				// The key's history in the lake, for the diagnosis.
				for _, r := range lt.records(t, name) {
					if r.meta("partition-key-value") == x.Key {
						t.Logf("  %s", r.line)
					}
				}
			}
		}
		if len(mm) > 0 {
			t.Errorf("%s: %d mismatches (source %d rows, lake %d)", name, len(mm), len(src), len(got))
		}
	}
	return rp
}

// checkLoadState checks each table's load method and chunks in the
// checkpoint, and nokey's one pass in the lake: a truncate-table marker,
// then exactly its rows.
func checkLoadState(t *testing.T, lt *lakeTask, chunkSize int) {
	t.Helper()
	st := captureState(t, lt.cfg.StateDir)
	for _, want := range loadTables {
		p := st.Tables["shop."+want.name]
		if p == nil {
			t.Errorf("%s: not in the checkpoint", want.name)
			continue
		}
		if p.State != capture.StateCompleted || p.LoadMethod != want.method {
			t.Errorf("%s: state %q, method %q; want %q, %q", want.name, p.State, p.LoadMethod, capture.StateCompleted, want.method)
		}
		if min := p.LoadRows / uint64(chunkSize); (want.name != "nokey" && p.Chunks < min) || (want.name == "nokey" && p.Chunks != 1) {
			t.Errorf("%s: %d rows loaded in %d chunks of at most %d", want.name, p.LoadRows, p.Chunks, chunkSize)
		}
		if len(p.LastKey) != 0 {
			t.Errorf("%s: a completed table keeps a last key %q", want.name, p.LastKey)
		}
	}
	if p := st.Tables["shop.big"]; p != nil && p.LoadRows < 9000 {
		t.Errorf("big: %d rows loaded, want about 10000", p.LoadRows)
	}
	var marker bool
	var loaded int
	for _, r := range lt.records(t, "nokey") {
		switch {
		case r.meta("operation") == "truncate-table" && strings.Contains(r.line, "one-pass full load"):
			marker, loaded = true, 0
		case r.meta("operation") == "load":
			if !marker {
				t.Fatalf("nokey: a load record before the truncate-table marker: %s", r.line)
			}
			loaded++
		}
	}
	if loaded != 500 {
		recs := lt.records(t, "nokey")
		t.Errorf("nokey: %d load records after the marker, want 500; %d records:\n%s", loaded, len(recs), joinLines(recs[:min(len(recs), 8)]))
	}
}

// TestChunkedLoad loads tables of every kind of key in small chunks while
// a writer inserts, updates, deletes and changes keys in them, with one
// and with three chunk reads at once (and with watermark snapshots), keeps writing during CDC and through
// a reload of the biggest table, and checks that the lake replays to
// exactly the source without a duplicate position.
func TestChunkedLoad(t *testing.T) {
	for _, tc := range []struct {
		name        string
		parallelism int
		snapshot    string
	}{{"parallelism-1", 1, "auto"}, {"parallelism-3", 3, "auto"}, {"watermarks-parallelism-3", 3, "watermark"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const chunkSize = 300
			m := testbed.NewMariaDB(t)
			createLoadTables(t, m)
			lt := newLakeTask(t, m, fmt.Sprintf("full_load: {chunk_size: %d, parallelism: %d, snapshot: %s}\nstream: {partitions: 3}", chunkSize, tc.parallelism, tc.snapshot))
			w := newWriter(t, m, uint64(tc.parallelism))
			ctx, stopWriting := context.WithCancel(t.Context())
			defer stopWriting()
			wrote := w.run(ctx)

			began := time.Now()
			lt.start(t) // returns when the load is complete
			loadTook := time.Since(began)
			during := w.n.Load()

			// A reload of big while the writer keeps going.
			requested := time.Now()
			if _, err := capture.RequestReload(lt.cfg.StateDir, capture.TableName{Schema: "shop", Table: "big"}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 60*time.Second, func() bool {
				p := captureState(t, lt.cfg.StateDir).Tables["shop.big"]
				return p != nil && p.State == capture.StateCompleted && p.LoadEnd != nil && p.LoadEnd.After(requested) && !p.Reload
			})
			stopWriting()
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			lt.drain(t)
			checkLoadState(t, lt, chunkSize)
			t.Logf("load of %d tables took %s with %d writer transactions running; %d transactions in all", len(loadTables), loadTook, during, w.n.Load())
			if during == 0 {
				t.Errorf("no writes ran during the load; the test proves little")
			}
			assertLakeEqualsShop(t, lt)
			var loads int
			for _, r := range lt.records(t, "big") {
				if r.meta("operation") == "load" {
					loads++
				}
			}
			if loads < 18000 {
				t.Errorf("big: %d load records in the lake, want the load's and the reload's (about 20000)", loads)
			}
		})
	}
}

// TestChunkedFullLoadOnly runs a full-load task while the writer writes:
// the binlog reader runs until the last chunk is published, so the lake is
// the source as of the end of the load.
func TestChunkedFullLoadOnly(t *testing.T) {
	const chunkSize = 100
	m := testbed.NewMariaDB(t)
	createLoadTables(t, m)
	lt := newLakeTask(t, m, fmt.Sprintf("migration: full-load\nfull_load: {chunk_size: %d, parallelism: 2}", chunkSize))
	w := newWriter(t, m, 42)
	ctx, stopWriting := context.WithCancel(t.Context())
	defer stopWriting()
	wrote := w.run(ctx)

	lt.tk = task.New(lt.cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)))
	done := make(chan error, 1)
	go func() { done <- lt.tk.Run(t.Context()) }()
	// The writer stops while big is being loaded: the chunks read after
	// that hold its last changes.
	waitUntil(t, 60*time.Second, func() bool {
		p := captureState(t, lt.cfg.StateDir).Tables["shop.big"]
		return p != nil && (p.Chunks >= 5 || p.State == capture.StateCompleted)
	})
	stopWriting()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if p := captureState(t, lt.cfg.StateDir).Tables["shop.big"]; p.State == capture.StateCompleted {
		t.Fatalf("big was loaded before the writer stopped; the test cannot tell the end of the load from the end of the writes")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the full-load task did not end")
	}
	t.Logf("%d writer transactions during the load", w.n.Load())
	checkLoadState(t, lt, chunkSize)
	rp := assertLakeEqualsShop(t, lt)
	if len(rp.Tables["shop.big"]) < 9000 {
		t.Errorf("big: %d rows in the lake", len(rp.Tables["shop.big"]))
	}
}

// TestChunkQueryOrder checks on a server that the chunk SELECTs visit every
// row once, in key order, for keys whose SQL comparison is easy to get
// wrong: case-insensitive text, binary, DECIMAL, dates, BIGINT UNSIGNED
// above 2^63.
func TestChunkQueryOrder(t *testing.T) {
	m := testbed.NewMariaDB(t)
	createLoadTables(t, m)
	if err := m.Exec(t.Context(), "CREATE TABLE shop.u64 (id BIGINT UNSIGNED PRIMARY KEY)",
		"INSERT INTO shop.u64 VALUES (0), (1), (9223372036854775807), (9223372036854775808), (18446744073709551614), (18446744073709551615)"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"big", "bin", "ck", "dec", "uk", "u64"} {
		for _, size := range []int{1, 7, 1000} {
			keys, err := capture.ChunkedKeys(t.Context(), config.MySQL{Host: "127.0.0.1", Port: m.Port, User: "root", ConnectTimeout: config.Duration(10 * time.Second)},
				capture.TableName{Schema: "shop", Table: table}, size)
			if err != nil {
				t.Fatal(err)
			}
			src, err := capture.ReadTable(t.Context(), config.MySQL{Host: "127.0.0.1", Port: m.Port, User: "root", ConnectTimeout: config.Duration(10 * time.Second)}, "shop", table)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(src) {
				t.Errorf("%s in chunks of %d: %d rows, the table has %d", table, size, len(keys), len(src))
			}
			seen := map[string]bool{}
			for _, k := range keys {
				if seen[k] {
					t.Errorf("%s in chunks of %d: %s read twice", table, size, k)
				}
				seen[k] = true
				if _, ok := src[k]; !ok {
					t.Errorf("%s in chunks of %d: %s is not a row", table, size, k)
				}
			}
			if table == "u64" && !slices.Equal(keys, []string{"shop.u64.0", "shop.u64.1", "shop.u64.9223372036854775807", "shop.u64.9223372036854775808",
				"shop.u64.18446744073709551614", "shop.u64.18446744073709551615"}) {
				t.Errorf("u64 in chunks of %d: %q", size, keys)
			}
		}
	}
}

// TestChunkedLoadThroughDDL alters a table while its chunks are being read
// (chunks read before the ALTER have the old columns, chunks after it the
// new one) and drops another one before its load: the lake replays to the
// source, and the dropped table ends in "Table error" without stopping the
// others.
func TestChunkedLoadThroughDDL(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop",
		"CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40))",
		"INSERT INTO shop.big SELECT seq, CONCAT('row ', seq) FROM shop.seq_1_to_20000",
		"CREATE TABLE shop.zz_gone (id INT PRIMARY KEY)",
		"INSERT INTO shop.zz_gone SELECT seq FROM shop.seq_1_to_100"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "full_load: {chunk_size: 50, parallelism: 1}")
	w := newWriter(t, m, 3)
	lt.tk = task.New(lt.cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)))
	ctx, stop := context.WithCancel(t.Context())
	lt.stop, lt.done = stop, make(chan error, 1)
	go func() { lt.done <- lt.tk.Run(ctx) }()
	waitUntil(t, 60*time.Second, func() bool {
		p := captureState(t, lt.cfg.StateDir).Tables["shop.big"]
		return p != nil && p.Chunks >= 20
	})
	if p := captureState(t, lt.cfg.StateDir).Tables["shop.big"]; p.State != capture.StateFullLoad {
		t.Fatalf("big is %s, want it in the middle of its load", p.State)
	}
	if err := m.Exec(t.Context(),
		"ALTER TABLE shop.big ADD COLUMN note VARCHAR(20) NULL",
		"UPDATE shop.big SET v = 'changed', note = 'n' WHERE id % 100 = 0",
		"DROP TABLE shop.zz_gone"); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := w.db.ExecContext(t.Context(), fmt.Sprintf("UPDATE shop.big SET note = 'w' WHERE id = %d", 1+w.rng.IntN(20000))); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 60*time.Second, func() bool { return lt.tk.Status().Detail == "Load complete, replication ongoing" })
	// Every row gets the new column in the lake.
	if err := m.Exec(t.Context(), "UPDATE shop.big SET note = COALESCE(note, 'all')"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	st := captureState(t, lt.cfg.StateDir)
	if p := st.Tables["shop.big"]; p.State != capture.StateCompleted || p.Chunks < 400 {
		t.Errorf("big: %s in %d chunks", p.State, p.Chunks)
	}
	if p := st.Tables["shop.zz_gone"]; p == nil || p.State != capture.StateError || !strings.Contains(p.Error, "zz_gone") {
		t.Errorf("zz_gone: %+v, want Table error", p)
	}
	b, err := objstore.NewFile(lt.lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := lake.Read(t.Context(), b, lt.cfg.Delivery.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	rp := lake.ReplayRecords(recs)
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d duplicates, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	src, err := capture.ReadTable(t.Context(), lt.cfg.Source.MySQL, "shop", "big")
	if err != nil {
		t.Fatal(err)
	}
	mm := lake.Compare(rp.Tables["shop.big"], src)
	for i, x := range mm {
		if i == 10 {
			break
		}
		t.Errorf("big: %s", x)
	}
	if len(mm) > 0 {
		t.Errorf("big: %d mismatches", len(mm))
	}
	if n := len(rp.Tables["shop.zz_gone"]); n != 0 {
		t.Errorf("zz_gone: %d rows in the lake after its drop-table", n)
	}
}

// createBig creates shop.big with the keys 1 to rows.
func createBig(t *testing.T, m *testbed.MariaDB, rows int) {
	t.Helper()
	if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40), n INT)",
		fmt.Sprintf("INSERT INTO shop.big SELECT seq, CONCAT('row ', seq), seq %% 97 FROM shop.seq_1_to_%d", rows)); err != nil {
		t.Fatal(err)
	}
}

// bigWriter changes shop.big (made by createBig) alone until the returned
// stop is called: updates, deletes, inserts and key changes all over the
// table. stop waits for the statement under way and returns how many ran.
func bigWriter(t *testing.T, m *testbed.MariaDB, rows int) (stop func() int64) {
	t.Helper()
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	var writes atomic.Int64
	wrote := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(11, 7))
		for i := 0; ctx.Err() == nil; i++ {
			id := 1 + rng.IntN(rows)
			q := []string{
				fmt.Sprintf("UPDATE shop.big SET v = CONCAT(v, '+'), n = n + 1 WHERE id = %d", id),
				fmt.Sprintf("DELETE FROM shop.big WHERE id = %d", id),
				fmt.Sprintf("INSERT IGNORE INTO shop.big VALUES (%d, 'new', 0)", 2*rows+i),
				fmt.Sprintf("UPDATE IGNORE shop.big SET id = %d WHERE id = %d", 4*rows+i, id),
			}[rng.IntN(4)]
			// The statement finishes even when the test stops the
			// writer (a cut-off statement could commit later).
			if _, err := db.ExecContext(context.WithoutCancel(ctx), q); err != nil {
				wrote <- fmt.Errorf("%s: %w", q, err)
				return
			}
			writes.Add(1)
		}
		wrote <- nil
	}()
	var once sync.Once
	var werr error
	end := func() { once.Do(func() { cancel(); werr = <-wrote }) }
	t.Cleanup(end)
	return func() int64 {
		end()
		if werr != nil {
			t.Fatal(werr)
		}
		return writes.Load()
	}
}

// tableLoaded reads the task's "table loaded" log line of shop.<name>:
// rows and chunks loaded, and how many chunks were read alongside an
// earlier chunk of the table (loader.schedule).
func tableLoaded(t *testing.T, lt *lakeTask, name string) (rows, chunks, alongside int) {
	t.Helper()
	logs := lt.logs.String()
	line := `msg="table loaded" component=capture table=shop.` + name + " "
	i := strings.Index(logs, line)
	if i < 0 {
		t.Fatalf("no 'table loaded' line for %s:\n%s", name, logs)
	}
	if _, err := fmt.Sscanf(logs[i+len(line):], `rows=%d chunks=%d chunks_read_alongside=%d`, &rows, &chunks, &alongside); err != nil {
		t.Fatalf("%v: %s", err, logs[i:min(len(logs), i+200)])
	}
	return rows, chunks, alongside
}

// loadOrder returns the ids of the load records of shop.<table> in
// stream-position order, how many times an id is not above the one before
// (logged), and how many ids are loaded again.
func loadOrder(t *testing.T, lt *lakeTask, table string) (ids []int, back, again int) {
	t.Helper()
	for _, r := range lt.records(t, table) {
		if r.meta("operation") == "load" {
			ids = append(ids, r.id(t))
		}
	}
	seen := map[int]bool{}
	for i, id := range ids {
		if i > 0 && id <= ids[i-1] {
			back++
			t.Logf("load record %d of %d: key %d after %d", i, len(ids), id, ids[i-1])
		}
		if seen[id] {
			again++
		}
		seen[id] = true
	}
	return ids, back, again
}

// TestSplitTable loads one big table with four reader slots: its chunks
// are read side by side (each first reads where it ends), while a writer
// changes the table, and the lake is exact.
func TestSplitTable(t *testing.T) {
	for _, snapshot := range []string{"auto", "watermark"} {
		t.Run(snapshot, func(t *testing.T) {
			t.Parallel()
			const rows, chunkSize = 10000, 250
			m := testbed.NewMariaDB(t)
			createBig(t, m, rows)
			lt := newLakeTask(t, m, fmt.Sprintf("full_load: {chunk_size: %d, parallelism: 4, snapshot: %s}", chunkSize, snapshot))
			stopWriting := bigWriter(t, m, rows)
			lt.start(t)
			writes := stopWriting()
			lt.drain(t)
			assertLakeEquals(t, lt, "big")
			loaded, chunks, alongside := tableLoaded(t, lt, "big")
			t.Logf("big: %d rows in %d chunks, %d read alongside an earlier chunk; %d writes", loaded, chunks, alongside, writes)
			if alongside < chunks/2 {
				t.Errorf("big: %d of %d chunks were read alongside an earlier one: the table was not split across the readers", alongside, chunks)
			}
			if st := captureState(t, lt.cfg.StateDir).Tables["shop.big"]; st.State != capture.StateCompleted || st.LoadRows != uint64(loaded) || st.Chunks != uint64(chunks) {
				t.Errorf("big: checkpoint %s, %d rows in %d chunks; the log says %d in %d", st.State, st.LoadRows, st.Chunks, loaded, chunks)
			}
		})
	}
}

// TestSplitTableResumes stops the task while one table's chunks are read
// side by side (four reader slots, a writer changing the table), with
// chunks read but not published, and starts it again. The load resumes
// after the last chunk published: the table's load records, in
// stream-position order, have rising keys (each run publishes its chunks
// in key order) but for one step back where the second run starts, which
// reads again at most the chunk the stop cut short. The checkpoint's
// counts agree with the lake, and the lake is exact.
func TestSplitTableResumes(t *testing.T) {
	for _, snapshot := range []string{"auto", "watermark"} {
		t.Run(snapshot, func(t *testing.T) {
			t.Parallel()
			const rows, chunkSize = 20000, 500
			m := testbed.NewMariaDB(t)
			createBig(t, m, rows)
			lt := newLakeTask(t, m, fmt.Sprintf("full_load: {chunk_size: %d, parallelism: 4, snapshot: %s}", chunkSize, snapshot))
			stopWriting := bigWriter(t, m, rows)
			progress := func() *capture.TableProgress { return captureState(t, lt.cfg.StateDir).Tables["shop.big"] }
			// The start key of the chunk reads of the first run.
			var mu sync.Mutex
			var starts []int
			firstRun := true
			capture.SetChunkReadHook(t, m.Port, func(table capture.TableName, after [][]byte) error {
				if table.Table == "big" && after != nil {
					k, err := strconv.Atoi(string(after[0]))
					mu.Lock()
					if firstRun {
						starts = append(starts, k)
					}
					mu.Unlock()
					return err
				}
				return nil
			})
			lt.run(t)
			waitUntil(t, 60*time.Second, func() bool {
				p := progress()
				return p != nil && (p.Chunks >= 10 || p.State == capture.StateCompleted)
			})
			lt.stop()
			if err := <-lt.done; err != nil {
				t.Fatalf("task: %v", err)
			}
			stopped := *progress()
			if stopped.State != capture.StateFullLoad || len(stopped.LastKey) == 0 {
				t.Fatalf("big after the stop: %s, %d chunks, last key %q; want it in the middle of its load", stopped.State, stopped.Chunks, stopped.LastKey)
			}
			t.Logf("stopped with big at chunk %d (%d rows, last key %q)", stopped.Chunks, stopped.LoadRows, stopped.LastKey)
			mu.Lock()
			firstRun = false
			lastKey, _ := strconv.Atoi(string(stopped.LastKey[0]))
			t.Logf("the first run's chunk reads had started after keys up to %d", slices.Max(starts))
			if slices.Max(starts) <= lastKey {
				t.Errorf("no chunk read of the first run started after a key past the last one saved (%d; starts %v): none was read ahead of the next to publish", lastKey, starts)
			}
			mu.Unlock()

			// The writer stops in the middle of the second run: the
			// chunks read after that share their snapshot position
			// (auto), and their order of scheduling orders them.
			lt.run(t)
			waitUntil(t, 60*time.Second, func() bool {
				p := progress()
				return p.Chunks >= stopped.Chunks+8 || p.State == capture.StateCompleted
			})
			writes := stopWriting()
			if p := progress(); p.State == capture.StateCompleted {
				t.Fatalf("big was loaded before the writer stopped: no chunk was read on a quiet binlog")
			}
			lt.waitLoaded(t)
			lt.drain(t)
			assertLakeEquals(t, lt, "big")
			if !strings.Contains(lt.logs.String(), `msg="full load resumes after the last chunk published" component=capture table=shop.big `) {
				t.Errorf("the log does not say that big's load resumed")
			}
			ids, back, again := loadOrder(t, lt, "big")
			if back > 1 || again > chunkSize {
				t.Errorf("big: %d steps back in the keys of its %d load records, %d keys loaded twice: chunks published out of key order, or the load did not resume at its next chunk", back, len(ids), again)
			}
			loaded, chunks, alongside := tableLoaded(t, lt, "big")
			t.Logf("big: %d rows in %d chunks, %d read alongside an earlier chunk after the restart; %d load records, %d keys loaded twice; %d writes", loaded, chunks, alongside, len(ids), again, writes)
			if alongside == 0 {
				t.Errorf("big: no chunk was read alongside an earlier one after the restart")
			}
			st := progress()
			if st.State != capture.StateCompleted || st.LoadRows != uint64(loaded) || st.Chunks != uint64(chunks) || st.Chunks <= stopped.Chunks {
				t.Errorf("big: checkpoint %s, %d rows in %d chunks; the log says %d in %d", st.State, st.LoadRows, st.Chunks, loaded, chunks)
			}
			// Every load record is counted but those of a chunk the stop
			// cut short between its records and its checkpoint.
			if n := uint64(len(ids)); st.LoadRows > n || n-st.LoadRows > chunkSize {
				t.Errorf("big: the checkpoint counts %d rows loaded, the lake has %d load records", st.LoadRows, n)
			}
		})
	}
}

// TestSplitChunkReadFails fails a chunk read of a table split across four
// readers while the table's later chunks are being read (a test hook,
// before the chunk's SELECT): they are thrown away with it, so the chunks
// are still published in key order, once each. "twice": the read fails
// twice, with a writer changing the table, and the lake is exact.
// "always": the read fails every time and the table goes to "Table error"
// after maxChunkFails reads, although its later chunks are read without
// fault meanwhile; the chunks before it are in the lake, none after it.
func TestSplitChunkReadFails(t *testing.T) {
	const rows, chunkSize = 20000, 500
	const failed = `msg="chunk read failed; reading it again" component=capture table=shop.big `
	t.Run("twice", func(t *testing.T) {
		m := testbed.NewMariaDB(t)
		createBig(t, m, rows)
		lt := newLakeTask(t, m, fmt.Sprintf("full_load: {chunk_size: %d, parallelism: 4}", chunkSize))
		// The eighth chunk (by start key) fails twice, 100 ms into its read.
		var mu sync.Mutex
		var starts []int // the start key of each chunk read, in order
		target, fails := -1, 0
		capture.SetChunkReadHook(t, m.Port, func(table capture.TableName, after [][]byte) error {
			if table.Table != "big" || after == nil {
				return nil
			}
			key, err := strconv.Atoi(string(after[0]))
			if err != nil {
				return err
			}
			mu.Lock()
			starts = append(starts, key)
			if target < 0 && len(starts) == 8 {
				target = key
			}
			fail := key == target && fails < 2
			if fail {
				fails++
			}
			mu.Unlock()
			if fail {
				time.Sleep(100 * time.Millisecond) // later chunks are read meanwhile
				return errors.New("test: the chunk read fails")
			}
			return nil
		})
		stopWriting := bigWriter(t, m, rows)
		lt.start(t)
		writes := stopWriting()
		lt.drain(t)
		assertLakeEquals(t, lt, "big")
		mu.Lock()
		defer mu.Unlock()
		if fails != 2 || strings.Count(lt.logs.String(), failed) != 2 {
			t.Fatalf("%d reads failed by the hook, %d in the log; want 2", fails, strings.Count(lt.logs.String(), failed))
		}
		// Chunks after the failing one were started before its read that
		// worked (its last in starts).
		last := 0
		for i, k := range starts {
			if k == target {
				last = i
			}
		}
		ahead := 0
		for _, k := range starts[:last] {
			if k > target {
				ahead++
			}
		}
		if ahead == 0 {
			t.Errorf("no chunk after key %d was read before its chunk's read that worked: the test proves nothing (starts %v)", target, starts)
		}
		ids, back, again := loadOrder(t, lt, "big")
		st := captureState(t, lt.cfg.StateDir).Tables["shop.big"]
		t.Logf("the chunk after key %d failed twice; %d chunk reads of later chunks started before its read that worked; %d load records, %d writes", target, ahead, len(ids), writes)
		if back != 0 || again != 0 {
			t.Errorf("big: %d steps back in the keys of its %d load records, %d keys loaded twice", back, len(ids), again)
		}
		if st.State != capture.StateCompleted || st.LoadRows != uint64(len(ids)) {
			t.Errorf("big: checkpoint %s, %d rows; %d load records in the lake", st.State, st.LoadRows, len(ids))
		}
	})
	t.Run("always", func(t *testing.T) {
		m := testbed.NewMariaDB(t)
		createBig(t, m, rows)
		lt := newLakeTask(t, m, fmt.Sprintf("full_load: {chunk_size: %d, parallelism: 4}", chunkSize))
		// Without writes, the chunks start after 500, 1000, ...: the one
		// after 5000 fails, 200 ms into its read, when the chunks after it
		// have been read.
		capture.SetChunkReadHook(t, m.Port, func(table capture.TableName, after [][]byte) error {
			if table.Table == "big" && len(after) == 1 && string(after[0]) == "5000" {
				time.Sleep(200 * time.Millisecond)
				return errors.New("test: the chunk read fails")
			}
			return nil
		})
		lt.run(t)
		progress := func() *capture.TableProgress { return captureState(t, lt.cfg.StateDir).Tables["shop.big"] }
		waitUntil(t, 30*time.Second, func() bool { p := progress(); return p != nil && p.State == capture.StateError })
		if p := progress(); !strings.Contains(p.Error, "test: the chunk read fails") {
			t.Errorf("big: Table error %q", p.Error)
		}
		lt.drain(t)
		if n := strings.Count(lt.logs.String(), failed); n != 4 {
			t.Errorf("%d failed reads read again, want 4 (the fifth puts the table in Table error)", n)
		}
		ids, back, again := loadOrder(t, lt, "big")
		if len(ids) != 5000 || back != 0 || again != 0 || ids[len(ids)-1] != 5000 {
			t.Errorf("big: %d load records (%d steps back, %d keys again), want the keys 1 to 5000", len(ids), back, again)
		}
	})
}
