package task_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// storeOutage is how long TestObjectStoreFaults keeps the store down;
// BINLAKE_SOAK=1 makes it the minutes of the issue.
func storeOutage() time.Duration {
	if os.Getenv("BINLAKE_SOAK") != "" {
		return 3 * time.Minute
	}
	return 10 * time.Second
}

// TestObjectStoreFaults runs the pipeline into versitygw through a proxy
// that fails a third of the writes (500, 503, SlowDown, a silent server, a
// connection cut in the middle of the upload or before its answer), during
// the full load and CDC, then takes the store down altogether while the
// source keeps writing. Delivery retries every write; while the store is
// down the status says target_refusing_writes, capture goes on into the
// stream, and delivery's memory does not grow; once the store is back the
// task catches up. No object is ever visible in part (a watcher decodes
// every object as it appears, through the server directly), and the lake
// replays to exactly the source, without a duplicate.
func TestObjectStoreFaults(t *testing.T) {
	m := startWordPress(t, 200)
	srv, proxy, s3yml, direct := s3BehindProxy(t)
	cfg := testConfig(t, m, "s3://lake/cdc", s3yml+"delivery: {buffer: {size: 32KiB, interval: 300ms}, prefix: \"wordpress-db/\"}\n")
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	watchCtx, stopWatch := context.WithCancel(t.Context())
	watched := make(chan []string, 1)
	go func() { watched <- watchObjects(watchCtx, srv.Client(), direct) }()

	proxy.SetRule(testbed.RandomFaults(11, 0.33, testbed.InternalError, testbed.ServiceUnavailable, testbed.SlowDown,
		testbed.Hang, testbed.DropRequest, testbed.DropResponse))
	work := testbed.NewWorkload(db, testbed.WordPressDB, 13)
	workCtx, stopWork := context.WithCancel(t.Context())
	workDone := make(chan error, 1)
	go func() { workDone <- work.Run(workCtx, 50) }()

	tk := task.New(cfg, logger(t))
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	waitFor(t, 90*time.Second, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })
	time.Sleep(3 * time.Second) // CDC through the faults
	t.Logf("faults injected so far: %v", proxy.Injected())

	// The store goes away.
	proxy.Down()
	refusing := func() bool {
		return slices.ContainsFunc(tk.Status().Warnings, func(w task.Warning) bool { return w.Code == task.WarnTargetRefusing })
	}
	waitFor(t, 30*time.Second, refusing)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	st0 := tk.Status()
	maxBuffered := st0.BufferedBytes
	outage := storeOutage()
	for end := time.Now().Add(outage); time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
		st := tk.Status()
		maxBuffered = max(maxBuffered, st.BufferedBytes)
		if st.Status != task.StatusRunning {
			t.Fatalf("with the store down the task is %s (%s), want Running", st.Status, st.Reason)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	st1 := tk.Status()
	var msg string
	for _, w := range st1.Warnings {
		if w.Code == task.WarnTargetRefusing {
			msg = w.Message
		}
	}
	t.Logf("store down %s: %s; buffered %d → max %d bytes; captured %d → %d records; heap %d → %d MiB",
		outage, msg, st0.BufferedBytes, maxBuffered, st0.CapturedRecords, st1.CapturedRecords, before.HeapAlloc>>20, after.HeapAlloc>>20)
	if !strings.Contains(msg, "connection refused") {
		t.Errorf("target_refusing_writes = %q, want it to carry the last error (connection refused)", msg)
	}
	if st1.CapturedRecords <= st0.CapturedRecords {
		t.Errorf("capture stopped with the store down (%d records before, %d after): the stream should take what it reads", st0.CapturedRecords, st1.CapturedRecords)
	}
	if maxBuffered > st0.BufferedBytes {
		t.Errorf("delivery's buffers grew from %d to %d bytes with the store down: it must wait, not read on", st0.BufferedBytes, maxBuffered)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Errorf("the live heap grew by %d MiB during the outage", grew>>20)
	}

	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, tk, m)
	waitFor(t, 90*time.Second, func() bool {
		st := tk.Status()
		return !refusing() && st.StreamBacklog != nil && *st.StreamBacklog == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("task: %v", err)
	}
	proxy.SetRule(nil)
	stopWatch()
	for _, p := range <-watched {
		t.Errorf("an object was visible in part: %s", p)
	}
	injected := proxy.Injected()
	t.Logf("faults injected: %v", injected)
	if len(injected) < 6 {
		t.Errorf("only %d kinds of faults were injected: %v", len(injected), injected)
	}
	assertLakeEqualsSource(t, direct, cfg, false)
}

// s3BehindProxy starts versitygw with a bucket "lake" and a fault proxy in
// front of it. It returns the s3 section of a config that reaches the
// bucket through the proxy (target s3://lake/cdc, a stall timeout of 1s),
// and a bucket for the prefix cdc that reads the server directly.
func s3BehindProxy(t *testing.T) (*testbed.S3Server, *testbed.FaultProxy, string, objstore.Bucket) {
	t.Helper()
	srv := testbed.NewS3(t)
	if err := srv.CreateBucket(t.Context(), "lake"); err != nil {
		t.Fatal(err)
	}
	proxy := testbed.NewFaultProxy(t, srv.Endpoint)
	yml := fmt.Sprintf("s3: {endpoint: %q, region: %s, path_style: true, access_key_id: %s, secret_access_key: %s, stall_timeout: 1s}\n",
		proxy.URL, srv.Region, srv.AccessKey, srv.SecretKey)
	direct, err := objstore.NewS3(t.Context(), "lake", "cdc", objstore.S3Options{
		Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, proxy, yml, direct
}

// watchObjects decodes every object under b as soon as a listing of the
// bucket shows it, until ctx ends, and returns the ones that were not
// whole. Object keys are never rewritten with other content, so each is
// read once (the completeness markers under _binlake/ are, and are skipped).
func watchObjects(ctx context.Context, client *s3.Client, b objstore.Bucket) []string {
	var bad []string
	seen := map[string]bool{}
	for ctx.Err() == nil {
		pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("cdc/wordpress-db/")})
		for pages.HasMorePages() {
			out, err := pages.NextPage(ctx)
			if err != nil {
				break
			}
			for _, o := range out.Contents {
				key := strings.TrimPrefix(aws.ToString(o.Key), "cdc/")
				if seen[key] || strings.Contains(key, "_binlake/") || !lake.IsObject(key) {
					continue
				}
				seen[key] = true
				body, err := b.Get(ctx, key)
				if err == nil {
					_, err = lake.Decode(key, body)
				}
				if err != nil && ctx.Err() == nil {
					bad = append(bad, fmt.Sprintf("%s (%d bytes listed): %v", key, aws.ToInt64(o.Size), err))
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return bad
}
