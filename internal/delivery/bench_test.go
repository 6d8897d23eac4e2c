package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/binlake/binlake/internal/config"
)

// benchLines is 1 MiB of JSON lines shaped like DMS records.
func benchLines() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, `{"data":{"ID":%d,"post_title":"Post number %d","post_status":"publish","comment_count":%d},"metadata":{"timestamp":"2026-11-24T10:00:00.000000Z","record-type":"data","operation":"update","partition-key-type":"primary-key","partition-key-value":"wordpress-db.wp_posts.%d","schema-name":"wordpress-db","table-name":"wp_posts","transaction-id":%d,"transaction-record-id":1,"commit-timestamp":"2026-11-24T10:00:00.000000Z","stream-position":"0000/0000000001/%016d/1/0000000000/0000000000","format-version":1}}`+"\n", i, i, i%7, i, 1000+i, 4+i*300)
	}
	return b.Bytes()
}

func BenchmarkCompress(b *testing.B) {
	lines := benchLines()
	for _, c := range []string{"none", "gzip", "zstd", "snappy"} {
		b.Run(c, func(b *testing.B) {
			b.SetBytes(int64(len(lines)))
			b.ReportAllocs()
			var out []byte
			for b.Loop() {
				var err error
				out, _, err = encode(c, lines)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out))/float64(len(lines)), "ratio")
		})
	}
}

// BenchmarkParquet encodes 1 MiB of wp_posts records as a Parquet object
// (snappy pages), in the shape of the table's definition.
func BenchmarkParquet(b *testing.B) {
	lines := benchLines()
	def := json.RawMessage(`{"columns":{"ID":{"type":"bigint(20) unsigned","data-type":"bigint","nullable":false},"post_title":{"type":"text","data-type":"text","nullable":false},"post_status":{"type":"varchar(20)","data-type":"varchar","nullable":false},"comment_count":{"type":"bigint(20)","data-type":"bigint","nullable":false}},"column-order":["ID","post_title","post_status","comment_count"],"primary-key":["ID"]}`)
	b.SetBytes(int64(len(lines)))
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		var err error
		if out, err = EncodeParquet("wordpress-db.wp_posts", def, lines, config.Parquet{Compression: "snappy", RowGroupSize: 128 << 20}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(out))/float64(len(lines)), "ratio")
}
