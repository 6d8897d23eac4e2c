package testbed

import (
	"fmt"
	"strings"
	"sync"
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
		nodes[i] = startNATSNode(t, server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: clients[i],
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "binlake-test", Host: "127.0.0.1", Port: routes[i]},
			Routes:  server.RoutesFromStr(strings.Join(urls, ",")),
		})
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

// natsNodeOpts holds the options each node of NewNATSCluster was started
// with, for RestartNATSNode.
var natsNodeOpts sync.Map // *server.Server → server.Options

func startNATSNode(t testing.TB, opts server.Options) *server.Server {
	t.Helper()
	o := opts // NewServer fills in defaults in the options it gets
	ns, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	natsNodeOpts.Store(ns, opts)
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown(); natsNodeOpts.Delete(ns) })
	return ns
}

// RestartNATSNode starts again, on its ports and its store, a node of
// NewNATSCluster that the test shut down, and returns the new server once
// it takes connections.
func RestartNATSNode(t testing.TB, ns *server.Server) *server.Server {
	t.Helper()
	opts, ok := natsNodeOpts.Load(ns)
	if !ok {
		t.Fatal("RestartNATSNode: not a node of NewNATSCluster")
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	again := startNATSNode(t, opts.(server.Options))
	if !again.ReadyForConnections(30 * time.Second) {
		t.Fatalf("nats node %s not ready after a restart", again.Name())
	}
	return again
}
