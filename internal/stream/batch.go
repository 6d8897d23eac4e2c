package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
)

// Batching: one stream message may carry several records of one partition,
// the idea of Kinesis's KPL aggregation. One message per row caps
// throughput (a Kinesis shard takes 1,000 records/s) and costs per message;
// a batch of a few hundred rows costs one. A Batcher cuts the batches on the
// producer side and an Unbatcher splits them again on the consumer side, so
// capture and delivery keep seeing one Message per record. With
// stream.dms_compatible the task leaves the Batcher out and every message is
// one DMS JSON record, for readers other than binlake (Firehose, KCL apps).
//
// A batch message has Op OpBatch, Table BatchTable, the Position
// "<first>..<last>" of the records it holds (so NATS's duplicate window
// drops only a re-send of the very same batch; a batch cut differently
// after a restart passes and delivery drops its records one by one by
// stream-position) and Data in the envelope format (docs/format.md):
//
//	"BLB1" uvarint(count) then per record:
//	  string(position) string(table) string(op) varint(commit µs) string(key) string(data)
//
// where string(x) is uvarint(len(x)) followed by the bytes. A batch is
// acknowledged once all of its records are, so a consumer's resume point
// never passes a record that was not acknowledged.
const (
	// OpBatch is the Op of a message carrying a batch.
	OpBatch = "binlake-batch"
	// BatchTable is the Table of a batch message: its records may belong
	// to several tables of the partition.
	BatchTable = "*"
	batchMagic = "BLB1"
)

// BatchOptions bound a batch. A batch is published when it reaches
// MaxRecords records or MaxBytes bytes of record data, when its first
// record is Linger old, and on Flush.
type BatchOptions struct {
	MaxRecords int           // default 500
	MaxBytes   int           // default 256 KiB
	Linger     time.Duration // default 10ms
}

func (o *BatchOptions) defaults() {
	if o.MaxRecords <= 0 {
		o.MaxRecords = 500
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 10
	}
	if o.Linger <= 0 {
		// Short enough for the 50 ms commit→stream target at 1k TPS;
		// batches still fill to hundreds of records under load.
		o.Linger = 10 * time.Millisecond
	}
}

// Batcher is a Producer that publishes the records of each partition in
// batches through another Producer. Memory is bounded by one batch per
// partition: a full batch is handed to the inner producer inside Publish,
// which waits as long as the inner producer does (backpressure).
type Batcher struct {
	inner Producer
	opts  BatchOptions

	mu      sync.Mutex // held while handing a batch on, so batches stay in order
	open    map[int]*openBatch
	err     error // of a batch published by the linger timer
	records uint64
	msgs    uint64

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type openBatch struct {
	msgs  []*Message
	bytes int
	since time.Time
}

var _ Producer = (*Batcher)(nil)

// NewBatcher returns a Batcher publishing through inner.
func NewBatcher(inner Producer, opts BatchOptions) *Batcher {
	opts.defaults()
	b := &Batcher{inner: inner, opts: opts, open: map[int]*openBatch{}, stop: make(chan struct{}), done: make(chan struct{})}
	go b.linger()
	return b
}

// recordOverhead is what the envelope adds to a record besides its fields.
const recordOverhead = 32

func size(m *Message) int {
	return len(m.Position) + len(m.Table) + len(m.Op) + len(m.Key) + len(m.Data) + recordOverhead
}

// Publish adds m to its partition's batch. A record that would not fit in
// a batch of its own goes out alone, after the batch before it.
func (b *Batcher) Publish(ctx context.Context, m *Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	ob := b.open[m.Partition]
	n := size(m)
	if ob != nil && ob.bytes+n > b.opts.MaxBytes {
		if err := b.publish(ctx, m.Partition); err != nil {
			return err
		}
		ob = nil
	}
	if n > b.opts.MaxBytes {
		b.records++
		b.msgs++
		return b.inner.Publish(ctx, m)
	}
	if ob == nil {
		ob = &openBatch{since: time.Now()}
		b.open[m.Partition] = ob
	}
	ob.msgs = append(ob.msgs, m)
	ob.bytes += n
	if len(ob.msgs) >= b.opts.MaxRecords {
		return b.publish(ctx, m.Partition)
	}
	return nil
}

// publish hands partition p's batch to the inner producer; the batch stays
// open if that fails, so a later Flush sends it. Called with mu held.
func (b *Batcher) publish(ctx context.Context, p int) error {
	ob := b.open[p]
	if ob == nil || len(ob.msgs) == 0 {
		return nil
	}
	m := ob.msgs[0]
	if len(ob.msgs) > 1 {
		m = EncodeBatch(ob.msgs)
	}
	if err := b.inner.Publish(ctx, m); err != nil {
		return err
	}
	b.records += uint64(len(ob.msgs))
	b.msgs++
	delete(b.open, p)
	return nil
}

// Flush publishes every open batch and waits until the inner producer has
// made everything durable.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	err := b.err
	b.err = nil
	for p := range b.open {
		if err == nil {
			err = b.publish(ctx, p)
		}
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	return b.inner.Flush(ctx)
}

// linger publishes batches whose first record waited Linger.
func (b *Batcher) linger() {
	defer close(b.done)
	t := time.NewTicker(max(b.opts.Linger/2, time.Millisecond))
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		for p, ob := range b.open {
			if b.err == nil && time.Since(ob.since) >= b.opts.Linger {
				b.err = b.publish(ctx, p)
			}
		}
		b.mu.Unlock()
	}
}

