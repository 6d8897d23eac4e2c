package kinesis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	kds "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/kinesis"
	"github.com/binlake/binlake/internal/stream/streamtest"
	"github.com/binlake/binlake/internal/testbed"
)

func client(k *testbed.Kinesalite) *kds.Client {
	return kds.New(kds.Options{
		BaseEndpoint: aws.String(k.Endpoint),
		Region:       k.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(k.AccessKey, k.SecretKey, ""),
		// Fail fast when kinesalite is stopped; the backend retries.
		RetryMaxAttempts: 1,
	})
}

var streamN atomic.Int64

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func open(t *testing.T, api kinesis.API, k *testbed.Kinesalite, partitions, shards int, stateDir string, tune ...func(*kinesis.Options)) *kinesis.Stream {
	t.Helper()
	opts := kinesis.Options{
		StreamName: fmt.Sprintf("binlake-test-%d", streamN.Add(1)),
		Region:     k.Region, Endpoint: k.Endpoint,
		AccessKeyID: k.AccessKey, SecretAccessKey: k.SecretKey,
		Shards: shards, Create: true, Partitions: partitions, StateDir: stateDir,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if api != nil {
		opts.Client = api
	}
	for _, f := range tune {
		f(&opts)
	}
	st, err := kinesis.Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	k := testbed.NewKinesalite(t)
	streamtest.Run(t, func(t *testing.T, partitions int) streamtest.Backend {
		dir := t.TempDir()
		st := open(t, nil, k, partitions, partitions, dir)
		return streamtest.Backend{
			Producer: func() stream.Producer { return st.Producer() },
			Consumer: func() stream.Consumer {
				c, err := st.Consumer(t.Context(), "deliver")
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
		}
	}, streamtest.Options{Messages: 2000})
}

func TestCreateWithoutCreate(t *testing.T) {
	k := testbed.NewKinesalite(t)
	_, err := kinesis.Open(t.Context(), kinesis.Options{
		StreamName: "missing", Region: k.Region, Endpoint: k.Endpoint,
		AccessKeyID: k.AccessKey, SecretAccessKey: k.SecretKey, Create: false, Partitions: 1,
	})
	if err == nil {
		t.Fatal("Open of a missing stream with create: false succeeded")
	}
}

func TestHashKeys(t *testing.T) {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	for _, n := range []int{1, 4, 7, 1024} {
		prev := big.NewInt(-1)
		for p := range n {
			h, ok := new(big.Int).SetString(kinesis.HashKey(p, n), 10)
			if !ok || h.Cmp(prev) <= 0 || h.Cmp(space) >= 0 {
				t.Fatalf("HashKey(%d, %d) = %s", p, n, kinesis.HashKey(p, n))
			}
			// In slice p of n.
			lo := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(p))), big.NewInt(int64(n)))
			hi := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(p+1))), big.NewInt(int64(n)))
			if h.Cmp(lo) < 0 || h.Cmp(hi) >= 0 {
				t.Fatalf("HashKey(%d, %d) outside its slice", p, n)
			}
			prev = h
		}
	}
}

// flaky fails some PutRecords entries the way Kinesis does under
// throttling: the entry is not written and reported failed while later
// entries of the same call are written. It can also fail whole calls.
type flaky struct {
	kinesis.API
	mu           sync.Mutex
	rnd          *rand.Rand
	entryFail    float64
	callFail     float64
	failed, sent int
}

func (f *flaky) PutRecords(ctx context.Context, in *kds.PutRecordsInput, opts ...func(*kds.Options)) (*kds.PutRecordsOutput, error) {
	f.mu.Lock()
	if f.rnd.Float64() < f.callFail {
		f.mu.Unlock()
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
	}
	fail := make([]bool, len(in.Records))
	var pass []types.PutRecordsRequestEntry
	for i, r := range in.Records {
		fail[i] = f.rnd.Float64() < f.entryFail
		if fail[i] {
			f.failed++
		} else {
			pass = append(pass, r)
		}
	}
	f.sent += len(in.Records)
	f.mu.Unlock()
	var got []types.PutRecordsResultEntry
	if len(pass) > 0 {
		cp := *in
		cp.Records = pass
		out, err := f.API.PutRecords(ctx, &cp, opts...)
		if err != nil {
			return nil, err
		}
		got = out.Records
	}
	out := &kds.PutRecordsOutput{}
	j := 0
	for i := range in.Records {
		if fail[i] {
			out.Records = append(out.Records, types.PutRecordsResultEntry{
				ErrorCode: aws.String("ProvisionedThroughputExceededException"), ErrorMessage: aws.String("injected"),
			})
			out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
		} else {
			out.Records = append(out.Records, got[j])
			j++
		}
	}
	return out, nil
}

