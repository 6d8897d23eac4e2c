package ddl_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/ddl"
	"github.com/binlake/binlake/internal/lake/laketest"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// statsDef is WordPress's wp_stats (internal/testbed): one column of most
// MySQL types.
var statsDef = &change.TableDef{PrimaryKey: []string{"id"}, Columns: []change.ColumnDef{
	{Name: "id", Type: "int(11)", DataType: "int"},
	{Name: "views", Type: "bigint(20) unsigned", DataType: "bigint", Nullable: true},
	{Name: "ratio", Type: "decimal(10,3)", DataType: "decimal", Nullable: true},
	{Name: "score", Type: "double", DataType: "double", Nullable: true},
	{Name: "weight", Type: "float", DataType: "float", Nullable: true},
	{Name: "flag", Type: "tinyint(1)", DataType: "tinyint", Nullable: true},
	{Name: "day", Type: "date", DataType: "date", Nullable: true},
	{Name: "at", Type: "timestamp(6)", DataType: "timestamp", Nullable: true},
	{Name: "dur", Type: "time(3)", DataType: "time", Nullable: true},
	{Name: "yr", Type: "year(4)", DataType: "year", Nullable: true},
	{Name: "kind", Type: "enum('a','b','c')", DataType: "enum", Nullable: true},
	{Name: "raw", Type: "varbinary(16)", DataType: "varbinary", Nullable: true},
	{Name: "bits", Type: "bit(5)", DataType: "bit", Nullable: true},
	{Name: "doc", Type: "longtext", DataType: "longtext", Nullable: true},
	{Name: "note", Type: "varchar(50)", DataType: "varchar", Nullable: true},
}}

// TestDDL writes the statements of a known table, wp_stats with a
// snapshot, for each engine and change-log format, and compares them with
// testdata/*.sql (go test -update rewrites those).
func TestDDL(t *testing.T) {
	for _, tc := range []struct{ name, engine, delivery string }{
		{"athena-json", ddl.Athena, ""},
		{"athena-parquet", ddl.Athena, ", format: parquet"},
		{"athena-csv", ddl.Athena, ", format: csv, csv: {header: true}"},
		{"trino-json", ddl.Trino, ""},
		{"trino-parquet", ddl.Trino, ", format: parquet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := objstore.NewMemory()
			cfg := laketest.Config(t, "wordpress", ", tables: snapshot"+tc.delivery)
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for p := range 2 {
				def := change.Record{Op: change.OpCreateTable, Schema: "wordpress-db", Table: "wp_stats", TableDef: statsDef, CommitTime: at,
					Statement: "-- binlake: table definition at the full load", PartitionKey: "wordpress-db.wp_stats",
					Position: change.Position{File: 1, Offset: 100, Kind: change.KindLoad, B: uint64(p)}}
				row := change.Record{Op: change.OpLoad, Schema: "wordpress-db", Table: "wp_stats", CommitTime: at,
					Data: change.Row{{Name: "id", Value: int64(p)}}, PartitionKey: "wordpress-db.wp_stats." + string(rune('0'+p)), PartitionKeyPK: true,
					Position: change.Position{File: 1, Offset: 100, Kind: change.KindLoad, A: 1, B: uint64(p)}}
				for _, c := range statsDef.Columns[1:] {
					row.Data = append(row.Data, change.Field{Name: c.Name})
				}
				laketest.Put(t, b, "lake/wordpress-db/wp_stats/2026/01/02/03/", "wordpress", "wordpress-db.wp_stats", p, "gzip", def, row)
			}
			s, err := lakehouse.New(lakehouse.Options{Config: cfg, Bucket: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			tables, err := ddl.Discover(context.Background(), cfg, b, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(tables) != 1 || tables[0].Snapshot == nil || len(tables[0].Def.Columns) != len(statsDef.Columns) {
				t.Fatalf("Discover = %+v", tables)
			}
			var out bytes.Buffer
			if err := ddl.Write(&out, cfg, ddl.Options{Engine: tc.engine, URL: "s3://my-lake/cdc"}, tables); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".sql")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != string(want) {
				t.Errorf("statements:\n%s\nwant (%s):\n%s", out.String(), golden, want)
			}
		})
	}
}
