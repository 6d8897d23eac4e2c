package capture_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/testbed"
)

// countingProducer counts the messages published and drops them.
type countingProducer struct{ n atomic.Int64 }

func (p *countingProducer) Publish(ctx context.Context, m *stream.Message) error {
	p.n.Add(1)
	return nil
}
func (p *countingProducer) Flush(context.Context) error { return nil }
func (p *countingProducer) Close() error                { return nil }

// BenchmarkLargeTransactionHeap commits one transaction of 1M rows and
// reports the peak heap of capture while it reads and publishes it, with
// the default source.mysql.transaction_memory (64MiB: spilled to disk) and
// with a limit that keeps it all in memory, as binlake did before. Run it
// alone:
//
//	go test -run '^$' -bench LargeTransactionHeap -benchtime 1x ./internal/capture
func BenchmarkLargeTransactionHeap(b *testing.B) {
	const rows = 1_000_000
	for _, limit := range []config.ByteSize{1 << 20, 64 << 20, 16 << 30} {
		b.Run(fmt.Sprintf("transaction_memory=%s", limit), func(b *testing.B) {
			for range b.N {
				peak, took := largeTransaction(b, rows, limit)
				b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
				b.ReportMetric(took.Seconds(), "s-to-publish")
			}
		})
	}
}

// largeTransaction runs capture (CDC, a stream that drops the records) on
// a new MariaDB, commits a transaction of rows inserts, and returns the
// peak heap from the commit until capture published the last record, and
// how long that took.
func largeTransaction(b *testing.B, rows int, limit config.ByteSize) (uint64, time.Duration) {
	m := testbed.NewMariaDB(b)
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	if err := m.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(100), d DECIMAL(10,2))"); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `task: bench
migration: cdc
source:
  mysql: {host: 127.0.0.1, port: %d, user: root, password: ""}
tables: [{include: "shop.%%"}]
target: file://%s
state_dir: %s
`, m.Port, b.TempDir(), filepath.Join(b.TempDir(), "state")))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Source.MySQL.TransactionMemory = limit
	prod := &countingProducer{}
	c := capture.New(capture.Options{Config: cfg, Producer: prod, StateDir: cfg.StateDir, Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for c.Phase() != capture.PhaseStreaming {
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	if err := m.Exec(ctx, "BEGIN",
		fmt.Sprintf("INSERT INTO shop.big SELECT seq, CONCAT('row ', seq, REPEAT('x', 40)), seq / 100 FROM shop.seq_1_to_%d", rows),
		"COMMIT"); err != nil {
		b.Fatal(err)
	}
	for prod.n.Load() < int64(rows) {
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(t0)
	close(stop)
	<-sampled
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return peak.Load(), took
}
