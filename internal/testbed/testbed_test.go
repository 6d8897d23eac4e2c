package testbed

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/go-sql-driver/mysql"

	"github.com/binlake/binlake/internal/lake"
)

func TestMariaDB(t *testing.T) {
	t.Parallel()
	m := NewMariaDB(t)
	db := open(t, m, "")

	var format, metadata string
	if err := db.QueryRowContext(t.Context(), "SELECT @@binlog_format, @@binlog_row_metadata").Scan(&format, &metadata); err != nil {
		t.Fatal(err)
	}
	if format != "ROW" || metadata != "FULL" {
		t.Errorf("binlog_format, binlog_row_metadata = %s, %s; want ROW, FULL", format, metadata)
	}

	t.Run("exec names the failing statement", func(t *testing.T) {
		err := m.Exec(t.Context(), "CREATE DATABASE `exec-test`", "SELEC 1")
		if err == nil || !strings.Contains(err.Error(), "SELEC 1") {
			t.Errorf("Exec error = %v; want one naming SELEC 1", err)
		}
	})

	t.Run("restart after kill", func(t *testing.T) {
		if err := m.Exec(t.Context(), "CREATE TABLE `exec-test`.t (id int PRIMARY KEY)", "INSERT INTO `exec-test`.t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		port := m.Port
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := m.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
		if m.Port != port {
			t.Errorf("port after restart = %d; want %d", m.Port, port)
		}
		var n int
		if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM `exec-test`.t").Scan(&n); err != nil || n != 1 {
			t.Errorf("rows after restart = %d, %v; want 1", n, err)
		}
		if err := m.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := m.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})
}

