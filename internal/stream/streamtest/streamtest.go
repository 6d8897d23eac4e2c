// Package streamtest is the conformance suite every stream backend runs:
// the contract of package stream, checked the same way on memstream, NATS
// JetStream (embedded and external), Kinesis (kinesalite) and Kafka (kfake).
package streamtest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/stream"
)

// Backend is a new, empty stream of a backend. Producer returns a new
// producer each time, as a restarted process makes (a new Kinesis session,
// a new Kafka producer id). Consumer returns a consumer reading with the one
// durable position of the stream, as a restarted process does; the suite
// closes one before it opens the next.
type Backend struct {
	Producer func() stream.Producer
	Consumer func() stream.Consumer
}

// Open returns a new, empty stream of the given number of partitions. The
// backend is closed with t.Cleanup.
type Open func(t *testing.T, partitions int) Backend

// Options tune the suite to a backend's speed.
type Options struct {
	// Messages is the number published by the order test (default 4000).
	Messages int
	// BigPayload is the size of the largest Data checked byte for byte
	// (default 3 MiB).
	BigPayload int
}

// Modes are the two ways the task writes a stream: "dms", one DMS record
// per message (stream.dms_compatible), and "batched", several records of a
// partition per message (stream.Batcher). Both read through an Unbatcher,
// as delivery does.
var Modes = []string{"dms", "batched"}

// batchOptions are small batches, so that the suite's few records make
// several of them.
var batchOptions = stream.BatchOptions{MaxRecords: 64, MaxBytes: 64 << 10, Linger: 20 * time.Millisecond}

// inMode wraps open's backend for a mode. Every producer it returns is
// registered in *batchers (batched mode), to check that batching happened.
func inMode(open Open, mode string, batchers *[]*stream.Batcher) Open {
	return func(t *testing.T, partitions int) Backend {
		b := open(t, partitions)
		prod, cons := b.Producer, b.Consumer
		return Backend{
			Producer: func() stream.Producer {
				p := prod()
				if mode == "batched" {
					bp := stream.NewBatcher(p, batchOptions)
					*batchers = append(*batchers, bp)
					t.Cleanup(func() { bp.Close() })
					return bp
				}
				return p
			},
			Consumer: func() stream.Consumer { return stream.NewUnbatcher(cons()) },
		}
	}
}

// Run runs the suite as subtests of t, in both modes.
func Run(t *testing.T, open Open, opts Options) {
	if opts.Messages == 0 {
		opts.Messages = 4000
	}
	if opts.BigPayload == 0 {
		opts.BigPayload = 3 << 20
	}
	for _, mode := range Modes {
		t.Run(mode, func(t *testing.T) {
			var batchers []*stream.Batcher
			open := inMode(open, mode, &batchers)
			batched := mode == "batched"
			t.Run("OrderUnderConcurrentPublish", func(t *testing.T) { testOrder(t, open, opts.Messages) })
			t.Run("FieldsRoundTrip", func(t *testing.T) { testFields(t, open, opts.BigPayload) })
			t.Run("LongKeyAndTable", func(t *testing.T) { testLongKey(t, open) })
			t.Run("RedeliveryAfterRestart", func(t *testing.T) { testRedelivery(t, open) })
			t.Run("FirstConsumerReadsFromOldest", func(t *testing.T) { testFromOldest(t, open) })
			t.Run("ResendsDroppedByPosition", func(t *testing.T) { testResend(t, open) })
			t.Run("Pending", func(t *testing.T) { testPending(t, open, !batched) })
			t.Run("PublishOutlivesItsContext", func(t *testing.T) { testCancelledPublish(t, open) })
			t.Run("EmptyFetchReturnsAfterWait", func(t *testing.T) { testEmptyFetch(t, open) })
			if batched {
				var recs, msgs uint64
				for _, b := range batchers {
					r, m := b.Counts()
					recs += r
					msgs += m
				}
				t.Logf("batched mode: %d records in %d messages", recs, msgs)
				if recs == 0 || msgs*4 > recs {
					t.Errorf("batched mode: %d records went out in %d messages: not batched", recs, msgs)
				}
			}
		})
	}
}

// Position is the stream-position of message n of a partition: fixed-width
// decimal, so byte order is number order, in the shape capture writes.
func Position(partition, n int) string {
	return fmt.Sprintf("0000/%010d/%016d/1/%010d/0000000000", 1, n, partition)
}

