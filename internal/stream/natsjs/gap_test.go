package natsjs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/embedded"
	"github.com/binlake/binlake/internal/stream/natsjs"
)

// TestDeliveryLostOnItsWay has another client take one delivery of the
// consumer and never acknowledge it, as a pull request that expires while
// the server answers it, or a consumer leader that dies, loses one: the
// consumer must not hand on the messages after it (delivery would store
// them, and drop the lost one as a re-send when the server sends it again
// after AckWait). It reads again from its acknowledgement floor, and the
// messages come in order, the lost one at its place, long before AckWait.
func TestDeliveryLostOnItsWay(t *testing.T) {
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
	ctx := t.Context()
	st, err := natsjs.Open(ctx, nc, natsjs.Options{Task: "gap", Partitions: 1, FileStore: true, MaxAge: time.Hour, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	pos := func(i int) string { return fmt.Sprintf("0000/0000000001/%016d/1/0000000000/0000000000", i) }
	prod := st.Producer()
	for i := 1; i <= 10; i++ {
		if err := prod.Publish(ctx, &stream.Message{Table: "s.t", Op: "insert", Position: pos(i), CommitTime: time.Now(), Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := st.Consumer(ctx, "deliver", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	take := func(max int) {
		t.Helper()
		msgs, err := cons.Fetch(ctx, max, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, m.Position)
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	take(3)
	// The thief: one delivery of the same durable consumer, never acknowledged.
	nc2, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc2.Close)
	js, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	thief, err := js.Consumer(ctx, natsjs.StreamName("gap"), "deliver")
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := thief.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range stolen.Messages() {
		n++
		if id := m.Headers().Get(jetstream.MsgIDHeader); id != pos(4) {
			t.Fatalf("the thief took %s, want %s", id, pos(4))
		}
	}
	if n != 1 {
		t.Fatalf("the thief took %d messages, want 1", n)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 10 && time.Now().Before(deadline) {
		take(100)
	}
	want := []string{}
	for i := 1; i <= 10; i++ {
		want = append(want, pos(i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the consumer handed on\n%v\nwant\n%v", got, want)
	}
}
