// Package natsjs is the stream backend on NATS JetStream: one stream per
// task, one subject per partition. The embedded server (package embedded)
// and an external NATS cluster share this code.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// MaxAge is how long delivered records stay in the stream, and
	// MaxBytes the most it holds: the producer waits before it would pass
	// PauseAt of it (see retention.go). Records no consumer has
	// acknowledged never expire.
	MaxAge    time.Duration
	MaxBytes  int64
	Replicas  int
	FileStore bool
	// MaxPayload overrides the server's max_payload as the largest message
	// published (for tests); records larger than it are sent in chunks.
	MaxPayload int
	// Logger, if not nil, receives the warnings of retention.
	Logger *slog.Logger
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
	// disconnects counts the connection's losses: messages sent before one
	// may be lost while those sent after it are stored.
	disconnects atomic.Uint64

	room    room
	trimMu  sync.Mutex     // one Trim at a time
	trimmed map[int]uint64 // the cut of each partition's last purge
}

func (s *Stream) log() *slog.Logger {
	if s.opts.Logger != nil {
		return s.opts.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Open creates or updates the task's stream.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Stream, error) {
	js, err := newJetStream(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	storage := jetstream.MemoryStorage
	if opts.FileStore {
		storage = jetstream.FileStorage
	}
	cfg := jetstream.StreamConfig{
		Name:      StreamName(opts.Task),
		Subjects:  []string{"binlake." + opts.Task + ".*"},
		Storage:   storage,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		// No age limit: records nobody has acknowledged must not expire.
		// Trim removes delivered ones after opts.MaxAge, and the producer
		// keeps below MaxBytes, which the server enforces as a last resort.
		MaxBytes:   opts.MaxBytes,
		Replicas:   max(opts.Replicas, 1),
		Duplicates: 2 * time.Minute,
	}
	var s jetstream.Stream
	err = retryTimeouts(ctx, func(ctx context.Context) (err error) {
		s, err = js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", cfg.Name, err)
	}
	st := &Stream{nc: nc, js: js, opts: opts, s: s}
	nc.SetDisconnectErrHandler(func(*nats.Conn, error) { st.disconnects.Add(1) })
	return st, nil
}

// newJetStream is the JetStream context the stream is used through.
func newJetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	return jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*maxInFlight),
		// A replicated stream's creation waits for the cluster to agree,
		// which takes longer than jetstream's 5s default on a busy cluster.
		jetstream.WithDefaultTimeout(30*time.Second),
		// An acknowledgement lost with a failed node would otherwise be
		// waited for forever; a timed-out message is sent again.
		jetstream.WithPublishAsyncTimeout(10*time.Second))
}

// retryTimeouts runs an idempotent JetStream API call until it answers: on
// a cluster, concurrent creations of one stream by several processes (a
// capture and its deliver workers starting together) can leave some
// requests without a reply.
func retryTimeouts(ctx context.Context, call func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := call(actx)
		cancel()
		if err == nil || ctx.Err() != nil || attempt == 6 ||
			!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
	}
}

// maxChunk is the most data one message carries.
func (s *Stream) maxChunk() int {
	mp := s.opts.MaxPayload
	if mp <= 0 {
		mp = int(s.nc.MaxPayload())
	}
	return max(min(mp, maxMessage)-headerRoom, 1024)
}

// maxMessage caps a message whatever the server's max_payload: JetStream's
// file store refuses a message over 32 MiB ("message too large"), and
// smaller chunks of a huge record are cheaper to hold, replicate and send
// again.
const maxMessage = 8 << 20

// Producer returns a producer publishing asynchronously on the stream.
func (s *Stream) Producer() stream.Producer {
	return &producer{s: s}
}

// ackAck is JetStream's acknowledgement body.
var ackAck = []byte("+ACK")

// maxInFlight and maxInFlightBytes bound the messages published and not
// yet acknowledged by the server: Publish waits for them beyond either
// (backpressure, and the memory they hold).
const (
	maxInFlight      = 1024
	maxInFlightBytes = 16 << 20
)

