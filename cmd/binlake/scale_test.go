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

	"github.com/twmb/franz-go/pkg/kfake"

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

// scaleOut is a scale-out scenario: one capture process and several
// deliver processes of the real binary sharing a stream's partitions while
// a workload writes.
type scaleOut struct {
	stream     string // the config's stream section
	target     string // the config's target (and s3) lines; a file:// lake when empty
	bucket     func(t *testing.T) objstore.Bucket
	workers    int
	kill       int   // the deliver worker SIGKILLed mid-run
	before     []int // partitions per worker before the kill, sorted
	after      []int // and after
	disrupt    func(t *testing.T)
	sharedName string // what the workers share, for the log
}

// run starts the processes, waits until the workers hold before, disrupts
// the stream (sc.disrupt) and SIGKILLs a worker, waits until the others
// hold after, stops the workload, and checks that the lake replays to
// exactly the source without a duplicate, and that the processes left exit
// 0 on SIGTERM.
func (sc scaleOut) run(t *testing.T) {
	m, db := testbed.NewWordPress(t, 400, 7)
	ctx := t.Context()
	dir := t.TempDir()
	target := sc.target
	var bucket objstore.Bucket
	if target == "" {
		lakeDir := filepath.Join(dir, "lake")
		target = "target: file://" + lakeDir + "\n"
		b, err := objstore.NewFile(lakeDir)
		if err != nil {
			t.Fatal(err)
		}
		bucket = b
	} else {
		bucket = sc.bucket(t)
	}
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	yml := fmt.Sprintf(`task: wordpress
source:
  mysql: {host: 127.0.0.1, port: %d, user: root}
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
%sdelivery:
  buffer: {size: 64KiB, interval: 300ms}
  prefix: "wordpress-db/"
%sstate_dir: ${BINLAKE_STATE}
http: {listen: "${BINLAKE_HTTP}"}
`, m.Port, sc.stream, target)
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
	for i := range sc.workers {
		a := addr()
		workers = append(workers, worker{startRole(t, cfgPath, "deliver", filepath.Join(dir, fmt.Sprint("deliver", i)), a, filepath.Join(dir, fmt.Sprint("deliver", i, ".log"))), a})
	}
	shares := func(ws []worker) []int {
		var counts []int
		for _, w := range ws {
			st, err := status(w.addr)
			if err != nil {
				return nil
			}
			counts = append(counts, len(st.DeliverPartitions))
		}
		slices.Sort(counts)
		return counts
	}
	waitShares := func(ws []worker, want []int) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			got := shares(ws)
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
	waitShares(workers, sc.before)
	time.Sleep(2 * time.Second) // objects flow from every worker

	if sc.disrupt != nil {
		sc.disrupt(t)
	}
	workers[sc.kill].p.cmd.Process.Signal(syscall.SIGKILL)
	<-workers[sc.kill].p.done
	left := slices.Delete(slices.Clone(workers), sc.kill, sc.kill+1)
	waitShares(left, sc.after)
	t.Logf("the deliver workers left took over the dead one's %s", sc.sharedName)

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
	deadline = time.Now().Add(90 * time.Second)
	for n, _ := mismatches(); n > 0; n, _ = mismatches() {
		if time.Now().After(deadline) {
			break // the assertions below list them
		}
		time.Sleep(500 * time.Millisecond)
	}
	dropped := uint64(0)
	for _, w := range left {
		if st, err := status(w.addr); err == nil {
			dropped += st.DuplicatesDropped
		}
	}
	t.Logf("the lake matches the source; the workers left dropped %d records the lake already held", dropped)
	procs := []*proc{capProc}
	for _, w := range left {
		procs = append(procs, w.p)
	}
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("binlake after SIGTERM: %v (want exit 0)\n%s", err, p.logTail())
			}
		case <-time.After(60 * time.Second):
			tail := p.logTail()
			t.Fatalf("binlake did not stop within 60s of SIGTERM\n%s\ngoroutines:\n%s", tail, p.goroutineDump())
		}
	}
	_, rp := mismatches()
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake more than once, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	total := 0
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
		total += len(sources[name])
	}
	t.Logf("the lake replays to the source's %d rows exactly", total)
	if os.Getenv("BINLAKE_KEEP") != "" {
		exec.Command("cp", "-r", dir, os.Getenv("BINLAKE_KEEP")).Run()
	}
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
	scaleOut{
		stream: fmt.Sprintf(`stream:
  type: nats
  partitions: 6
  nats: {urls: [%s], replicas: 3, lease_ttl: 3s}
`, strings.Join(urls, ", ")),
		workers: 3, kill: 1, before: []int{2, 2, 2}, after: []int{3, 3}, sharedName: "partition leases",
		// One NATS node goes away — one that does not lead the stream: a
		// leader's fail-over can reorder the messages in flight (see
		// TestClusterFailover in internal/stream/natsjs).
		disrupt: func(t *testing.T) {
			victim := 0
			for i, ns := range nodes {
				if !ns.JetStreamIsStreamLeader("$G", "binlake_wordpress") {
					victim = i
				}
			}
			nodes[victim].Shutdown()
			t.Logf("shut down NATS node n%d", victim+1)
		},
	}.run(t)
}

