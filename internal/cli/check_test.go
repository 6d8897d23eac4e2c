package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/binlake/binlake/internal/cli"
	"github.com/binlake/binlake/internal/testbed"
)

// checkConfig writes a config for source m and returns its path. extra is
// appended to the YAML; tables defaults to shop.%.
func checkConfig(t *testing.T, port int, user, password, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if !strings.Contains(extra, "tables:") {
		extra += "\ntables: [{include: \"shop.%\"}]"
	}
	if !strings.Contains(extra, "target:") {
		extra += fmt.Sprintf("\ntarget: file://%s/lake", dir)
	}
	yml := fmt.Sprintf("task: check\nsource: {mysql: {host: 127.0.0.1, port: %d, user: %s, password: %q, connect_timeout: 5s}}\nstate_dir: %s/state\n%s\n",
		port, user, password, dir, extra)
	path := filepath.Join(dir, "binlake.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type checkRun struct {
	code  int
	lines []string
	out   string
}

func runCheck(t *testing.T, path string) checkRun {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main([]string{"check", "--config", path}, &out, &errOut)
	r := checkRun{code: code, out: out.String() + errOut.String()}
	r.lines = strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	return r
}

// line returns the output line of a check.
func (r checkRun) line(t *testing.T, check string) string {
	t.Helper()
	for _, l := range r.lines {
		if len(l) > 6 && strings.HasPrefix(l[6:], check+": ") {
			return l
		}
	}
	t.Fatalf("no line for check %q in:\n%s", check, r.out)
	return ""
}

// expect asserts the level of a check and that its line holds every part.
func (r checkRun) expect(t *testing.T, check, level string, parts ...string) {
	t.Helper()
	l := r.line(t, check)
	if !strings.HasPrefix(l, level+" ") {
		t.Errorf("check %s: want %s, got: %s", check, level, l)
	}
	for _, p := range parts {
		if !strings.Contains(l, p) {
			t.Errorf("check %s: line does not say %q: %s", check, p, l)
		}
	}
}

func (r checkRun) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d; output:\n%s", r.code, code, r.out)
	}
}

