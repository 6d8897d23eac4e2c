package capture_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
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
	ctx := context.Background()
	rp := lt.replay(t)
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake twice, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	for _, lt2 := range loadTables {
		if lt2.name == "nokey" {
			continue
		}
		src, err := capture.ReadTable(ctx, lt.cfg.Source.MySQL, "shop", lt2.name)
		if err != nil {
			t.Fatal(err)
		}
		got := rp.Tables["shop."+lt2.name]
		mm := lake.Compare(got, src)
		for i, x := range mm {
			if i == 10 {
				break
			}
			t.Errorf("%s: %s", lt2.name, x)
			if i < 2 {
				// The key's history in the lake, for the diagnosis.
				for _, r := range lt.records(t, lt2.name) {
					if r.meta("partition-key-value") == x.Key {
						t.Logf("  %s", r.line)
					}
				}
			}
		}
		if len(mm) > 0 {
			t.Errorf("%s: %d mismatches (source %d rows, lake %d)", lt2.name, len(mm), len(src), len(got))
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

// TestSplitTable loads one big table with four reader slots: its chunks
// are read side by side (each first reads where it ends), while a writer
// changes the table, and the lake is exact.
func TestSplitTable(t *testing.T) {
	for _, snapshot := range []string{"auto", "watermark"} {
		t.Run(snapshot, func(t *testing.T) {
			t.Parallel()
			const chunkSize = 250
			m := testbed.NewMariaDB(t)
			if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40), n INT)",
				"INSERT INTO shop.big SELECT seq, CONCAT('row ', seq), seq % 97 FROM shop.seq_1_to_10000"); err != nil {
				t.Fatal(err)
			}
			lt := newLakeTask(t, m, fmt.Sprintf("full_load: {chunk_size: %d, parallelism: 4, snapshot: %s}", chunkSize, snapshot))
			// A writer of big alone: updates, deletes, inserts and key
			// changes all over the table.
			db, err := m.Open("")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx, stopWriting := context.WithCancel(t.Context())
			defer stopWriting()
			var writes atomic.Int64
			wrote := make(chan error, 1)
			go func() {
				rng := rand.New(rand.NewPCG(11, 7))
				for i := 0; ctx.Err() == nil; i++ {
					id := 1 + rng.IntN(10000)
					q := []string{
						fmt.Sprintf("UPDATE shop.big SET v = CONCAT(v, '+'), n = n + 1 WHERE id = %d", id),
						fmt.Sprintf("DELETE FROM shop.big WHERE id = %d", id),
						fmt.Sprintf("INSERT IGNORE INTO shop.big VALUES (%d, 'new', 0)", 20000+i),
						fmt.Sprintf("UPDATE IGNORE shop.big SET id = %d WHERE id = %d", 30000+i, id),
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
			lt.start(t)
			stopWriting()
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			lt.drain(t)
			rp := lt.replay(t)
			src, err := capture.ReadTable(t.Context(), lt.cfg.Source.MySQL, "shop", "big")
			if err != nil {
				t.Fatal(err)
			}
			if mm := lake.Compare(rp.Tables["shop.big"], src); len(mm) > 0 || len(rp.Duplicates) > 0 {
				t.Fatalf("big: %d mismatches (e.g. %v), %d duplicates", len(mm), mm[:min(3, len(mm))], len(rp.Duplicates))
			}
			logs := lt.logs.String()
			i := strings.Index(logs, `msg="table loaded" component=capture table=shop.big`)
			if i < 0 {
				t.Fatalf("no 'table loaded' line for big:\n%s", logs)
			}
			var rows, chunks, alongside int
			if _, err := fmt.Sscanf(logs[i:], `msg="table loaded" component=capture table=shop.big rows=%d chunks=%d chunks_read_alongside=%d`, &rows, &chunks, &alongside); err != nil {
				t.Fatalf("%v: %s", err, logs[i:i+200])
			}
			t.Logf("big: %d rows in %d chunks, %d read alongside an earlier chunk; %d writes", rows, chunks, alongside, writes.Load())
			if alongside < chunks/2 {
				t.Errorf("big: %d of %d chunks were read alongside an earlier one: the table was not split across the readers", alongside, chunks)
			}
			if st := captureState(t, lt.cfg.StateDir).Tables["shop.big"]; st.State != capture.StateCompleted || st.LoadRows != uint64(rows) || st.Chunks != uint64(chunks) {
				t.Errorf("big: checkpoint %s, %d rows in %d chunks; the log says %d in %d", st.State, st.LoadRows, st.Chunks, rows, chunks)
			}
		})
	}
}
