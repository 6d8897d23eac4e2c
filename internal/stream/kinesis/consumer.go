package kinesis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kds "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/stream"
)

// Consumer reads every shard with GetRecords from the sequence numbers
// saved in the state directory (AFTER_SEQUENCE_NUMBER), or from
// TRIM_HORIZON on a fresh state. A shard's saved position moves over the
// contiguous prefix of its records that were acknowledged (or dropped), so
// a restart reads again exactly what was not acknowledged. Children of a
// reshard are read only after their parents were read to their end.
type Consumer struct {
	s    *Stream
	only int // the one binlake partition handed out, or -1 for all

	key *big.Int // the explicit hash key of only

	mu       sync.Mutex
	state    fileState
	saver    checkpoint.Throttled // of state
	shards   map[string]*shard
	listedAt time.Time
	seq      uint64 // local numbering of delivered records, for logs
	closed   bool

	ra stream.Reassembler // used by Fetch only
	// Dropped counts records dropped as early copies or duplicates of
	// producer retries (metrics, tests).
	Dropped int
}

var (
	_ stream.Consumer = (*Consumer)(nil)
	_ stream.Lagger   = (*Consumer)(nil)
)

const stateVersion = 1

type fileState struct {
	FormatVersion int                    `json:"format_version"`
	Stream        string                 `json:"stream"`
	Shards        map[string]*shardState `json:"shards"`
	SavedAt       time.Time              `json:"saved_at"`
}

// shardState is what is durable of one shard: the sequence number up to
// which everything is acknowledged, and the producer counters expected
// next per partition at that point.
type shardState struct {
	Seq    string       `json:"seq,omitempty"`
	Done   bool         `json:"done,omitempty"`
	Expect map[int]next `json:"expect,omitempty"`
}

// next is the producer session and counter expected next on a partition.
type next struct {
	S int64 `json:"s"`
	C int64 `json:"c"`
}

type shard struct {
	id       string
	parents  []string
	st       *shardState // committed, in c.state
	started  bool
	iter     *string
	end      bool // read to the end of a closed shard
	lastRead string
	pollAt   time.Time // no GetRecords before
	expect   map[int]next
	buf      []stream.Part
	inflight []*rec
	behind   int64
}

type rec struct {
	seq       string
	acked     bool
	partition int
	accept    *next // expectation after this record, if it was accepted
}

// Consumer opens the named consumer; its positions are kept in
// state_dir/kinesis-<stream>-<name>.json.
func (s *Stream) Consumer(ctx context.Context, name string) (*Consumer, error) {
	c := &Consumer{
		s:      s,
		only:   -1,
		saver:  checkpoint.Throttled{Path: filepath.Join(s.opts.StateDir, "kinesis-"+s.name+"-"+name+".json"), Every: saveEvery},
		shards: map[string]*shard{},
	}
	ok, err := checkpoint.Load(c.saver.Path, &c.state)
	if err != nil {
		return nil, err
	}
	return c.open(ctx, ok, c.saver.Path)
}

// StateStore keeps the shard positions of a partition's consumer where
// every deliver worker reads them (the lake's bucket).
type StateStore interface {
	// Load reads the state into v; false when there is none yet.
	Load(ctx context.Context, v any) (bool, error)
	Save(ctx context.Context, v any) error
	String() string
}

// sharedSaveEvery bounds how often a partition consumer's positions are
// written to its StateStore (and on Close, when the partition is handed
// over): a worker that dies costs its successor at most this much reading
// again, which delivery drops as stored.
const sharedSaveEvery = 5 * time.Second