// TestCheckGoodSource runs check against a well-configured server, then
// breaks one thing at a time on it.
func TestCheckGoodSource(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY)", "CREATE TABLE shop.items (id INT PRIMARY KEY)",
		"CREATE DATABASE other"); err != nil {
		t.Fatal(err)
	}
	good := checkConfig(t, m.Port, "root", "", "")

	t.Run("all OK", func(t *testing.T) {
		r := runCheck(t, good)
		r.wantCode(t, 0)
		for _, l := range r.lines[:len(r.lines)-1] {
			if !strings.HasPrefix(l, "OK ") {
				t.Errorf("not OK: %s", l)
			}
		}
		if last := r.lines[len(r.lines)-1]; !strings.HasPrefix(last, "ready: ") {
			t.Errorf("last line %q, want ready: ...", last)
		}
		for _, check := range []string{"config", "source", "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "server_id",
			"replication privileges", "select privilege", "tables", "binlog retention", "primary keys", "target", "state_dir"} {
			r.line(t, check)
		}
		r.expect(t, "tables", "OK", "2 selected: shop.items, shop.orders")
		r.expect(t, "binlog retention", "OK", "never purged")
	})

	t.Run("flavor", func(t *testing.T) {
		b, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ flavor, level string }{{"mariadb", "OK"}, {"mysql", "WARN"}} {
			path := filepath.Join(t.TempDir(), "binlake.yml")
			yml := strings.Replace(string(b), "connect_timeout: 5s", "connect_timeout: 5s, flavor: "+tc.flavor, 1)
			if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runCheck(t, path)
			r.wantCode(t, 0)
			if tc.level == "OK" {
				if strings.Contains(r.out, "source.mysql.flavor") {
					t.Errorf("flavor: mariadb on MariaDB: %s", r.out)
				}
				continue
			}
			r.expect(t, "flavor", "WARN", "source.mysql.flavor is mysql", "reads as mariadb", "Fix: remove source.mysql.flavor")
		}
	})

	t.Run("row image not FULL", func(t *testing.T) {
		set(t, m, "SET GLOBAL binlog_row_image = MINIMAL", "SET GLOBAL binlog_row_image = FULL")
		r := runCheck(t, good)
		r.wantCode(t, 1)
		r.expect(t, "binlog_row_image", "FAIL", "is MINIMAL, want FULL", "Fix: SET GLOBAL binlog_row_image=FULL")
	})

	t.Run("row metadata not FULL", func(t *testing.T) {
		set(t, m, "SET GLOBAL binlog_row_metadata = MINIMAL", "SET GLOBAL binlog_row_metadata = FULL")
		r := runCheck(t, good)
		r.wantCode(t, 0) // a warning: capture decodes with its schema history
		r.expect(t, "binlog_row_metadata", "WARN", "is MINIMAL, want FULL", "name the columns", "schema history", "Table error", "Fix: SET GLOBAL binlog_row_metadata=FULL")
	})

	t.Run("user without replication privileges", func(t *testing.T) {
		if err := m.Exec(ctx, "CREATE USER 'reader'@'%' IDENTIFIED BY 'pw'", "GRANT SELECT ON shop.* TO 'reader'@'%'"); err != nil {
			t.Fatal(err)
		}
		r := runCheck(t, checkConfig(t, m.Port, "reader", "pw", ""))
		r.wantCode(t, 1)
		r.expect(t, "replication privileges", "FAIL", "'reader'@'%' lacks REPLICATION SLAVE", "REPLICATION CLIENT",
			"Fix: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'reader'@'%'")
		r.expect(t, "select privilege", "OK", "SELECT on the 2 selected tables")
		// Everything else is as good as for root.
		for _, l := range r.lines {
			if strings.HasPrefix(l, "FAIL") && !strings.Contains(l, "replication privileges") {
				t.Errorf("unexpected failure: %s", l)
			}
		}
	})

	t.Run("user with replication privileges but no SELECT", func(t *testing.T) {
		if err := m.Exec(ctx, "CREATE USER 'repl'@'%' IDENTIFIED BY 'pw'", "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'%'",
			"GRANT SELECT ON shop.orders TO 'repl'@'%'", "GRANT INSERT ON shop.items TO 'repl'@'%'"); err != nil {
			t.Fatal(err)
		}
		r := runCheck(t, checkConfig(t, m.Port, "repl", "pw", ""))
		r.wantCode(t, 1)
		r.expect(t, "replication privileges", "OK")
		r.expect(t, "select privilege", "FAIL", "lacks SELECT", "shop.items", "Fix: GRANT SELECT ON `shop`.* TO 'repl'@'%'")
	})

	t.Run("watermark snapshots without write access", func(t *testing.T) {
		if err := m.Exec(ctx, "CREATE USER 'wm'@'%' IDENTIFIED BY 'pw'", "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'wm'@'%'",
			"GRANT SELECT ON shop.* TO 'wm'@'%'"); err != nil {
			t.Fatal(err)
		}
		wm := checkConfig(t, m.Port, "wm", "pw", "full_load: {snapshot: watermark, watermark_table: ops.wm}")
		r := runCheck(t, wm)
		r.wantCode(t, 1)
		r.expect(t, "watermark table", "FAIL", "'wm'@'%' cannot select, insert, update, create the watermark table ops.wm",
			"Fix: CREATE DATABASE IF NOT EXISTS `ops`; CREATE TABLE `ops`.`wm` (task VARCHAR(255) NOT NULL PRIMARY KEY, mark VARCHAR(255) NOT NULL); GRANT SELECT, INSERT, UPDATE ON `ops`.`wm` TO 'wm'@'%'",
			"full_load.snapshot: lock")
		// Once the table exists, the writes are what matter.
		set(t, m, "CREATE DATABASE ops", "DROP DATABASE ops")
		set(t, m, "CREATE TABLE ops.wm (task VARCHAR(255) NOT NULL PRIMARY KEY, mark VARCHAR(255) NOT NULL)", "DROP TABLE ops.wm")
		set(t, m, "GRANT SELECT, INSERT, UPDATE ON ops.wm TO 'wm'@'%'", "REVOKE SELECT, INSERT, UPDATE ON ops.wm FROM 'wm'@'%'")
		r = runCheck(t, wm)
		r.wantCode(t, 0)
		r.expect(t, "watermark table", "OK", "'wm'@'%' may write the watermark table ops.wm")
		// MariaDB's own snapshots need no such check.
		if strings.Contains(runCheck(t, good).out, "watermark table") {
			t.Errorf("check names the watermark table for a MariaDB task on full_load.snapshot: auto")
		}
	})

	t.Run("server_id clash", func(t *testing.T) {
		path := checkConfig(t, m.Port, "root", "", "")
		yml, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		yml = bytes.Replace(yml, []byte("connect_timeout: 5s"), []byte("connect_timeout: 5s, server_id: 1"), 1)
		if err := os.WriteFile(path, yml, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCheck(t, path)
		r.wantCode(t, 1)
		r.expect(t, "server_id", "FAIL", "server_id 1 is the source's own @@server_id", "Fix: set source.mysql.server_id")
	})

	t.Run("no table selected", func(t *testing.T) {
		r := runCheck(t, checkConfig(t, m.Port, "root", "", `tables: [{include: "Shop.%"}]`))
		r.wantCode(t, 0)
		r.expect(t, "tables", "WARN", "no table matches the selection rules; schemas seen: other, shop", "case-sensitive")
		r = runCheck(t, checkConfig(t, m.Port, "root", "", "tables: [{include: \"Shop.%\"}]\nmigration: full-load"))
		r.wantCode(t, 1)
		r.expect(t, "tables", "FAIL", "schemas seen: other, shop")
	})

	t.Run("short binlog retention", func(t *testing.T) {
		set(t, m, "SET GLOBAL binlog_expire_logs_seconds = 3600", "SET GLOBAL binlog_expire_logs_seconds = 0")
		r := runCheck(t, good)
		r.wantCode(t, 0)
		r.expect(t, "binlog retention", "WARN", "purged after 1h0m0s", "Fix: ", "binlog_expire_logs_seconds=604800")
	})

	t.Run("table without primary key", func(t *testing.T) {
		set(t, m, "CREATE TABLE shop.log (msg TEXT)", "DROP TABLE shop.log")
		r := runCheck(t, good)
		r.wantCode(t, 0)
		r.expect(t, "primary keys", "WARN", "1 selected tables have none: shop.log", "Fix: add a primary key")
	})

	t.Run("unreachable source", func(t *testing.T) {
		port, err := testbed.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		r := runCheck(t, checkConfig(t, port, "root", "", ""))
		r.wantCode(t, 1)
		r.expect(t, "source", "FAIL", "cannot connect", "Fix: check source.mysql.host and source.mysql.port")
		r.expect(t, "target", "OK") // the other checks still run
	})

	t.Run("wrong password", func(t *testing.T) {
		r := runCheck(t, checkConfig(t, m.Port, "reader", "wrong", ""))
		r.wantCode(t, 1)
		r.expect(t, "source", "FAIL", "Access denied", "Fix: check source.mysql.user and source.mysql.password")
	})
}