type producer struct {
	s *Stream
	// sentIn is s.disconnects when the oldest pending message was sent.
	sentIn  uint64
	flushMu sync.Mutex // one Flush at a time
	mu      sync.Mutex // orders sends: the order of PublishMsgAsync calls is pending's
	pending []jetstream.PubAckFuture
	// pendingBytes is the payload bytes of pending.
	pendingBytes int
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
		// After a disconnection, the messages sent before it are settled
		// (and sent again if lost) before any other is sent: a message
		// sent on the new connection must not be stored before one lost
		// with the old.
		p.mu.Lock()
		dirty := len(p.pending) > 0 && p.sentIn != p.s.disconnects.Load()
		p.mu.Unlock()
		if dirty {
			if err := p.Flush(ctx); err != nil {
				return err
			}
		}
		if err := p.waitRoom(ctx, msgSize(msg.Data, msg.Header, msg.Subject)); err != nil {
			return err
		}
		p.mu.Lock()
		err := p.sendLocked(ctx, msg)
		n := len(p.pending)
		if err == nil {
			p.pendingBytes += len(msg.Data)
		}
		// On a replicated stream one message is in flight at a time: when
		// the stream's leader goes away, a message in flight may be lost
		// while later ones are stored by the next leader, and sent again
		// it would then follow them (delivery drops a record that arrives
		// behind a later one of its partition as a re-send). Each message
		// carries a batch of records, so this costs a round trip per batch.
		full := n >= maxInFlight || p.pendingBytes >= maxInFlightBytes || p.s.opts.Replicas > 1
		p.mu.Unlock()
		if err != nil {
			return fmt.Errorf("publishing %s: %w", m.Position, err)
		}
		if full {
			if err := p.Flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendLocked sends msg asynchronously and adds it to pending. While the
// connection is down it waits for the reconnection instead of failing the
// task. p.mu is held, and released while waiting.
func (p *producer) sendLocked(ctx context.Context, msg *nats.Msg) error {
	for {
		gen := p.s.disconnects.Load()
		f, err := p.s.js.PublishMsgAsync(msg, jetstream.WithExpectStream(StreamName(p.s.opts.Task)))
		if err == nil {
			if len(p.pending) == 0 {
				p.sentIn = gen
			}
			p.pending = append(p.pending, f)
			return nil
		}
		if !retriable(err) {
			return err
		}
		p.mu.Unlock()
		err = p.waitConnected(ctx)
		p.mu.Lock()
		if err != nil {
			return err
		}
	}
}

// Flush waits for the acknowledgements of everything sent. When a message
// failed for a connection problem (a node of the cluster went away, a
// leader election, a timeout), it sends again, in order, every message from
// the first that failed: those stored already are dropped by the server as
// duplicates of their message id.
func (p *producer) Flush(ctx context.Context) error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.mu.Lock()
	pending := p.pending
	p.pending, p.pendingBytes = nil, 0
	p.mu.Unlock()
	for len(pending) > 0 {
		failed := -1
		var ferr error
		for i, f := range pending {
			select {
			case <-f.Ok():
				continue
			case err := <-f.Err():
				failed, ferr = i, err
			case <-ctx.Done():
				return ctx.Err()
			}
			break
		}
		if failed < 0 {
			return nil
		}
		if !retriable(ferr) {
			return fmt.Errorf("publishing %s: %w", pending[failed].Msg().Header.Get(jetstream.MsgIDHeader), ferr)
		}
		if err := p.waitConnected(ctx); err != nil {
			return err
		}
		// Messages sent meanwhile by other goroutines follow.
		p.mu.Lock()
		resend := append(pending[failed:], p.pending...)
		p.pending = nil
		var err error
		for _, f := range resend {
			// A fresh message: the sent one carries the reply subject of
			// its first acknowledgement.
			old := f.Msg()
			msg := &nats.Msg{Subject: old.Subject, Header: nats.Header{}, Data: old.Data}
			for k, v := range old.Header {
				msg.Header[k] = v
			}
			if err = p.sendLocked(ctx, msg); err != nil {
				err = fmt.Errorf("publishing %s again: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
				break
			}
		}
		pending = p.pending
		p.pending = nil
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// waitConnected waits until the connection is up again.
func (p *producer) waitConnected(ctx context.Context) error {
	for !p.s.nc.IsConnected() {
		if p.s.nc.IsClosed() {
			return nats.ErrConnectionClosed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	// A short pause lets a stream that lost its leader elect another.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(200 * time.Millisecond):
	}
	return nil
}

func (p *producer) Close() error { return nil }

// retriable tells the publish errors that a reconnection or a new attempt
// cures.
func retriable(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, jetstream.ErrServerShutdown) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrNoServers) ||
		clusterBusy(err)
}

// clusterBusy tells the API errors a JetStream cluster answers while it
// has no meta leader or the asset's leader is moving (a node went away):
// "JetStream system temporarily unavailable", "JetStream cluster can not
// handle request", "incomplete results". Another attempt, once the cluster
// has a leader again, succeeds.
func clusterBusy(err error) bool {
	return apiErrorIs(err, errCodeClusterNotAvailable, errCodeClusterNotLeader, errCodeClusterIncomplete)
}

// noPeersYet tells "insufficient resources", which creating a replicated
// consumer gets while the nodes for its replicas are down: retry waits for
// them. A publish that gets it (the account's or the disk's storage is
// full) fails instead, with the reason.
func noPeersYet(err error) bool { return apiErrorIs(err, errCodeInsufficientResources) }

// apiErrorIs tells whether err is a JetStream API error with one of codes.
func apiErrorIs(err error, codes ...jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && slices.Contains(codes, apiErr.ErrorCode)
}

// The server's error codes (nats-server's errors.json) that nats.go does
// not name.
const (
	errCodeClusterIncomplete     jetstream.ErrorCode = 10004 // JSClusterIncompleteErr
	errCodeClusterNotAvailable   jetstream.ErrorCode = 10008 // JSClusterNotAvailErr
	errCodeClusterNotLeader      jetstream.ErrorCode = 10009 // JSClusterNotLeaderErr
	errCodeInsufficientResources jetstream.ErrorCode = 10023 // JSInsufficientResourcesErr
)

// pause waits d, or less if ctx ends first (which it does not report:
// the caller sees ctx itself).
func (s *Stream) pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return nil
}

// Consumer returns the durable consumer name of the stream.
//
// A consumer that a previous process left behind is recreated from its
// acknowledgement floor: messages that process had received but not
// acknowledged would otherwise wait for AckWait before coming again. What is
// delivered again above the floor is dropped by delivery's positions.
func (s *Stream) Consumer(ctx context.Context, name string, ackWait time.Duration) (stream.Consumer, error) {
	return s.openConsumer(ctx, name, "", ackWait)
}

// PartitionConsumer is Consumer for one partition: the durable consumer
// "<name>-p<partition>" reads that partition's subject only. A deliver
// worker opens it when it takes the partition's lease; recreating it from
// its acknowledgement floor also cuts off a worker that held it before.
func (s *Stream) PartitionConsumer(ctx context.Context, name string, partition int, ackWait time.Duration) (stream.Consumer, error) {
	return s.openConsumer(ctx, name+"-p"+strconv.Itoa(partition), Subject(s.opts.Task, partition), ackWait)
}

func (s *Stream) openConsumer(ctx context.Context, name, filter string, ackWait time.Duration) (stream.Consumer, error) {
	c := &consumer{s: s, name: name, filter: filter, ackWait: ackWait, gen: s.disconnects.Load()}
	if err := s.retry(ctx, c.create); err != nil {
		return nil, err
	}
	return c, nil
}

// apiTimeout bounds one JetStream API request made through retry.
const apiTimeout = 5 * time.Second

// retry calls f until it succeeds, fails for a reason another attempt does
// not cure, or ctx ends; it waits between attempts, longer each time up to
// two seconds. A cluster that lost a node answers for a few seconds that it
// is not available.
func (s *Stream) retry(ctx context.Context, f func(context.Context) error) error {
	wait, start, warned := 100*time.Millisecond, time.Now(), false
	for {
		// An API request the cluster does not answer would otherwise
		// wait as long as ctx.
		actx, cancel := context.WithTimeout(ctx, apiTimeout)
		err := f(actx)
		cancel()
		if err == nil || !(retriable(err) || noPeersYet(err)) || ctx.Err() != nil {
			return err
		}
		if !warned && time.Since(start) > 10*time.Second {
			s.log().Warn("the stream is not available; trying again until it is", "err", err)
			warned = true
		}
		if s.pause(ctx, wait); ctx.Err() != nil {
			return fmt.Errorf("%w (the stream was not available: %v)", ctx.Err(), err)
		}
		wait = min(2*wait, 2*time.Second)
	}
}

type consumer struct {
	s            *Stream
	name, filter string
	ackWait      time.Duration
	gen          uint64 // s.disconnects when the consumer was created
	c            jetstream.Consumer
	ra           stream.Reassembler
	// backlog is the consumer's pending count the last message fetched
	// carried (its metadata's NumPending): messages stored and not read.
	backlog atomic.Uint64
	acks    ackFloor
	// next is the consumer sequence the next delivery must carry. The
	// server numbers its deliveries to this consumer (redeliveries too)
	// 1, 2, 3…: a delivery that does not come next was lost on its way (a
	// pull request that expired as the server answered it, a consumer
	// leader that went away) and the server would send it again only after
	// AckWait, behind later messages, which delivery would then take for
	// a re-send of records it already stored. The consumer is recreated
	// from its acknowledgement floor instead, before anything after the
	// gap is handed on.
	next  uint64
	reset bool // a gap was seen: recreate before the next fetch
}

// ackFloor is the consumer's acknowledgement floor as this process knows
// it: the stream sequence below which every message it received is
// acknowledged. Close waits until the server's floor reaches it.
type ackFloor struct {
	mu       sync.Mutex
	received []uint64        // in order of first arrival, from the oldest not acknowledged
	acked    map[uint64]bool // the sequences in received: acknowledged or not
	floor    uint64
}

// receive notes a message received; one received again (a redelivery)
// keeps its place.
func (a *ackFloor) receive(seq uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acked == nil {
		a.acked = map[uint64]bool{}
	}
	if _, ok := a.acked[seq]; ok || seq <= a.floor {
		return
	}
	a.acked[seq] = false
	a.received = append(a.received, seq)
}

func (a *ackFloor) ack(seq uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.acked[seq]; !ok {
		return
	}
	a.acked[seq] = true
	for len(a.received) > 0 && a.acked[a.received[0]] {
		delete(a.acked, a.received[0])
		a.floor = max(a.floor, a.received[0])
		a.received = a.received[1:]
	}
}

func (a *ackFloor) get() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.floor
}

var _ stream.Backlogger = (*consumer)(nil)

// Backlog is the number of stored messages not read yet, as of the last
// message fetched.
func (c *consumer) Backlog() uint64 { return c.backlog.Load() }

// create creates the durable consumer, from the acknowledgement floor of
// the one it replaces.
func (c *consumer) create(ctx context.Context) error {
	s, name := c.s, c.name
	cfg := jetstream.ConsumerConfig{
		FilterSubject: c.filter,
		Durable:       name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.ackWait,
		MaxAckPending: -1,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	old, err := s.s.Consumer(ctx, name)
	switch {
	case err == nil:
		info, err := old.Info(ctx)
		if err != nil {
			return fmt.Errorf("consumer %s: %w", name, err)
		}
		if floor := info.AckFloor.Stream; floor > 0 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = floor + 1
		}
		if err := s.s.DeleteConsumer(ctx, name); err != nil {
			return fmt.Errorf("recreating consumer %s: %w", name, err)
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("consumer %s: %w", name, err)
	}
	cons, err := s.s.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("creating consumer %s: %w", name, err)
	}
	c.c, c.next, c.reset = cons, 1, false
	c.ra = stream.Reassembler{}
	return nil
}

// resetAfterDisconnect recreates the consumer from its acknowledgement
// floor when the connection was lost since it was created: messages the
// server sent on the lost connection would otherwise come again only after
// AckWait, behind later ones, and be taken for duplicates.
//
// It does the same after a gap in the consumer's delivery sequence (see
// consumer.next).
func (c *consumer) resetAfterDisconnect(ctx context.Context) error {
	gen := c.s.disconnects.Load()
	if (gen == c.gen && !c.reset) || !c.s.nc.IsConnected() {
		return nil
	}
	if c.reset {
		c.s.log().Warn("a message from the stream was lost on its way; reading again from the acknowledgement floor", "consumer", c.name)
	}
	if err := c.create(ctx); err != nil {
		if retriable(err) || noPeersYet(err) {
			c.reset = true // the next Fetch tries again
			return nil
		}
		return err
	}
	c.gen = gen
	return nil
}

// Fetch returns up to max records, joining chunks. It takes what the
// stream holds without waiting, and waits (up to wait) only when nothing
// is there: a JetStream pull of n messages would otherwise wait until n
// arrived, holding back the few that are there. It keeps fetching while
// only chunks of an incomplete record arrived and wait has not passed.
func (c *consumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]*stream.Delivered, error) {
	deadline := time.Now().Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := c.resetAfterDisconnect(ctx); err != nil {
		return nil, err
	}
	var out []*stream.Delivered
	for {
		w := max64(time.Until(deadline), time.Millisecond)
		batch, err := c.c.FetchNoWait(max - len(out))
		n, err := c.take(ctx, batch, err, &out)
		if c.reset {
			return out, nil // the records before the gap; the next Fetch reads again
		}
		if err != nil {
			if retriable(err) {
				// The connection is down or the stream is electing a
				// leader: nothing to deliver for now, try again later.
				return out, c.s.pause(ctx, w)
			}
			return out, err
		}
		if len(out) >= max || (n == 0 && len(out) > 0) {
			return out, nil
		}
		if n > 0 {
			continue
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return out, nil
		}
		// Nothing there: wait for the first message.
		batch, err = c.c.Fetch(1, jetstream.FetchMaxWait(w))
		_, err = c.take(ctx, batch, err, &out)
		if c.reset {
			return out, nil
		}
		if err != nil {
			if retriable(err) {
				return out, c.s.pause(ctx, w)
			}
			return out, err
		}
	}
}