// checkOrder reads everything and checks each partition is complete and in
// order, with nothing twice.
func checkOrder(t *testing.T, c stream.Consumer, partitions, per int) {
	t.Helper()
	next := make([]int, partitions)
	for i := range next {
		next[i] = 1
	}
	total := 0
	deadline := time.Now().Add(2 * time.Minute)
	for total < partitions*per && time.Now().Before(deadline) {
		got, err := c.Fetch(t.Context(), 1000, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got {
			if m.Position != streamtest.Position(m.Partition, next[m.Partition]) {
				t.Fatalf("partition %d: got %s, want message %d", m.Partition, m.Position, next[m.Partition])
			}
			next[m.Partition]++
			total++
			if err := m.Ack(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if total != partitions*per {
		t.Fatalf("read %d messages, want %d (%v)", total, partitions*per, next)
	}
	if extra, err := c.Fetch(t.Context(), 10, 300*time.Millisecond); err != nil || len(extra) > 0 {
		t.Fatalf("after all: %d more, err %v", len(extra), err)
	}
}

// TestPartialFailuresKeepOrder forces failed PutRecords entries (and
// failed calls) and checks that no partition is reordered or loses a
// record: early copies written behind a failed entry are dropped.
func TestPartialFailuresKeepOrder(t *testing.T) {
	k := testbed.NewKinesalite(t)
	f := &flaky{API: client(k), rnd: rand.New(rand.NewPCG(7, 9)), entryFail: 0.05, callFail: 0.05}
	const parts, per = 4, 600
	st := open(t, f, k, parts, 2, t.TempDir(), func(o *kinesis.Options) { o.MaxRecordBytes = 1200 })
	prod := st.Producer()
	for n := 1; n <= per; n++ {
		for p := range parts {
			m := streamtest.Msg(p, n)
			if n%97 == 0 {
				m.Data = make([]byte, 2500) // chunks, with MaxRecordBytes below
			}
			if err := prod.Publish(t.Context(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := prod.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.failed == 0 || prod.Resent == 0 {
		t.Fatalf("no entry failed (%d) or none accepted behind a failed one (%d): the test proves nothing", f.failed, prod.Resent)
	}
	c, err := st.Consumer(t.Context(), "deliver")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkOrder(t, c, parts, per)
	t.Logf("%d entries failed, %d sent again, %d accepted early copies sent again; consumer dropped %d",
		f.failed, prod.Retries, prod.Resent, c.Dropped)
	if c.Dropped < prod.Resent {
		t.Errorf("consumer dropped %d records, fewer than the %d early copies", c.Dropped, prod.Resent)
	}
}

// TestReshard splits a shard while records flow: the consumer reads the
// parent to its end before the children, so order holds.
func TestReshard(t *testing.T) {
	k := testbed.NewKinesalite(t)
	api := client(k)
	const parts, per = 4, 200
	st := open(t, nil, k, parts, 1, t.TempDir())
	prod := st.Producer()
	c, err := st.Consumer(t.Context(), "deliver")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) { publishRange(t, prod, parts, from, to) }
	publish(1, per/2)
	// Read a little of the parent before the split.
	got, err := c.Fetch(t.Context(), 10, time.Second)
	if err != nil || len(got) == 0 {
		t.Fatalf("fetch: %d, %v", len(got), err)
	}
	ls, err := api.ListShards(t.Context(), &kds.ListShardsInput{StreamName: aws.String(streamName(t, api))})
	if err != nil {
		t.Fatal(err)
	}
	mid := new(big.Int).Lsh(big.NewInt(1), 127).String()
	if _, err := api.SplitShard(t.Context(), &kds.SplitShardInput{
		StreamName: aws.String(streamName(t, api)), ShardToSplit: ls.Shards[0].ShardId, NewStartingHashKey: aws.String(mid),
	}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, api)
	publish(per/2+1, per)
	ls, err = api.ListShards(t.Context(), &kds.ListShardsInput{StreamName: aws.String(streamName(t, api))})
	if err != nil || len(ls.Shards) != 3 {
		t.Fatalf("after the split: %d shards, %v", len(ls.Shards), err)
	}
	c.Close()
	// A new consumer on the same state: the fetched-but-unacknowledged
	// records come again, then everything in order.
	c, err = st.Consumer(t.Context(), "deliver")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkOrder(t, c, parts, per)
}

// publishRange publishes messages from to to of every partition, and
// flushes.
func publishRange(t *testing.T, prod stream.Producer, parts, from, to int) {
	t.Helper()
	for n := from; n <= to; n++ {
		for p := range parts {
			if err := prod.Publish(t.Context(), streamtest.Msg(p, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := prod.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func streamName(t *testing.T, api *kds.Client) string {
	t.Helper()
	out, err := api.ListStreams(t.Context(), &kds.ListStreamsInput{})
	if err != nil || len(out.StreamNames) != 1 {
		t.Fatalf("streams: %v, %v", out, err)
	}
	return out.StreamNames[0]
}

func waitActive(t *testing.T, api *kds.Client) {
	t.Helper()
	for range 100 {
		out, err := api.DescribeStreamSummary(t.Context(), &kds.DescribeStreamSummaryInput{StreamName: aws.String(streamName(t, api))})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("stream not ACTIVE after the split")
}

// TestKinesaliteRestart stops kinesalite in the middle of publishing and
// starts it again: the producer waits and resends, nothing is lost or
// reordered.
func TestKinesaliteRestart(t *testing.T) {
	k := testbed.NewKinesalite(t)
	const parts, per = 2, 2000
	st := open(t, client(k), k, parts, 2, t.TempDir())
	prod := st.Producer()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	flushed := make(chan struct{}, per)
	go func() {
		for n := 1; n <= per; n++ {
			for p := range parts {
				if err := prod.Publish(ctx, streamtest.Msg(p, n)); err != nil {
					done <- err
					return
				}
			}
			if n%50 == 0 {
				if err := prod.Flush(ctx); err != nil {
					done <- err
					return
				}
				flushed <- struct{}{}
			}
		}
		done <- prod.Flush(ctx)
	}()
	<-flushed
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("publishing across the restart: %v", err)
	}
	c, err := st.Consumer(ctx, "deliver")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkOrder(t, c, parts, per)
}

// memState is a kinesis.StateStore in memory: the JSON a partition's
// consumer would leave in the lake's bucket.
type memState struct {
	mu   sync.Mutex
	data []byte
}

func (m *memState) Load(_ context.Context, v any) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return false, nil
	}
	return true, json.Unmarshal(m.data, v)
}

func (m *memState) Save(_ context.Context, v any) error {
	b, err := json.Marshal(v)
	m.mu.Lock()
	m.data = b
	m.mu.Unlock()
	return err
}

func (m *memState) String() string { return "memory" }

// TestPartitionConsumer reads single partitions of a stream whose 2 shards
// carry 4 partitions: a partition's consumer hands out its partition's
// records only, in order; closed after acknowledging half of what it read,
// it leaves its positions in its StateStore, where the partition's next
// consumer (another worker's) starts: the unacknowledged records come
// again, then the rest, and nothing twice before that point.
func TestPartitionConsumer(t *testing.T) {
	k := testbed.NewKinesalite(t)
	const parts = 4
	st := open(t, nil, k, parts, 2, t.TempDir())
	prod := st.Producer()
	publish := func(from, to int) { publishRange(t, prod, parts, from, to) }
	publish(1, 100)
	// read takes want records of partition p from c, checking their order
	// from next on, and acknowledges those up to ackTo.
	read := func(c stream.Consumer, p, next, want, ackTo int) int {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for got := 0; got < want; {
			if time.Now().After(deadline) {
				t.Fatalf("partition %d: read %d records, want %d", p, got, want)
			}
			msgs, err := c.Fetch(t.Context(), want-got, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if m.Partition != p || m.Position != streamtest.Position(p, next) {
					t.Fatalf("partition %d's consumer got %s of partition %d, want message %d", p, m.Position, m.Partition, next)
				}
				if next <= ackTo {
					m.Ack(t.Context())
				}
				next++
				got++
			}
		}
		return next
	}
	state := &memState{}
	c1, err := st.PartitionConsumer(t.Context(), 1, state)
	if err != nil {
		t.Fatal(err)
	}
	read(c1, 1, 1, 60, 50)
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	publish(101, 150)
	c2, err := st.PartitionConsumer(t.Context(), 1, state)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	read(c2, 1, 51, 100, 150)
	if extra, err := c2.Fetch(t.Context(), 10, 500*time.Millisecond); err != nil || len(extra) > 0 {
		t.Fatalf("after partition 1's last record: %d more, err %v", len(extra), err)
	}
	c3, err := st.PartitionConsumer(t.Context(), 2, &memState{})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	read(c3, 2, 1, 150, 150)
}

// TestLingerSendsIdleRecords publishes a few records, far from a full
// batch, and never flushes: they must reach the stream anyway, as the last
// changes of a source that goes idle must (capture flushes only at its
// checkpoints, which an idle source does not reach).
func TestLingerSendsIdleRecords(t *testing.T) {
	k := testbed.NewKinesalite(t)
	st := open(t, nil, k, 2, 2, t.TempDir())
	prod := st.Producer()
	defer prod.Close()
	for n := 1; n <= 3; n++ {
		if err := prod.Publish(t.Context(), streamtest.Msg(n%2, n)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := st.Consumer(t.Context(), "deliver")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		msgs, err := c.Fetch(t.Context(), 10, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, m.Position)
		}
	}
	if len(got) != 3 {
		t.Fatalf("read %d of 3 records published without a flush", len(got))
	}
}
