package change

import (
	"testing"
	"time"
)

// TestAppendJSONBeforeImageAndPrev checks the exact JSON of the optional
// before-image and prev-transaction fields.
func TestAppendJSONBeforeImageAndPrev(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	rec := Record{
		Op: OpUpdate, Schema: "s", Table: "t",
		Data:          Row{{"id", int64(1)}, {"v", "b"}},
		Before:        Row{{"id", int64(1)}},
		TransactionID: 8, TransactionSeq: 2,
		Prev:       &TransactionRef{ID: 8, Seq: 1},
		CommitTime: at, BuiltAt: at,
		Position:     Position{File: 1, Offset: 4, Kind: KindEvent},
		PartitionKey: "s.t.1", PartitionKeyPK: true,
	}
	want := `{"data":{"id":1,"v":"b"},"before-image":{"id":1},"metadata":{"timestamp":"2026-01-02T03:04:05.600000Z","record-type":"data","operation":"update","partition-key-type":"primary-key","partition-key-value":"s.t.1","schema-name":"s","table-name":"t","transaction-id":8,"prev-transaction-id":8,"transaction-record-id":2,"prev-transaction-record-id":1,"commit-timestamp":"2026-01-02T03:04:05.600000Z","stream-position":"0000/0000000001/0000000000000004/1/0000000000/0000000000","format-version":1}}`
	if got := string(rec.AppendJSON(nil)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// An empty before image (pk-only, no primary key) is an empty object;
	// none at all is no field.
	rec.Before, rec.Prev = Row{}, nil
	want = `{"data":{"id":1,"v":"b"},"before-image":{},"metadata":{"timestamp":"2026-01-02T03:04:05.600000Z","record-type":"data","operation":"update","partition-key-type":"primary-key","partition-key-value":"s.t.1","schema-name":"s","table-name":"t","transaction-id":8,"transaction-record-id":2,"commit-timestamp":"2026-01-02T03:04:05.600000Z","stream-position":"0000/0000000001/0000000000000004/1/0000000000/0000000000","format-version":1}}`
	if got := string(rec.AppendJSON(nil)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
