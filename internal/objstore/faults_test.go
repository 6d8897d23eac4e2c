package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/testbed"
)

// faultyS3 is versitygw behind a testbed.FaultProxy, with a bucket that
// talks to the proxy (5 MiB parts, a stall timeout of stall).
func faultyS3(t *testing.T, stall time.Duration) (*objstore.S3, *testbed.FaultProxy, *testbed.S3Server) {
	t.Helper()
	isolateAWSConfig(t)
	srv := testbed.NewS3(t)
	if err := srv.CreateBucket(t.Context(), testBucket); err != nil {
		t.Fatal(err)
	}
	proxy := testbed.NewFaultProxy(t, srv.Endpoint)
	b, err := objstore.NewS3(t.Context(), testBucket, "", objstore.S3Options{
		Region: srv.Region, Endpoint: proxy.URL, PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
		PartSize: objstore.MinPartSize, StallTimeout: stall,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, proxy, srv
}

// once returns a rule that gives fault to the first request match accepts
// and passes every other.
func once(fault testbed.Fault, match func(*http.Request) bool) func(*http.Request) testbed.Fault {
	var mu sync.Mutex
	done := false
	return func(r *http.Request) testbed.Fault {
		mu.Lock()
		defer mu.Unlock()
		if done || !match(r) {
			return testbed.Pass
		}
		done = true
		return fault
	}
}

func isPut(r *http.Request) bool { return r.Method == http.MethodPut }

func isPart(n string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == n }
}

// TestS3Faults sends every fault the proxy knows, once, into a single
// PutObject and into the second part of a multipart upload: the S3 client
// retries each by itself (a silent server is cut by the stall timeout), the
// Put succeeds and the object holds exactly what was put.
func TestS3Faults(t *testing.T) {
	const stall = time.Second
	b, proxy, _ := faultyS3(t, stall)
	ctx := t.Context()
	small := bytes.Repeat([]byte("small object\n"), 20000) // 260 KB
	big := make([]byte, 2*objstore.MinPartSize+12345)      // three parts
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, fault := range []testbed.Fault{testbed.InternalError, testbed.ServiceUnavailable, testbed.SlowDown,
		testbed.Hang, testbed.DropRequest, testbed.DropResponse} {
		for _, tc := range []struct {
			name  string
			body  []byte
			match func(*http.Request) bool
		}{
			{"put", small, isPut},
			{"part", big, isPart("2")},
		} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, fault), func(t *testing.T) {
				proxy.SetRule(once(fault, tc.match))
				defer proxy.SetRule(nil)
				key := fmt.Sprintf("%s-%d", tc.name, fault)
				start := time.Now()
				if err := b.Put(ctx, key, tc.body); err != nil {
					t.Fatalf("Put with one %s: %v", fault, err)
				}
				took := time.Since(start)
				if got := proxy.Injected()[fault]; got == 0 {
					t.Fatalf("the proxy injected no %s: the test shows nothing", fault)
				}
				if fault == testbed.Hang && took < stall {
					t.Errorf("Put through a hung request took %s, less than the stall timeout %s", took, stall)
				}
				if took > 20*time.Second {
					t.Errorf("Put with one %s took %s", fault, took)
				}
				got, err := b.Get(ctx, key)
				if err != nil || !bytes.Equal(got, tc.body) {
					t.Errorf("Get after a Put with one %s: %d bytes, %v; want the %d bytes put", fault, len(got), err, len(tc.body))
				}
			})
		}
	}
}

// TestS3RandomFaults puts objects of one, a few and many parts while 40% of
// the write requests fail in random ways, each Put retried like delivery
// does until it succeeds, while another client watches the bucket: no
// object is ever visible with anything but its whole body, and at the end
// every object is there, exactly.
func TestS3RandomFaults(t *testing.T) {
	b, proxy, srv := faultyS3(t, time.Second)
	ctx := t.Context()
	proxy.SetRule(testbed.RandomFaults(7, 0.4, testbed.InternalError, testbed.ServiceUnavailable, testbed.SlowDown,
		testbed.Hang, testbed.DropRequest, testbed.DropResponse))

	want := map[string][]byte{}
	for i := range 12 {
		size := []int{100, 300 << 10, int(objstore.MinPartSize) + 1000, 2*int(objstore.MinPartSize) + 7}[i%4]
		body := make([]byte, size)
		for j := range body {
			body[j] = byte(i + j*13)
		}
		want[fmt.Sprintf("obj/%02d", i)] = body
	}

	// The watcher reads through the server directly, not the proxy.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var partial []string
	watched := make(chan int)
	go func() {
		seen := 0
		defer func() { watched <- seen }()
		direct := srv.Client()
		for watchCtx.Err() == nil {
			out, err := direct.ListObjectsV2(watchCtx, &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String("obj/")})
			if err != nil {
				continue
			}
			for _, o := range out.Contents {
				key := aws.ToString(o.Key)
				if aws.ToInt64(o.Size) != int64(len(want[key])) {
					partial = append(partial, fmt.Sprintf("%s listed with %d bytes, want %d", key, aws.ToInt64(o.Size), len(want[key])))
				}
				seen++
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	retries := 0
	for key := range want {
		for attempt := 1; ; attempt++ {
			err := b.Put(ctx, key, want[key])
			if err == nil {
				break
			}
			retries++
			if attempt == 20 {
				t.Fatalf("Put %s failed 20 times: %v", key, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	stopWatch()
	seen := <-watched
	proxy.SetRule(nil)

	injected := proxy.Injected()
	t.Logf("faults injected: %v; Puts retried by the caller: %d; objects seen by the watcher: %d", injected, retries, seen)
	if len(injected) < 5 {
		t.Errorf("only %d kinds of faults were injected: %v", len(injected), injected)
	}
	for _, p := range partial {
		t.Errorf("partial object visible: %s", p)
	}
	got := map[string]int64{}
	if err := b.List(ctx, "", func(key string, size int64) error { got[key] = size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d objects in the bucket, want %d: %v", len(got), len(want), got)
	}
	for key, body := range want {
		data, err := b.Get(ctx, key)
		if err != nil || !bytes.Equal(data, body) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes put", key, len(data), err, len(body))
		}
	}
	ups, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(testBucket)})
	if err != nil {
		t.Fatal(err)
	}
	// An upload whose creation answer was dropped is unknown to the client
	// and stays open (invisible; a lifecycle rule removes it on AWS).
	t.Logf("%d multipart uploads left open", len(ups.Uploads))
}

// TestS3StoreDown: with the server unreachable, Put fails (after the
// SDK's retries) instead of waiting for ever, and succeeds once it is back.
func TestS3StoreDown(t *testing.T) {
	b, proxy, _ := faultyS3(t, time.Second)
	ctx := t.Context()
	proxy.Down()
	start := time.Now()
	err := b.Put(ctx, "down", []byte("x"))
	if err == nil {
		t.Fatal("Put to a store that is down succeeded")
	}
	t.Logf("Put while down failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, context.Canceled) && time.Since(start) > 30*time.Second {
		t.Errorf("Put while down took %s to fail", time.Since(start))
	}
	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "down", []byte("x")); err != nil {
		t.Fatalf("Put after the store came back: %v", err)
	}
}
