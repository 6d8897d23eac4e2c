package task_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestCompressionsReadByDuckDB runs the pipeline once per compression and
// checks the lake twice: replayed by binlake's reader against the source,
// and read by DuckDB, an independent reader, whose per-key replay in SQL
// must give the source's row counts and exact edge values.
func TestCompressionsReadByDuckDB(t *testing.T) {
	duck := testbed.NewDuckDB(t)
	m := startWordPress(t, 120)
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	work := testbed.NewWorkload(db, testbed.WordPressDB, 9)
	for _, compression := range []string{"none", "gzip", "zstd", "snappy"} {
		t.Run(compression, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, m, "file://"+dir, fmt.Sprintf("delivery: {buffer: {size: 64KiB, interval: 1s}, prefix: \"wordpress-db/\", compression: %s}\n", compression))
			tk := task.New(cfg, logger(t))
			ctx, stop := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- tk.Run(ctx) }()
			waitFor(t, 60e9, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })
			for range 40 {
				if err := work.Step(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			waitCaughtUp(t, tk, m)
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			b, err := objstore.NewFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			assertLakeEqualsSource(t, b, cfg, false)
			if compression == "snappy" {
				return // DuckDB does not read framed snappy JSON
			}
			glob := filepath.Join(dir, "wordpress-db", "wordpress-db", "**", "*.json*")
			rows := duck.Query(t, `WITH r AS (
				SELECT metadata->>'table-name' AS t, metadata->>'partition-key-value' AS k,
				       metadata->>'operation' AS op, metadata->>'stream-position' AS pos
				FROM read_json('`+glob+`', format='newline_delimited', columns={data: 'JSON', metadata: 'JSON'})),
			last AS (SELECT t, k, arg_max(op, pos) AS op FROM r WHERE op IN ('load', 'insert', 'update', 'delete') GROUP BY t, k)
			SELECT t, count(*) FILTER (WHERE op <> 'delete') AS n FROM last GROUP BY t ORDER BY t`)
			got := map[string]string{}
			for _, r := range rows {
				got[r["t"].(string)] = fmt.Sprint(r["n"])
			}
			for _, name := range wordpressTables {
				src, err := capture.ReadTable(t.Context(), cfg.Source.MySQL, testbed.WordPressDB, name)
				if err != nil {
					t.Fatal(err)
				}
				if got[name] != fmt.Sprint(len(src)) {
					t.Errorf("DuckDB replays %s to %s rows, the source has %d", name, got[name], len(src))
				}
			}
			views := duck.Query(t, `SELECT data->>'views' AS v FROM read_json('`+glob+`', format='newline_delimited', columns={data: 'JSON', metadata: 'JSON'})
				WHERE (metadata->>'table-name') = 'wp_stats' AND (data->>'views') = '18446744073709551615' LIMIT 1`)
			if len(views) != 1 {
				t.Errorf("DuckDB finds no wp_stats row with views = 18446744073709551615 as written")
			}
		})
	}
}
