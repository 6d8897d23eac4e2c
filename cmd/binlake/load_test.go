package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestKillMidTableResumes SIGKILLs the real binary while the chunked full
// load is in the middle of wp_postmeta (small chunks, a workload writing),
// restarts it, and checks that the table's load resumed at its next chunk
// instead of starting over: the log says so, and the lake holds far fewer
// than twice the table's rows as load records. The lake must replay to
// exactly the source, without a duplicate.
func TestKillMidTableResumes(t *testing.T) {
	const table, chunkSize = "wp_postmeta", 50
	m, db := testbed.NewWordPress(t, 2000, 5)
	ctx := t.Context()
	dir := t.TempDir()
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	lakeDir, stateDir := filepath.Join(dir, "lake"), filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	yml := fmt.Sprintf(`task: resume
source:
  mysql: {host: 127.0.0.1, port: %d, user: root, password: ""}
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
full_load: {chunk_size: %d, parallelism: 2}
delivery:
  buffer: {size: 64KiB, interval: 300ms}
  prefix: "wordpress-db/"
target: file://%s
state_dir: %s
http:
  listen: %s
`, m.Port, chunkSize, lakeDir, stateDir, addr)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	work := testbed.NewWorkload(db, testbed.WordPressDB, 9)
	workCtx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- work.Run(workCtx, 100) }()

	logPath := filepath.Join(dir, "binlake.log")
	p := start(t, cfgPath, logPath)
	progress := func() *capture.TableProgress {
		var st capture.State
		if _, err := checkpoint.Load(filepath.Join(stateDir, "capture.json"), &st); err != nil {
			t.Fatal(err)
		}
		return st.Tables[testbed.WordPressDB+"."+table]
	}
	// Kill once more than half of the table's chunks are published.
	var killed capture.TableProgress
	deadline := time.Now().Add(60 * time.Second)
	for {
		if pr := progress(); pr != nil && pr.State == capture.StateFullLoad && pr.Chunks >= 40 {
			killed = *pr
			break
		} else if pr != nil && pr.State == capture.StateCompleted {
			t.Fatalf("%s was loaded before the test could kill binlake in the middle of it", table)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's load did not get far enough: %+v\n%s", table, progress(), p.logTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	t.Logf("killed binlake with %s at chunk %d (%d rows, last key %q)", table, killed.Chunks, killed.LoadRows, killed.LastKey)
	if len(killed.LastKey) == 0 {
		t.Fatalf("the checkpoint of a partly loaded table holds no last key: %+v", killed)
	}

	p = start(t, cfgPath, logPath)
	waitStatus := func(what string, cond func(task.Status) bool) task.Status {
		deadline := time.Now().Add(90 * time.Second)
		for {
			st, err := status(addr)
			if err == nil && cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v %v\n%s", what, st, err, p.logTail())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitStatus("load not complete", func(st task.Status) bool { return st.Detail == "Load complete, replication ongoing" })
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatal(err)
	}
	want := m.BinlogEnd(t)
	waitStatus("not caught up with "+want, func(st task.Status) bool { return st.SourcePosition == want })
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("binlake after SIGTERM: %v\n%s", err, p.logTail())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("binlake did not drain\n%s", p.logTail())
	}

	logText, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	resumed := false
	for _, line := range strings.Split(string(logText), "\n") {
		if strings.Contains(line, `msg="full load resumes after the last chunk published"`) && strings.Contains(line, "table="+testbed.WordPressDB+"."+table) {
			resumed = true
			t.Logf("%s", line)
		}
	}
	if !resumed {
		t.Errorf("the log does not say that %s's load resumed", table)
	}

	recs := readLake(t, lakeDir, "")
	rp := lake.ReplayRecords(recs)
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake more than once, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	loads := 0
	for _, r := range recs {
		if r.Table == table && r.Op == "load" {
			loads++
		}
	}
	for _, name := range []string{"wp_comments", "wp_options", "wp_postmeta", "wp_posts", "wp_stats", "wp_users"} {
		src, err := capture.ReadTable(ctx, cfg.Source.MySQL, testbed.WordPressDB, name)
		if err != nil {
			t.Fatal(err)
		}
		mm := lake.Compare(rp.Tables[testbed.WordPressDB+"."+name], src)
		for i, x := range mm {
			if i == 10 {
				break
			}
			t.Errorf("%s: %s", name, x)
		}
		if len(mm) > 0 {
			t.Errorf("%s: %d mismatches", name, len(mm))
		}
		if name == table {
			t.Logf("%s: %d load records in the lake for %d rows at the source", table, loads, len(src))
			if loads >= 2*len(src) || loads > len(src)+int(killed.LoadRows)/2 {
				t.Errorf("%s: %d load records in the lake for %d rows: the load started over after the kill at row %d", table, loads, len(src), killed.LoadRows)
			}
		}
	}
}
