package main_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestHugeRow passes a 50 MiB row (random bytes: nothing for gzip or S2 to
// shrink) through the real binary on its defaults, as a full-load row, an
// insert and an update: each arrives in the lake byte for byte, through
// the embedded stream's chunking. The binary's peak RSS is logged
// (BENCHMARKS.md records it).
func TestHugeRow(t *testing.T) {
	const size = 50 << 20
	m := testbed.NewMariaDBWith(t, "--max-allowed-packet=256M")
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(50, 50))
	body := func() []byte {
		b := make([]byte, size)
		for i := 0; i+8 <= len(b); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return b
	}
	loaded, inserted, updated := body(), body(), body()
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := m.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.blobs (id INT PRIMARY KEY, body LONGBLOB NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO shop.blobs VALUES (1, ?)", loaded); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	lakeDir := filepath.Join(dir, "lake")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	writeConfig(t, cfgPath, fmt.Sprintf(`task: huge
source: {mysql: {host: 127.0.0.1, port: %d, user: root}}
tables: [{include: "shop.%%"}]
target: file://%s
state_dir: %s
http: {listen: %s}
`, m.Port, lakeDir, filepath.Join(dir, "state"), addr))
	p := start(t, cfgPath, filepath.Join(dir, "binlake.log"))
	waitStatus := func(what string, ok func(st task.Status) bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			st, err := status(addr)
			if err == nil && ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 3 minutes (%+v, %v)\n%s", what, st, err, p.logTail())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitStatus("full load", func(st task.Status) bool { return st.FullLoadPercent == 100 })
	if _, err := db.ExecContext(ctx, "INSERT INTO shop.blobs VALUES (2, ?)", inserted); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "UPDATE shop.blobs SET body = ? WHERE id = 1", updated); err != nil {
		t.Fatal(err)
	}
	waitCaptured(t, p, addr, m.BinlogEnd(t))
	peak, err := testbed.PeakRSS(p.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	stopGracefully(t, p)
	t.Logf("peak RSS of binlake with three 50 MiB rows: %d MiB", peak>>10)

	recs := readLake(t, lakeDir, "")
	got := map[string][]byte{}
	for _, r := range recs {
		if r.Table != "blobs" || r.Type != "data" {
			continue
		}
		s, _ := r.Data["body"].(string)
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("%s record at %s: body: %v", r.Op, r.Position, err)
		}
		got[r.Op+":"+fmt.Sprint(r.Data["id"])] = raw
	}
	for key, wantBody := range map[string][]byte{"load:1": loaded, "insert:2": inserted, "update:1": updated} {
		if g, ok := got[key]; !ok {
			t.Errorf("no %s record in the lake (records: %s)", key, strings.Join(keysOf(got), ", "))
		} else if !bytes.Equal(g, wantBody) {
			t.Errorf("%s: %d bytes in the lake, not the %d written", key, len(g), len(wantBody))
		}
	}
	if len(got) != 3 {
		t.Errorf("records in the lake: %s; want load:1, insert:2, update:1", strings.Join(keysOf(got), ", "))
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
