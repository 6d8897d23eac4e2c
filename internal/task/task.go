// Package task runs one binlake task: it wires capture, the stream and
// delivery together, owns their lifecycle (start, drain on SIGTERM, stop)
// and serves the task's status.
package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/metrics"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/natsjs"
	"github.com/binlake/binlake/internal/transform"
)

// Task states, in DMS's words.
const (
	StatusStarting = "Starting"
	StatusRunning  = "Running"
	StatusStopping = "Stopping"
	StatusStopped  = "Stopped"
	StatusFailed   = "Failed"
)

// Task is a running (or finished) task.
type Task struct {
	cfg *config.Config
	log *slog.Logger

	capture  *capture.Capture
	delivery *delivery.Delivery
	jobs     []*job             // work on the lake beside delivery
	coord    sharer             // a deliver worker sharing the partitions
	cons     stream.Consumer    // delivery's, for the stream's lag and backlog
	room     func() natsjs.Room // how full an embedded or NATS stream is; nil for others

	reg    *prometheus.Registry
	stream *metrics.Stream // measures the producer capture writes to
	target *metrics.Target // measures the bucket delivery writes to

	mu         sync.Mutex
	validation map[string]validationResult // by schema.table, with validation.enabled
	status     string
	reason     string
	started    time.Time
}

// New prepares a task from a validated config. The task has a metrics
// registry of its own (Registry), which its stages register with.
func New(cfg *config.Config, log *slog.Logger) *Task {
	reg := prometheus.NewRegistry()
	t := &Task{cfg: cfg, log: log, status: StatusStarting, started: time.Now().UTC(), reg: reg,
		stream: metrics.NewStream(reg), target: metrics.NewTarget(reg)}
	reg.MustRegister(newCollector(t), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: metrics.Namespace}))
	return t
}

// Registry is the task's metrics registry, served at /metrics.
func (t *Task) Registry() *prometheus.Registry { return t.reg }

// warningInterval is how often warnings are checked for the log.
const warningInterval = 5 * time.Second

func (t *Task) setStatus(s, reason string) {
	t.mu.Lock()
	t.status, t.reason = s, reason
	t.mu.Unlock()
}

// Run runs the task until ctx is cancelled, then drains: capture stops at a
// transaction boundary, everything it published is delivered, checkpoints
// are saved. A full-load task returns by itself once the load is delivered.
func (t *Task) Run(ctx context.Context) (err error) {
	defer func() {
		if err = stateDirHint(err, t.cfg.StateDir); err != nil {
			t.setStatus(StatusFailed, err.Error())
		} else {
			t.setStatus(StatusStopped, "")
		}
	}()
	cfg := t.cfg
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	unlock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()

	capturing, delivering := cfg.Role != config.RoleDeliver, cfg.Role != config.RoleCapture
	var raw, bucket objstore.Bucket
	if delivering || cfg.Validation.Enabled {
		b, err := OpenTarget(ctx, cfg)
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		raw, bucket = b, t.target.Wrap(b)
	}

	st, err := openStream(ctx, cfg, t.log.With("component", "stream"), raw)
	if err != nil {
		return err
	}
	defer st.close()
	prod, cons := t.stream.WrapProducer(st.prod), st.cons

	tf, err := transform.New(cfg, t.log.With("component", "transform"))
	if err != nil {
		return fmt.Errorf("transforms: %w", err)
	}
	for _, w := range cfg.Warnings() {
		t.log.Warn(w)
	}

	t.mu.Lock()
	t.room = st.room
	if capturing {
		t.capture = capture.New(capture.Options{Config: cfg, Producer: prod, StateDir: cfg.StateDir, Logger: t.log.With("component", "capture")})
	}
	var shared *sharedPartitions
	if delivering {
		opts := delivery.Options{Config: cfg, Consumer: cons, Bucket: bucket, StateDir: cfg.StateDir, Logger: t.log.With("component", "delivery"), Transform: tf, FlushOnDrain: !capturing}
		if st.parts != nil {
			shared = t.newSharedPartitions(st)
			opts.Fence = shared.coord.Fence
		}
		t.delivery = delivery.New(opts)
		t.cons = cons
		if shared != nil {
			shared.d = t.delivery
			t.coord = shared.coord
		}
	}
	if delivering && shared != nil && (cfg.Delivery.Tables != config.TablesNone || cfg.Delivery.Compaction.Enabled || cfg.Delivery.Retention > 0) {
		t.log.Warn("deliver workers that share the stream's partitions make no snapshot tables and do not compact or expire the change log (each sees part of the stream); run `binlake snapshot` and `binlake compact` in one place on a schedule instead")
	} else if delivering {
		if t.jobs, err = t.lakeJobs(cfg, bucket); err != nil {
			t.mu.Unlock()
			return err
		}
	}
	t.mu.Unlock()
	if delivering {
		if err := t.delivery.Load(); err != nil {
			return err
		}
	}
	t.setStatus(StatusRunning, "")
	target := "-"
	if bucket != nil {
		target = bucket.String()
	}
	t.log.Info("task running", "task", cfg.Task, "role", cfg.Role, "migration", cfg.Migration, "target", target)
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	go t.watchWarnings(watchCtx, warningInterval)
	if cfg.Validation.Enabled && capturing {
		valCtx, stopValidation := context.WithCancel(ctx)
		defer stopValidation()
		go t.validateContinuously(valCtx, bucket)
	}
	switch {
	case !delivering:
		err = t.runCapture(ctx, prod, st.failed)
	case !capturing:
		err = t.runDelivery(ctx, shared, st.failed)
	default:
		err = t.runStages(ctx, prod, cons, st.failed)
	}
	return err
}