// Msg is message n of a partition, with a DMS-like JSON body.
func Msg(partition, n int) *stream.Message {
	pos := Position(partition, n)
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Microsecond * 1001)
	table := fmt.Sprintf("db.t%d", n%3)
	return &stream.Message{
		Partition:  partition,
		Table:      table,
		Position:   pos,
		Op:         "insert",
		CommitTime: at,
		Key:        fmt.Sprintf("%s.%d", table, n),
		Data: fmt.Appendf(nil, `{"data":{"id":%d},"metadata":{"record-type":"data","operation":"insert","schema-name":"db","table-name":"t%d","commit-timestamp":%q,"stream-position":%q}}`,
			n, n%3, at.Format("2006-01-02T15:04:05.000000Z"), pos),
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// fetchAll fetches until want messages arrived (acking them when ack is
// set) or until d passed.
func fetchAll(t *testing.T, c stream.Consumer, want int, ack bool, d time.Duration) []*stream.Delivered {
	t.Helper()
	ctx := ctxT(t, d+10*time.Second)
	deadline := time.Now().Add(d)
	var out []*stream.Delivered
	for len(out) < want && time.Now().Before(deadline) {
		got, err := c.Fetch(ctx, 1000, 500*time.Millisecond)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for _, m := range got {
			if ack {
				if err := m.Ack(ctx); err != nil {
					t.Fatalf("ack: %v", err)
				}
			}
		}
		out = append(out, got...)
	}
	return out
}

func closeC(t *testing.T, c stream.Consumer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("closing consumer: %v", err)
	}
}

