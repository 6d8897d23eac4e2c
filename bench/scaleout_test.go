//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/binlake/binlake/internal/stream/natsjs"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// scaleRun is one measurement of delivery by w workers.
type scaleRun struct {
	seconds float64 // from the workers' start until every record is in the lake
	steady  float64 // records/s from when every worker ran with its share of the partitions
	rssMiB  float64 // the largest peak RSS among the workers
}

// TestBenchScaleOut measures delivery by 1, 2 and 3 `--role deliver`
// processes sharing a 3-node NATS cluster's stream (R3, 6 partitions): a
// capture process first publishes a sysbench table's full load, then the
// workers drain it into a local lake, and the time until every record is
// stored gives the throughput. Each measurement has a stream of its own
// (a task per run), so that every run starts from a full stream.
//
//	go test -tags bench -run TestBenchScaleOut -v ./bench   # BENCH_SCALE_ROWS=1000000 BENCH_RUNS=3
func TestBenchScaleOut(t *testing.T) {
	if _, err := exec.LookPath("sysbench"); err != nil {
		t.Fatal("sysbench is not installed: run scripts/deps.sh bench (apt-get install -y sysbench)")
	}
	rows := envInts("BENCH_SCALE_ROWS", []int{1000000})[0]
	runs := envInts("BENCH_RUNS", []int{3})[0]
	bin := binlake(t)
	m := testbed.NewMariaDBWith(t, "--innodb-buffer-pool-size=512M")
	if err := m.Exec(t.Context(), "CREATE DATABASE sbscale"); err != nil {
		t.Fatal(err)
	}
	sysbench(t, m, "sbscale", "oltp_read_write", "--tables=1", fmt.Sprintf("--table-size=%d", rows), "prepare")
	nodes := testbed.NewNATSCluster(t, 3)
	var urls []string
	for _, ns := range nodes {
		urls = append(urls, fmt.Sprintf("%q", ns.ClientURL()))
	}
	workers := []int{1, 2, 3}
	results := map[int][]scaleRun{}
	for r := range runs {
		for _, w := range workers {
			sr := scaleOnce(t, bin, m.Port, strings.Join(urls, ", "), nodes[0].ClientURL(), fmt.Sprintf("scale%dr%d", w, r), rows, w)
			t.Logf("%d deliver worker(s), run %d: %.2fs, %.0f records/s overall, %.0f records/s once running, peak RSS %.0f MiB",
				w, r+1, sr.seconds, float64(rows)/sr.seconds, sr.steady, sr.rssMiB)
			results[w] = append(results[w], sr)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Deliver workers on a NATS cluster\n\nWritten by `go test -tags bench -run TestBenchScaleOut -v ./bench` (bench/scaleout_test.go, also part of `make bench`) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %s; everything below shares its cores: MariaDB, the three NATS nodes (in the bench process) and every binlake process\n", machine())
	fmt.Fprintf(&b, "- Command: `BENCH_SCALE_ROWS=%d BENCH_RUNS=%d go test -tags bench -run TestBenchScaleOut -v ./bench`; medians of %d runs\n", rows, runs, runs)
	fmt.Fprintf(&b, "- Setup: a 3-node NATS cluster, stream R3 with `stream.partitions: 6`; a `--role capture` process publishes the full load of a sysbench table of %d rows (batched messages), then N `--role deliver` processes (`lease_ttl: 3s`, `buffer: {size: 1MiB, interval: 1s}` so that the last objects do not wait out the default 60 s, json gzip, a local directory lake) drain it\n", rows)
	b.WriteString("- Seconds: from starting the worker processes until every record is in the lake (the sum of their statuses' `full_load_rows`), start-up and lease taking included; records/s once running: the records left when every worker was `Running` with its even share of the partitions, over the time from then\n\n")
	b.WriteString("| Deliver workers | Records | Seconds | Records/s | Records/s once running | Speed-up (once running) | Seconds of each run | Peak RSS MiB of a worker |\n| ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |\n")
	base := 0.0 // the steady rate of one worker
	for _, w := range workers {
		rs := results[w]
		slices.SortFunc(rs, func(a, b scaleRun) int { return int((a.seconds - b.seconds) * 1e6) })
		med := rs[len(rs)/2]
		steadies := make([]float64, len(rs))
		for i, r := range rs {
			steadies[i] = r.steady
			med.rssMiB = max(med.rssMiB, r.rssMiB)
		}
		slices.Sort(steadies)
		steady := steadies[len(steadies)/2]
		if w == 1 {
			base = steady
		}
		var each []string
		for _, r := range rs {
			each = append(each, fmt.Sprintf("%.2f", r.seconds))
		}
		fmt.Fprintf(&b, "| %d | %d | %.2f | %.0f | %.0f | %.2f× | %s | %.0f |\n", w, rows, med.seconds, float64(rows)/med.seconds, steady, steady/base, strings.Join(each, ", "), med.rssMiB)
	}
	b.WriteString("\nSeconds, records/s and speed-up are medians; the peak RSS is the largest of any worker in any run. The machine is shared (other jobs ran beside the benchmark), so single runs spread widely. Every worker here shares 2 cores with the others, the stream and the source: the figures show what sharing gains on one small machine, not what workers on machines of their own deliver.\n")
	fmt.Print(b.String())
	writeSection(t, "scale-out", b.String())
}

// scaleOnce publishes the table's full load on the stream of a task of its
// own, then measures w deliver workers draining it.
func scaleOnce(t *testing.T, bin string, port int, urls, natsURL, taskName string, rows, w int) scaleRun {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`task: %s
source: {mysql: {host: 127.0.0.1, port: %d, user: root}}
migration: full-load
tables: [{include: "sbscale.%%"}]
stream:
  type: nats
  partitions: 6
  nats: {urls: [%s], replicas: 3, lease_ttl: 3s}
delivery: {buffer: {size: 1MiB, interval: 1s}}
target: file://%s
state_dir: ${BINLAKE_STATE}
http: {listen: "${BINLAKE_HTTP}"}
log: {level: warn}
`, taskName, port, urls, filepath.Join(dir, "lake")))
	// The capture process exits once the load is on the stream.
	capture := exec.Command(bin, "run", "--config", cfg, "--role", "capture")
	capture.Env = append(os.Environ(), "BINLAKE_STATE="+filepath.Join(dir, "capture"), "BINLAKE_HTTP=")
	captureBegan := time.Now()
	if out, err := capture.CombinedOutput(); err != nil {
		t.Fatalf("capture: %v\n%s", err, tail(out))
	}
	t.Logf("%s: the capture process published %d rows to the R3 stream in %.2fs (%.0f rows/s)", taskName, rows, time.Since(captureBegan).Seconds(), float64(rows)/time.Since(captureBegan).Seconds())
	type proc struct {
		cmd  *exec.Cmd
		addr string
		log  string
		peak func() float64
	}
	var ps []proc
	began := time.Now()
	for i := range w {
		p, err := testbed.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		logPath := filepath.Join(dir, fmt.Sprintf("deliver%d.log", i))
		f, _ := os.Create(logPath)
		cmd := exec.Command(bin, "run", "--config", cfg, "--role", "deliver")
		cmd.Env = append(os.Environ(), "BINLAKE_STATE="+filepath.Join(dir, fmt.Sprint("deliver", i)), "BINLAKE_HTTP="+addr)
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		t.Cleanup(func() { cmd.Process.Kill() })
		ps = append(ps, proc{cmd, addr, logPath, watchPeak(cmd.Process.Pid)})
	}
	// sample sums the workers' stored records, and reports whether every
	// worker runs with its even share of the 6 partitions.
	sample := func() (delivered int, shared bool) {
		counts := []int{}
		shared = true
		for _, p := range ps {
			resp, err := http.Get("http://" + p.addr + "/api/v1/status")
			if err != nil {
				return delivered, false
			}
			var st task.Status
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			for _, tb := range st.Tables {
				delivered += int(tb.FullLoadRows)
			}
			counts = append(counts, len(st.DeliverPartitions))
			shared = shared && st.Status == task.StatusRunning
		}
		slices.Sort(counts)
		return delivered, shared && counts[0] == 6/w && counts[len(counts)-1] == (6+w-1)/w
	}
	var t0 time.Time
	var n0 int
	deadline := time.Now().Add(30 * time.Minute)
	for {
		n, shared := sample()
		now := time.Now()
		if t0.IsZero() && shared {
			t0, n0 = now, n
		}
		if n >= rows {
			break
		}
		if now.After(deadline) {
			b, _ := os.ReadFile(ps[0].log)
			t.Fatalf("%d of %d records delivered in 30 minutes\n%s", n, rows, tail(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := scaleRun{seconds: time.Since(began).Seconds()}
	if !t0.IsZero() && time.Since(t0) > 0 {
		r.steady = float64(rows-n0) / time.Since(t0).Seconds()
	}
	for _, p := range ps {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.cmd.Wait(); err != nil {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("deliver worker: %v\n%s", err, tail(b))
		}
		r.rssMiB = max(r.rssMiB, p.peak())
	}
	if k := os.Getenv("BINLAKE_KEEP"); k != "" {
		exec.Command("cp", "-r", dir, filepath.Join(k, taskName)).Run()
	}
	// Free the cluster's disk for the next run.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), natsjs.StreamName(taskName)); err != nil {
		t.Logf("deleting the stream of %s: %v", taskName, err)
	}
	js.DeleteKeyValue(t.Context(), natsjs.LeaseBucket(taskName))
	return r
}
