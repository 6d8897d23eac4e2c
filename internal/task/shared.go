package task

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/lease"
	"github.com/binlake/binlake/internal/stream"
)

// sharedPartitions connects a deliver worker's leases to its delivery: a
// partition is read and written while its lease is held.
type sharedPartitions struct {
	coord *lease.Coordinator
	parts *stream.Partitioned
	d     *delivery.Delivery
}

func (t *Task) newSharedPartitions(st *openedStream) *sharedPartitions {
	sp := &sharedPartitions{parts: st.parts}
	host, _ := os.Hostname()
	sp.coord = lease.New(lease.Options{
		Store:      st.leases,
		Worker:     fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32()),
		Partitions: t.cfg.Stream.Partitions,
		TTL:        t.cfg.Stream.NATS.LeaseTTL.D(),
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
