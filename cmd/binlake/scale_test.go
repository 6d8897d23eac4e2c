package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/testbed"
)

func startRole(t *testing.T, cfgPath, role, statePath, httpAddr, logPath string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// One config for every process; each has its own state_dir and API
	// address, given through the environment the config references.
	cmd := exec.Command(binary, "run", "--config", cfgPath, "--role", role)
	cmd.Env = append(os.Environ(), "BINLAKE_STATE="+statePath, "BINLAKE_HTTP="+httpAddr)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

// TestScaleOutNATSCluster is the scale-out acceptance test: a 3-node NATS
// cluster holding an R3 stream of 6 partitions, one capture process and
// three deliver processes (the real binary) sharing the partitions by
// lease. Mid-run one NATS node is shut down and one deliver worker is
// SIGKILLed; the two left take its partitions over, and the lake replays to
// exactly the source without a duplicate.
func TestScaleOutNATSCluster(t *testing.T) {
	nodes := testbed.NewNATSCluster(t, 3)
	var urls []string
	for _, ns := range nodes {
		urls = append(urls, fmt.Sprintf("%q", ns.ClientURL()))
	}
	m, db := testbed.NewWordPress(t, 400, 7)
	ctx := t.Context()
	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	yml := fmt.Sprintf(`task: wordpress
source:
  mysql: {host: 127.0.0.1, port: %d, user: root}
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
stream:
  type: nats
  partitions: 6
  nats: {urls: [%s], replicas: 3, lease_ttl: 3s}
delivery:
  buffer: {size: 64KiB, interval: 300ms}
  prefix: "wordpress-db/"
target: file://%s
state_dir: ${BINLAKE_STATE}
http: {listen: "${BINLAKE_HTTP}"}
`, m.Port, strings.Join(urls, ", "), lakeDir)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BINLAKE_STATE", filepath.Join(dir, "check-state"))
	t.Setenv("BINLAKE_HTTP", "127.0.0.1:1")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	work := testbed.NewWorkload(db, testbed.WordPressDB, 5)
	workCtx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- work.Run(workCtx, 200) }()

	addr := func() string {
		p, err := testbed.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("127.0.0.1:%d", p)
	}
	capAddr := addr()
	capProc := startRole(t, cfgPath, "capture", filepath.Join(dir, "capture"), capAddr, filepath.Join(dir, "capture.log"))
	type worker struct {
		p    *proc
		addr string
	}
	var workers []worker
	for i := range 3 {
		a := addr()
		workers = append(workers, worker{startRole(t, cfgPath, "deliver", filepath.Join(dir, fmt.Sprint("deliver", i)), a, filepath.Join(dir, fmt.Sprint("deliver", i, ".log"))), a})
	}
	shares := func(ws []worker) ([]int, int) {
		var counts []int
		total := 0
		for _, w := range ws {
			st, err := status(w.addr)
			if err != nil {
				return nil, 0
			}
			counts = append(counts, len(st.DeliverPartitions))
			total += len(st.DeliverPartitions)
		}
		slices.Sort(counts)
		return counts, total
	}
	waitShares := func(ws []worker, want []int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, _ := shares(ws)
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				var logs []string
				for _, w := range ws {
					logs = append(logs, w.p.logTail())
				}
				t.Fatalf("partitions per deliver worker = %v, want %v\n%s", got, want, strings.Join(logs, "\n----\n"))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitShares(workers, []int{2, 2, 2})
	time.Sleep(2 * time.Second) // objects flow from all three

	// One NATS node goes away — one that does not lead the stream: a
	// leader's fail-over can reorder the messages in flight (see
	// TestClusterFailover in internal/stream/natsjs) — and one deliver
	// worker dies.
	victim := 0
	for i, ns := range nodes {
		if !ns.JetStreamIsStreamLeader("$G", "binlake_wordpress") {
			victim = i
		}
	}
	nodes[victim].Shutdown()
	t.Logf("shut down NATS node n%d", victim+1)
	workers[1].p.cmd.Process.Signal(syscall.SIGKILL)
	<-workers[1].p.done
	left := []worker{workers[0], workers[2]}
	waitShares(left, []int{3, 3})
	t.Log("the two deliver workers left took over the dead one's partitions")

	time.Sleep(time.Second)
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatal(err)
	}
	want := m.BinlogEnd(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := status(capAddr)
		if err == nil && st.SourcePosition == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture not caught up with %s: %+v %v\n%s", want, st, err, capProc.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	bucket, err := objstore.NewFile(lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	tables := []string{"wp_comments", "wp_options", "wp_postmeta", "wp_posts", "wp_stats", "wp_users"}
	sources := map[string]map[string]change.Row{}
	for _, name := range tables {
		src, err := capture.ReadTable(ctx, cfg.Source.MySQL, testbed.WordPressDB, name)
		if err != nil {
			t.Fatal(err)
		}
		sources[name] = src
	}
	mismatches := func() (int, lake.Replay) {
		recs, err := lake.Read(ctx, bucket, "")
		if err != nil {
			t.Fatal(err)
		}
		rp := lake.ReplayRecords(recs)
		n := 0
		for _, name := range tables {
			n += len(lake.Compare(rp.Tables[testbed.WordPressDB+"."+name], sources[name]))
		}
		return n, rp
	}
	deadline = time.Now().Add(60 * time.Second)
	for n, _ := mismatches(); n > 0; n, _ = mismatches() {
		if time.Now().After(deadline) {
			break // the assertions below list them
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range []*proc{capProc, workers[0].p, workers[2].p} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("binlake after SIGTERM: %v (want exit 0)\n%s", err, p.logTail())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("binlake did not stop within 60s of SIGTERM\n%s", p.logTail())
		}
	}
	_, rp := mismatches()
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake more than once, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	for _, name := range tables {
		mm := lake.Compare(rp.Tables[testbed.WordPressDB+"."+name], sources[name])
		for i, x := range mm {
			if i == 10 {
				break
			}
			t.Errorf("%s: %s", name, x)
		}
		if len(mm) > 0 {
			t.Errorf("%s: %d mismatches (source %d rows)", name, len(mm), len(sources[name]))
		}
	}
}