// stateDirHint adds the remedy to an error that comes from state_dir's
// disk: full, read-only, or not binlake's to write. The checkpoints are
// written atomically and the stream keeps what it acknowledged, so
// nothing is lost: binlake resumes from them once the disk takes writes.
func stateDirHint(err error, dir string) error {
	if err == nil {
		return nil
	}
	var sf *streamFailedError
	disk := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, os.ErrPermission)
	if !errors.As(err, &sf) && !(disk && strings.Contains(err.Error(), dir)) {
		return err
	}
	return fmt.Errorf("%w\nstate_dir %s cannot be written: free space on its disk (or make it writable), then start binlake again; nothing is lost, it resumes from its checkpoints", err, dir)
}

// streamFailedError is the error of a task whose stream stopped taking
// records: the stages stop at once, without a drain.
type streamFailedError struct{ err error }

func (e *streamFailedError) Error() string { return "stream: " + e.err.Error() }
func (e *streamFailedError) Unwrap() error { return e.err }

func streamFailure(err error) error { return &streamFailedError{err} }

// awaitStop waits a while for a stopped stage to return. A stage that
// flushes to a failed stream while it stops can wait for ever; it returns
// once Run closes the stream's connection, and nothing depends on its
// last checkpoint: the one before is consistent.
func awaitStop(done <-chan error) {
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// runCapture is a capture-only process: when capture stops, everything it
// published is flushed to the stream, which the deliver processes read.
func (t *Task) runCapture(ctx context.Context, prod stream.Producer, failed <-chan error) error {
	capCtx, stopCapture := context.WithCancel(ctx)
	defer stopCapture()
	capDone := make(chan error, 1)
	go func() { capDone <- t.capture.Run(capCtx) }()
	var err error
	select {
	case err = <-capDone:
	case ferr := <-failed:
		stopCapture()
		awaitStop(capDone)
		return streamFailure(ferr)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	t.setStatus(StatusStopping, "")
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if ferr := prod.Flush(fctx); ferr != nil {
		err = errors.Join(err, fmt.Errorf("stream: %w", ferr))
	}
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	t.log.Info("capture stopped; everything it read is on the stream")
	return nil
}

// runDelivery is a deliver-only process: it delivers until ctx is
// cancelled, then flushes its buffers and saves its checkpoints. With
// shared partitions, it first hands its partitions over to the other
// workers.
func (t *Task) runDelivery(ctx context.Context, shared *sharedPartitions, failed <-chan error) error {
	drain := make(chan struct{})
	done := make(chan error, 1)
	delCtx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDelivery()
	go func() { done <- t.delivery.Run(delCtx, drain) }()
	startJobs(ctx, t.jobs)
	defer haltJobs(t.jobs)
	coordDone := make(chan error, 1)
	if shared != nil {
		go func() { coordDone <- shared.coord.Run(ctx) }()
	}
	select {
	case err := <-done:
		return fmt.Errorf("delivery: %w", err)
	case err := <-failed:
		stopDelivery()
		awaitStop(done)
		return streamFailure(err)
	case err := <-coordDone:
		if err != nil {
			return fmt.Errorf("sharing the partitions: %w", err)
		}
		<-ctx.Done() // (Run returns early only on error)
	case <-ctx.Done():
		if shared != nil {
			// The hand-overs are served by delivery: should it end
			// meanwhile, nothing would serve them.
			select {
			case err := <-coordDone:
				if err != nil {
					t.log.Error("handing the partitions over", "err", err)
				}
			case err := <-done:
				if err == nil {
					err = errors.New("stopped before the partitions were handed over")
				}
				return fmt.Errorf("delivery: %w", err)
			}
		}
	}
	t.setStatus(StatusStopping, "")
	close(drain)
	if err := <-done; err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	t.log.Info("delivery stopped; checkpoints saved")
	finishJobs(ctx, t.jobs)
	return nil
}

// runStages is the shutdown order in one place: capture stops first, then
// delivery drains what capture published.
func (t *Task) runStages(ctx context.Context, prod stream.Producer, cons stream.Consumer, failed <-chan error) error {
	capCtx, stopCapture := context.WithCancel(ctx)
	defer stopCapture()
	delCtx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDelivery()

	drain := make(chan struct{})
	capDone := make(chan error, 1)
	delDone := make(chan error, 1)
	go func() { capDone <- t.capture.Run(capCtx) }()
	go func() { delDone <- t.delivery.Run(delCtx, drain) }()
	startJobs(ctx, t.jobs)
	defer haltJobs(t.jobs)

	// A stream that stops taking records stops both stages at once: what
	// was not acknowledged comes again after the restart.
	streamFailed := func(err error) error {
		stopCapture()
		stopDelivery()
		awaitStop(capDone)
		awaitStop(delDone)
		return streamFailure(err)
	}
	var capErr error
	select {
	case capErr = <-capDone:
	case err := <-delDone:
		stopCapture()
		awaitStop(capDone)
		return fmt.Errorf("delivery: %w", err)
	case err := <-failed:
		return streamFailed(err)
	}
	if errors.Is(capErr, context.Canceled) && ctx.Err() != nil {
		capErr = nil
	}
	if capErr != nil {
		t.log.Error("capture failed; delivering what it published", "err", capErr)
	}
	t.setStatus(StatusStopping, "")
	t.log.Info("draining: delivering everything captured")
	close(drain)
	var delErr error
	select {
	case delErr = <-delDone:
	case err := <-failed:
		stopDelivery()
		awaitStop(delDone)
		return errors.Join(capErr, streamFailure(err))
	}
	if delErr != nil {
		return errors.Join(capErr, fmt.Errorf("delivery: %w", delErr))
	}
	finishJobs(ctx, t.jobs)
	if capErr != nil {
		return fmt.Errorf("capture: %w", capErr)
	}
	t.log.Info("drained; checkpoints saved")
	return nil
}

// LockStateDir takes the lock a running task holds on its state
// directory, for commands that must not run beside it; the function it
// returns releases it.
func LockStateDir(dir string) (func(), error) { return lockStateDir(dir) }

// lockStateDir makes sure only one binlake uses a state directory.
func lockStateDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("state_dir %s is in use by another binlake process (stop it, or give this task its own state_dir)", dir)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