// take adds the records that batch (the result of a fetch, with its error)
// completes to *out and returns the number of messages it held.
func (c *consumer) take(ctx context.Context, batch jetstream.MessageBatch, err error, out *[]*stream.Delivered) (int, error) {
	if err != nil {
		return 0, fmt.Errorf("fetching: %w", err)
	}
	n := 0
	for msg := range batch.Messages() {
		n++
		if c.reset {
			continue // after a gap: everything comes again from the floor
		}
		meta, err := msg.Metadata()
		if err != nil {
			return n, fmt.Errorf("message metadata: %w", err)
		}
		if meta.Sequence.Consumer != c.next {
			c.reset = true
			continue
		}
		c.next++
		part, err := c.decode(msg)
		if err != nil {
			return n, err
		}
		d, err := c.ra.Add(ctx, part)
		if err != nil {
			return n, err
		}
		if d != nil {
			*out = append(*out, d)
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
		return n, fmt.Errorf("fetching: %w", err)
	}
	return n, nil
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
	c.backlog.Store(meta.NumPending)
	reply, seq := msg.Reply(), meta.Sequence.Stream
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
		// Acknowledged by its reply subject, as jetstream.Msg.Ack does:
		// holding only the subject lets the message's payload go once
		// delivery has copied its records.
		Ack: func(ctx context.Context) error {
			if reply == "" {
				return jetstream.ErrMsgNoReply
			}
			if err := c.s.nc.Publish(reply, ackAck); err != nil {
				return err
			}
			c.acks.ack(seq)
			return nil
		},
	}
	c.acks.receive(meta.Sequence.Stream)
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
	var info *jetstream.ConsumerInfo
	err := c.s.retry(ctx, func(ctx context.Context) (err error) {
		info, err = c.c.Info(ctx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("consumer info: %w", err)
	}
	return info.NumPending + uint64(c.ra.Buffered()), nil
}

// Close sends the acknowledgements still buffered in the connection and
// waits (a few seconds at most) until the server has applied them, so the
// next consumer starts from an ack floor that includes them instead of
// reading them again.
func (c *consumer) Close() error {
	if err := c.s.nc.FlushTimeout(10 * time.Second); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("flushing acknowledgements: %w", err)
	}
	floor := c.acks.get()
	if floor == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		info, err := c.c.Info(ctx)
		if err != nil || info.AckFloor.Stream >= floor {
			return nil // the next consumer reads again what is not applied, and delivery drops it
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