// Counts returns the records published and the messages that carried them.
func (b *Batcher) Counts() (records, messages uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.records, b.msgs
}

// Close stops the linger timer; the inner producer is its owner's to
// close. Records in open batches are not published (capture publishes them
// again after a restart, as with any producer that was not flushed).
func (b *Batcher) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		<-b.done
	})
	return nil
}

// EncodeBatch returns the batch message carrying msgs, which belong to one
// partition, in order.
func EncodeBatch(msgs []*Message) *Message {
	n := len(batchMagic) + binary.MaxVarintLen64
	for _, m := range msgs {
		n += size(m)
	}
	data := batchPool.Get().([]byte)[:0]
	data = slices.Grow(data, n)
	data = append(data, batchMagic...)
	data = binary.AppendUvarint(data, uint64(len(msgs)))
	str := func(s []byte) { data = binary.AppendUvarint(data, uint64(len(s))); data = append(data, s...) }
	for _, m := range msgs {
		str([]byte(m.Position))
		str([]byte(m.Table))
		str([]byte(m.Op))
		data = binary.AppendVarint(data, m.CommitTime.UnixMicro())
		str([]byte(m.Key))
		str(m.Data)
	}
	// Compressed: JSON records shrink four to eight times with S2 at over
	// a GB/s, and every byte saved is one the stream stores, caches,
	// replicates and (on Kinesis) bills.
	// Encoded in a pooled scratch buffer, then copied to a message of
	// its exact size: messages wait in flight by the thousand.
	scratch := batchPool.Get().([]byte)
	enc := s2.Encode(scratch[:cap(scratch)], data)
	z := make([]byte, len(compressedMagic)+len(enc))
	copy(z, compressedMagic)
	copy(z[len(compressedMagic):], enc)
	batchPool.Put(data[:0]) //nolint:staticcheck // a slice header is small
	batchPool.Put(enc[:0])  //nolint:staticcheck
	first, last := msgs[0], msgs[len(msgs)-1]
	return &Message{
		Partition:  first.Partition,
		Table:      BatchTable,
		Position:   first.Position + ".." + last.Position,
		Op:         OpBatch,
		CommitTime: last.CommitTime,
		Data:       z,
	}
}

// compressedMagic starts a batch whose envelope (from batchMagic on) is
// S2-compressed (github.com/klauspost/compress/s2, block format).
const compressedMagic = "BLZ1"

// batchPool keeps the buffers envelopes are built in before compression.
var batchPool = sync.Pool{New: func() any { return []byte(nil) }}

var errBatch = errors.New("malformed batch")

// DecodeBatch returns the records of a batch message, on its partition.
// Their Data share the batch's memory.
func DecodeBatch(m *Message) ([]Message, error) {
	data := m.Data
	if len(data) >= len(compressedMagic) && string(data[:len(compressedMagic)]) == compressedMagic {
		var err error
		if data, err = s2.Decode(nil, data[len(compressedMagic):]); err != nil {
			return nil, fmt.Errorf("batch %s: %w: %v", m.Position, errBatch, err)
		}
	}
	if len(data) < len(batchMagic) || string(data[:len(batchMagic)]) != batchMagic {
		return nil, fmt.Errorf("batch %s: %w: no %q header", m.Position, errBatch, batchMagic)
	}
	data = data[len(batchMagic):]
	var err error
	uvarint := func() uint64 {
		v, k := binary.Uvarint(data)
		if k <= 0 {
			err = errBatch
			return 0
		}
		data = data[k:]
		return v
	}
	bytes := func() []byte {
		n := uvarint()
		if err != nil || n > uint64(len(data)) {
			err = errBatch
			return nil
		}
		s := data[:n:n]
		data = data[n:]
		return s
	}
	count := uvarint()
	if err != nil || count > uint64(len(data)) {
		return nil, fmt.Errorf("batch %s: %w: bad record count", m.Position, errBatch)
	}
	out := make([]Message, 0, count)
	// A batch's records mostly share their table and operation: the
	// previous record's strings serve when the bytes are the same.
	var table, op string
	for range count {
		r := Message{Partition: m.Partition}
		r.Position = string(bytes())
		if b := bytes(); string(b) != table {
			table = string(b)
		}
		if b := bytes(); string(b) != op {
			op = string(b)
		}
		r.Table, r.Op = table, op
		us, k := binary.Varint(data)
		if k <= 0 {
			err = errBatch
		} else {
			data = data[k:]
		}
		r.CommitTime = time.UnixMicro(us).UTC()
		r.Key = string(bytes())
		r.Data = bytes()
		if err != nil {
			return nil, fmt.Errorf("batch %s: %w: record %d of %d cut short", m.Position, errBatch, len(out)+1, count)
		}
		out = append(out, r)
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("batch %s: %w: %d bytes after the last record", m.Position, errBatch, len(data))
	}
	return out, nil
}

