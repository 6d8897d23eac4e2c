package task

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/lease"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/kafka"
)

// sharer shares the stream's partitions among a task's deliver workers and
// starts and stops delivering them through a lease.Handler: lease.Coordinator
// (NATS) or kafka.Group.
type sharer interface {
	// Run takes part until ctx is cancelled, then hands every partition
	// over.
	Run(ctx context.Context) error
	Owned() []int
	Workers() int
	// Fence is asked before each object of a partition is written.
	Fence(partition int) error
}

var (
	_ sharer = (*lease.Coordinator)(nil)
	_ sharer = (*kafka.Group)(nil)
)

// sharedPartitions connects a deliver worker's share of the partitions to
// its delivery: a partition is read and written while it is this worker's.
type sharedPartitions struct {
	coord sharer
	parts *stream.Partitioned
	d     *delivery.Delivery
}

func (t *Task) newSharedPartitions(st *openedStream) *sharedPartitions {
	sp := &sharedPartitions{parts: st.parts}
	if st.group != nil {
		st.group.Handle(sp)
		sp.coord = st.group
		return sp
	}
	host, _ := os.Hostname()
	sp.coord = lease.New(lease.Options{
		Store:      st.leases,
		Worker:     fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32()),
		Partitions: t.cfg.Stream.Partitions,
		TTL:        st.leaseTTL,
		Handler:    sp,
		Logger:     t.log.With("component", "leases"),
	})
	return sp
}

func (sp *sharedPartitions) Acquire(ctx context.Context, p int) error {
	return sp.d.AcquirePartition(ctx, p,
		func(ctx context.Context) error { return sp.parts.Assign(ctx, p) },
		func() error { return sp.parts.Revoke(p) })
}

func (sp *sharedPartitions) Release(ctx context.Context, p int) error {
	return sp.d.ReleasePartition(ctx, p, func() error { return sp.parts.Revoke(p) })
}

func (sp *sharedPartitions) Lost(p int) {
	sp.d.LosePartition(p, func() error { return sp.parts.Revoke(p) })
}
