package task

import (
	"context"
	"time"

	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/validate"
)

// validationResult is a table's last continuous-validation outcome.
type validationResult struct {
	validate.Result
	At time.Time
}

// validateContinuously compares the lake with the source every interval
// while the task runs (validation.enabled), keeping each table's last result
// for the status.
func (t *Task) validateContinuously(ctx context.Context, bucket objstore.Bucket) {
	v := t.cfg.Validation
	interval, rounds, wait := v.Interval.D(), v.Rounds, v.Wait.D()
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	if rounds <= 0 {
		rounds = 3
	}
	if wait <= 0 {
		wait = 10 * time.Second
	}
	timer := time.NewTimer(min(interval, 30*time.Second)) // a first result soon after the start
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		results, err := validate.Run(ctx, validate.Options{Config: t.cfg, Bucket: bucket, Rounds: rounds, Wait: wait})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			t.log.Warn("continuous validation failed", "err", err)
		}
		now := time.Now().UTC()
		t.mu.Lock()
		if t.validation == nil {
			t.validation = map[string]validationResult{}
		}
		for _, r := range results {
			t.validation[r.Schema+"."+r.Table] = validationResult{Result: r, At: now}
			if r.State == validate.StateMismatched {
				t.log.Warn("validation: the lake differs from the source", "table", r.Schema+"."+r.Table, "differing_rows", r.Differing)
			}
		}
		t.mu.Unlock()
		timer.Reset(interval)
	}
}
