package testbed

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NewNATSCluster starts a NATS cluster of n nodes with JetStream, in
// process, on 127.0.0.1, and waits until it has elected a meta leader. The
// nodes stop when the test ends; a test may shut one down before.
func NewNATSCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	var routes, clients []int
	for range n {
		r, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		c, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		routes, clients = append(routes, r), append(clients, c)
	}
	var urls []string
	for _, r := range routes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", r))
	}
	nodes := make([]*server.Server, n)
	for i := range nodes {
		ns, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: clients[i],
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "binlake-test", Host: "127.0.0.1", Port: routes[i]},
			Routes:  server.RoutesFromStr(strings.Join(urls, ",")),
		})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		nodes[i] = ns
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	}
	for _, ns := range nodes {
		if !ns.ReadyForConnections(30 * time.Second) {
			t.Fatal("nats node not ready")
		}
	}
	// Ready once a meta leader is elected and every node is current.
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader, current := false, true
		for _, ns := range nodes {
			leader = leader || ns.JetStreamIsLeader()
			current = current && ns.JetStreamIsCurrent()
		}
		if leader && current {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatal("the JetStream cluster elected no meta leader")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
