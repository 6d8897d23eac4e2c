package main_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/testbed"
)

// TestIcebergKilledDuringCommits runs the real binary with delivery.tables
// iceberg (a commit a second per table) while a workload writes, and
// SIGKILLs it four times just as a table's new metadata appears, that is
// while the runs of the other tables are under way, and restarts it. Each
// Iceberg table, read back with iceberg-go (deletes applied), then equals
// the source exactly, without a key twice, and says it is exact.
func TestIcebergKilledDuringCommits(t *testing.T) {
	for _, mode := range []string{"merge-on-read", "copy-on-write"} {
		t.Run(mode, func(t *testing.T) { icebergKills(t, mode) })
	}
}

func icebergKills(t *testing.T, mode string) {
	const kills = 4
	m, db := testbed.NewWordPress(t, 150, 21)
	ctx := t.Context()
	dir := t.TempDir()
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	lakeDir := filepath.Join(dir, "lake")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	cfg := writeConfig(t, cfgPath, fmt.Sprintf(`task: wordpress
source: {mysql: {host: 127.0.0.1, port: %d, user: root}}
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
delivery:
  buffer: {size: 64KiB, interval: 300ms}
  prefix: "wordpress-db/"
  tables: iceberg
  iceberg: {delete_mode: %s}
  snapshot: {interval: 1s}
target: file://%s
state_dir: %s
http: {listen: %s}
`, m.Port, mode, lakeDir, filepath.Join(dir, "state"), addr))
	work := testbed.NewWorkload(db, testbed.WordPressDB, 5)
	workCtx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- work.Run(workCtx, 100) }()

	warehouse := lakehouse.IcebergWarehouse(lakeDir, "wordpress-db/")
	metadata := func() int {
		n := 0
		filepath.WalkDir(warehouse, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, ".metadata.json") {
				n++
			}
			return nil
		})
		return n
	}
	rng := rand.New(rand.NewPCG(uint64(len(mode)), 9))
	logPath := filepath.Join(dir, "binlake.log")
	p := start(t, cfgPath, logPath)
	for k := range kills {
		before := metadata()
		deadline := time.Now().Add(90 * time.Second)
		for metadata() == before {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: no Iceberg commit within 90 s\n%s", k+1, p.logTail())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p = start(t, cfgPath, logPath)
	}
	time.Sleep(2 * time.Second)
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatal(err)
	}
	waitCaptured(t, p, addr, m.BinlogEnd(t))
	stopGracefully(t, p)
	total := 0
	for _, name := range []string{"wp_comments", "wp_options", "wp_postmeta", "wp_posts", "wp_stats", "wp_users"} {
		src, err := capture.ReadTable(ctx, cfg.Source.MySQL, testbed.WordPressDB, name)
		if err != nil {
			t.Fatal(err)
		}
		got, mf, err := lakehouse.ReadIcebergTable(ctx, lakeDir, "wordpress-db/", testbed.WordPressDB, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if mf == nil {
			t.Fatalf("%s: no Iceberg table", name)
		}
		if len(mf.Inexact) > 0 {
			t.Errorf("%s: the table says it is not exact: %+v", name, mf.Inexact)
		}
		if len(got) != len(src) {
			t.Errorf("%s: iceberg-go reads %d rows, the source has %d", name, len(got), len(src))
		}
		bad := 0
		for key, row := range src {
			if have, ok := got[key]; !ok || !reflect.DeepEqual(have, lake.SourceRow(row)) {
				if bad++; bad <= 5 {
					t.Errorf("%s %s: source %v\niceberg %v", name, key, lake.SourceRow(row), have)
				}
			}
		}
		total += len(src)
		t.Logf("%s: %d rows, generation %d", name, len(got), mf.Generation)
	}
	t.Logf("%d SIGKILLs during Iceberg commits (%s); the tables equal the source's %d rows", kills, mode, total)
}