// testOrder publishes from one goroutine per partition at once and checks
// that each partition reads back complete and in publish order.
func testOrder(t *testing.T, open Open, total int) {
	const parts = 4
	be := open(t, parts)
	prod, consumer := be.Producer(), be.Consumer
	per := total / parts
	ctx := ctxT(t, 5*time.Minute)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, parts)
	for p := range parts {
		wg.Go(func() {
			for n := 1; n <= per; n++ {
				if err := prod.Publish(ctx, Msg(p, n)); err != nil {
					errs <- fmt.Errorf("publish %d/%d: %w", p, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	pubDur := time.Since(start)

	c := consumer()
	defer closeC(t, c)
	start = time.Now()
	got := fetchAll(t, c, parts*per, true, 3*time.Minute)
	conDur := time.Since(start)
	t.Logf("%d messages: published and flushed at %.0f msg/s, consumed and acknowledged at %.0f msg/s",
		len(got), float64(parts*per)/pubDur.Seconds(), float64(len(got))/conDur.Seconds())

	next := make([]int, parts)
	for i := range next {
		next[i] = 1
	}
	for _, m := range got {
		p := m.Partition
		if p < 0 || p >= parts {
			t.Fatalf("message on partition %d of %d", p, parts)
		}
		if m.Position != Position(p, next[p]) {
			t.Fatalf("partition %d: got %s, want %s (message %d): order broken or message lost", p, m.Position, Position(p, next[p]), next[p])
		}
		next[p]++
	}
	for p, n := range next {
		if n-1 != per {
			t.Errorf("partition %d: read %d messages, want %d", p, n-1, per)
		}
	}
	if extra, err := c.Fetch(ctx, 10, 200*time.Millisecond); err != nil || len(extra) != 0 {
		t.Errorf("fetch after everything was read: %d messages, err %v", len(extra), err)
	}
}

// testFields checks that every field survives the trip, including a Data
// of several MiB (larger than NATS's and Kinesis's 1 MiB message limits).
func testFields(t *testing.T, open Open, big int) {
	be := open(t, 3)
	prod, consumer := be.Producer(), be.Consumer
	ctx := ctxT(t, 3*time.Minute)
	rnd := rand.New(rand.NewPCG(1, 2))
	payload := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
		return b
	}
	want := []*stream.Message{
		Msg(0, 1),
		{Partition: 2, Table: "wordpress-db.wp_posts", Position: Position(2, 7), Op: "update",
			CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), Key: "wordpress-db.wp_posts.7",
			Data: []byte(`{"data":{"post_title":"日本 🎉 é"}}`)},
		{Partition: 1, Table: "db.blobs", Position: Position(1, 1), Op: "insert",
			CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 999999000, time.UTC), Key: "db.blobs.1", Data: payload(big)},
		{Partition: 1, Table: "db.blobs", Position: Position(1, 2), Op: "delete",
			CommitTime: time.Date(1999, 12, 31, 23, 59, 59, 1000, time.UTC), Key: "db.blobs.2", Data: payload(1 << 20)},
		{Partition: 1, Table: "db.t", Position: Position(1, 3), Op: "truncate-table",
			CommitTime: time.Unix(0, 0).UTC(), Data: []byte(`{}`)},
		{Partition: 0, Table: "db.t", Position: Position(0, 2), Op: "load",
			CommitTime: time.Date(2026, 6, 1, 0, 0, 0, 1000, time.UTC), Key: "db.t.1", Data: payload(1<<20 + 1)},
	}
	for _, m := range want {
		if err := prod.Publish(ctx, m); err != nil {
			t.Fatalf("publish %s: %v", m.Position, err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	c := consumer()
	defer closeC(t, c)
	got := fetchAll(t, c, len(want), true, time.Minute)
	byPos := map[string]*stream.Delivered{}
	for _, g := range got {
		if _, dup := byPos[g.Position]; dup {
			t.Errorf("%s delivered twice", g.Position)
		}
		byPos[g.Position] = g
	}
	for _, w := range want {
		g := byPos[w.Position]
		if g == nil {
			t.Errorf("%s (%d bytes) not delivered", w.Position, len(w.Data))
			continue
		}
		if g.Partition != w.Partition || g.Table != w.Table || g.Op != w.Op {
			t.Errorf("%s: got partition %d table %q op %q, want %d %q %q", w.Position, g.Partition, g.Table, g.Op, w.Partition, w.Table, w.Op)
		}
		if !g.CommitTime.Equal(w.CommitTime) {
			t.Errorf("%s: commit time %s, want %s", w.Position, g.CommitTime.Format(time.RFC3339Nano), w.CommitTime.Format(time.RFC3339Nano))
		}
		if g.Key != "" && g.Key != w.Key {
			t.Errorf("%s: key %q, want %q", w.Position, g.Key, w.Key)
		}
		if !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: data of %d bytes differs from the %d bytes published", w.Position, len(g.Data), len(w.Data))
		}
	}
	// Partition 1's messages in publish order.
	var p1 []string
	for _, g := range got {
		if g.Partition == 1 {
			p1 = append(p1, g.Position)
		}
	}
	if !slices.IsSorted(p1) {
		t.Errorf("partition 1 out of order: %v", p1)
	}
}

// testRedelivery acknowledges some messages, "restarts" (a new consumer on
// the same durable position), and checks that every unacknowledged message
// comes again, in order, and that no message at or below the acknowledged
// prefix does.
func testRedelivery(t *testing.T, open Open) {
	be := open(t, 2)
	prod, consumer := be.Producer(), be.Consumer
	ctx := ctxT(t, 2*time.Minute)
	const n = 20
	for i := 1; i <= n; i++ {
		for p := range 2 {
			if err := prod.Publish(ctx, Msg(p, i)); err != nil {
				t.Fatal(err)
			}
		}
		if i == 8 || i == n {
			// (In batched mode, 1..8 make a batch of their own.)
			if err := prod.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := consumer()
	got := fetchAll(t, c, 2*n, false, time.Minute)
	if len(got) != 2*n {
		t.Fatalf("first consumer got %d messages, want %d", len(got), 2*n)
	}
	// Acknowledge 1..8 of each partition, and 12 (above a gap).
	acked := map[string]bool{}
	for _, m := range got {
		var i int
		fmt.Sscanf(m.Position[16:], "%d", &i)
		if i <= 8 || i == 12 {
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			acked[m.Position] = true
		}
	}
	closeC(t, c)

	c = consumer()
	defer closeC(t, c)
	again := fetchAll(t, c, 2*(n-9), true, time.Minute) // 12 may or may not come
	// Wait a little more for extras that should not come.
	more, err := c.Fetch(ctx, 100, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	again = append(again, more...)
	seen := map[string]bool{}
	last := map[int]string{}
	for _, m := range again {
		if m.Position <= Position(m.Partition, 8) {
			t.Errorf("%s was acknowledged below the floor but delivered again", m.Position)
		}
		if m.Position <= last[m.Partition] {
			t.Errorf("partition %d: %s after %s", m.Partition, m.Position, last[m.Partition])
		}
		last[m.Partition] = m.Position
		seen[m.Position] = true
	}
	for i := 9; i <= n; i++ {
		for p := range 2 {
			if pos := Position(p, i); !acked[pos] && !seen[pos] {
				t.Errorf("%s was not acknowledged and not delivered again", pos)
			}
		}
	}
	closeC(t, c)

	// Everything acknowledged now: a third consumer gets nothing new.
	c = consumer()
	rest := fetchAll(t, c, 1, true, time.Second)
	for _, m := range rest {
		t.Errorf("%s delivered again after everything was acknowledged", m.Position)
	}
}

// testCancelledPublish checks that a message Publish accepted is not
// failed when Publish's context ends afterwards (capture stops with a
// cancelled context, then flushes with a fresh one to save its checkpoint).
func testCancelledPublish(t *testing.T, open Open) {
	be := open(t, 2)
	prod, consumer := be.Producer(), be.Consumer
	ctx, cancel := context.WithCancel(t.Context())
	const n = 50
	for i := 1; i <= n; i++ {
		if err := prod.Publish(ctx, Msg(i%2, i)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := prod.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatalf("flush after the publishing context ended: %v", err)
	}
	c := consumer()
	defer closeC(t, c)
	if got := fetchAll(t, c, n, true, 30*time.Second); len(got) != n {
		t.Errorf("%d of %d messages published before the context ended were delivered", len(got), n)
	}
}

// testPending checks the count of messages not yet handed to the consumer.
// Unless exact, only whether it is 0: a batch counts once until fetched.
func testPending(t *testing.T, open Open, exact bool) {
	be := open(t, 2)
	prod, consumer := be.Producer(), be.Consumer
	ctx := ctxT(t, time.Minute)
	c := consumer()
	defer closeC(t, c)
	waitPending(t, c, 0)
	for i := 1; i <= 5; i++ {
		for p := range 2 {
			if err := prod.Publish(ctx, Msg(p, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if exact {
		waitPending(t, c, 10)
	} else {
		waitPendingSome(t, c)
	}
	got, err := c.Fetch(ctx, 4, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) > 4 {
		t.Fatalf("Fetch(max 4) returned %d messages", len(got))
	}
	if b, ok := stream.As[stream.Backlogger](c); ok && exact {
		if n := b.Backlog(); n != uint64(10-len(got)) {
			t.Errorf("Backlog() = %d after %d of 10 messages were fetched, want %d", n, len(got), 10-len(got))
		}
	}
	if exact {
		waitPending(t, c, uint64(10-len(got)))
	} else {
		waitPendingSome(t, c)
	}
	rest := fetchAll(t, c, 10-len(got), true, 30*time.Second)
	if len(got)+len(rest) != 10 {
		t.Errorf("fetched %d+%d messages, want 10", len(got), len(rest))
	}
	waitPending(t, c, 0)
}

// waitPending waits until Pending reports want: a backend may learn of a
// flushed message a moment later than Flush returns.
func waitPending(t *testing.T, c stream.Consumer, want uint64) {
	t.Helper()
	waitPendingFor(t, c, func(n uint64) bool { return n == want }, fmt.Sprint(want))
}

// waitPendingSome waits until Pending is above 0.
func waitPendingSome(t *testing.T, c stream.Consumer) {
	t.Helper()
	waitPendingFor(t, c, func(n uint64) bool { return n > 0 }, "more than 0")
}

func waitPendingFor(t *testing.T, c stream.Consumer, ok func(uint64) bool, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.Pending(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatalf("pending: %v", err)
		}
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending = %d, want %s", n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testEmptyFetch checks that Fetch on an empty stream returns nothing, no
// error, soon after wait — and no later than the context's deadline.
func testEmptyFetch(t *testing.T, open Open) {
	consumer := open(t, 1).Consumer
	c := consumer()
	defer closeC(t, c)
	for _, wait := range []time.Duration{50 * time.Millisecond, 500 * time.Millisecond} {
		start := time.Now()
		got, err := c.Fetch(ctxT(t, time.Minute), 10, wait)
		took := time.Since(start)
		if err != nil || len(got) != 0 {
			t.Errorf("Fetch(wait %s) on an empty stream: %d messages, err %v", wait, len(got), err)
		}
		if took > wait+2*time.Second {
			t.Errorf("Fetch(wait %s) took %s", wait, took)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := c.Fetch(ctx, 10, time.Minute)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Fetch(wait 1m) with a 300ms context took %s", took)
	}
	if len(got) != 0 {
		t.Errorf("Fetch on an empty stream returned %d messages", len(got))
	}
	_ = err // a context error or none: both are fine
}

// testLongKey publishes records whose partition key is longer than
// Kinesis's 256 characters and whose table name is the longest MySQL
// allows (64 + 1 + 64 characters): nothing fails, the table arrives whole,
// and the key arrives whole or not at all (a backend without a place for
// it drops it; it routes by the partition number, a hash of the key).
func testLongKey(t *testing.T, open Open) {
	be := open(t, 2)
	prod, consumer := be.Producer(), be.Consumer
	ctx := ctxT(t, time.Minute)
	schema, table := strings.Repeat("s", 64), strings.Repeat("é", 64)
	var want []*stream.Message
	for n := 1; n <= 3; n++ {
		m := Msg(1, n)
		m.Table = schema + "." + table
		m.Key = m.Table + "." + strings.Repeat("k", 300) + fmt.Sprint(n)
		m.Data = fmt.Appendf(nil, `{"data":{"id":%d},"metadata":{"schema-name":%q,"table-name":%q,"stream-position":%q}}`, n, schema, table, m.Position)
		want = append(want, m)
		if err := prod.Publish(ctx, m); err != nil {
			t.Fatalf("publish with a %d-character key: %v", len(m.Key), err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	c := consumer()
	defer closeC(t, c)
	got := fetchAll(t, c, len(want), true, 30*time.Second)
	if len(got) != len(want) {
		t.Fatalf("%d of %d records with long keys arrived", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.Position != w.Position || g.Table != w.Table || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("record %d: got %s table %q (%d bytes), want %s table %q", i+1, g.Position, g.Table, len(g.Data), w.Position, w.Table)
		}
		if g.Key != "" && g.Key != w.Key {
			t.Errorf("record %d: key %q, want %q or none", i+1, g.Key, w.Key)
		}
	}
}

// testFromOldest checks that a consumer on a fresh state starts at the
// oldest record the stream holds, not at its end.
func testFromOldest(t *testing.T, open Open) {
	be := open(t, 1)
	prod := be.Producer()
	ctx := ctxT(t, time.Minute)
	for n := 1; n <= 5; n++ {
		if err := prod.Publish(ctx, Msg(0, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c := be.Consumer()
	defer closeC(t, c)
	got := fetchAll(t, c, 5, true, 30*time.Second)
	var pos []string
	for _, m := range got {
		pos = append(pos, m.Position)
	}
	want := []string{Position(0, 1), Position(0, 2), Position(0, 3), Position(0, 4), Position(0, 5)}
	if !slices.Equal(pos, want) {
		t.Errorf("a fresh consumer read %v, want %v", pos, want)
	}
}

// testResend forces the re-sends a producer restart makes: a first
// producer publishes 1..30 of each partition (flushing every 7), a second
// one — a restarted capture resuming from an older checkpoint — publishes
// 11..40 again (batches cut elsewhere). Every re-sent record must arrive
// after the original of every record it repeats, so that the rule
// delivery applies (drop a record not newer than the last one of its
// partition) leaves exactly 1..40, in order: a re-send arriving before a
// newer original would make the rule drop that original.
func testResend(t *testing.T, open Open) {
	const parts = 2
	be := open(t, parts)
	ctx := ctxT(t, 2*time.Minute)
	first := be.Producer()
	for n := 1; n <= 30; n++ {
		for p := range parts {
			if err := first.Publish(ctx, Msg(p, n)); err != nil {
				t.Fatal(err)
			}
		}
		if n%7 == 0 {
			if err := first.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := first.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := be.Producer()
	for n := 11; n <= 40; n++ {
		for p := range parts {
			if err := second.Publish(ctx, Msg(p, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := second.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c := be.Consumer()
	defer closeC(t, c)
	// Read until 40 arrived on each partition, then a little more for
	// re-sends still to come.
	last := map[int]string{}
	kept := map[int][]string{}
	dropped := 0
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		got, err := c.Fetch(ctx, 100, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got {
			if m.Position <= last[m.Partition] {
				dropped++
			} else {
				last[m.Partition] = m.Position
				kept[m.Partition] = append(kept[m.Partition], m.Position)
			}
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) == 0 && last[0] == Position(0, 40) && last[1] == Position(1, 40) {
			break
		}
	}
	for p := range parts {
		var want []string
		for n := 1; n <= 40; n++ {
			want = append(want, Position(p, n))
		}
		if !slices.Equal(kept[p], want) {
			t.Errorf("partition %d after dropping re-sends by position: %d records %v, want 1..40", p, len(kept[p]), kept[p])
		}
	}
	t.Logf("%d re-sent records dropped by position (the rest were dropped by the backend)", dropped)
}