// PartitionConsumer opens a consumer of binlake partition p alone, for a
// deliver worker that holds p's lease: it reads only the shards whose hash
// key range holds p's explicit hash key (and their parents first), hands
// out only p's records, and keeps its positions in store, where the
// partition's next owner finds them.
func (s *Stream) PartitionConsumer(ctx context.Context, p int, store StateStore) (*Consumer, error) {
	c := &Consumer{s: s, only: p, shards: map[string]*shard{}}
	c.saver = checkpoint.Throttled{Every: sharedSaveEvery, Write: func(v any) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := store.Save(ctx, v); err != nil {
			// Not fatal: a position saved late only means more is read
			// again by the partition's next owner.
			s.log.Warn("saving shard positions failed; they are saved with the next change", "partition", p, "err", err)
		}
		return nil
	}}
	ok, err := store.Load(ctx, &c.state)
	if err != nil {
		return nil, fmt.Errorf("partition %d: shard positions: %w", p, err)
	}
	if ok && c.state.Stream != s.name {
		s.log.Warn("shard positions of another stream ignored", "partition", p, "in", store.String(), "stream", c.state.Stream)
		ok, c.state = false, fileState{}
	}
	return c.open(ctx, ok, store.String())
}

// open finishes opening c on its loaded state (ok: there was one, in where).
func (c *Consumer) open(ctx context.Context, ok bool, where string) (*Consumer, error) {
	s := c.s
	if ok && c.state.FormatVersion != stateVersion {
		return nil, fmt.Errorf("%s: format_version %d, this binlake reads %d", where, c.state.FormatVersion, stateVersion)
	}
	c.state.FormatVersion = stateVersion
	c.state.Stream = s.name
	if c.state.Shards == nil {
		c.state.Shards = map[string]*shardState{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.list(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// list refreshes the shards.
func (c *Consumer) list(ctx context.Context) error {
	var token *string
	for {
		in := &kds.ListShardsInput{NextToken: token}
		if token == nil {
			in.StreamName, in.StreamARN = c.s.ids()
		}
		out, err := c.s.api.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("kinesis ListShards: %w", err)
		}
		for _, sh := range out.Shards {
			id := aws.ToString(sh.ShardId)
			if c.shards[id] != nil || !c.holds(sh) {
				continue
			}
			st := c.state.Shards[id]
			if st == nil {
				st = &shardState{}
				c.state.Shards[id] = st
			}
			x := &shard{id: id, st: st}
			for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
				if p != nil {
					x.parents = append(x.parents, *p)
				}
			}
			c.shards[id] = x
		}
		token = out.NextToken
		if token == nil {
			break
		}
	}
	c.listedAt = time.Now()
	return nil
}

// holds reports whether sh may hold records of the partitions c hands out:
// for a partition consumer, whether p's explicit hash key lies in sh's
// range (so its parents hold it too, and its children hold it after a
// reshard).
func (c *Consumer) holds(sh types.Shard) bool {
	if c.only < 0 {
		return true
	}
	if c.key == nil {
		c.key, _ = new(big.Int).SetString(HashKey(c.only, c.s.opts.Partitions), 10)
	}
	r := sh.HashKeyRange
	if r == nil {
		return true
	}
	lo, ok1 := new(big.Int).SetString(aws.ToString(r.StartingHashKey), 10)
	hi, ok2 := new(big.Int).SetString(aws.ToString(r.EndingHashKey), 10)
	return !ok1 || !ok2 || (lo.Cmp(c.key) <= 0 && c.key.Cmp(hi) <= 0)
}

// finished reports whether shard id has nothing more to hand out, so its
// children may be read.
func (c *Consumer) finished(id string) bool {
	x := c.shards[id]
	if x == nil {
		return true // expired from the stream, or never listed
	}
	return x.st.Done || (x.end && len(x.buf) == 0)
}

// readable reports whether x may be read now; it starts x when its
// parents are finished.
func (c *Consumer) readable(x *shard) bool {
	if x.st.Done || x.end {
		return false
	}
	if x.started {
		return true
	}
	for _, p := range x.parents {
		if !c.finished(p) {
			return false
		}
	}
	x.started = true
	if x.st.Seq != "" {
		x.expect = maps.Clone(x.st.Expect)
	} else {
		// A new shard continues its parents' partitions.
		x.expect = map[int]next{}
		for _, p := range x.parents {
			if px := c.shards[p]; px != nil {
				src := px.expect
				if px.st.Done && src == nil {
					src = px.st.Expect
				}
				maps.Copy(x.expect, src)
			}
		}
		x.st.Expect = maps.Clone(x.expect)
	}
	if x.expect == nil {
		x.expect = map[int]next{}
	}
	return true
}

// poll reads one batch of x into its buffer.
func (c *Consumer) poll(ctx context.Context, x *shard) error {
	if time.Now().Before(x.pollAt) {
		return nil
	}
	x.pollAt = time.Now().Add(pollInterval)
	if x.iter == nil {
		in := &kds.GetShardIteratorInput{ShardId: aws.String(x.id)}
		in.StreamName, in.StreamARN = c.s.ids()
		switch {
		case x.lastRead != "":
			in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
			in.StartingSequenceNumber = aws.String(x.lastRead)
		case x.st.Seq != "":
			in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
			in.StartingSequenceNumber = aws.String(x.st.Seq)
		default:
			in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
		}
		out, err := c.s.api.GetShardIterator(ctx, in)
		if err != nil {
			return c.readErr(x, "GetShardIterator", err)
		}
		x.iter = out.ShardIterator
	}
	out, err := c.s.api.GetRecords(ctx, &kds.GetRecordsInput{ShardIterator: x.iter, Limit: aws.Int32(getRecordsLimit)})
	if err != nil {
		var expired *types.ExpiredIteratorException
		if errors.As(err, &expired) {
			x.iter, x.pollAt = nil, time.Time{}
			return nil
		}
		return c.readErr(x, "GetRecords", err)
	}
	x.behind = aws.ToInt64(out.MillisBehindLatest)
	for _, r := range out.Records {
		c.add(x, r)
	}
	if len(out.Records) > 0 {
		x.pollAt = time.Time{} // more may be waiting
	}
	x.iter = out.NextShardIterator
	if x.iter == nil {
		x.end = true
		c.advance(x)
	}
	return nil
}

// readErr decides whether a read error fails the consumer or is retried.
func (c *Consumer) readErr(x *shard, op string, err error) error {
	if !retryable(err) {
		return fmt.Errorf("kinesis %s on %s: %w", op, x.id, err)
	}
	c.s.log.Warn("kinesis read failed; retrying", "op", op, "shard", x.id, "err", err)
	x.pollAt = time.Now().Add(time.Second)
	return nil
}

// add takes one record read from x: it is handed out, or dropped when it is
// an early copy or a duplicate from a producer retry.
func (c *Consumer) add(x *shard, r types.Record) {
	seq := aws.ToString(r.SequenceNumber)
	x.lastRead = seq
	e := &rec{seq: seq}
	x.inflight = append(x.inflight, e)
	h, err := parseHeader(aws.ToString(r.PartitionKey))
	if err != nil {
		c.s.log.Warn("kinesis record without a binlake header skipped", "shard", x.id, "seq", seq, "err", err)
		e.acked = true
		c.advance(x)
		return
	}
	e.partition = h.partition
	if c.only >= 0 && h.partition != c.only {
		e.acked = true // another partition's, sharing the shard
		c.advance(x)
		return
	}
	exp, known := x.expect[h.partition]
	var accept bool
	switch {
	case !known:
		accept = true // a fresh consumer: the oldest retained record
	case h.session == exp.S:
		accept = h.counter == exp.C // lower: a duplicate; higher: an early copy
	case h.session > exp.S:
		accept = h.counter == 1 // a new producer starts at 1
	}
	if !accept {
		c.Dropped++
		e.acked = true
		c.advance(x)
		return
	}
	n := next{S: h.session, C: h.counter + 1}
	x.expect[h.partition] = n
	e.accept = &n
	c.seq++
	x.buf = append(x.buf, stream.Part{
		Message: stream.Message{
			Partition: h.partition, Table: h.table, Position: h.position, Op: h.op,
			CommitTime: h.commit, Data: r.Data,
		},
		Index: h.index, Count: h.count, Seq: c.seq,
		Ack:     func(context.Context) error { c.ack(x, e); return nil },
		Discard: func() { c.ack(x, e) },
	})
}

func (c *Consumer) ack(x *shard, e *rec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !e.acked {
		e.acked = true
		c.advance(x)
	}
}

// advance moves x's saved position over its acknowledged prefix. Called
// with mu held.
func (c *Consumer) advance(x *shard) {
	i := 0
	for ; i < len(x.inflight) && x.inflight[i].acked; i++ {
		e := x.inflight[i]
		x.st.Seq = e.seq
		if e.accept != nil {
			if x.st.Expect == nil {
				x.st.Expect = map[int]next{}
			}
			x.st.Expect[e.partition] = *e.accept
		}
		c.saver.Changed()
	}
	x.inflight = x.inflight[i:]
	if x.end && len(x.inflight) == 0 && len(x.buf) == 0 && !x.st.Done {
		x.st.Done = true
		c.saver.Changed()
	}
}

// saveEvery bounds how often positions are written; a position saved late
// only means more is read again, and dropped by delivery, after a crash.
const saveEvery = time.Second

func (c *Consumer) maybeSave(force bool) error {
	return c.saver.Save(&c.state, &c.state.SavedAt, force)
}

// fill polls the readable shards once; it reports whether any record or
// shard end arrived.
func (c *Consumer) fill(ctx context.Context) (bool, error) {
	if time.Since(c.listedAt) > shardListRefresh {
		if err := c.list(ctx); err != nil {
			c.s.log.Warn("kinesis ListShards failed", "err", err)
			c.listedAt = time.Now()
		}
	}
	progress := false
	for _, id := range slices.Sorted(maps.Keys(c.shards)) {
		x := c.shards[id]
		if !c.readable(x) || len(x.buf) >= 10*getRecordsLimit {
			continue
		}
		before, end := len(x.inflight), x.end
		if err := c.poll(ctx, x); err != nil {
			return progress, err
		}
		if len(x.inflight) != before || x.end != end {
			progress = true
		}
	}
	return progress, nil
}

// Fetch returns up to max records, waiting up to wait for the first.
func (c *Consumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]*stream.Delivered, error) {
	deadline := time.Now().Add(wait)
	var out []*stream.Delivered
	for {
		c.mu.Lock()
		if err := c.maybeSave(false); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		progress, err := c.fill(ctx)
		if err != nil {
			c.mu.Unlock()
			return out, err
		}
		var parts []stream.Part
		for _, id := range slices.Sorted(maps.Keys(c.shards)) {
			x := c.shards[id]
			k := min(len(x.buf), max-len(out)-len(parts))
			parts = append(parts, x.buf[:k]...)
			x.buf = x.buf[k:]
			if k > 0 && x.end {
				c.advance(x)
			}
		}
		c.mu.Unlock()
		for _, p := range parts {
			d, err := c.ra.Add(ctx, p)
			if err != nil {
				return out, err
			}
			if d == nil {
				continue
			}
			if d.Table == "" {
				if d.Table, err = tableFromJSON(d.Data); err != nil {
					return out, err
				}
			}
			out = append(out, d)
		}
		if len(out) > 0 || !time.Now().Before(deadline) {
			return out, nil
		}
		if progress {
			continue
		}
		t := time.NewTimer(min(time.Until(deadline), 50*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return out, nil
		case <-t.C:
		}
	}
}

// Pending reads ahead until every readable shard is read to its current
// end, and returns the number of records read and not yet handed out.
func (c *Consumer) Pending(ctx context.Context) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range 100 {
		for _, x := range c.shards {
			x.pollAt = time.Time{}
		}
		progress, err := c.fill(ctx)
		if err != nil {
			return 0, err
		}
		if !progress {
			break
		}
	}
	n := c.ra.Buffered()
	for _, x := range c.shards {
		n += len(x.buf)
	}
	return uint64(n), nil
}

// Lag is how far the slowest shard is behind the newest record, as
// GetRecords reports (MillisBehindLatest).
func (c *Consumer) Lag() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ms int64
	for _, x := range c.shards {
		ms = max(ms, x.behind)
	}
	return time.Duration(ms) * time.Millisecond
}

// Close saves the shard positions.
func (c *Consumer) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.maybeSave(true)
}
