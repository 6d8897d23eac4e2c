package kinesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kds "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/binlake/binlake/internal/stream"
)

// Producer writes with PutRecords, in batches within Kinesis's limits.
//
// Order: PutRecords may accept entry k+1 of a batch and fail entry k. The
// producer then sends again, in order, every entry of that partition from
// the first failed one on, including the ones already accepted. Those
// early copies carry counters ahead of what the consumer expects for the
// partition and are dropped by it; the copies sent again come in order.
// Entries of other partitions in the batch are unaffected.
//
// Records wait in the queue for a full batch at most linger: an idle
// source's last records must reach the stream without waiting for the
// next write or checkpoint.
type Producer struct {
	s       *Stream
	session int64

	mu       sync.Mutex // serialises Publish, Flush and the linger timer's sends
	counter  map[int]int64
	queue    []*entry
	bytes    int
	queuedAt time.Time // when the queue last became non-empty
	err      error     // of a send by the linger timer, returned by the next call

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// Retries counts entries sent again (metrics, tests).
	Retries int
	// Resent counts accepted entries sent again behind a failed one.
	Resent int
}

type entry struct {
	partition int
	rec       types.PutRecordsRequestEntry
	size      int
}

var _ stream.Producer = (*Producer)(nil)

// Producer returns a producer of the stream. Each producer is a session of
// its own: its records are numbered per partition from 1.
func (s *Stream) Producer() *Producer {
	p := &Producer{s: s, session: time.Now().UnixNano(), counter: map[int]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go p.linger()
	return p
}

// linger is how long a record waits in the queue for a full batch.
const linger = 50 * time.Millisecond

// linger sends the queue once its oldest record has waited linger.
func (p *Producer) linger() {
	defer close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-p.stop
		cancel()
	}()
	t := time.NewTicker(linger / 2)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		for p.err == nil && len(p.queue) > 0 && time.Since(p.queuedAt) >= linger {
			if err := p.sendBatch(ctx); err != nil && ctx.Err() == nil {
				p.err = err
			}
		}
		p.mu.Unlock()
	}
}

// Publish queues m and sends full batches; it waits while Kinesis refuses
// them (backpressure), until ctx ends.
func (p *Producer) Publish(ctx context.Context, m *stream.Message) error {
	h := header{
		partition: m.Partition, session: p.session, commit: m.CommitTime,
		op: m.Op, position: m.Position, table: m.Table,
	}
	room := p.s.maxRecord() - len(h.encode()) - 64
	chunks := stream.Split(m.Data, room)
	hashKey := HashKey(m.Partition, max(p.s.opts.Partitions, m.Partition+1))
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.takeErr(); err != nil {
		return err
	}
	if len(p.queue) == 0 {
		p.queuedAt = time.Now()
	}
	for i, data := range chunks {
		p.counter[m.Partition]++
		h.counter = p.counter[m.Partition]
		h.index, h.count = i+1, len(chunks)
		key := h.encode()
		e := &entry{
			partition: m.Partition,
			rec: types.PutRecordsRequestEntry{
				Data: data, PartitionKey: aws.String(key), ExplicitHashKey: aws.String(hashKey),
			},
			size: len(data) + len(key),
		}
		p.queue = append(p.queue, e)
		p.bytes += e.size
	}
	for len(p.queue) >= maxBatchRecords || p.bytes >= maxBatchBytes {
		if err := p.sendBatch(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Flush sends everything queued and returns when Kinesis has accepted it.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.takeErr(); err != nil {
		return err
	}
	for len(p.queue) > 0 {
		if err := p.sendBatch(ctx); err != nil {
			return err
		}
	}
	return nil
}

// takeErr returns, once, the error of a send by the linger timer. Called
// with mu held.
func (p *Producer) takeErr() error {
	err := p.err
	p.err = nil
	return err
}

// Close stops the linger timer; what was not sent is published again by
// capture after a restart.
func (p *Producer) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		<-p.done
	})
	return nil
}

// sendBatch sends the head of the queue as one PutRecords call, retrying it
// until at least part of it is accepted, and puts what failed back at the
// head of the queue.
func (p *Producer) sendBatch(ctx context.Context) error {
	n, size := 0, 0
	for n < len(p.queue) && n < maxBatchRecords && size+p.queue[n].size <= maxBatchBytes {
		size += p.queue[n].size
		n++
	}
	batch := p.queue[:n]
	recs := make([]types.PutRecordsRequestEntry, n)
	for i, e := range batch {
		recs[i] = e.rec
	}
	name, arn := p.s.ids()
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		out, err := p.s.api.PutRecords(ctx, &kds.PutRecordsInput{StreamName: name, StreamARN: arn, Records: recs})
		if err == nil && len(out.Records) != len(recs) {
			err = fmt.Errorf("PutRecords answered %d entries for %d", len(out.Records), len(recs))
		}
		if err != nil {
			if ctx.Err() != nil || !retryable(err) {
				return fmt.Errorf("kinesis PutRecords: %w", err)
			}
			p.s.log.Warn("kinesis PutRecords failed; retrying", "err", err, "records", n, "attempt", attempt+1)
			if err := sleep(ctx, &backoff); err != nil {
				return err
			}
			continue
		}
		// Per partition, keep everything from the first failed entry on.
		failedFrom := map[int]bool{}
		var again []*entry
		var lastErr string
		for i, r := range out.Records {
			e := batch[i]
			failed := r.ErrorCode != nil
			if failed {
				lastErr = aws.ToString(r.ErrorCode) + ": " + aws.ToString(r.ErrorMessage)
			}
			if failed || failedFrom[e.partition] {
				if !failed {
					p.Resent++
				}
				failedFrom[e.partition] = true
				again = append(again, e)
			}
		}
		rest := p.queue[n:]
		p.queue = append(again, rest...)
		p.bytes = 0
		for _, e := range p.queue {
			p.bytes += e.size
		}
		if len(again) == 0 {
			return nil
		}
		p.Retries += len(again)
		p.s.log.Warn("kinesis PutRecords: entries failed; sending them again in order", "failed", aws.ToInt32(out.FailedRecordCount), "again", len(again), "last", lastErr)
		return sleep(ctx, &backoff)
	}
}

// sleep waits *d with jitter, doubling it up to 5s.
func sleep(ctx context.Context, d *time.Duration) error {
	wait := *d/2 + rand.N(*d/2+1)
	*d = min(2**d, 5*time.Second)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// retryable reports whether a failed call may succeed later: throttling,
// service errors and network errors, not a missing stream or a bad request.
func retryable(err error) bool {
	var nf *types.ResourceNotFoundException
	var inv *types.InvalidArgumentException
	var kms *types.KMSAccessDeniedException
	return !errors.As(err, &nf) && !errors.As(err, &inv) && !errors.As(err, &kms)
}
