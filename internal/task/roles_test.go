package task_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// startNATS starts an external nats-server with JetStream on a free port.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		MaxPayload: 1 << 20, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// TestRolesApart runs capture and delivery as two tasks with their own
// state directories over an external NATS stream, as two machines would:
// the capture process never touches the lake, the deliver process never
// connects to MySQL (its source is unreachable), the deliver process is
// stopped and restarted mid-stream, and the lake replays to exactly the
// source without a duplicate.
func TestRolesApart(t *testing.T) {
	ns := startNATS(t)
	m := startWordPress(t, 200)
	dir := t.TempDir()
	bucket, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("stream:\n  type: nats\n  nats: {urls: [%q]}\n", ns.ClientURL())
	capCfg := testConfig(t, m, "file:///nonexistent/never-written", extra+"role: capture\n")
	delCfg := testConfig(t, m, "file://"+dir, extra+"role: deliver\n")
	delCfg.Source.MySQL.Port = 1 // nothing listens there: delivery must not need the source

	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	work := testbed.NewWorkload(db, testbed.WordPressDB, 3)
	workCtx, stopWork := context.WithCancel(t.Context())
	workDone := make(chan error, 1)
	go func() { workDone <- work.Run(workCtx, 0) }()

	run := func(cfg *config.Config) (*task.Task, func() error) {
		tk := task.New(cfg, logger(t))
		ctx, stop := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- tk.Run(ctx) }()
		return tk, func() error { stop(); return <-done }
	}
	capTask, stopCapture := run(capCfg)
	delTask, stopDeliver := run(delCfg)
	waitFor(t, 90*time.Second, func() bool { return capTask.Status().Detail == "Load complete, replication ongoing" })
	waitFor(t, 30*time.Second, func() bool { return totalObjects(delTask.Status()) > 0 })
	if d := delTask.Status().Detail; d != "Delivering from the stream" {
		t.Errorf("deliver task's detail = %q", d)
	}
	// A deliver process restarted while capture keeps going.
	if err := stopDeliver(); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	time.Sleep(time.Second)
	delTask, stopDeliver = run(delCfg)

	time.Sleep(2 * time.Second)
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(t.Context(), "ALTER TABLE `wordpress-db`.wp_options ADD COLUMN note varchar(20) NULL",
		"UPDATE `wordpress-db`.wp_options SET note = CONCAT('after-alter-', option_id)"); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, capTask, m)
	if err := stopCapture(); err != nil {
		t.Fatalf("capture: %v", err)
	}
	if st := capTask.Status(); st.CapturedRecords == 0 || len(st.Tables) == 0 {
		t.Errorf("capture task status has no captured records or tables: %+v", st)
	}
	if _, err := os.Stat("/nonexistent/never-written"); err == nil {
		t.Errorf("the capture process created its (unused) target")
	}
	// Delivered once everything is in the lake and the counts settle.
	var last []task.TableStatus
	stable := 0
	waitFor(t, 60*time.Second, func() bool {
		st := delTask.Status()
		if len(st.DeliverPartitions) == delCfg.Stream.Partitions && st.BufferedBytes == 0 && reflect.DeepEqual(st.Tables, last) {
			stable++
		} else {
			stable = 0
		}
		last = st.Tables
		return stable >= 6
	})
	if err := stopDeliver(); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	rp := assertLakeEqualsSource(t, bucket, capCfg, false) // capCfg: its source is reachable
	checkValues(t, rp)
}

func totalObjects(st task.Status) uint64 {
	var n uint64
	for _, tb := range st.Tables {
		n += tb.Objects
	}
	return n
}

// TestRoleNeedsSharedStream: a capture-only or deliver-only process on the
// embedded stream could not reach its other half; the config says so.
func TestRoleNeedsSharedStream(t *testing.T) {
	for _, c := range []struct{ role, want string }{
		{"capture", "role: is capture, but the embedded stream lives inside this process"},
		{"deliver", "role: is deliver, but stream.type is embedded"},
		{"both", `role: must be one of all, capture, deliver; got "both"`},
	} {
		yml := "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: a.b}]\ntarget: file:///tmp/x\nstate_dir: /tmp/s\nrole: " + c.role + "\n"
		_, err := config.Parse([]byte(yml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("role %s: error %v, want it to contain %q", c.role, err, c.want)
		}
	}
}
