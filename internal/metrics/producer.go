package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/stream"
)

// Stream holds the metrics of the stream producer that capture writes to.
type Stream struct {
	records  *prometheus.CounterVec
	publish  prometheus.Histogram
	flush    prometheus.Histogram
	failures *prometheus.CounterVec
	captured atomic.Uint64 // records counted in records, all tables

	// calls are the start times of the producer calls in progress, by a
	// call number: the oldest tells how long capture has waited for the
	// stream.
	mu    sync.Mutex
	calls map[uint64]time.Time
	next  uint64
}

// enter records the start of a producer call and returns its number.
func (m *Stream) enter(now time.Time) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	m.calls[m.next] = now
	return m.next
}

func (m *Stream) leave(id uint64) {
	m.mu.Lock()
	delete(m.calls, id)
	m.mu.Unlock()
}

// Waiting is how long the oldest producer call in progress has waited
// (0: none): a stream that is down or pushes back makes capture wait
// there, without dropping anything, until it takes messages again. A nil
// m has none.
func (m *Stream) Waiting(now time.Time) time.Duration {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var oldest time.Time
	for _, t := range m.calls {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return now.Sub(oldest)
}

// Captured is how many records capture has published since the process
// started, all tables and operations (the sum of capture_records_total).
// A nil m has none.
func (m *Stream) Captured() uint64 {
	if m == nil {
		return 0
	}
	return m.captured.Load()
}

// NewStream registers the producer metrics with reg.
func NewStream(reg prometheus.Registerer) *Stream {
	m := &Stream{
		calls: map[uint64]time.Time{},
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "capture_records_total",
			Help: "Records capture published on the stream since the process started, by table and operation (load, insert, update, delete, ddl).",
		}, []string{"table", "op"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "stream_publish_duration_seconds",
			Help:    "Time a publish call on the stream takes (queueing a message; grows when the stream pushes back).",
			Buckets: durationBuckets,
		}),
		flush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "stream_flush_duration_seconds",
			Help:    "Time until every message published so far is durable on the stream (capture flushes before each checkpoint).",
			Buckets: durationBuckets,
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "stream_failures_total",
			Help: "Failed stream producer calls, by operation (publish, flush).",
		}, []string{"operation"}),
	}
	m.failures.WithLabelValues("publish")
	m.failures.WithLabelValues("flush")
	reg.MustRegister(m.records, m.publish, m.flush, m.failures)
	return m
}

// WrapProducer returns p measured by m. A nil m returns p itself.
func (m *Stream) WrapProducer(p stream.Producer) stream.Producer {
	if m == nil {
		return p
	}
	return &producer{Producer: p, m: m}
}

// producer embeds the wrapped producer, so methods other than the ones
// measured here pass through.
type producer struct {
	stream.Producer
	m *Stream
}

var _ stream.Producer = (*producer)(nil)

func (p *producer) Publish(ctx context.Context, msg *stream.Message) error {
	start := time.Now()
	id := p.m.enter(start)
	err := p.Producer.Publish(ctx, msg)
	p.m.leave(id)
	p.m.publish.Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.failures.WithLabelValues("publish").Inc()
		return err
	}
	if counted(msg) {
		p.m.records.WithLabelValues(msg.Table, OpLabel(msg.Op)).Inc()
		p.m.captured.Add(1)
	}
	return nil
}

func (p *producer) Flush(ctx context.Context) error {
	start := time.Now()
	id := p.m.enter(start)
	err := p.Producer.Flush(ctx)
	p.m.leave(id)
	p.m.flush.Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.failures.WithLabelValues("flush").Inc()
	}
	return err
}

// counted tells whether a published message counts as a captured record:
// every data record, and each control record (DDL) once although it is
// published on every partition (its copies differ in sub-position B). The
// control records a full load writes itself (a restart marker, the table's
// definition) are not changes at the source and are not counted.
func counted(m *stream.Message) bool {
	if !change.Op(m.Op).IsControl() {
		return true
	}
	p, err := change.ParsePosition(m.Position)
	return err == nil && p.B == 0 && p.Kind == change.KindEvent
}
