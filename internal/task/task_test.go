package task_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// The tables the tests' selection rules select (wp_sessions is excluded).
var wordpressTables = []string{"wp_comments", "wp_options", "wp_postmeta", "wp_posts", "wp_stats", "wp_users"}

func testConfig(t *testing.T, m *testbed.MariaDB, target string, extra string) *config.Config {
	t.Helper()
	yml := fmt.Sprintf(`task: wordpress
source:
  mysql: {host: 127.0.0.1, port: %d, user: root, password: ""}
migration: full-load-and-cdc
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
target: %s
state_dir: %s
%s`, m.Port, target, filepath.Join(t.TempDir(), "state"), extra)
	if !strings.Contains(extra, "delivery:") {
		yml += "delivery: {buffer: {size: 256KiB, interval: 1s}, prefix: \"wordpress-db/\"}\n"
	}
	cfg, err := config.Parse([]byte(yml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitCaughtUp waits until the task has captured up to the source's end.
func waitCaughtUp(t *testing.T, tk *task.Task, m *testbed.MariaDB) {
	t.Helper()
	want := m.BinlogEnd(t)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if tk.Status().SourcePosition == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("capture did not catch up with %s: status %+v", want, tk.Status())
}

// assertLakeEqualsSource replays the lake and compares every selected table
// with the source, value by value.
func assertLakeEqualsSource(t *testing.T, b objstore.Bucket, cfg *config.Config, allowDuplicates bool) lake.Replay {
	t.Helper()
	ctx := context.Background()
	recs, err := lake.Read(ctx, b, cfg.Delivery.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	rp := lake.ReplayRecords(recs)
	if len(rp.Duplicates) > 0 && !allowDuplicates {
		t.Errorf("%d duplicate records in the lake, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	for _, name := range wordpressTables {
		src, err := capture.ReadTable(ctx, cfg.Source.MySQL, testbed.WordPressDB, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(src) == 0 {
			t.Errorf("%s: the source table is empty; the test proves nothing", name)
		}
		got := rp.Tables[testbed.WordPressDB+"."+name]
		mm := lake.Compare(got, src)
		if len(mm) > 0 {
			for i, m := range mm {
				if i == 10 {
					break
				}
				t.Errorf("%s: %s", name, m)
			}
			t.Errorf("%s: %d mismatches (source %d rows, lake %d rows)", name, len(mm), len(src), len(got))
		}
	}
	if _, ok := rp.Tables[testbed.WordPressDB+".wp_sessions"]; ok {
		t.Errorf("wp_sessions is excluded by the selection rules but is in the lake")
	}
	return rp
}

func startWordPress(t *testing.T, posts int) *testbed.MariaDB {
	t.Helper()
	m, _ := testbed.NewWordPress(t, posts, 7)
	return m
}

// TestEndToEnd is the spine's acceptance: full load with changes during and
// after it, drain on stop, and a lake that replays to exactly the source,
// without a duplicate, on a local directory and on S3 (versitygw).
func TestEndToEnd(t *testing.T) {
	targets := map[string]func(t *testing.T) (string, string, objstore.Bucket){
		"file": func(t *testing.T) (string, string, objstore.Bucket) {
			dir := t.TempDir()
			b, err := objstore.NewFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			return "file://" + dir, "", b
		},
		"s3": func(t *testing.T) (string, string, objstore.Bucket) {
			s := testbed.NewS3(t)
			if err := s.CreateBucket(t.Context(), "lake"); err != nil {
				t.Fatal(err)
			}
			extra := fmt.Sprintf("s3: {endpoint: %q, region: %s, path_style: true, access_key_id: %s, secret_access_key: %s}\n",
				s.Endpoint, s.Region, s.AccessKey, s.SecretKey)
			b, err := objstore.NewS3(t.Context(), "lake", "runs/1", objstore.S3Options{
				Endpoint: s.Endpoint, Region: s.Region, PathStyle: true, AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey,
			})
			if err != nil {
				t.Fatal(err)
			}
			return "s3://lake/runs/1", extra, b
		},
	}
	for name, target := range targets {
		t.Run(name, func(t *testing.T) {
			m := startWordPress(t, 300)
			url, extra, bucket := target(t)
			cfg := testConfig(t, m, url, extra)
			db, err := m.Open("")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()

			// Changes flow before, during and after the full load.
			work := testbed.NewWorkload(db, testbed.WordPressDB, 3)
			for range 20 {
				if err := work.Step(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			workCtx, stopWork := context.WithCancel(t.Context())
			workDone := make(chan error, 1)
			go func() { workDone <- work.Run(workCtx, 0) }()

			tk := task.New(cfg, logger(t))
			ctx, stop := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- tk.Run(ctx) }()

			waitFor(t, 60*time.Second, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })
			time.Sleep(2 * time.Second) // CDC while the workload runs
			stopWork()
			if err := <-workDone; err != nil {
				t.Fatal(err)
			}
			// A DDL on a selected table, then rows written with the new column.
			// (Rows untouched since the DDL keep their last record's columns:
			// replaying schema changes needs the table definitions that
			// control records carry from the capture issue on.)
			if err := m.Exec(t.Context(), "ALTER TABLE `wordpress-db`.wp_options ADD COLUMN note varchar(20) NULL",
				"UPDATE `wordpress-db`.wp_options SET note = CONCAT('after-alter-', option_id)"); err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, tk, m)
			stop() // SIGTERM: drain
			if err := <-done; err != nil {
				t.Fatalf("task: %v", err)
			}
			if st := tk.Status(); st.Status != task.StatusStopped {
				t.Errorf("status after drain = %s, want Stopped", st.Status)
			}

			rp := assertLakeEqualsSource(t, bucket, cfg, false)
			checkValues(t, rp)
			checkStats(t, tk.Status(), rp)
		})
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s", d)
}

// checkValues asserts the JSON form of edge values that the seed writes.
func checkValues(t *testing.T, rp lake.Replay) {
	t.Helper()
	stats := rp.Tables["wordpress-db.wp_stats"]
	var maxViews bool
	for _, row := range stats {
		if v, ok := row["views"].(json.Number); ok && v.String() == "18446744073709551615" {
			maxViews = true
		}
	}
	if !maxViews {
		t.Errorf("no wp_stats row has views = 18446744073709551615 exactly")
	}
	var zeroPost, emoji, big bool
	for _, row := range rp.Tables["wordpress-db.wp_posts"] {
		if row["post_date_gmt"] == "0000-00-00 00:00:00" || row["post_modified_gmt"] == "0000-00-00 00:00:00" {
			zeroPost = true
		}
		if s, ok := row["post_title"].(string); ok && (strings.Contains(s, "🎉") || strings.Contains(s, "日本") || strings.Contains(s, "é")) {
			emoji = true
		}
		if s, ok := row["post_content"].(string); ok && len(s) >= 2<<20 {
			big = true // a multi-MiB body arrived whole (compared byte for byte above)
		}
	}
	if !zeroPost {
		t.Errorf("no wp_posts row carries a zero date '0000-00-00 00:00:00'")
	}
	if !emoji {
		t.Errorf("no wp_posts title carries accented, Japanese or emoji text")
	}
	if !big {
		t.Errorf("no wp_posts body of 2 MiB or more in the lake")
	}
	for key, row := range rp.Tables["wordpress-db.wp_options"] {
		if want := "after-alter-" + fmt.Sprint(row["option_id"]); row["note"] != want {
			t.Errorf("%s: note = %v after ALTER TABLE, want %q", key, row["note"], want)
		}
	}
}

// checkStats compares the status counters with the lake's records.
func checkStats(t *testing.T, st task.Status, rp lake.Replay) {
	t.Helper()
	if len(st.Tables) != len(wordpressTables) {
		t.Errorf("status lists %d tables, want %d: %+v", len(st.Tables), len(wordpressTables), st.Tables)
	}
	for _, ts := range st.Tables {
		if ts.State != capture.StateCompleted {
			t.Errorf("%s.%s state %q, want %q", ts.Schema, ts.Table, ts.State, capture.StateCompleted)
		}
		if ts.FullLoadRows == 0 {
			t.Errorf("%s.%s full_load_rows = 0", ts.Schema, ts.Table)
		}
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