// set runs stmt on m and undo when the test ends.
func set(t *testing.T, m *testbed.MariaDB, stmt, undo string) {
	t.Helper()
	if err := m.Exec(t.Context(), stmt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Exec(context.Background(), undo); err != nil {
			t.Errorf("undoing %q: %v", stmt, err)
		}
	})
}

// TestCheckStatementFormat checks a server started with
// binlog_format=STATEMENT: check names the fix, and run refuses to start
// with the same message.
func TestCheckStatementFormat(t *testing.T) {
	m := testbed.NewMariaDBWith(t, "--binlog-format=STATEMENT")
	if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	path := checkConfig(t, m.Port, "root", "", "")
	r := runCheck(t, path)
	r.wantCode(t, 1)
	r.expect(t, "binlog_format", "FAIL", "is STATEMENT, want ROW", "Fix: SET GLOBAL binlog_format=ROW", "--binlog-format=ROW")
	if !strings.Contains(r.out, "binlake: check: 1 failed") {
		t.Errorf("no summary of the failure on stderr:\n%s", r.out)
	}

	var out, errOut bytes.Buffer
	code := cli.Main([]string{"run", "--config", path}, &out, &errOut)
	if code != 1 {
		t.Errorf("run exit code %d, want 1", code)
	}
	if msg := errOut.String(); !strings.Contains(msg, "binlog_format: is STATEMENT, want ROW") || !strings.Contains(msg, "Fix: SET GLOBAL binlog_format=ROW") {
		t.Errorf("run does not name the problem and its fix:\n%s", msg)
	}
}

// TestCheckS3Target checks an S3 target: a bucket that exists passes, and
// the check leaves no object behind; a missing bucket fails.
func TestCheckS3Target(t *testing.T) {
	m := testbed.NewMariaDB(t)
	s := testbed.NewS3(t)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket(ctx, "lake"); err != nil {
		t.Fatal(err)
	}
	s3cfg := fmt.Sprintf("s3: {endpoint: %q, region: %s, path_style: true, access_key_id: %s, secret_access_key: %s}\ndelivery: {prefix: \"shop/\"}",
		s.Endpoint, s.Region, s.AccessKey, s.SecretKey)

	r := runCheck(t, checkConfig(t, m.Port, "root", "", "target: s3://lake/runs\n"+s3cfg))
	r.wantCode(t, 0)
	r.expect(t, "target", "OK", "s3://lake/runs", "wrote and deleted shop/_binlake/check-")
	list, err := s.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Contents {
		t.Errorf("check left %s in the bucket", aws.ToString(o.Key))
	}

	r = runCheck(t, checkConfig(t, m.Port, "root", "", "target: s3://no-such-bucket\n"+s3cfg))
	r.wantCode(t, 1)
	r.expect(t, "target", "FAIL", "no-such-bucket", "Fix: check the bucket name")
}
