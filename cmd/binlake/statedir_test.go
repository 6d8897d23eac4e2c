package main_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	cfg := writeConfig(t, cfgPath, yml)
	stopWriters := startWriters(t, testbed.NewWorkload(db, testbed.WordPressDB, 9), 50, ledger, 50)

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
		out, _ := os.ReadFile(logPath)
		last := string(out[strings.LastIndex(string(out), "binlake: "):]) // this run's error
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
	stopWriters()
	waitCaptured(t, p, addr, m.BinlogEnd(t))
	stopGracefully(t, p)

	assertLakeExact(t, cfg, lakeDir, ledger)
}
