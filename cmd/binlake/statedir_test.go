package main_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/testbed"
)

// TestStateDirFaults runs the real binary with its state_dir on a small
// tmpfs of its own while a workload and a ledger write, and takes the disk
// away twice: it fills up while binlake runs (the embedded stream and the
// checkpoints fail to write), then it is read-only when binlake starts (a
// tmpfs busy with open files cannot be remounted read-only under a running
// process). Each time binlake must stop by itself (exit 1) within a minute
// with an error that names state_dir, the cause and the remedy, instead of
// waiting for ever; once the disk takes writes again it must start, catch
// up and leave a lake equal to the source with every change of the ledger
// in it, exactly once.
func TestStateDirFaults(t *testing.T) {
	m, db := testbed.NewWordPress(t, 200, 5)
	fs := testbed.NewTmpfs(t, 64<<20)
	ctx := t.Context()
	ledger, err := testbed.NewLedger(ctx, db, testbed.WordPressDB, 100, 9)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	lakeDir, stateDir := filepath.Join(dir, "lake"), filepath.Join(fs.Dir, "state")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	yml := fmt.Sprintf(`task: disk
source:
  mysql: {host: 127.0.0.1, port: %d, user: root, password: ""}
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
stream: {embedded: {max_bytes: 16MiB}}
delivery:
  buffer: {size: 64KiB, interval: 300ms}
target: file://%s
state_dir: %s
http:
  listen: %s
`, m.Port, lakeDir, stateDir, addr)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	work := testbed.NewWorkload(db, testbed.WordPressDB, 9)
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	workDone := make(chan error, 2)
	go func() { workDone <- work.Run(workCtx, 50) }()
	go func() { workDone <- ledger.Run(workCtx, 50) }()

	logPath := filepath.Join(dir, "binlake.log")
	waitRunning := func(p *proc, what string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			st, err := status(addr)
			if err == nil && st.Detail == "Load complete, replication ongoing" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not running: %+v %v\n%s", what, st, err, p.logTail())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, fault := range []struct {
		name, cause  string
		whileRunning bool
		break_, fix  func() error
	}{
		{"disk full", "no space left on device", true, fs.Fill, fs.Free},
		{"read-only", "read-only file system", false, func() error { return fs.ReadOnly(true) }, func() error { return fs.ReadOnly(false) }},
	} {
		if !fault.whileRunning {
			if err := fault.break_(); err != nil {
				t.Fatal(err)
			}
		}
		offset := logSize(logPath)
		p := start(t, cfgPath, logPath)
		if fault.whileRunning {
			waitRunning(p, "before "+fault.name)
			time.Sleep(time.Second) // CDC under way
			if err := fault.break_(); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		select {
		case err := <-p.done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("%s: binlake exited with %v, want exit status 1", fault.name, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: binlake still runs a minute later\n%s", fault.name, p.logTail())
		}
		out := logSince(logPath, offset)
		last := out[strings.LastIndex(out, "binlake: "):]
		t.Logf("%s: exited after %s:\n%s", fault.name, time.Since(start).Round(100*time.Millisecond), last)
		for _, want := range []string{fault.cause, "state_dir " + stateDir + " cannot be written: free space on its disk (or make it writable), then start binlake again"} {
			if !strings.Contains(last, want) {
				t.Errorf("%s: the error does not say %q", fault.name, want)
			}
		}
		if err := fault.fix(); err != nil {
			t.Fatal(err)
		}
	}

	p := start(t, cfgPath, logPath)
	waitRunning(p, "after the faults")
	stopWork()
	for range 2 {
		if err := <-workDone; err != nil {
			t.Fatal(err)
		}
	}
	want := m.BinlogEnd(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := status(addr)
		if err == nil && st.SourcePosition == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up with %s: %+v %v\n%s", want, st, err, p.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Fatalf("binlake after SIGTERM: %v\n%s", err, p.logTail())
	}

	bucket, err := objstore.NewFile(lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := lake.Read(ctx, bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	rp := lake.ReplayRecords(recs)
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake more than once, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	gaps, checked := ledger.Check(recs)
	t.Logf("ledger: %d changes at the source, %d records in the lake", ledger.Changes(), checked)
	for i, g := range gaps {
		if i == 10 {
			break
		}
		t.Errorf("ledger: %s", g)
	}
	for _, name := range []string{"wp_comments", "wp_options", "wp_postmeta", "wp_posts", "wp_stats", "wp_users", testbed.LedgerTable} {
		src, err := capture.ReadTable(ctx, cfg.Source.MySQL, testbed.WordPressDB, name)
		if err != nil {
			t.Fatal(err)
		}
		if mm := lake.Compare(rp.Tables[testbed.WordPressDB+"."+name], src); len(mm) > 0 {
			t.Errorf("%s: %d mismatches, e.g. %s", name, len(mm), mm[0])
		}
	}
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what was written to path after offset.
func logSince(path string, offset int64) string {
	b, _ := os.ReadFile(path)
	if int64(len(b)) < offset {
		return string(b)
	}
	return string(b[offset:])
}
