// Package natsjs is the stream backend on NATS JetStream: one stream per
// task, one subject per partition. The embedded server (package embedded)
// and an external NATS cluster share this code.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/binlake/binlake/internal/stream"
)

// Header names carried with each message. The stream-position is the
// message id (Nats-Msg-Id), so JetStream drops a re-publish within its
// duplicate window; a chunk's id is "<position>#<i>/<n>" and it carries the
// position in Binlake-Position.
const (
	hdrTable    = "Binlake-Table"
	hdrOp       = "Binlake-Op"
	hdrCommit   = "Binlake-Commit" // unix microseconds
	hdrKey      = "Binlake-Key"
	hdrChunk    = "Binlake-Chunk" // "i/n", on chunks of a record split to fit max_payload
	hdrPosition = "Binlake-Position"
)

// headerRoom is what a message's headers may take of max_payload; the rest
// is for the chunk's data.
const headerRoom = 8 << 10

// Options describe the JetStream stream of a task.
type Options struct {
	Task       string
	Partitions int
	MaxAge     time.Duration
	MaxBytes   int64
	Replicas   int
	FileStore  bool
	// MaxPayload overrides the server's max_payload as the largest message
	// published (for tests); records larger than it are sent in chunks.
	MaxPayload int
}

// StreamName is the JetStream stream of a task.
func StreamName(task string) string { return "binlake_" + task }

// Subject is the subject of one partition of a task.
func Subject(task string, partition int) string {
	return "binlake." + task + "." + strconv.Itoa(partition)
}

// Stream is a task's stream on a JetStream connection.
type Stream struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	s    jetstream.Stream
}

// Open creates or updates the task's stream.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Stream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*maxInFlight))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	storage := jetstream.MemoryStorage
	if opts.FileStore {
		storage = jetstream.FileStorage
	}
	cfg := jetstream.StreamConfig{
		Name:       StreamName(opts.Task),
		Subjects:   []string{"binlake." + opts.Task + ".*"},
		Storage:    storage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     opts.MaxAge,
		MaxBytes:   opts.MaxBytes,
		Replicas:   max(opts.Replicas, 1),
		Duplicates: 2 * time.Minute,
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", cfg.Name, err)
	}
	return &Stream{nc: nc, js: js, opts: opts, s: s}, nil
}

// maxChunk is the most data one message carries.
func (s *Stream) maxChunk() int {
	mp := s.opts.MaxPayload
	if mp <= 0 {
		mp = int(s.nc.MaxPayload())
	}
	return max(mp-headerRoom, 1024)
}

// Producer returns a producer publishing asynchronously on the stream.
func (s *Stream) Producer() stream.Producer {
	return &producer{s: s}
}

// maxInFlight bounds the messages published and not yet acknowledged by the
// server: Publish waits for them beyond it (backpressure).
const maxInFlight = 1024

type producer struct {
	s       *Stream
	mu      sync.Mutex
	pending []jetstream.PubAckFuture
}

