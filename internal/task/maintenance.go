package task

import (
	"context"
	"log/slog"
	"time"

	"github.com/binlake/binlake/internal/compaction"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
)

// job is work on the lake that runs beside delivery every interval while
// delivery runs: the current-state tables (delivery.tables: snapshot or
// iceberg), which
// also run once more after delivery has drained, so that a stopped task
// leaves snapshots holding everything it delivered, and compaction and
// retention (delivery.compaction, delivery.retention). A job's runs never
// overlap. A failed run is logged and the next one starts over from the
// lake: these jobs only derive from the change log or shrink it, and
// every step of theirs leaves a lake readers read exactly.
type job struct {
	name     string
	interval time.Duration
	atDrain  bool
	run      func(ctx context.Context) error
	log      *slog.Logger

	stop context.CancelFunc
	done chan struct{}
}

// lakeJobs are the jobs a delivering task runs on its lake.
func (t *Task) lakeJobs(cfg *config.Config, bucket objstore.Bucket) ([]*job, error) {
	var jobs []*job
	if cfg.Delivery.Tables == config.TablesSnapshot || cfg.Delivery.Tables == config.TablesIceberg {
		log := t.log.With("component", "snapshot")
		s, err := lakehouse.New(lakehouse.Options{Config: cfg, Bucket: bucket, Logger: log})
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, &job{name: cfg.Delivery.Tables + " tables", interval: cfg.Delivery.Snapshot.Interval.D(), atDrain: true, log: log,
			run: func(ctx context.Context) error {
				start := time.Now()
				res, err := s.Run(ctx)
				written, records := 0, 0
				for _, r := range res {
					written += r.Written
					records += r.Records
				}
				log.Info(cfg.Delivery.Tables+" tables written", "tables", len(res), "records", records, "files_written", written, "took", time.Since(start).Round(time.Millisecond))
				return err
			}})
	}
	if cfg.Delivery.Compaction.Enabled || cfg.Delivery.Retention > 0 {
		log := t.log.With("component", "compaction")
		c, err := compaction.New(compaction.Options{Config: cfg, Bucket: bucket, Logger: log})
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, &job{name: "compaction", interval: cfg.Delivery.Compaction.Interval.D(), log: log,
			run: func(ctx context.Context) error {
				res, err := c.Run(ctx)
				if res != (compaction.Result{}) {
					log.Info("change log compacted", "merged_objects", res.Merged, "from", res.Parts, "deleted_after_grace", res.Deleted, "expired", res.Expired)
				}
				return err
			}})
	}
	return jobs, nil
}

// startJobs runs the jobs every interval until haltJobs.
func startJobs(ctx context.Context, jobs []*job) {
	for _, j := range jobs {
		jctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		j.stop, j.done = stop, make(chan struct{})
		go func() {
			defer close(j.done)
			tick := time.NewTicker(j.interval)
			defer tick.Stop()
			for {
				select {
				case <-jctx.Done():
					return
				case <-tick.C:
				}
				j.once(jctx)
			}
		}()
	}
}

// haltJobs stops the periodic runs, waiting for those in progress.
func haltJobs(jobs []*job) {
	for _, j := range jobs {
		if j.stop != nil {
			j.stop()
			<-j.done
		}
	}
}

// finishJobs stops the periodic runs and runs the jobs that run at the
// drain, after delivery has drained.
func finishJobs(ctx context.Context, jobs []*job) {
	haltJobs(jobs)
	for _, j := range jobs {
		if j.atDrain {
			j.once(context.WithoutCancel(ctx))
		}
	}
}

func (j *job) once(ctx context.Context) {
	if err := j.run(ctx); err != nil && ctx.Err() == nil {
		j.log.Error(j.name+": a run failed; the next one retries", "err", err)
	}
}
