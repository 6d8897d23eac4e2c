package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/binlake/binlake/internal/lease"
	"github.com/binlake/binlake/internal/stream"
)

// Group is a deliver worker's membership in the task's Kafka consumer
// group: the `--role deliver` processes of a task share the topic's
// partitions as the group assigns them (cooperative-sticky balancing, so a
// rebalance moves only the partitions that change owner).
//
//   - When the group assigns a partition, the Handler's Acquire starts
//     delivering it; the partition is then read from the group's committed
//     offset, and delivery drops the records already in the lake by
//     stream-position.
//   - Offsets are committed to Kafka only for records whose objects are
//     stored (the acknowledged prefix), every tick and when a partition is
//     given up.
//   - When the group revokes a partition (a worker joined, or this one
//     leaves), Release writes what is buffered for it and the offsets are
//     committed before the group may give it to another worker.
//   - When the partition is lost (the group dropped this member), Lost drops
//     what is buffered without committing.
//
// Fence closes a partition once no heartbeat of this member was answered
// for half the session timeout: by then the group may have expired the
// member and given the partition to another worker. A fenced partition is
// dropped and the worker joins the group again as a new member, so that its
// records are read again from the committed offset.
type Group struct {
	s    *Stream
	opts GroupOptions
	log  *slog.Logger
	h    lease.Handler

	// cbCtx is the context of the Handler's calls, cancelled by Close so
	// that a callback never waits for a delivery that has stopped.
	cbCtx  context.Context
	cancel context.CancelFunc
	rejoin chan struct{}

	pollMu   sync.Mutex // one PollRecords at a time
	commitMu sync.Mutex // commits of one partition never cross

	mu      sync.Mutex
	cl      *kgo.Client // of the current session
	parts   map[int32]*groupPartition
	owned   map[int32]bool
	proof   time.Time // when the coordinator last answered this member's heartbeat
	members int
	fatal   error
}

// GroupOptions configure a Group.
type GroupOptions struct {
	// Name is the consumer group.
	Name string
	// SessionTimeout is how long the group waits for a silent member
	// before it gives the member's partitions to the others.
	SessionTimeout time.Duration
}

// Group returns the task's consumer group membership; Handle gives it its
// Handler and Run joins.
func (s *Stream) Group(opts GroupOptions) *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{
		s: s, opts: opts, log: s.log.With("group", opts.Name),
		cbCtx: ctx, cancel: cancel, rejoin: make(chan struct{}, 1),
		parts: map[int32]*groupPartition{}, owned: map[int32]bool{},
	}
}

// Handle sets the Handler that starts and stops delivering partitions.
func (g *Group) Handle(h lease.Handler) { g.h = h }

// Owned returns the partitions this worker delivers, in order.
func (g *Group) Owned() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]int, 0, len(g.owned))
	for p := range g.owned {
		out = append(out, int(p))
	}
	slices.Sort(out)
	return out
}

// Workers is the number of the group's members, as last described.
func (g *Group) Workers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.members
}

// Fence returns an error unless the group assigned partition to this
// worker and answered one of its heartbeats less than half the session
// timeout ago. On error the partition is dropped (its records come again
// after the worker rejoined), so that nothing after them is written first.
func (g *Group) Fence(partition int) error {
	p := int32(partition)
	g.mu.Lock()
	owned, age := g.owned[p], time.Since(g.proof)
	g.mu.Unlock()
	if !owned {
		return fmt.Errorf("partition %d: the consumer group has not assigned it to this worker", partition)
	}
	if age <= g.opts.SessionTimeout/2 {
		return nil
	}
	g.mu.Lock()
	delete(g.owned, p)
	g.loseLocked(p)
	g.mu.Unlock()
	g.h.Lost(partition)
	select {
	case g.rejoin <- struct{}{}:
	default:
	}
	return fmt.Errorf("partition %d: no heartbeat of this worker answered for %s (the group coordinator is unreachable?); the group may have given it to another worker", partition, age.Round(time.Millisecond))
}

// Run takes part in the group until ctx is cancelled, then leaves it,
// handing its partitions over (each through Handler.Release). It returns an
// error only when the group cannot be joined at all.
func (g *Group) Run(ctx context.Context) error {
	for {
		rejoin, err := g.session(ctx)
		if err != nil || !rejoin {
			return err
		}
		g.log.Warn("joining the consumer group again after a partition was fenced")
	}
}