func TestWordPress(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := NewMariaDB(t)
	db := open(t, m, "")
	const posts, seed = 12, 42
	copyDB := WordPressDB + "-copy"
	for _, name := range []string{WordPressDB, copyDB} {
		if err := CreateWordPress(ctx, db, name); err != nil {
			t.Fatal(err)
		}
		if err := SeedWordPress(ctx, db, name, posts, seed); err != nil {
			t.Fatal(err)
		}
	}
	if err := CreateWordPress(ctx, db, WordPressDB); err != nil {
		t.Fatalf("creating again: %v", err)
	}

	wp := tableNames(WordPressDB)
	t.Run("row counts", func(t *testing.T) {
		for _, tc := range []struct {
			table string
			want  int
		}{
			{"wp_users", 5},
			{"wp_posts", posts},
			{"wp_postmeta", 2 * posts},
			{"wp_comments", queryInt(t, db, wp("SELECT SUM(comment_count) FROM {wp_posts}"))},
			{"wp_options", 20},
			{"wp_sessions", 8},
			{"wp_stats", 10},
		} {
			if got := queryInt(t, db, wp("SELECT COUNT(*) FROM {"+tc.table+"}")); got != tc.want {
				t.Errorf("%s has %d rows; want %d", tc.table, got, tc.want)
			}
		}
		if n := queryInt(t, db, wp("SELECT COUNT(*) FROM {wp_posts} WHERE LENGTH(post_content) BETWEEN 2 << 20 AND 3 << 20")); n != 2 {
			t.Errorf("%d posts of 2 to 3 MiB; want 2", n)
		}
	})

	t.Run("seed is deterministic", func(t *testing.T) {
		assertSameTables(t, db, WordPressDB, copyDB)
	})

	t.Run("values round-trip", func(t *testing.T) {
		var views uint64
		if err := db.QueryRowContext(ctx, wp("SELECT views FROM {wp_stats} WHERE views = 18446744073709551615")).Scan(&views); err != nil || views != math.MaxUint64 {
			t.Errorf("max views = %d, %v; want %d", views, err, uint64(math.MaxUint64))
		}
		var name string
		if err := db.QueryRowContext(ctx, wp("SELECT display_name FROM {wp_users} WHERE user_login = 'party'")).Scan(&name); err != nil || name != "Party 🎉 Person" {
			t.Errorf("display_name = %q, %v; want %q", name, err, "Party 🎉 Person")
		}
	})

	t.Run("workload", func(t *testing.T) {
		file, pos := masterStatus(t, db)
		w := NewWorkload(db, WordPressDB, seed)
		for _, a := range workloadActions {
			if err := w.do(ctx, a); err != nil {
				t.Errorf("%s: %v", a.name, err)
			}
		}
		for range 50 {
			if err := w.Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if file2, pos2 := masterStatus(t, db); file2 == file && pos2 <= pos {
			t.Errorf("binlog did not grow: at %s:%d before and after", file, pos)
		}
		if c, n := queryInt(t, db, wp("SELECT COUNT(*) FROM {wp_comments}")), queryInt(t, db, wp("SELECT SUM(comment_count) FROM {wp_posts}")); c != n {
			t.Errorf("%d comments, %d counted in posts", c, n)
		}

		w = NewWorkload(db, copyDB, seed)
		for _, a := range workloadActions {
			if err := w.do(ctx, a); err != nil {
				t.Errorf("%s: %v", a.name, err)
			}
		}
		for range 50 {
			if err := w.Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
		assertSameTables(t, db, WordPressDB, copyDB)
	})
}

func TestS3(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := NewS3(t)
	if err := s.CreateBucket(ctx, "lake"); err != nil {
		t.Fatal(err)
	}
	body := []byte("binlake 🎉\n")
	if _, err := s.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("lake"), Key: aws.String("db/t/part-0.json"), Body: bytes.NewReader(body),
	}); err != nil {
		t.Fatal(err)
	}
	out, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String("db/t/part-0.json")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("got %q, %v; want %q", got, err, body)
	}
	if onDisk, err := os.ReadFile(filepath.Join(s.Dir, "lake", "db", "t", "part-0.json")); err != nil || !bytes.Equal(onDisk, body) {
		t.Errorf("file in Dir = %q, %v; want %q", onDisk, err, body)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		ci, require string
		wantFatal   bool
	}{
		{"", "", false},
		{"false", "0", false},
		{"true", "", true},
		{"", "1", true},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("BINLAKE_REQUIRE_SERVERS", tc.require)
		tb := &recordingTB{TB: t}
		Missing(tb, "widget", "apt-get install widget")
		const msg = "widget is required: install it with apt-get install widget"
		if want := map[bool]string{true: msg}[tc.wantFatal]; tb.fatal != want {
			t.Errorf("CI=%q BINLAKE_REQUIRE_SERVERS=%q: Fatalf(%q); want %q", tc.ci, tc.require, tb.fatal, want)
		}
		if want := map[bool]string{false: msg}[tc.wantFatal]; tb.skip != want {
			t.Errorf("CI=%q BINLAKE_REQUIRE_SERVERS=%q: Skipf(%q); want %q", tc.ci, tc.require, tb.skip, want)
		}
	}
}

// recordingTB records Fatalf and Skipf instead of ending the test.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper()                        {}
func (r *recordingTB) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recordingTB) Skipf(format string, a ...any)  { r.skip = fmt.Sprintf(format, a...) }

func TestFindBinaryNotInstalled(t *testing.T) {
	if _, err := findBinary([]string{"binlake-no-such-server"}, t.TempDir()); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("findBinary error = %v; want ErrNotInstalled", err)
	}
}

