package task_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestDeliveryOutageOutlastsRetention keeps the object store down for
// four times the embedded stream's max_age while the source writes more
// than its max_bytes: undelivered records must neither expire nor be
// pushed out. Capture pauses before the stream is full (its position stands
// still while the binlog grows, and the status says why), delivery catches
// up once the store is back, and the lake replays to exactly the source
// with every change of the ledger in it.
func TestDeliveryOutageOutlastsRetention(t *testing.T) {
	const maxAge = 3 * time.Second
	outage := 4 * maxAge
	if os.Getenv("BINLAKE_SOAK") != "" {
		outage = 2 * time.Minute
	}
	m := startWordPress(t, 50)
	_, proxy, s3yml, bucket := s3BehindProxy(t)
	cfg := testConfig(t, m, "s3://lake/cdc", s3yml+fmt.Sprintf(`stream: {type: embedded, embedded: {max_age: %s, max_bytes: 4MiB}}
delivery: {buffer: {size: 64KiB, interval: 200ms}, prefix: "wordpress-db/"}
`, maxAge))
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	ledger, err := testbed.NewLedger(ctx, db, testbed.WordPressDB, 100, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(ctx, "CREATE TABLE `wordpress-db`.bulk (id int AUTO_INCREMENT PRIMARY KEY, body mediumtext NOT NULL)"); err != nil {
		t.Fatal(err)
	}

	tk := task.New(cfg, logger(t))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- tk.Run(runCtx) }()
	waitFor(t, 60*time.Second, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })

	// The writers: the ledger, and rows of 24 KiB, about 1 MiB/s.
	workCtx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 2)
	go func() { workDone <- ledger.Run(workCtx, 50) }()
	go func() {
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-workCtx.Done():
				workDone <- nil
				return
			case <-tick.C:
			}
			if _, err := db.ExecContext(workCtx, "INSERT INTO `wordpress-db`.bulk (body) VALUES (?)", incompressible(i, 24<<10)); err != nil && workCtx.Err() == nil {
				workDone <- err
				return
			}
		}
	}()
	time.Sleep(time.Second)

	proxy.Down()
	start := time.Now()
	retention := func() (task.Warning, bool) {
		for _, w := range tk.Status().Warnings {
			if w.Code == task.WarnStreamRetention {
				return w, true
			}
		}
		return task.Warning{}, false
	}
	waitFor(t, outage, func() bool { _, ok := retention(); return ok })
	// Capture waits while the binlog grows: it may go on only as far as
	// removing records delivered before the outage (older than max_age)
	// frees room.
	waitFor(t, outage, func() bool {
		w, _ := retention()
		return strings.Contains(w.Message, "capture is paused")
	})
	held := tk.Status().SourcePosition
	var maxStream uint64
	for time.Since(start) < outage {
		time.Sleep(200 * time.Millisecond)
		if b := tk.Status().StreamBytes; b != nil {
			maxStream = max(maxStream, *b)
		}
	}
	waitFor(t, 10*time.Second, func() bool {
		w, _ := retention()
		return strings.Contains(w.Message, "capture is paused")
	})
	st := tk.Status()
	w, _ := retention()
	end := m.BinlogEnd(t)
	t.Logf("after %s down: %s; position %s (%s when it first paused), binlog at %s; the stream held at most %d bytes",
		time.Since(start).Round(time.Second), w.Message, st.SourcePosition, held, end, maxStream)
	if st.Status != task.StatusRunning {
		t.Fatalf("the task is %s (%s), want Running", st.Status, st.Reason)
	}
	if behind := binlogOffset(t, end) - binlogOffset(t, st.SourcePosition); behind < 4<<20 {
		t.Errorf("capture is %d bytes of binlog behind the source after the outage: it read on instead of waiting (the source wrote about 1 MiB/s)", behind)
	}
	if maxStream == 0 || maxStream > 4<<20 {
		t.Errorf("the stream held up to %d bytes, want some and at most its max_bytes of 4 MiB", maxStream)
	}

	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	stopWork()
	for range 2 {
		if err := <-workDone; err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, tk, m)
	waitFor(t, 60*time.Second, func() bool { _, ok := retention(); return !ok })
	// Delivered records leave the stream once older than max_age.
	waitFor(t, 30*time.Second, func() bool {
		st := tk.Status()
		return st.StreamBytes != nil && *st.StreamBytes < 64<<10
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("task: %v", err)
	}

	recs, err := lake.Read(ctx, bucket, cfg.Delivery.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	ledger.Verify(t, recs)
	rp := assertLakeEqualsSource(t, bucket, cfg, false)
	for _, name := range []string{testbed.LedgerTable, "bulk"} {
		src, err := capture.ReadTable(ctx, cfg.Source.MySQL, testbed.WordPressDB, name)
		if err != nil {
			t.Fatal(err)
		}
		if mm := lake.Compare(rp.Tables[testbed.WordPressDB+"."+name], src); len(mm) > 0 {
			t.Errorf("%s: %d mismatches (source %d rows), e.g. %s", name, len(mm), len(src), mm[0])
		}
	}
}

// binlogOffset is the offset of a "file:offset" binlog position (the test
// stays in one binlog file).
func binlogOffset(t *testing.T, pos string) int64 {
	t.Helper()
	var off int64
	if _, err := fmt.Sscan(pos[strings.LastIndexByte(pos, ':')+1:], &off); err != nil {
		t.Fatalf("binlog position %q: %v", pos, err)
	}
	return off
}

// incompressible returns n bytes of text that S2 (the stream's batch
// compression) cannot shrink much: base64 of pseudo-random bytes, seeded by
// i.
func incompressible(i, n int) string {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	b := make([]byte, n*3/4)
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return base64.StdEncoding.EncodeToString(b)[:n]
}
