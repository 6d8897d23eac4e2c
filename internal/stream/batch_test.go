package stream

import (
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
