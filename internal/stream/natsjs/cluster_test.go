package natsjs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/natsjs"
	"github.com/binlake/binlake/internal/testbed"
)

// TestClusterFailover publishes without pause to an R3 stream on a 3-node
// cluster and shuts the stream's leader down midway: Publish and Flush
// wait for the fail-over instead of failing, and the stream holds every
// message once, each partition in order.
func TestClusterFailover(t *testing.T) {
	nodes := testbed.NewNATSCluster(t, 3)
	var urls []string
	for _, ns := range nodes {
		urls = append(urls, ns.ClientURL())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	nc, err := natsjs.Connect(ctx, natsjs.ConnectOptions{URLs: urls, Name: "failover"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const parts, total = 4, 6000
	st, err := natsjs.Open(ctx, nc, natsjs.Options{Task: "fo", Partitions: parts, Replicas: 3, FileStore: true, MaxAge: time.Hour, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	prod := st.Producer()
	killed := false
	for i := range total {
		m := &stream.Message{
			Partition: i % parts, Table: "s.t", Op: "insert", CommitTime: time.Now(),
			Position: fmt.Sprintf("0000/0000000001/%016d/1/0000000000/0000000000", i+1),
			Data:     []byte(fmt.Sprintf(`{"i":%d}`, i)),
		}
		if err := prod.Publish(ctx, m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if i == total/3 && !killed {
			for j, ns := range nodes {
				if ns.JetStreamIsStreamLeader("$G", natsjs.StreamName("fo")) {
					t.Logf("shutting down n%d, the stream's leader, after %d messages", j+1, i+1)
					ns.Shutdown()
					killed = true
				}
			}
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if !killed {
		t.Fatal("no stream leader found to shut down")
	}
	cons, err := st.Consumer(ctx, "check", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Every message is stored exactly once.
	got := map[string]int{}
	var order []*stream.Delivered
	for len(order) < total {
		msgs, err := cons.Fetch(ctx, 1000, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			got[m.Position]++
			order = append(order, m)
		}
	}
	for i := range total {
		pos := fmt.Sprintf("0000/0000000001/%016d/1/0000000000/0000000000", i+1)
		if got[pos] != 1 {
			t.Errorf("message %s is stored %d times, want once", pos, got[pos])
		}
	}
	if len(order) != total {
		t.Fatalf("the stream holds %d messages, want %d", len(order), total)
	}
	last := map[int]string{}
	for _, m := range order {
		if m.Position <= last[m.Partition] {
			t.Fatalf("after a stream-leader fail-over, partition %d holds %s after %s: a message in flight when the leader died was stored after later ones, and delivery would drop it as a re-send", m.Partition, m.Position, last[m.Partition])
		}
		last[m.Partition] = m.Position
	}
}

// TestConsumerWaitsForQuorum opens a partition consumer while two of the
// three nodes are down, which leaves the cluster without a meta leader: the
// server answers "JetStream system temporarily unavailable" (or nothing).
// The consumer waits until the nodes are back instead of failing the
// deliver worker, and then reads every message once, in order.
func TestConsumerWaitsForQuorum(t *testing.T) {
	nodes := testbed.NewNATSCluster(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	nc, err := natsjs.Connect(ctx, natsjs.ConnectOptions{URLs: []string{nodes[0].ClientURL()}, Name: "quorum"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st, err := natsjs.Open(ctx, nc, natsjs.Options{Task: "q", Partitions: 2, Replicas: 3, FileStore: true, MaxAge: time.Hour, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	const total = 200
	prod := st.Producer()
	for i := range total {
		m := &stream.Message{
			Partition: 0, Table: "s.t", Op: "insert", CommitTime: time.Now(),
			Position: fmt.Sprintf("0000/0000000001/%016d/1/0000000000/0000000000", i+1),
			Data:     []byte(fmt.Sprintf(`{"i":%d}`, i)),
		}
		if err := prod.Publish(ctx, m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	nodes[1].Shutdown()
	nodes[2].Shutdown()
	nodes[1].WaitForShutdown()
	nodes[2].WaitForShutdown()

	type opened struct {
		c   stream.Consumer
		err error
	}
	done := make(chan opened, 1)
	go func() {
		c, err := st.PartitionConsumer(ctx, "deliver", 0, time.Minute)
		done <- opened{c, err}
	}()
	select {
	case o := <-done:
		t.Fatalf("with two of three nodes down, PartitionConsumer returned at once (err %v); want it to wait for the cluster", o.err)
	case <-time.After(5 * time.Second):
	}
	testbed.RestartNATSNode(t, nodes[1])
	testbed.RestartNATSNode(t, nodes[2])
	var o opened
	select {
	case o = <-done:
	case <-ctx.Done():
		t.Fatal("PartitionConsumer did not return after the nodes came back")
	}
	if o.err != nil {
		t.Fatalf("PartitionConsumer after the nodes came back: %v", o.err)
	}
	var got []string
	for len(got) < total {
		msgs, err := o.c.Fetch(ctx, 1000, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			got = append(got, m.Position)
		}
	}
	if len(got) != total {
		t.Fatalf("read %d messages, want %d", len(got), total)
	}
	for i, pos := range got {
		if want := fmt.Sprintf("0000/0000000001/%016d/1/0000000000/0000000000", i+1); pos != want {
			t.Fatalf("message %d is %s, want %s", i, pos, want)
		}
	}
}
