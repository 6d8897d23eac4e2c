package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "binlake-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "binlake")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building binlake: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

func start(t *testing.T, cfgPath, logPath string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// goroutineDump stops a process that hangs with SIGQUIT, whose Go runtime
// then prints every goroutine's stack, and returns the stacks that pass
// through binlake's own packages: where it waits.
func (p *proc) goroutineDump() string {
	p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
	b, _ := os.ReadFile(p.log)
	i := bytes.Index(b, []byte("SIGQUIT"))
	if i < 0 {
		return "(no goroutine dump)"
	}
	var out strings.Builder
	for _, g := range strings.Split(string(b[i:]), "\n\n") {
		if strings.Contains(g, "binlake/internal") && out.Len() < 30000 {
			out.WriteString(g + "\n\n")
		}
	}
	return out.String()
}

func status(addr string) (task.Status, error) {
	var s task.Status
	resp, err := http.Get("http://" + addr + "/api/v1/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("status %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// TestKillAndRestart runs the real binary, SIGKILLs it at random moments
// while a workload and a ledger write — at least 5 times during the chunked
// full load and 15 times during CDC, with small buffers, so kills land
// before, during and after object uploads — restarts it each time, and
// finally stops it with SIGTERM. The lake must hold every record exactly
// once and replay to exactly the source; the ledger's rows, which only
// count up, must show every change in the lake with no gap and no repeat
// (zero duplicates, zero gaps); the drained stop must exit 0, and the
// status API must answer.
func TestKillAndRestart(t *testing.T) {
	const loadKills, cdcKills = 5, 15
	m, db := testbed.NewWordPress(t, 1500, 11)
	ctx := t.Context()
	ledger, err := testbed.NewLedger(ctx, db, testbed.WordPressDB, 300, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	lakeDir, stateDir := filepath.Join(dir, "lake"), filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	t.Setenv("TEST_MYSQL_PASSWORD", "")
	yml := fmt.Sprintf(`task: wordpress
source:
  mysql:
    host: 127.0.0.1
    port: %d
    user: root
    password: ${TEST_MYSQL_PASSWORD}
migration: full-load-and-cdc
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
full_load: {chunk_size: 20}
stream:
  type: embedded
delivery:
  buffer: {size: 16KiB, interval: 200ms}
  format: json
  compression: gzip
  prefix: "wordpress-db/"
target: file://%s
state_dir: %s
http:
  listen: %s
`, m.Port, lakeDir, stateDir, addr)
	cfg := writeConfig(t, cfgPath, yml)
	stopWriters := startWriters(t, testbed.NewWorkload(db, testbed.WordPressDB, 5), 200, ledger, 100)

	// loading reports whether the checkpoint has a table still to load.
	loading := func() bool {
		var st capture.State
		if _, err := checkpoint.Load(filepath.Join(stateDir, "capture.json"), &st); err != nil || len(st.Tables) == 0 {
			return true // no checkpoint yet: the load has not started
		}
		for _, tp := range st.Tables {
			if tp.State != capture.StateCompleted {
				return true
			}
		}
		return false
	}
	checkpointTime := func() time.Time {
		fi, err := os.Stat(filepath.Join(stateDir, "capture.json"))
		if err != nil {
			return time.Time{}
		}
		return fi.ModTime()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	logPath := filepath.Join(dir, "binlake.log")
	inLoad, inCDC := 0, 0
	for kills := 0; inLoad < loadKills || inCDC < cdcKills; kills++ {
		if kills == 3*(loadKills+cdcKills) {
			t.Fatalf("after %d kills, %d were during the load and %d during CDC", kills, inLoad, inCDC)
		}
		saved := checkpointTime()
		p := start(t, cfgPath, logPath)
		// While the load runs, a kill comes up to 100 ms after this run
		// saved its first chunk (so the load moves on, and is cut often);
		// then at up to 2 s into CDC.
		wait := time.Duration(rng.IntN(100)) * time.Millisecond
		if inLoad >= loadKills {
			wait = time.Duration(300+rng.IntN(1700)) * time.Millisecond
		} else {
			for checkpointTime().Equal(saved) {
				select {
				case err := <-p.done:
					t.Fatalf("binlake exited early: %v\n%s", err, p.logTail())
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("binlake exited early: %v\n%s", err, p.logTail())
		case <-time.After(wait):
		}
		phase := "CDC"
		if loading() {
			phase = "full load"
			inLoad++
		} else {
			inCDC++
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		t.Logf("killed binlake after %s, during the %s", wait, phase)
	}
	p := start(t, cfgPath, logPath)
	stopWriters()
	want := m.BinlogEnd(t)
	deadline := time.Now().Add(90 * time.Second)
	var st task.Status
	for {
		st, err = status(addr)
		// The position alone may be the checkpoint's, before capture runs.
		if err == nil && st.SourcePosition == want && st.Detail == "Load complete, replication ongoing" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up with %s (Running, Load complete, replication ongoing): %+v %v\n%s", want, st, err, p.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("binlake after SIGTERM: %v (want exit 0)\n%s", err, p.logTail())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("binlake did not drain within 60s of SIGTERM\n%s", p.logTail())
	}

	if os.Getenv("BINLAKE_KEEP") != "" {
		exec.Command("cp", "-r", dir, "/tmp/killtest").Run()
	}
	assertLakeExact(t, cfg, lakeDir, ledger)
}

// writeConfig writes yml to path and loads it.
func writeConfig(t *testing.T, path, yml string) *config.Config {
	t.Helper()
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startWriters runs the workload and the ledger at the given rates (steps
// a second) until the function it returns is called, which fails t if
// either failed.
func startWriters(t *testing.T, work *testbed.Workload, workRate int, ledger *testbed.Ledger, ledgerRate int) func() {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 2)
	go func() { done <- work.Run(ctx, workRate) }()
	go func() { done <- ledger.Run(ctx, ledgerRate) }()
	stopped := false
	t.Cleanup(stop)
	return func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		stop()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// wordpressTables are the tables the tests' selection rules select.
var wordpressTables = []string{"wp_comments", "wp_options", "wp_postmeta", "wp_posts", "wp_stats", "wp_users"}

// readLake reads every record under prefix in the lake in the local
// directory lakeDir.
func readLake(t *testing.T, lakeDir, prefix string) []lake.Record {
	t.Helper()
	bucket, err := objstore.NewFile(lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := lake.Read(t.Context(), bucket, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// assertLakeExact reads the lake in lakeDir and fails t unless it holds no
// record twice, replays to exactly the source's WordPress tables and
// ledger, and shows every change of the ledger.
func assertLakeExact(t *testing.T, cfg *config.Config, lakeDir string, ledger *testbed.Ledger) {
	t.Helper()
	ctx := t.Context()
	recs := readLake(t, lakeDir, "")
	rp := lake.ReplayRecords(recs)
	t.Logf("%d records in the lake, %d duplicates", len(recs), len(rp.Duplicates))
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake more than once, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	ledger.Verify(t, recs)
	for _, name := range append(wordpressTables, testbed.LedgerTable) {
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
	}
}

// TestBadConfigExitCode checks that a bad config fails with exit code 2 and
// a message naming the key.
func TestBadConfigExitCode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("task: x\nsource: {mysql: {host: h}}\ntables: [{include: \"a.%\"}]\ntarget: file:///tmp/x\ndelivery: {buffr: {size: 1MiB}}\n"), 0o644)
	out, err := exec.Command(binary, "run", "--config", path).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want code 2; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "buffr") {
		t.Errorf("output does not name the unknown key 'buffr':\n%s", out)
	}
}

// waitCaptured waits until the binary serving the API at addr has captured
// the source's binlog up to want.
func waitCaptured(t *testing.T, p *proc, addr, want string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := status(addr)
		if err == nil && st.SourcePosition == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up with %s: %+v %v\n%s", want, st, err, p.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopGracefully sends SIGTERM and waits (2 minutes at most) for a clean
// exit: everything captured delivered, checkpoints saved.
func stopGracefully(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("binlake after SIGTERM: %v (want exit 0)\n%s", err, p.logTail())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("binlake did not stop within 2 minutes of SIGTERM\n%s", p.logTail())
	}
}
