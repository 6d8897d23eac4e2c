package change

import (
	"math"
	"reflect"
	"testing"
	"time"
)

// TestBinaryRoundTrip: every value type and every field comes back from
// the binary form exactly, and a cut record is refused.
func TestBinaryRoundTrip(t *testing.T) {
	recs := []*Record{
		{Op: OpUpdate, Schema: "shop", Table: "items",
			Data: Row{{"id", int64(-7)}, {"u", uint64(math.MaxUint64)}, {"f", 1.5e300}, {"g", float32(-0.25)}, {"s", "héllo\x00\n"},
				{"d", Decimal("-12345678901234567890.000000001")}, {"b", []byte{0, 1, 255}}, {"e", []byte{}}, {"n", nil}, {"nan", math.Inf(1)}},
			Before:        Row{{"id", int64(-7)}, {"s", ""}},
			TransactionID: 42, CommitTime: time.Date(2026, 11, 24, 8, 0, 0, 123456000, time.UTC),
			Position:     Position{Epoch: 2, File: 17, Offset: 1 << 40, Kind: KindEvent, A: 3, B: 1},
			PartitionKey: "shop.items.-7", PartitionKeyPK: true, TransactionSeq: 9, Prev: &TransactionRef{ID: 41, Seq: 3}},
		{Op: OpChangeColumns, Schema: "shop", Table: "items", Statement: "ALTER TABLE items ADD c INT",
			TableDef: &TableDef{Columns: []ColumnDef{{Name: "id", Type: "INT64", DataType: "int", Nullable: false}, {Name: "c", Type: "INT32", DataType: "int", Nullable: true}}, PrimaryKey: []string{"id"}},
			Position: Position{File: 1, Offset: 4}},
		{Op: OpLoad, Schema: "s", Table: "t", Data: Row{}},
	}
	var d BinaryDecoder
	for i, want := range recs {
		b := want.AppendBinary(nil)
		var got Record
		if err := d.Decode(b, &got); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got, *want)
		}
		for _, n := range []int{0, 1, len(b) / 2, len(b) - 1} {
			if err := d.Decode(b[:n], &got); err == nil {
				t.Errorf("record %d cut to %d of %d bytes decoded", i, n, len(b))
			}
		}
	}
}

func BenchmarkBinary(b *testing.B) {
	rec := &Record{Op: OpUpdate, Schema: "sbtest", Table: "sbtest1",
		Data:     Row{{"id", int64(123456)}, {"k", int64(99881)}, {"c", "68487932199-96439406143-93774651418-41631865787-96406072701-20604855487-25459966574-28203206787-41238978918-19503783441"}, {"pad", "22195207048-70116052123-74140395089-76317954521-98694025897"}},
		Before:   Row{{"id", int64(123456)}, {"k", int64(99880)}, {"c", "68487932199-96439406143-93774651418-41631865787-96406072701-20604855487-25459966574-28203206787-41238978918-19503783441"}, {"pad", "22195207048-70116052123-74140395089-76317954521-98694025897"}},
		Position: Position{File: 2, Offset: 99999, Kind: KindEvent}, PartitionKey: "sbtest.sbtest1.123456"}
	var d BinaryDecoder
	var buf []byte
	for b.Loop() {
		buf = rec.AppendBinary(buf[:0])
		var got Record
		if err := d.Decode(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
}
