//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/testbed"
)

// latency is what the latency run measured: commit→stream and
// commit→lake percentiles of the ping rows, in milliseconds.
type latency struct {
	tps                  int
	pings                int
	stream, lake         [3]float64 // p50, p95, p99
	streamSeen, lakeSeen int
	interval             time.Duration
	rssMiB               float64
}

// latencyRun runs sysbench oltp_write_only at a fixed rate and writes a
// ping row with NOW(6) every 10 ms while binlake replicates (CDC, embedded
// stream, delivery.buffer.interval 1s). Each ping's commit→stream latency
// is when its record appears on the stream (a NATS subscriber on the
// embedded server's port), its commit→lake latency when its object
// appears in the lake directory (polled every 20 ms).
func latencyRun(t *testing.T, bin string, m *testbed.MariaDB, tps int, d time.Duration) latency {
	const db = "sblat"
	if err := m.Exec(t.Context(), "CREATE DATABASE IF NOT EXISTS "+db,
		"CREATE TABLE IF NOT EXISTS "+db+".ping (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	sysbench(t, m, db, "oltp_write_only", "--tables=1", "--table-size=10000", "prepare")
	natsPort, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	httpPort, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	const interval = time.Second
	cfg := writeConfig(t, dir, fmt.Sprintf(`task: benchlat
source: {mysql: {host: 127.0.0.1, port: %d, user: root}}
migration: cdc
tables: [{include: "%s.%%"}]
stream: {embedded: {listen: "127.0.0.1:%d"}}
delivery: {buffer: {interval: %s}}
target: file://%s
state_dir: %s
http: {listen: "127.0.0.1:%d"}
log: {level: warn}
`, m.Port, db, natsPort, interval, lakeDir, filepath.Join(dir, "state"), httpPort))
	cmd := exec.Command(bin, "run", "--config", cfg)
	logf, _ := os.Create(filepath.Join(dir, "log"))
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	peak := watchPeak(cmd.Process.Pid)
	// Running once the status has a source position.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var st struct {
			SourcePosition string `json:"source_position"`
		}
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/status", httpPort)); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if st.SourcePosition != "" {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("binlake did not start\n%s", tail(b))
		}
	}

	var mu sync.Mutex
	onStream := map[int64]time.Time{} // ping id → first seen on the stream
	onLake := map[int64]time.Time{}
	at := map[int64]time.Time{} // ping id → NOW(6)
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.Subscribe("binlake.benchlat.*", func(msg *nats.Msg) {
		now := time.Now()
		recs := []stream.Message{{Table: msg.Header.Get("Binlake-Table"), Data: msg.Data}}
		if msg.Header.Get("Binlake-Op") == stream.OpBatch {
			if recs, err = stream.DecodeBatch(&stream.Message{Data: msg.Data}); err != nil {
				return
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			if id, ok := pingID(r.Data); ok {
				if _, seen := onStream[id]; !seen {
					onStream[id] = now
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	ctx, stop := context.WithTimeout(t.Context(), d)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		exec.CommandContext(ctx, "sysbench", "oltp_write_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
			fmt.Sprintf("--mysql-port=%d", m.Port), "--mysql-user=root", "--mysql-db="+db, "--tables=1", "--table-size=10000",
			fmt.Sprintf("--rate=%d", tps), "--threads=4", fmt.Sprintf("--time=%d", int(d.Seconds())), "run").Run()
	}()
	pdb, err := m.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			res, err := pdb.ExecContext(ctx, "INSERT INTO ping (at) VALUES (NOW(6))")
			if err != nil {
				continue
			}
			id, _ := res.LastInsertId()
			var unix float64
			if err := pdb.QueryRowContext(ctx, "SELECT UNIX_TIMESTAMP(at) FROM ping WHERE id = ?", id).Scan(&unix); err == nil {
				mu.Lock()
				at[id] = time.UnixMicro(int64(unix*1e6 + 0.5))
				mu.Unlock()
			}
		}
	}()
	// The lake, polled.
	seenFiles := map[string]bool{}
	poll := func() {
		filepath.Walk(lakeDir, func(path string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || seenFiles[path] || !strings.Contains(path, "ping") || !strings.HasSuffix(path, ".json.gz") {
				return nil
			}
			seenFiles[path] = true
			now := time.Now()
			for _, line := range readGzipLines(path) {
				if id, ok := pingID(line); ok {
					mu.Lock()
					if _, seen := onLake[id]; !seen {
						onLake[id] = now
					}
					mu.Unlock()
				}
			}
			return nil
		})
	}
	for ctx.Err() == nil {
		poll()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	for end := time.Now().Add(interval + 5*time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		poll()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	l := latency{tps: tps, interval: interval, rssMiB: peak()}
	mu.Lock()
	defer mu.Unlock()
	l.pings = len(at)
	pct := func(seen map[int64]time.Time) ([3]float64, int) {
		var ms []float64
		for id, ts := range at {
			if s, ok := seen[id]; ok {
				ms = append(ms, float64(s.Sub(ts).Microseconds())/1000)
			}
		}
		slices.Sort(ms)
		var p [3]float64
		if len(ms) == 0 {
			return p, 0
		}
		for i, q := range []float64{0.50, 0.95, 0.99} {
			p[i] = ms[min(len(ms)-1, int(q*float64(len(ms))))]
		}
		return p, len(ms)
	}
	l.stream, l.streamSeen = pct(onStream)
	l.lake, l.lakeSeen = pct(onLake)
	t.Logf("latency at %d TPS: %d pings; commit→stream p50/p95/p99 %.0f/%.0f/%.0f ms (%d seen); commit→lake %.0f/%.0f/%.0f ms (%d seen)",
		tps, l.pings, l.stream[0], l.stream[1], l.stream[2], l.streamSeen, l.lake[0], l.lake[1], l.lake[2], l.lakeSeen)
	return l
}

// pingID returns the id of a ping record's JSON.
func pingID(rec []byte) (int64, bool) {
	if !bytes.Contains(rec, []byte(`"table-name":"ping"`)) {
		return 0, false
	}
	var r struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(rec, &r) != nil || r.Data.ID == 0 {
		return 0, false
	}
	return r.Data.ID, true
}

func readGzipLines(path string) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil
	}
	b, _ := io.ReadAll(zr)
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

// TestBenchLatency runs the latency part alone:
// go test -tags bench -run TestBenchLatency -v ./bench
func TestBenchLatency(t *testing.T) {
	m := testbed.NewMariaDB(t)
	latencyRun(t, binlake(t), m, 1000, time.Duration(envInts("BENCH_LATENCY_SECONDS", []int{20})[0])*time.Second)
}

// TestBenchFullLoad runs one full load alone (BENCH_ROWS, first size), for
// profiling with BINLAKE_CPUPROFILE / BINLAKE_MEMPROFILE:
// go test -tags bench -run TestBenchFullLoad -v ./bench
func TestBenchFullLoad(t *testing.T) {
	size := envInts("BENCH_ROWS", []int{2000000})[0]
	m := testbed.NewMariaDBWith(t, "--innodb-buffer-pool-size=1G")
	if err := m.Exec(t.Context(), "CREATE DATABASE sbfl"); err != nil {
		t.Fatal(err)
	}
	sysbench(t, m, "sbfl", "oltp_read_write", "--tables=1", fmt.Sprintf("--table-size=%d", size), "prepare")
	out := t.TempDir()
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`task: bench
source: {mysql: {host: 127.0.0.1, port: %d, user: root}}
migration: full-load
tables: [{include: "sbfl.%%"}]
target: file://%s
state_dir: %s
log: {level: warn}
`, m.Port, out, filepath.Join(t.TempDir(), "state")))
	r := run(t, binlake(t), "run", "--config", cfg)
	t.Logf("full load %d rows: %.2fs (%.0f rows/s), peak RSS %.0f MiB", size, r.seconds, float64(size)/r.seconds, r.rssMiB)
}