func (p *producer) Publish(ctx context.Context, m *stream.Message) error {
	chunks := stream.Split(m.Data, p.s.maxChunk())
	for i, data := range chunks {
		msg := nats.NewMsg(Subject(p.s.opts.Task, m.Partition))
		msg.Data = data
		if len(chunks) == 1 {
			msg.Header.Set(jetstream.MsgIDHeader, m.Position)
		} else {
			label := stream.ChunkLabel(i+1, len(chunks))
			msg.Header.Set(jetstream.MsgIDHeader, m.Position+"#"+label)
			msg.Header.Set(hdrPosition, m.Position)
			msg.Header.Set(hdrChunk, label)
		}
		msg.Header.Set(hdrTable, m.Table)
		msg.Header.Set(hdrOp, m.Op)
		msg.Header.Set(hdrCommit, strconv.FormatInt(m.CommitTime.UnixMicro(), 10))
		if m.Key != "" {
			msg.Header.Set(hdrKey, m.Key)
		}
		f, err := p.s.js.PublishMsgAsync(msg, jetstream.WithExpectStream(StreamName(p.s.opts.Task)))
		if err != nil {
			return fmt.Errorf("publishing %s: %w", m.Position, err)
		}
		p.mu.Lock()
		p.pending = append(p.pending, f)
		n := len(p.pending)
		p.mu.Unlock()
		if n >= maxInFlight {
			if err := p.Flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	var first error
	for _, f := range pending {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("publishing %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

func (p *producer) Close() error { return nil }

// Consumer returns the durable consumer name of the stream.
//
// A consumer that a previous process left behind is recreated from its
// acknowledgement floor: messages that process had received but not
// acknowledged would otherwise wait for AckWait before coming again. What is
// delivered again above the floor is dropped by delivery's positions.
func (s *Stream) Consumer(ctx context.Context, name string, ackWait time.Duration) (stream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: -1,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	old, err := s.s.Consumer(ctx, name)
	switch {
	case err == nil:
		info, err := old.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", name, err)
		}
		if floor := info.AckFloor.Stream; floor > 0 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = floor + 1
		}
		if err := s.s.DeleteConsumer(ctx, name); err != nil {
			return nil, fmt.Errorf("recreating consumer %s: %w", name, err)
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	c, err := s.s.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s: %w", name, err)
	}
	return &consumer{s: s, c: c}, nil
}

type consumer struct {
	s  *Stream
	c  jetstream.Consumer
	ra stream.Reassembler
}

// Fetch returns up to max records, joining chunks; it keeps fetching while
// only chunks of an incomplete record arrived and wait has not passed.
func (c *consumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]*stream.Delivered, error) {
	deadline := time.Now().Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	var out []*stream.Delivered
	for {
		w := max64(time.Until(deadline), time.Millisecond)
		batch, err := c.c.Fetch(max-len(out), jetstream.FetchMaxWait(w))
		if err != nil {
			return out, fmt.Errorf("fetching: %w", err)
		}
		for msg := range batch.Messages() {
			part, err := c.decode(msg)
			if err != nil {
				return out, err
			}
			d, err := c.ra.Add(ctx, part)
			if err != nil {
				return out, err
			}
			if d != nil {
				out = append(out, d)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return out, fmt.Errorf("fetching: %w", err)
		}
		if len(out) > 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			return out, nil
		}
	}
}

func max64(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func (c *consumer) decode(msg jetstream.Msg) (stream.Part, error) {
	subj := msg.Subject()
	i := strings.LastIndexByte(subj, '.')
	part, err := strconv.Atoi(subj[i+1:])
	if err != nil {
		return stream.Part{}, fmt.Errorf("message on subject %q: no partition number", subj)
	}
	h := msg.Headers()
	micros, _ := strconv.ParseInt(h.Get(hdrCommit), 10, 64)
	meta, err := msg.Metadata()
	if err != nil {
		return stream.Part{}, fmt.Errorf("message metadata: %w", err)
	}
	p := stream.Part{
		Message: stream.Message{
			Partition:  part,
			Table:      h.Get(hdrTable),
			Position:   h.Get(jetstream.MsgIDHeader),
			Op:         h.Get(hdrOp),
			CommitTime: time.UnixMicro(micros).UTC(),
			Key:        h.Get(hdrKey),
			Data:       msg.Data(),
		},
		Index: 1, Count: 1,
		Seq: meta.Sequence.Stream,
		Ack: func(ctx context.Context) error { return msg.Ack() },
	}
	if label := h.Get(hdrChunk); label != "" {
		p.Index, p.Count, err = stream.ParseChunkLabel(label)
		if err != nil {
			return stream.Part{}, fmt.Errorf("message %d: %w", meta.Sequence.Stream, err)
		}
		p.Position = h.Get(hdrPosition)
	}
	return p, nil
}

func (c *consumer) Pending(ctx context.Context) (uint64, error) {
	info, err := c.c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("consumer info: %w", err)
	}
	return info.NumPending + uint64(c.ra.Buffered()), nil
}

// Close sends the acknowledgements still buffered in the connection, so the
// next consumer starts from an ack floor that includes them.
func (c *consumer) Close() error {
	if err := c.s.nc.FlushTimeout(10 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("flushing acknowledgements: %w", err)
	}
	return nil
}
