package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlake/binlake/internal/objstore"
)

// Target holds the metrics of the bucket that delivery writes to, and
// whether the target currently refuses writes.
type Target struct {
	ops      *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.HistogramVec
	written  prometheus.Counter

	mu       sync.Mutex
	refusing Refusal
}

// Refusal describes a run of failed writes to the target that no
// successful write has ended yet.
type Refusal struct {
	Since    time.Time // the first failed write of the run
	Failures int       // failed writes in the run
	LastErr  string
}

// Active reports whether the target is refusing writes.
func (r Refusal) Active() bool { return r.Failures > 0 }

var targetOps = []string{"put", "get", "list", "delete"}

// NewTarget registers the target metrics with reg.
func NewTarget(reg prometheus.Registerer) *Target {
	m := &Target{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "target_operations_total",
			Help: "Operations on the target (object store), by operation (put, get, list, delete).",
		}, []string{"operation"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "target_operation_failures_total",
			Help: "Failed operations on the target. Delivery retries every failed put with backoff, so for put this is also the number of upload retries.",
		}, []string{"operation"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "target_operation_duration_seconds",
			Help:    "Time an operation on the target takes, failed ones included.",
			Buckets: durationBuckets,
		}, []string{"operation"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "target_written_bytes_total",
			Help: "Bytes stored on the target by successful puts: objects and completeness markers.",
		}),
	}
	for _, op := range targetOps {
		m.ops.WithLabelValues(op)
		m.failures.WithLabelValues(op)
	}
	reg.MustRegister(m.ops, m.failures, m.duration, m.written)
	return m
}

// Refusing returns the current run of refused writes; its Active is false
// when the last write succeeded (or none failed).
func (m *Target) Refusing() Refusal {
	if m == nil {
		return Refusal{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refusing
}

// Wrap returns b measured by m. A nil m returns b itself.
func (m *Target) Wrap(b objstore.Bucket) objstore.Bucket {
	if m == nil {
		return b
	}
	return &bucket{Bucket: b, m: m}
}

type bucket struct {
	objstore.Bucket
	m *Target
}

var _ objstore.Bucket = (*bucket)(nil)

func (b *bucket) observe(op string, start time.Time, err error) {
	b.m.ops.WithLabelValues(op).Inc()
	b.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		b.m.failures.WithLabelValues(op).Inc()
	}
}

func (b *bucket) Put(ctx context.Context, key string, body []byte) error {
	start := time.Now()
	err := b.Bucket.Put(ctx, key, body)
	b.observe("put", start, err)
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	switch {
	case err == nil:
		b.m.written.Add(float64(len(body)))
		b.m.refusing = Refusal{}
	case ctx.Err() != nil:
		// Cancelled (shutdown): not the target's refusal.
	default:
		if b.m.refusing.Failures == 0 {
			b.m.refusing.Since = start
		}
		b.m.refusing.Failures++
		b.m.refusing.LastErr = err.Error()
	}
	return err
}

func (b *bucket) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	body, err := b.Bucket.Get(ctx, key)
	b.observe("get", start, err)
	return body, err
}

func (b *bucket) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	start := time.Now()
	err := b.Bucket.List(ctx, prefix, fn)
	b.observe("list", start, err)
	return err
}

func (b *bucket) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := b.Bucket.Delete(ctx, key)
	b.observe("delete", start, err)
	return err
}
