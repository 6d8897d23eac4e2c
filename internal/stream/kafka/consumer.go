package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/stream"
)

// Consumer reads the topic's partitions from the offsets saved in the state
// directory (the start of the partition on a fresh state). A partition's
// saved offset moves over the contiguous prefix of acknowledged records, so
// a restart reads again exactly what was not acknowledged.
type Consumer struct {
	s    *Stream
	cl   *kgo.Client
	path string

	mu      sync.Mutex
	state   offsetState
	parts   map[int32]*partition
	dirty   bool
	savedAt time.Time
	seq     uint64
	closed  bool

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

type partition struct {
	next     int64 // offset after the last record handed out
	inflight []*inflight
}

type inflight struct {
	offset int64
	acked  bool
}

// Consumer opens the named consumer.
func (s *Stream) Consumer(ctx context.Context, name string) (*Consumer, error) {
	c := &Consumer{s: s, path: s.statePath(name), parts: map[int32]*partition{}}
	ok, err := checkpoint.Load(c.path, &c.state)
	if err != nil {
		return nil, err
	}
	if ok && c.state.FormatVersion != stateVersion {
		return nil, fmt.Errorf("%s: format_version %d, this binlake reads %d", c.path, c.state.FormatVersion, stateVersion)
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
		c.parts[p] = &partition{next: off}
	}
	c.cl, err = kgo.NewClient(
		kgo.SeedBrokers(s.opts.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.opts.Topic: start}),
		kgo.FetchMaxBytes(int32(max(4*s.opts.MaxMessageBytes, 16<<20))),
		kgo.FetchMaxPartitionBytes(int32(max(2*s.opts.MaxMessageBytes, 4<<20))),
	)
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
		pt = &partition{}
		c.parts[r.Partition] = pt
	}
	e := &inflight{offset: r.Offset}
	pt.inflight = append(pt.inflight, e)
	pt.next = r.Offset + 1
	c.seq++
	p := stream.Part{
		Message: stream.Message{Partition: int(r.Partition), Key: string(r.Key), Data: r.Value},
		Index:   1, Count: 1, Seq: c.seq,
		Ack:     func(context.Context) error { c.ack(r.Partition, e); return nil },
		Discard: func() { c.ack(r.Partition, e) },
	}
	for _, h := range r.Headers {
		switch h.Key {
		case hdrTable:
			p.Table = string(h.Value)
		case hdrOp:
			p.Op = string(h.Value)
		case hdrPosition:
			p.Position = string(h.Value)
		case hdrCommit:
			us, _ := strconv.ParseInt(string(h.Value), 10, 64)
			p.CommitTime = time.UnixMicro(us).UTC()
		case hdrNoKey:
			p.Key = ""
		case hdrChunk:
			var err error
			if p.Index, p.Count, err = stream.ParseChunkLabel(string(h.Value)); err != nil {
				return p, fmt.Errorf("kafka record %d/%d: %w", r.Partition, r.Offset, err)
			}
		}
	}
	return p, nil
}

func (c *Consumer) ack(p int32, e *inflight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.acked = true
	pt := c.parts[p]
	i := 0
	for ; i < len(pt.inflight) && pt.inflight[i].acked; i++ {
		c.state.Offsets[p] = pt.inflight[i].offset + 1
		c.dirty = true
	}
	pt.inflight = pt.inflight[i:]
}

// saveEvery bounds how often offsets are written; an offset saved late only
// means more is read again, and dropped by delivery, after a crash.
const saveEvery = time.Second

func (c *Consumer) maybeSave(force bool) error {
	if !c.dirty || (!force && time.Since(c.savedAt) < saveEvery) {
		return nil
	}
	c.state.SavedAt = time.Now().UTC()
	if err := checkpoint.Save(c.path, &c.state); err != nil {
		return err
	}
	c.dirty, c.savedAt = false, time.Now()
	return nil
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
	req := kmsg.NewPtrListOffsetsRequest()
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = c.s.opts.Topic
	for p := range int32(c.s.opts.Partitions) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1 // the end
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return 0, fmt.Errorf("kafka list offsets: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return 0, fmt.Errorf("kafka list offsets of partition %d: %w", rp.Partition, err)
			}
			from := int64(0)
			if pt := c.parts[rp.Partition]; pt != nil {
				from = pt.next
			}
			if pt := c.parts[rp.Partition]; pt != nil && pt.next == 0 {
				// Nothing handed out yet: from the saved offset, or the
				// partition's start.
				from = c.state.Offsets[rp.Partition]
				if from == 0 {
					from = c.startOffset(ctx, rp.Partition)
				}
			}
			if rp.Offset > from {
				n += uint64(rp.Offset - from)
			}
		}
	}
	return n, nil
}

// startOffset is the first offset still in partition p (after retention).
func (c *Consumer) startOffset(ctx context.Context, p int32) int64 {
	req := kmsg.NewPtrListOffsetsRequest()
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = c.s.opts.Topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = p
	rp.Timestamp = -2 // the start
	t.Partitions = append(t.Partitions, rp)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0
	}
	return resp.Topics[0].Partitions[0].Offset
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
