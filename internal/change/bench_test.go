package change

import (
	"strings"
	"testing"
	"time"
)

// A WordPress-like post row: the record the hot path encodes most.
func benchRecord() *Record {
	return &Record{
		Op: OpUpdate, Schema: "wordpress-db", Table: "wp_posts",
		Data: Row{
			{"ID", uint64(123456)}, {"post_author", uint64(3)},
			{"post_date", "2026-11-24 10:00:00"}, {"post_date_gmt", "2026-11-24 09:00:00"},
			{"post_content", strings.Repeat("Lorem ipsum dolor sit amet, \"consectetur\" adipiscing elit.\n", 10)},
			{"post_title", "Hello world 🎉"}, {"post_status", "publish"}, {"comment_count", int64(12)},
			{"ratio", Decimal("12.340")}, {"score", 0.1}, {"raw", []byte{0, 1, 2, 3, 4, 5, 6, 7}},
		},
		TransactionID: 9324410911751, TransactionSeq: 1,
		CommitTime: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), BuiltAt: time.Date(2026, 11, 24, 10, 0, 0, 5, time.UTC),
		Position:     Position{File: 12, Offset: 36912271, Kind: KindEvent},
		PartitionKey: "wordpress-db.wp_posts.123456", PartitionKeyPK: true,
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	rec := benchRecord()
	buf := rec.AppendJSON(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = rec.AppendJSON(buf[:0])
	}
}

func BenchmarkPositionString(b *testing.B) {
	p := Position{File: 12, Offset: 36912271, Kind: KindEvent, A: 3, B: 1}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.String()
	}
}
