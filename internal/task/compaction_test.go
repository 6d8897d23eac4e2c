package task_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
	"github.com/binlake/binlake/internal/validate"
)

// TestCompactionWhileRunning compacts the change log every second (small
// objects, a 2 s grace period) while the WordPress workload runs. Readers
// read the lake over and over meanwhile: binlake's reader never finds a
// record twice or fails to read an object, and binlake validate never
// reports a mismatched row (rows whose change is on its way are pending).
// In the end the lake holds fewer objects than delivery wrote, and
// replays to exactly the source.
func TestCompactionWhileRunning(t *testing.T) {
	m := startWordPress(t, 120)
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	cfg := testConfig(t, m, "file://"+dir, `delivery: {buffer: {size: 16KiB, interval: 300ms}, prefix: "wordpress-db/",
  compaction: {enabled: true, interval: 1s, target_size: 64KiB, grace: 2s}}
`)
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	tk := task.New(cfg, logger(t))
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	waitFor(t, 60e9, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })

	workCtx, stopWork := context.WithTimeout(t.Context(), 15*time.Second)
	defer stopWork()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := testbed.NewWorkload(db, testbed.WordPressDB, 21).Run(workCtx, 30); err != nil {
			t.Errorf("workload: %v", err)
		}
	}()
	reads, validations := 0, 0
	for workCtx.Err() == nil {
		recs, err := lake.Read(t.Context(), b, cfg.Delivery.Prefix)
		if err != nil {
			t.Fatalf("reading the lake while it is compacted: %v", err)
		}
		if rp := lake.ReplayRecords(recs); len(rp.Duplicates) > 0 {
			t.Fatalf("read %d records twice while the lake is compacted, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
		}
		reads++
		results, err := validate.Run(t.Context(), validate.Options{Config: cfg, Bucket: b, Rounds: 3, Wait: 500 * time.Millisecond})
		if err != nil {
			t.Fatalf("validate: %v", err)
		}
		for _, r := range results {
			if r.State != validate.StateValidated && r.State != validate.StatePending {
				var out strings.Builder
				validate.Print(&out, results)
				t.Fatalf("validate while the lake is compacted:\n%s", out.String())
			}
		}
		validations++
	}
	wg.Wait()
	waitCaughtUp(t, tk, m)
	written := uint64(0)
	for _, ts := range tk.Status().Tables {
		written += ts.Objects
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads and %d validations while the lake was compacted", reads, validations)

	listed, err := lake.ListTask(t.Context(), b, cfg.Delivery.Prefix, cfg.Task, nil)
	if err != nil {
		t.Fatal(err)
	}
	covered := 0
	for _, l := range listed {
		if l.Covered {
			covered++
		}
	}
	if uint64(len(listed)) >= written || reads < 3 {
		t.Errorf("delivery wrote %d objects, the lake holds %d (%d merged away, waiting for the grace period); %d reads", written, len(listed), covered, reads)
	}
	t.Logf("delivery wrote %d objects, the lake holds %d (%d merged away, waiting for the grace period)", written, len(listed), covered)
	assertLakeEqualsSource(t, b, cfg, false)
	results, err := validate.Run(t.Context(), validate.Options{Config: cfg, Bucket: b, Rounds: 1})
	if err != nil || !validate.OK(results) {
		var out strings.Builder
		validate.Print(&out, results)
		t.Errorf("validate: %v\n%s", err, out.String())
	}
}