// session is one membership, from join to leave; it reports whether the
// worker must join again.
func (g *Group) session(ctx context.Context) (rejoin bool, err error) {
	st := g.opts.SessionTimeout
	cl, err := kgo.NewClient(g.s.clientOpts(
		kgo.ConsumerGroup(g.opts.Name),
		kgo.ConsumeTopics(g.s.opts.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(st),
		kgo.HeartbeatInterval(min(3*time.Second, st/5)),
		kgo.OnPartitionsAssigned(g.assigned),
		kgo.OnPartitionsRevoked(g.revoked),
		kgo.OnPartitionsLost(g.lost),
		kgo.FetchMaxBytes(int32(max(4*g.s.opts.MaxMessageBytes, 16<<20))),
		kgo.FetchMaxPartitionBytes(int32(max(2*g.s.opts.MaxMessageBytes, 4<<20))),
		kgo.WithLogger(kgoLogger{g.log}),
	)...)
	if err != nil {
		return false, fmt.Errorf("kafka consumer group %s: %w", g.opts.Name, err)
	}
	g.mu.Lock()
	g.cl = cl
	g.mu.Unlock()
	select {
	case <-g.rejoin: // asked for by the session before
	default:
	}
	defer func() {
		// Leaving revokes every partition through the Handler.
		lctx, cancel := context.WithTimeout(g.cbCtx, time.Minute)
		if err := cl.LeaveGroupContext(lctx); err != nil && g.cbCtx.Err() == nil {
			g.log.Warn("leaving the consumer group", "err", err)
		}
		cancel()
		g.mu.Lock()
		g.cl = nil
		g.mu.Unlock()
		cl.Close()
	}()
	tick := time.NewTicker(st / 6)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-g.cbCtx.Done():
			return false, nil
		case <-g.rejoin:
			return true, nil
		case <-tick.C:
		}
		g.prove(ctx, cl)
		if err := g.commit(ctx, cl, nil); err != nil {
			g.log.Warn("committing offsets", "err", err)
		}
		g.describe(ctx, cl)
		g.mu.Lock()
		err := g.fatal
		g.mu.Unlock()
		if err != nil {
			return false, err
		}
	}
}

// Close stops the Handler's calls and the group's client.
func (g *Group) Close() error {
	g.cancel()
	g.mu.Lock()
	cl := g.cl
	g.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
	return nil
}

// assigned starts delivering the partitions the group gave this worker,
// before any of their records is fetched. A partition that cannot be
// started (the lake does not answer) is tried again until it can: its
// records wait in Kafka.
func (g *Group) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	g.mu.Lock()
	g.proof = time.Now() // the group just synced this member
	g.mu.Unlock()
	ps := slices.Sorted(slices.Values(m[g.s.opts.Topic]))
	for _, p := range ps {
		// Owned before delivery starts, so that a flush right after passes
		// the fence.
		g.mu.Lock()
		g.owned[p] = true
		g.mu.Unlock()
		backoff := 500 * time.Millisecond
		for {
			err := g.h.Acquire(g.cbCtx, int(p))
			if err == nil {
				g.log.Info("took over a partition", "partition", p)
				break
			}
			if g.cbCtx.Err() != nil {
				g.mu.Lock()
				delete(g.owned, p)
				g.mu.Unlock()
				return
			}
			g.log.Warn("cannot start delivering a partition; retrying", "partition", p, "retry_in", backoff, "err", err)
			select {
			case <-g.cbCtx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// revoked hands partitions over: what is buffered for them is written and
// their offsets committed before the group gives them to another worker.
func (g *Group) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	ps := slices.Sorted(slices.Values(m[g.s.opts.Topic]))
	slices.Reverse(ps)
	for _, p := range ps {
		g.mu.Lock()
		owned := g.owned[p]
		g.mu.Unlock()
		if !owned {
			continue
		}
		err := g.h.Release(g.cbCtx, int(p))
		g.mu.Lock()
		delete(g.owned, p)
		if err != nil {
			g.loseLocked(p)
		}
		g.mu.Unlock()
		if err != nil {
			if g.cbCtx.Err() == nil {
				g.log.Error("handing a partition over failed; the next owner reads it from the last committed offset", "partition", p, "err", err)
			}
			g.h.Lost(int(p))
			continue
		}
		g.log.Info("handed a partition over", "partition", p)
	}
}

// lost drops partitions the group took away without a hand-over: this
// member's session expired, so another worker may have them already.
func (g *Group) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	for _, p := range m[g.s.opts.Topic] {
		g.mu.Lock()
		owned := g.owned[p]
		delete(g.owned, p)
		g.loseLocked(p)
		g.mu.Unlock()
		if owned {
			g.log.Warn("lost a partition; another worker reads it from the last committed offset", "partition", p)
			g.h.Lost(int(p))
		}
	}
}

// loseLocked makes p's reader hand out nothing more and commit nothing.
func (g *Group) loseLocked(p int32) {
	if gp := g.parts[p]; gp != nil {
		gp.lost = true
		delete(g.parts, p)
	}
}

// prove sends a heartbeat of this member (as the client does on its own):
// an answer that it is still in the group keeps the fence open.
func (g *Group) prove(ctx context.Context, cl *kgo.Client) {
	member, gen := cl.GroupMetadata()
	if member == "" {
		return
	}
	sent := time.Now()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = g.opts.Name, member, gen
	rctx, cancel := context.WithTimeout(ctx, g.opts.SessionTimeout/3)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil && !errors.Is(err, kerr.RebalanceInProgress) {
		g.log.Debug("heartbeat not answered as a member", "err", err)
		return
	}
	g.mu.Lock()
	if sent.After(g.proof) {
		g.proof = sent
	}
	g.mu.Unlock()
}

// describe counts the group's members.
func (g *Group) describe(ctx context.Context, cl *kgo.Client) {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{g.opts.Name}
	rctx, cancel := context.WithTimeout(ctx, g.opts.SessionTimeout/3)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl)
	if err != nil || len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
		return
	}
	g.mu.Lock()
	g.members = len(resp.Groups[0].Members)
	g.mu.Unlock()
}

