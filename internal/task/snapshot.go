package task

import (
	"context"
	"log/slog"
	"time"

	"github.com/binlake/binlake/internal/lakehouse"
)

// snapshots runs the snapshot tables of delivery.tables: snapshot beside
// delivery: every delivery.snapshot.interval while delivery runs, and once
// more after it has drained, so that a stopped task leaves snapshots that
// hold everything it delivered. Runs never overlap.
type snapshots struct {
	s        *lakehouse.Snapshotter
	log      *slog.Logger
	interval time.Duration
	stop     context.CancelFunc
	done     chan struct{}
}

// start runs the periodic snapshots until finish or halt.
func (sn *snapshots) start(ctx context.Context) {
	if sn == nil {
		return
	}
	ctx, sn.stop = context.WithCancel(context.WithoutCancel(ctx))
	sn.done = make(chan struct{})
	go func() {
		defer close(sn.done)
		tick := time.NewTicker(sn.interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			sn.run(ctx, "periodic")
		}
	}()
}

// halt stops the periodic snapshots, waiting for a run in progress.
func (sn *snapshots) halt() {
	if sn == nil || sn.stop == nil {
		return
	}
	sn.stop()
	<-sn.done
}

// finish stops the periodic snapshots and makes the last one, after
// delivery has drained.
func (sn *snapshots) finish(ctx context.Context) {
	if sn == nil {
		return
	}
	sn.halt()
	sn.run(context.WithoutCancel(ctx), "drain")
}

// run makes one snapshot of every table. A failure is logged and the next
// run starts over from the manifests in the lake: snapshots are derived
// from the change log, which stays exact whatever happens to them.
func (sn *snapshots) run(ctx context.Context, why string) {
	start := time.Now()
	res, err := sn.s.Run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		sn.log.Error("snapshot tables: a run failed; the next one retries", "run", why, "err", err)
	}
	written, records := 0, 0
	for _, r := range res {
		written += r.Written
		records += r.Records
	}
	sn.log.Info("snapshot tables written", "run", why, "tables", len(res), "records", records, "files_written", written, "took", time.Since(start).Round(time.Millisecond))
}
