package natsjs_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/binlake/binlake/internal/lease"
	"github.com/binlake/binlake/internal/lease/leasetest"
	"github.com/binlake/binlake/internal/stream/natsjs"
)

// TestLeases runs the lease scenario (leasetest) on a real NATS server's
// KV bucket.
func TestLeases(t *testing.T) {
	ns := startServer(t, 1<<20, nil)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st, err := natsjs.Open(t.Context(), nc, natsjs.Options{Task: "leases", Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 1500 * time.Millisecond
	store, err := st.LeaseStore(t.Context(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	leasetest.Run(t, func() lease.Store { return store }, ttl)
}
