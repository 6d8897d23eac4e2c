// Package laketest writes change-log objects for tests, named as delivery
// names them, without running delivery.
package laketest

import (
	"context"
	"testing"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/objectkey"
	"github.com/binlake/binlake/internal/objstore"
)

// Put writes recs, all of table ("schema.table") on partition, as one
// JSON lines object under dir, compressed as compression names it
// (delivery.compression), and returns its key.
func Put(t testing.TB, b objstore.Bucket, dir, task, table string, partition int, compression string, recs ...change.Record) string {
	t.Helper()
	var lines []byte
	for _, r := range recs {
		lines = append(r.AppendJSON(lines), '\n')
	}
	body, ext, err := delivery.Compress(compression, lines)
	if err != nil {
		t.Fatal(err)
	}
	return put(t, b, objectkey.Format(dir, task, table, partition, recs[0].Position.String(), recs[len(recs)-1].Position.String(), ".json"+ext), body)
}

// PutParquet writes data records of one table definition as one Parquet
// object, as delivery.format: parquet does.
func PutParquet(t testing.TB, b objstore.Bucket, dir, task, table string, partition int, def *change.TableDef, recs ...change.Record) string {
	t.Helper()
	var lines []byte
	for _, r := range recs {
		lines = append(r.AppendJSON(lines), '\n')
	}
	raw, _ := def.MarshalJSON()
	body, err := delivery.EncodeParquet(table, raw, lines, config.Parquet{Compression: "snappy", RowGroupSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return put(t, b, objectkey.Format(dir, task, table, partition, recs[0].Position.String(), recs[len(recs)-1].Position.String(), ".parquet"), body)
}

func put(t testing.TB, b objstore.Bucket, key string, body []byte) string {
	t.Helper()
	if err := b.Put(context.Background(), key, body); err != nil {
		t.Fatal(err)
	}
	return key
}

// Config is a task's config for tests of the lake: task, two stream
// partitions, delivery.prefix "lake/", and delivery's further settings
// (", key: value" pairs, in flow style) appended.
func Config(t testing.TB, task, delivery string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`task: ` + task + `
source: {mysql: {host: db, user: u}}
tables: [{include: "s.%"}]
target: file:///lake
stream: {partitions: 2}
delivery: {prefix: "lake/"` + delivery + `}
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