func TestQuoteIdent(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"wp_posts", "`wp_posts`"},
		{"wordpress-db", "`wordpress-db`"},
		{"a`b", "`a``b`"},
	} {
		if got := quoteIdent(tc.in); got != tc.want {
			t.Errorf("quoteIdent(%q) = %s; want %s", tc.in, got, tc.want)
		}
	}
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Lorem ipsum dolor", "lorem-ipsum-dolor"},
		{"Party time 🎉", "party-time"},
		{"日本の夏祭り", "post"},
	} {
		if got := slug(tc.in); got != tc.want {
			t.Errorf("slug(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func open(t *testing.T, m *MariaDB, database string) *sql.DB {
	t.Helper()
	db, err := m.Open(database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryInt(t *testing.T, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func masterStatus(t *testing.T, db *sql.DB) (string, int64) {
	t.Helper()
	var file, doDB, ignoreDB string
	var pos int64
	if err := db.QueryRowContext(t.Context(), "SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	return file, pos
}

// assertSameTables compares the checksums of the WordPress tables of two databases.
func assertSameTables(t *testing.T, db *sql.DB, a, b string) {
	t.Helper()
	for _, table := range []string{"wp_users", "wp_posts", "wp_postmeta", "wp_comments", "wp_options", "wp_sessions", "wp_stats"} {
		var sums [2]int64
		for i, database := range []string{a, b} {
			var name string
			if err := db.QueryRowContext(t.Context(), "CHECKSUM TABLE "+quoteIdent(database)+"."+quoteIdent(table)).Scan(&name, &sums[i]); err != nil {
				t.Fatal(err)
			}
		}
		if sums[0] != sums[1] {
			t.Errorf("%s differs between %s and %s", table, a, b)
		}
	}
}

// TestLedgerCheck feeds Ledger.Check lakes with a change missing, a change
// stored twice and a load row at the wrong place, and a whole one.
func TestLedgerCheck(t *testing.T) {
	rec := func(pos, op, key string, seq int) lake.Record {
		return lake.Record{Schema: WordPressDB, Table: LedgerTable, Type: "data", Op: op, Key: key, Position: pos,
			Data: map[string]any{"seq": json.Number(fmt.Sprint(seq))}}
	}
	l := &Ledger{schema: WordPressDB}
	whole := []lake.Record{rec("05", "update", "1", 3), rec("01", "update", "1", 1), rec("02", "update", "1", 2),
		rec("03", "load", "1", 2), rec("04", "insert", "2", 0), rec("06", "update", "2", 1)}
	if problems, n := l.Check(whole); len(problems) > 0 || n != 6 {
		t.Errorf("a whole lake: %v, %d checked; want no problem, 6 checked", problems, n)
	}
	for name, tc := range map[string]struct {
		recs []lake.Record
		want string
	}{
		"missing":  {[]lake.Record{rec("01", "update", "1", 1), rec("03", "update", "1", 3)}, "update to seq 3 after seq 1 (1 change(s) missing)"},
		"repeated": {[]lake.Record{rec("01", "update", "1", 1), rec("01", "update", "1", 1)}, "update to seq 1 after seq 1 (a change repeated or out of order)"},
		"load":     {[]lake.Record{rec("01", "update", "1", 1), rec("02", "load", "1", 0)}, "load of seq 0 after the lake's changes left seq 1"},
	} {
		problems, _ := l.Check(tc.recs)
		if len(problems) != 1 || !strings.Contains(problems[0], tc.want) {
			t.Errorf("%s: problems %q, want one containing %q", name, problems, tc.want)
		}
	}
}

// TestFreePortReserves checks that the ports FreePort hands out are
// distinct, below the kernel's ephemeral range, and held: another open of
// a port's reservation file, as another test process's FreePort would
// make, cannot lock it while this process lives.
func TestFreePortReserves(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < portLow || p >= portHigh {
			t.Fatalf("port %d is outside %d–%d", p, portLow, portHigh-1)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		f, err := os.Open(filepath.Join(portDir(), strconv.Itoa(p)))
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Fatalf("port %d: locking its reservation again gave %v, want EWOULDBLOCK", p, err)
		}
	}
}

// TestWorkloadTransientErrors: the workload goes on after the errors an
// application retries, and stops on others.
func TestWorkloadTransientErrors(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("workload comment: %w", &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}), true},
		{&mysql.MySQLError{Number: 1205}, true},
		{fmt.Errorf("x: %w", &mysql.MySQLError{Number: 1412}), true},
		{&mysql.MySQLError{Number: 1146, Message: "Table doesn't exist"}, false},
		{errors.New("connection refused"), false},
	} {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
