package task_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestStreamDownAndBack is the stream's backpressure: the external
// nats-server goes away in the middle of CDC while the source keeps
// writing. Capture waits instead of failing or dropping (its position
// stands still while the binlog grows, and status says why), delivery
// waits too; when the server is back on the same port and store, both go
// on and the lake replays to exactly the source, without a duplicate.
func TestStreamDownAndBack(t *testing.T) {
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	startNATS := func() *server.Server {
		t.Helper()
		ns, err := server.NewServer(&server.Options{
			Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, NoSigs: true, NoLog: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(30 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		return ns
	}
	ns := startNATS()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()

	m := startWordPress(t, 100)
	dir := t.TempDir()
	bucket, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, m, "file://"+dir, fmt.Sprintf("stream:\n  type: nats\n  nats: {urls: [\"nats://127.0.0.1:%d\"]}\n", port))
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	tk := task.New(cfg, logger(t))
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	waitFor(t, 90*time.Second, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })

	work := testbed.NewWorkload(db, testbed.WordPressDB, 5)
	workCtx, stopWork := context.WithCancel(t.Context())
	workDone := make(chan error, 1)
	go func() { workDone <- work.Run(workCtx, 40) }()
	time.Sleep(time.Second)

	ns.Shutdown()
	ns.WaitForShutdown()
	waiting := func() bool {
		return slices.ContainsFunc(tk.Status().Warnings, func(w task.Warning) bool { return w.Code == task.WarnStreamWaiting })
	}
	waitFor(t, 30*time.Second, waiting)
	// Capture's queue of records on their way to the stream fills, then
	// its position stands still.
	held := steadyPosition(t, tk, 15*time.Second)
	time.Sleep(2 * time.Second)
	st := tk.Status()
	if st.Status != task.StatusRunning {
		t.Fatalf("with the stream down the task is %s (%s), want it Running and waiting", st.Status, st.Reason)
	}
	if st.SourcePosition != held {
		t.Errorf("capture went on from %s to %s with the stream down: it must wait", held, st.SourcePosition)
	}
	if end := m.BinlogEnd(t); end == held {
		t.Errorf("the binlog did not grow during the outage (end %s): the test shows nothing", end)
	}

	ns = startNATS()
	time.Sleep(2 * time.Second)
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, tk, m)
	waitFor(t, 30*time.Second, func() bool { return !waiting() })
	stop()
	if err := <-done; err != nil {
		t.Fatalf("task: %v", err)
	}
	assertLakeEqualsSource(t, bucket, cfg, false)
}

// steadyPosition waits until the task's source position has not moved for
// a second and returns it.
func steadyPosition(t *testing.T, tk *task.Task, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	last, since := tk.Status().SourcePosition, time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if p := tk.Status().SourcePosition; p != last {
			last, since = p, time.Now()
		} else if time.Since(since) >= time.Second {
			return p
		}
	}
	t.Fatalf("the source position kept moving for %s (now %s) with the stream unavailable", d, last)
	return ""
}