// commit commits the acknowledged prefix of only's partition, or of every
// partition being read when only is nil.
func (g *Group) commit(ctx context.Context, cl *kgo.Client, only *groupPartition) error {
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	offsets := map[int32]kgo.EpochOffset{}
	readers := map[int32]*groupPartition{}
	g.mu.Lock()
	if only != nil {
		readers[only.p] = only
	} else {
		maps.Copy(readers, g.parts)
	}
	for p, gp := range readers {
		if !gp.lost && gp.resume.Offset > gp.committed.Offset {
			offsets[p] = gp.resume
		}
	}
	g.mu.Unlock()
	if len(offsets) == 0 || cl == nil {
		return nil
	}
	var err error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{g.s.opts.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
			if cerr != nil {
				err = cerr
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
						err = errors.Join(err, fmt.Errorf("partition %d: %w", p.Partition, perr))
						delete(offsets, p.Partition)
					}
				}
			}
		})
	if err != nil && len(offsets) == 0 {
		return fmt.Errorf("kafka commit: %w", err)
	}
	g.mu.Lock()
	for p, eo := range offsets {
		if gp := readers[p]; eo.Offset > gp.committed.Offset {
			gp.committed = eo
		}
	}
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("kafka commit: %w", err)
	}
	return nil
}

// poll fetches records into the queues of the partitions being read and
// returns how many it queued.
func (g *Group) poll(ctx context.Context, deadline time.Time, max int) (int, error) {
	g.pollMu.Lock()
	defer g.pollMu.Unlock()
	g.mu.Lock()
	cl := g.cl
	g.mu.Unlock()
	if cl == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(deadline)):
		}
		return 0, nil
	}
	pctx, cancel := context.WithDeadline(ctx, deadline)
	fetches := cl.PollRecords(pctx, max)
	cancel()
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, kgo.ErrClientClosed) {
			continue
		}
		if errors.Is(fe.Err, kerr.InvalidSessionTimeout) {
			g.mu.Lock()
			g.fatal = fmt.Errorf("kafka consumer group %s: the brokers refuse stream.kafka.session_timeout %s: keep it within their group.min.session.timeout.ms and group.max.session.timeout.ms (6s and 30m by default)", g.opts.Name, g.opts.SessionTimeout)
			g.mu.Unlock()
			continue
		}
		g.log.Warn("kafka fetch failed; retrying", "partition", fe.Partition, "err", fe.Err)
	}
	n := 0
	g.mu.Lock()
	fetches.EachRecord(func(r *kgo.Record) {
		if gp := g.parts[r.Partition]; gp != nil {
			gp.queue = append(gp.queue, r)
			n++
		}
	})
	g.mu.Unlock()
	return n, nil
}