// TestScaleOutKafka is the scale-out acceptance test on Kafka: a 3-broker
// kfake cluster (in the test process) holding a topic of 6 partitions, one
// capture process and three deliver processes sharing the partitions in a
// consumer group. Mid-run one broker is removed (kfake moves its partitions'
// leadership and the group's coordinator to the others) and one deliver
// worker is SIGKILLed; once its session expires the group gives its
// partitions to the two left, which read them from the last committed
// offset and drop what the dead worker had already stored, and the lake
// replays to exactly the source without a duplicate.
func TestScaleOutKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var brokers []string
	for _, a := range c.ListenAddrs() {
		brokers = append(brokers, fmt.Sprintf("%q", a))
	}
	scaleOut{
		stream: fmt.Sprintf(`stream:
  type: kafka
  partitions: 6
  kafka: {brokers: [%s], session_timeout: 6s}
`, strings.Join(brokers, ", ")),
		workers: 3, kill: 1, before: []int{2, 2, 2}, after: []int{3, 3}, sharedName: "partitions (consumer group)",
		disrupt: func(t *testing.T) {
			node := c.CoordinatorFor("binlake.wordpress.deliver")
			if err := c.RemoveNode(node); err != nil {
				t.Fatal(err)
			}
			t.Logf("removed kafka broker %d, the group's coordinator", node)
		},
	}.run(t)
}

// TestScaleOutKinesis is the scale-out acceptance test on Kinesis:
// kinesalite holding a stream of 4 shards (one binlake partition each), one
// capture process and two deliver processes sharing the partitions by
// leases kept in the lake's bucket (versitygw, a real S3 server) with
// conditional writes, and each partition's shard positions next to them.
// Mid-run one worker is SIGKILLed; once its leases expire the other takes
// its shards over from their saved positions, and the lake replays to
// exactly the source without a duplicate.
func TestScaleOutKinesis(t *testing.T) {
	k := testbed.NewKinesalite(t)
	srv := testbed.NewS3(t)
	if err := srv.CreateBucket(t.Context(), "lake"); err != nil {
		t.Fatal(err)
	}
	s3opts := objstore.S3Options{Region: srv.Region, Endpoint: srv.Endpoint, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
	scaleOut{
		stream: fmt.Sprintf(`stream:
  type: kinesis
  partitions: 4
  kinesis: {stream_name: wordpress-cdc, shards: 4, endpoint: %q, region: %s, access_key_id: %s, secret_access_key: %s, lease_ttl: 3s}
`, k.Endpoint, k.Region, k.AccessKey, k.SecretKey),
		target: fmt.Sprintf("target: s3://lake/cdc\ns3: {endpoint: %q, region: %s, path_style: true, access_key_id: %s, secret_access_key: %s}\n",
			srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey),
		bucket: func(t *testing.T) objstore.Bucket {
			b, err := objstore.NewS3(t.Context(), "lake", "cdc", s3opts)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		workers: 2, kill: 0, before: []int{2, 2}, after: []int{4}, sharedName: "shard leases",
	}.run(t)
}
