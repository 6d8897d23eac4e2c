package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/stream"
)

// Consumer reads the topic's partitions from the offsets saved in the state
// directory (the start of the partition on a fresh state). A partition's
// saved offset moves over the contiguous prefix of acknowledged records, so
// a restart reads again exactly what was not acknowledged.
type Consumer struct {
	s  *Stream
	cl *kgo.Client

	mu     sync.Mutex
	state  offsetState
	saver  checkpoint.Throttled // of state
	parts  map[int32]*handedOut
	seq    uint64
	closed bool

	ra      stream.Reassembler // used by Fetch only
	backlog atomic.Uint64      // the last Backlog
}

var (
	_ stream.Consumer   = (*Consumer)(nil)
	_ stream.Backlogger = (*Consumer)(nil)
)

// Backlog is the consumer's lag: the records in the topic after the last
// one handed out (one ListOffsets request, at most 2s), or the
// last value known when the brokers do not answer.
func (c *Consumer) Backlog() uint64 {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return c.backlog.Load()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.unread(ctx)
	if err != nil {
		return c.backlog.Load()
	}
	c.backlog.Store(n)
	return n
}

const stateVersion = 1

type offsetState struct {
	FormatVersion int    `json:"format_version"`
	Topic         string `json:"topic"`
	// Offsets maps a partition to the offset of its first record not
	// acknowledged.
	Offsets map[int32]int64 `json:"offsets"`
	SavedAt time.Time       `json:"saved_at"`
}

// Consumer opens the named consumer.
func (s *Stream) Consumer(ctx context.Context, name string) (*Consumer, error) {
	c := &Consumer{s: s, saver: checkpoint.Throttled{Path: s.statePath(name), Every: saveEvery}, parts: map[int32]*handedOut{}}
	ok, err := checkpoint.Load(c.saver.Path, &c.state)
	if err != nil {
		return nil, err
	}
	if ok && c.state.FormatVersion != stateVersion {
		return nil, fmt.Errorf("%s: format_version %d, this binlake reads %d", c.saver.Path, c.state.FormatVersion, stateVersion)
	}
	c.state.FormatVersion, c.state.Topic = stateVersion, s.opts.Topic
	if c.state.Offsets == nil {
		c.state.Offsets = map[int32]int64{}
	}
	start := map[int32]kgo.Offset{}
	for p := range int32(s.opts.Partitions) {
		off, ok := c.state.Offsets[p]
		if ok {
			start[p] = kgo.NewOffset().At(off)
		} else {
			start[p] = kgo.NewOffset().AtStart()
		}
		c.parts[p] = &handedOut{next: off}
	}
	c.cl, err = kgo.NewClient(s.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.opts.Topic: start}),
		kgo.FetchMaxBytes(int32(max(4*s.opts.MaxMessageBytes, 16<<20))),
		kgo.FetchMaxPartitionBytes(int32(max(2*s.opts.MaxMessageBytes, 4<<20))),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return c, nil
}

// Fetch returns up to max records, waiting up to wait for the first.
func (c *Consumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]*stream.Delivered, error) {
	deadline := time.Now().Add(wait)
	var out []*stream.Delivered
	for {
		c.mu.Lock()
		err := c.maybeSave(false)
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithDeadline(ctx, deadline)
		fetches := c.cl.PollRecords(pctx, max-len(out))
		cancel()
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
				continue
			}
			c.s.log.Warn("kafka fetch failed; retrying", "partition", fe.Partition, "err", fe.Err)
		}
		var err2 error
		fetches.EachRecord(func(r *kgo.Record) {
			if err2 != nil {
				return
			}
			part, err := c.part(r)
			if err != nil {
				err2 = err
				return
			}
			d, err := c.ra.Add(ctx, part)
			if err != nil {
				err2 = err
				return
			}
			if d != nil {
				out = append(out, d)
			}
		})
		if err2 != nil {
			return out, err2
		}
		if len(out) > 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			return out, nil
		}
	}
}

// part decodes r and records it as handed out.
func (c *Consumer) part(r *kgo.Record) (stream.Part, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := c.parts[r.Partition]
	if pt == nil {
		pt = &handedOut{}
		c.parts[r.Partition] = pt
	}
	e := pt.add(r)
	c.seq++
	return toPart(r, c.seq, func() { c.ack(r.Partition, e) })
}

func (c *Consumer) ack(p int32, e *inflight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if resume, ok := c.parts[p].ack(e); ok {
		c.state.Offsets[p] = resume.Offset
		c.saver.Changed()
	}
}

// saveEvery bounds how often offsets are written; an offset saved late only
// means more is read again, and dropped by delivery, after a crash.
const saveEvery = time.Second

func (c *Consumer) maybeSave(force bool) error {
	return c.saver.Save(&c.state, &c.state.SavedAt, force)
}

// Pending is the number of records in the topic after the last one handed
// out (from the partitions' end offsets), plus chunks waiting to be joined.
func (c *Consumer) Pending(ctx context.Context) (uint64, error) {
	n, err := c.unread(ctx)
	return n + uint64(c.ra.Buffered()), err
}

// unread is the number of records in the topic after the last one handed
// out; unlike Pending it may be called while Fetch runs.
func (c *Consumer) unread(ctx context.Context) (uint64, error) {
	all := make([]int32, c.s.opts.Partitions)
	for p := range all {
		all[p] = int32(p)
	}
	ends, err := listOffsets(ctx, c.cl, c.s.opts.Topic, all, atEnd)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	var fresh []int32 // nothing handed out nor saved: from the partition's start
	var n uint64
	for p, end := range ends {
		from := int64(0)
		if pt := c.parts[p]; pt != nil {
			from = pt.next
			if pt.next == 0 {
				from = c.state.Offsets[p]
			}
		}
		if from == 0 {
			fresh = append(fresh, p)
			continue
		}
		n += uint64(max(end-from, 0))
	}
	c.mu.Unlock()
	if len(fresh) > 0 {
		starts, err := listOffsets(ctx, c.cl, c.s.opts.Topic, fresh, atStart)
		if err != nil {
			return 0, err
		}
		for _, p := range fresh {
			n += uint64(max(ends[p]-starts[p], 0))
		}
	}
	return n, nil
}

// Close saves the offsets and closes the client.
func (c *Consumer) Close() error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil
	}
	// The backlog as the consumer leaves it, for the status of a stopped
	// task (after a drain, 0).
	c.Backlog()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.cl.Close()
	return c.maybeSave(true)
}
