package stream

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestBatchCompressed: a batch message is S2-compressed, its records come
// back exactly, and a damaged one is refused.
func TestBatchCompressed(t *testing.T) {
	var msgs []*Message
	raw := 0
	for i := range 200 {
		m := &Message{Partition: 3, Table: "shop.items", Op: "update", Key: fmt.Sprintf("shop.items.%d", i),
			Position:   fmt.Sprintf("0000/000002/%016d/E/0000000000000000/0000000000000000", 1000+i),
			CommitTime: time.UnixMicro(1_700_000_000_000_000 + int64(i)).UTC(),
			Data:       fmt.Appendf(nil, `{"data":{"id":%d,"v":"value %d of a row that repeats much"},"metadata":{"operation":"update"}}`, i, i)}
		msgs = append(msgs, m)
		raw += len(m.Data)
	}
	b := EncodeBatch(msgs)
	if string(b.Data[:4]) != compressedMagic || len(b.Data) > raw/3 {
		t.Errorf("batch of %d bytes of records is %d bytes starting %q, want S2-compressed (%q)", raw, len(b.Data), b.Data[:4], compressedMagic)
	}
	got, err := DecodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d records, want %d", len(got), len(msgs))
	}
	for i := range got {
		if !reflect.DeepEqual(&got[i], msgs[i]) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], *msgs[i])
		}
	}
	b.Data[len(b.Data)/2] ^= 0xff
	b.Data = b.Data[:len(b.Data)-3]
	if _, err := DecodeBatch(b); err == nil {
		t.Error("a damaged batch decoded")
	}
}

// batchQueue is a Consumer handing out batch messages of 100 records each,
// recording how many messages each Fetch asked for.
type batchQueue struct {
	batches []*Message
	asked   []int
}

func (q *batchQueue) Fetch(_ context.Context, max int, _ time.Duration) ([]*Delivered, error) {
	q.asked = append(q.asked, max)
	var out []*Delivered
	for len(out) < max && len(q.batches) > 0 {
		out = append(out, NewDelivered(*q.batches[0], uint64(len(q.asked)), func(context.Context) error { return nil }))
		q.batches = q.batches[1:]
	}
	return out, nil
}

func (q *batchQueue) Pending(context.Context) (uint64, error) { return uint64(len(q.batches)), nil }
func (q *batchQueue) Close() error                            { return nil }

// TestUnbatcherFetchesWhatItHandsOut: asked for 1000 records, the
// Unbatcher fetches about 1000 records' worth of batches once it knows
// their size, not 1000 batches (100,000 records decoded and held), and
// hands out every record once, in order.
func TestUnbatcherFetchesWhatItHandsOut(t *testing.T) {
	q := &batchQueue{}
	n := 0
	for range 50 {
		var msgs []*Message
		for range 100 {
			n++
			msgs = append(msgs, &Message{Table: "s.t", Op: "insert", Position: fmt.Sprintf("%016d", n), Data: []byte(`{}`)})
		}
		q.batches = append(q.batches, EncodeBatch(msgs))
	}
	u := NewUnbatcher(q)
	var got []string
	for {
		recs, err := u.Fetch(t.Context(), 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			got = append(got, r.Position)
		}
	}
	if len(got) != n {
		t.Fatalf("%d records handed out, want %d", len(got), n)
	}
	for i, p := range got {
		if want := fmt.Sprintf("%016d", i+1); p != want {
			t.Fatalf("record %d is %s, want %s", i, p, want)
		}
	}
	// The first fetch knows nothing of the messages' size and asks for a
	// few; every later one asks for 10 batches of 100 records.
	if len(q.asked) < 2 || q.asked[0] != 8 {
		t.Fatalf("fetches asked for %v messages, want 8 first", q.asked)
	}
	for i, a := range q.asked[1:] {
		if a != 10 {
			t.Fatalf("fetch %d asked for %d messages, want 10 (asked: %v)", i+2, a, q.asked)
		}
	}

	// Messages that are no batches: asked for as many as records.
	q = &batchQueue{}
	for i := range 30 {
		q.batches = append(q.batches, &Message{Table: "s.t", Op: "insert", Position: fmt.Sprintf("%016d", i+1), Data: []byte(`{}`)})
	}
	u = NewUnbatcher(q)
	for {
		recs, err := u.Fetch(t.Context(), 20, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
	}
	if want := []int{8, 20, 20, 20}; !reflect.DeepEqual(q.asked, want) {
		t.Errorf("plain messages: fetches asked for %v, want %v", q.asked, want)
	}
}
