package stream

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Records larger than a backend's message limit (NATS's max_payload, 1 MiB
// by default; Kinesis's 1 MiB per record; Kafka's message.max.bytes) are
// split into chunks carried by consecutive messages of the same partition,
// each marked "i/n" (1-based), and joined again by a Reassembler on the
// consumer side. The chunks of a record are acknowledged together.

// Split cuts data into pieces of at most limit bytes. Data that fits is
// returned as one piece.
func Split(data []byte, limit int) [][]byte {
	if limit <= 0 || len(data) <= limit {
		return [][]byte{data}
	}
	out := make([][]byte, 0, (len(data)+limit-1)/limit)
	for len(data) > limit {
		out = append(out, data[:limit])
		data = data[limit:]
	}
	return append(out, data)
}

// ChunkLabel is the "i/n" label of chunk i (1-based) of n.
func ChunkLabel(i, n int) string { return strconv.Itoa(i) + "/" + strconv.Itoa(n) }

// ParseChunkLabel parses an "i/n" label.
func ParseChunkLabel(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || i < 1 || n < 1 || i > n {
		return 0, 0, fmt.Errorf("bad chunk label %q", s)
	}
	return i, n, nil
}

// Part is one message as read from a backend: a whole record (Count 1) or
// one chunk of one.
type Part struct {
	Message          // Data is this chunk's bytes
	Index, Count int // 1-based chunk index and chunk count
	Seq          uint64
	Ack          func(context.Context) error
	// Discard, if set, is called for an orphan chunk that is dropped. A
	// backend that never delivers a message twice within one consumer
	// (Kinesis, Kafka) marks it done so its position can advance past it;
	// NATS leaves it nil, since an orphan there is a redelivery of a chunk
	// whose record was already handed out and will be acknowledged with it.
	Discard func()
}

// Reassembler joins the chunks of records, per partition and position.
//
// Chunks of a record are acknowledged last to first, so an acknowledgement
// floor (the backends' resume point after a restart) never passes the first
// chunk of a record before all of its chunks are acknowledged: a restart
// reads every record whole again. A first chunk arriving while the same
// record is being assembled starts it over (its producer died mid-record
// and published it again); the superseded chunks are acknowledged. A chunk
// that continues nothing is an orphan: dropped, and Discard called.
type Reassembler struct {
	open    map[assemblyKey]*assembly
	Dropped int // orphan or superseded chunks
}

type assemblyKey struct {
	partition int
	position  string
}

type assembly struct {
	parts []Part
	size  int
}

// Add takes the next part read from a partition and returns the record it
// completes, or nil.
func (r *Reassembler) Add(ctx context.Context, p Part) (*Delivered, error) {
	if p.Count <= 1 {
		return NewDelivered(p.Message, p.Seq, p.Ack), nil
	}
	if r.open == nil {
		r.open = map[assemblyKey]*assembly{}
	}
	k := assemblyKey{p.Partition, p.Position}
	a := r.open[k]
	switch {
	case p.Index == 1:
		if a != nil {
			if err := r.supersede(ctx, a.parts); err != nil {
				return nil, err
			}
		}
		a = &assembly{}
		r.open[k] = a
	case a == nil || p.Index != len(a.parts)+1 || p.Count != a.parts[0].Count:
		r.Dropped++
		if p.Discard != nil {
			p.Discard()
		}
		return nil, nil
	}
	a.parts = append(a.parts, p)
	a.size += len(p.Data)
	if p.Index < p.Count {
		return nil, nil
	}
	delete(r.open, k)
	m := a.parts[0].Message
	m.Data = make([]byte, 0, a.size)
	for _, q := range a.parts {
		m.Data = append(m.Data, q.Data...)
	}
	parts := a.parts
	return NewDelivered(m, parts[0].Seq, func(ctx context.Context) error {
		for i := len(parts) - 1; i >= 0; i-- {
			if err := parts[i].Ack(ctx); err != nil {
				return err
			}
		}
		return nil
	}), nil
}

// Buffered is the number of chunks held for records not complete yet.
func (r *Reassembler) Buffered() int {
	n := 0
	for _, a := range r.open {
		n += len(a.parts)
	}
	return n
}

func (r *Reassembler) supersede(ctx context.Context, parts []Part) error {
	for i := len(parts) - 1; i >= 0; i-- {
		r.Dropped++
		if err := parts[i].Ack(ctx); err != nil {
			return err
		}
	}
	return nil
}