// Partition returns the reader of partition p, for stream.Partitioned: it
// hands out p's records from the group's fetches, and commits p's offset
// when closed.
func (g *Group) Partition(p int) stream.Consumer {
	none := kgo.EpochOffset{Epoch: -1, Offset: -1}
	gp := &groupPartition{g: g, p: int32(p), resume: none, committed: none}
	g.mu.Lock()
	if old := g.parts[gp.p]; old != nil {
		old.lost = true // replaced: it must not commit over the new reader
	}
	g.parts[gp.p] = gp
	g.mu.Unlock()
	return gp
}

// groupPartition reads one partition of the group's fetches. Its fields
// but ra are guarded by g.mu.
type groupPartition struct {
	g         *Group
	p         int32
	queue     []*kgo.Record // fetched, not handed out
	out       handedOut
	resume    kgo.EpochOffset // end of the acknowledged prefix
	committed kgo.EpochOffset
	seq       uint64
	lost      bool
	closed    bool

	ra stream.Reassembler // used by Fetch only
}

var _ stream.Consumer = (*groupPartition)(nil)

// Fetch returns up to max records of the partition, waiting up to wait for
// the first. It returns early, with nothing, when a poll brought records of
// other partitions only, so that Partitioned hands those out.
func (gp *groupPartition) Fetch(ctx context.Context, max int, wait time.Duration) ([]*stream.Delivered, error) {
	deadline := time.Now().Add(wait)
	var out []*stream.Delivered
	for {
		parts, err := gp.take(max - len(out))
		if err != nil {
			return out, err
		}
		for _, part := range parts {
			d, err := gp.ra.Add(ctx, part)
			if err != nil {
				return out, err
			}
			if d != nil {
				out = append(out, d)
			}
		}
		if len(out) > 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			return out, nil
		}
		n, err := gp.g.poll(ctx, deadline, max)
		if err != nil {
			return out, err
		}
		gp.g.mu.Lock()
		mine := len(gp.queue)
		gp.g.mu.Unlock()
		if n > 0 && mine == 0 {
			return out, nil
		}
	}
}

// take hands out up to n queued records.
func (gp *groupPartition) take(n int) ([]stream.Part, error) {
	g := gp.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if gp.lost || gp.closed {
		gp.queue = nil
		return nil, nil
	}
	n = min(n, len(gp.queue))
	parts := make([]stream.Part, 0, n)
	for _, r := range gp.queue[:n] {
		e := gp.out.add(r)
		gp.seq++
		part, err := toPart(r, gp.seq, func() { gp.ack(e) })
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
	}
	gp.queue = gp.queue[n:]
	return parts, nil
}

func (gp *groupPartition) ack(e *inflight) {
	gp.g.mu.Lock()
	defer gp.g.mu.Unlock()
	if resume, ok := gp.out.ack(e); ok {
		gp.resume = resume
	}
}

// Pending counts the records fetched and not handed out, and those in the
// partition after the last one handed out.
func (gp *groupPartition) Pending(ctx context.Context) (uint64, error) {
	g := gp.g
	g.mu.Lock()
	n := uint64(len(gp.queue))
	next, cl := gp.out.next, g.cl
	g.mu.Unlock()
	n += uint64(gp.ra.Buffered())
	if next == 0 || cl == nil {
		return n, nil
	}
	ends, err := listOffsets(ctx, cl, g.s.opts.Topic, []int32{gp.p}, atEnd)
	if err != nil {
		return n, err
	}
	return n + uint64(max(ends[gp.p]-next, 0)), nil
}

// Close stops reading the partition and, unless it was lost, commits the
// offset up to which its records are acknowledged: the next owner starts
// there.
func (gp *groupPartition) Close() error {
	g := gp.g
	g.mu.Lock()
	if gp.closed {
		g.mu.Unlock()
		return nil
	}
	gp.closed = true
	if g.parts[gp.p] == gp {
		delete(g.parts, gp.p)
	}
	cl := g.cl
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(g.cbCtx, g.opts.SessionTimeout)
	defer cancel()
	if err := g.commit(ctx, cl, gp); err != nil {
		return fmt.Errorf("partition %d: %w", gp.p, err)
	}
	return nil
}

// kgoLogger writes franz-go's warnings and errors to the task's log.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	l.log.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
