package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/embedded"
	"github.com/binlake/binlake/internal/stream/natsjs"
)

func embeddedConn(t *testing.T) *nats.Conn {
	t.Helper()
	ns, err := embedded.Start(embedded.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func msg(p, i int, size int) *stream.Message {
	return &stream.Message{Partition: p, Table: "db.t", Op: "insert", CommitTime: time.Now(),
		Position: fmt.Sprintf("0000/0000000001/%016d/1/0000000000/%010d", i, p), Data: []byte(strings.Repeat("x", size))}
}

// TestTrimKeepsUndelivered: records older than max_age go once the
// consumer's acknowledgement floor has passed them, and only then: a record
// not acknowledged stays, however old.
func TestTrimKeepsUndelivered(t *testing.T) {
	ctx := t.Context()
	st, err := natsjs.Open(ctx, embeddedConn(t), natsjs.Options{Task: "trim", Partitions: 2, FileStore: true, MaxAge: 300 * time.Millisecond, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	prod := st.Producer()
	for i := range 20 {
		if err := prod.Publish(ctx, msg(i%2, i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := st.Consumer(ctx, "deliver", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Acknowledge every record of partition 0 (the stream's odd
	// sequences) and the first three of partition 1 (2, 4, 6): the
	// consumer's floor is 7, as record 8 is not acknowledged.
	var got []*stream.Delivered
	for len(got) < 20 {
		ds, err := cons.Fetch(ctx, 20, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
	}
	acked1 := 0
	for _, d := range got {
		if d.Partition == 1 {
			if acked1 == 3 {
				continue
			}
			acked1++
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if r := st.Room(); r.Stored == 0 {
		t.Fatalf("Room after Trim = %+v", r)
	}
	before := st.Room().Stored
	time.Sleep(400 * time.Millisecond) // every record is older than max_age now
	if err := st.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	// Records 1 to 7 go. Partition 0's later records stay although they
	// are acknowledged (the floor is the consumer's, over both partitions),
	// and partition 1's unacknowledged ones stay although older than max_age.
	if left := countLeft(t, st); left != 13 {
		t.Errorf("%d records left after trimming, want 13 (records 1 to 7 removed)", left)
	}
	if after := st.Room().Stored; after >= before {
		t.Errorf("the stream holds %d bytes after trimming, %d before", after, before)
	}
}

// countLeft reads the stream with a fresh consumer and counts its records.
func countLeft(t *testing.T, st *natsjs.Stream) int {
	t.Helper()
	c, err := st.Consumer(t.Context(), fmt.Sprintf("count-%d", time.Now().UnixNano()), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		ds, err := c.Fetch(t.Context(), 100, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return n
		}
		n += len(ds)
	}
}

// TestProducerWaitsForRoom: a producer that would fill the stream past 90%
// of max_bytes waits, and says so in Room, instead of letting the server
// push undelivered records out; once the consumer acknowledges them, the
// producer makes room by trimming and goes on. Nothing is lost.
func TestProducerWaitsForRoom(t *testing.T) {
	ctx := t.Context()
	const maxBytes = 256 << 10
	st, err := natsjs.Open(ctx, embeddedConn(t), natsjs.Options{Task: "room", Partitions: 1, FileStore: true, MaxAge: time.Hour, MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	prod := st.Producer()
	sent := 0
	for ; ; sent++ {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := prod.Publish(pctx, msg(0, sent, 10<<10))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if sent > 100 {
			t.Fatalf("%d records of 10 KiB went into a stream of %d bytes", sent, maxBytes)
		}
	}
	r := st.Room()
	t.Logf("the producer waited after %d records: %+v", sent, r)
	if !r.Paused || r.Stored > maxBytes*9/10 {
		t.Errorf("Room = %+v, want Paused and at most 90%% of %d", r, maxBytes)
	}

	cons, err := st.Consumer(ctx, "deliver", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	pubDone := make(chan error, 1)
	go func() {
		for i := sent; i < sent+40; i++ {
			if err := prod.Publish(ctx, msg(0, i, 10<<10)); err != nil {
				pubDone <- err
				return
			}
		}
		pubDone <- prod.Flush(ctx)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for read < sent+40 && time.Now().Before(deadline) {
		ds, err := cons.Fetch(ctx, 10, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if want := msg(0, read, 0).Position; d.Position != want {
				t.Fatalf("record %d has position %s, want %s", read, d.Position, want)
			}
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			read++
		}
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	if read != sent+40 {
		t.Errorf("read %d records, want %d", read, sent+40)
	}
	if r := st.Room(); r.Paused {
		t.Errorf("Room = %+v after the producer went on", r)
	}
}