// Unbatcher is a Consumer that hands out the records of batch messages one
// by one, and other messages as they are. It reads both kinds, so a stream
// written with and without stream.dms_compatible reads the same.
type Unbatcher struct {
	inner Consumer
	held  []*Delivered // records of batches fetched, not yet handed out
	err   error        // of the fetch that filled held, returned once held is empty
	// Batches and Records count the batch messages split and the records
	// they held (tests).
	Batches, Records uint64
	plain            uint64 // messages fetched that were no batch
}

var _ Consumer = (*Unbatcher)(nil)

// NewUnbatcher returns an Unbatcher reading inner.
func NewUnbatcher(inner Consumer) *Unbatcher { return &Unbatcher{inner: inner} }

// Fetch returns up to max records: those of batches fetched before first,
// without waiting.
func (u *Unbatcher) Fetch(ctx context.Context, max int, wait time.Duration) ([]*Delivered, error) {
	if len(u.held) == 0 && u.err != nil {
		err := u.err
		u.err = nil
		return nil, err
	}
	if len(u.held) == 0 {
		got, err := u.inner.Fetch(ctx, u.messagesFor(max), wait)
		for _, d := range got {
			if d.Op != OpBatch {
				u.plain++
				u.held = append(u.held, d)
				continue
			}
			recs, derr := DecodeBatch(&d.Message)
			if derr != nil {
				return nil, derr
			}
			u.Batches++
			u.Records += uint64(len(recs))
			u.held = append(u.held, splitAck(d, recs)...)
		}
		if err != nil {
			if len(u.held) == 0 {
				return nil, err
			}
			u.err = err
		}
	}
	k := min(max, len(u.held))
	out := u.held[:k:k]
	u.held = u.held[k:]
	return out, nil
}

// messagesFor is how many stream messages to fetch for about n records:
// n divided by the records a message has held on average, a few until a
// message came. Fetching n messages would, with batches of hundreds of
// records, decode hundreds of times more records than asked for and hold
// them all (hundreds of MiB in a catch-up).
func (u *Unbatcher) messagesFor(n int) int {
	messages, records := u.Batches+u.plain, u.Records+u.plain
	if messages == 0 {
		return min(n, 8)
	}
	per := max(records/messages, 1)
	return int(min(uint64(n), (uint64(n)+per-1)/per))
}

// splitAck returns the records of batch d, each acknowledged on its own;
// d is acknowledged when the last of them is.
func splitAck(d *Delivered, recs []Message) []*Delivered {
	b := &batchAcks{d: d, left: len(recs), acked: make([]bool, len(recs))}
	all := make([]Delivered, len(recs)) // one allocation for the batch's records
	out := make([]*Delivered, len(recs))
	for i, r := range recs {
		all[i] = Delivered{Message: r, Seq: d.Seq, ack: func(ctx context.Context) error { return b.ack(ctx, i) }}
		out[i] = &all[i]
	}
	return out
}

// batchAcks acknowledges batch d once each of its records was.
type batchAcks struct {
	d     *Delivered
	mu    sync.Mutex
	left  int
	acked []bool
}

func (b *batchAcks) ack(ctx context.Context, i int) error {
	b.mu.Lock()
	if b.acked[i] {
		b.mu.Unlock()
		return nil
	}
	b.acked[i] = true
	b.left--
	last := b.left == 0
	b.mu.Unlock()
	if last {
		return b.d.Ack(ctx)
	}
	return nil
}

// Pending is the inner consumer's pending messages (a batch counts once)
// plus the records of fetched batches not handed out yet.
func (u *Unbatcher) Pending(ctx context.Context) (uint64, error) {
	n, err := u.inner.Pending(ctx)
	return n + uint64(len(u.held)), err
}

// Unwrap returns the inner consumer.
func (u *Unbatcher) Unwrap() Consumer { return u.inner }

// Close closes the inner consumer.
func (u *Unbatcher) Close() error { return u.inner.Close() }
