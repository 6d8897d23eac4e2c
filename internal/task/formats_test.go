package task_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
	"github.com/binlake/binlake/internal/validate"
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
			b := runDrained(t, m, cfg, dir, func() { steps(t, work, 40) })
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

// TestTypedFormatsReadByDuckDB runs the pipeline once per typed format and
// compression, with an ALTER TABLE during CDC (a new column, so new
// objects with a new schema). binlake's reader replays the lake against
// the source, every data record must be in a Parquet or CSV object (none
// fell back to JSON lines), and DuckDB's per-key replay in SQL of those
// objects, cut at the last truncate in the control records' JSON objects,
// must give the source's row counts and read wp_stats.views exactly.
func TestTypedFormatsReadByDuckDB(t *testing.T) {
	duck := testbed.NewDuckDB(t)
	m := startWordPress(t, 120)
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	work := testbed.NewWorkload(db, testbed.WordPressDB, 11)
	for i, tc := range []struct {
		name, delivery, ext string
	}{
		{"parquet-snappy", "format: parquet", ".parquet"},
		{"parquet-zstd", "format: parquet, parquet: {compression: zstd, row_group_size: 16KiB}", ".parquet"},
		{"csv-gzip-header", "format: csv, csv: {header: true}", ".csv.gz"},
		{"csv-none", "format: csv, compression: none", ".csv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, m, "file://"+dir, fmt.Sprintf("delivery: {buffer: {size: 64KiB, interval: 1s}, prefix: \"wordpress-db/\", %s}\n", tc.delivery))
			column := fmt.Sprintf("typed_%d", i)
			b := runDrained(t, m, cfg, dir, func() {
				steps(t, work, 20)
				// Every row is updated after the ALTER, so every row's last
				// record has the new column.
				if err := m.Exec(t.Context(), "ALTER TABLE `wordpress-db`.wp_options ADD COLUMN "+column+" decimal(6,2) NULL",
					"UPDATE `wordpress-db`.wp_options SET "+column+" = option_id / 4"); err != nil {
					t.Fatal(err)
				}
				steps(t, work, 20)
			})
			rp := assertLakeEqualsSource(t, b, cfg, false)
			for key, row := range rp.Tables["wordpress-db.wp_options"] {
				if _, ok := row[column].(string); !ok {
					t.Errorf("wp_options %s: %s = %#v after the ALTER TABLE, want a decimal", key, column, row[column])
				}
			}
			// binlake validate reads the typed lake too.
			results, err := validate.Run(t.Context(), validate.Options{Config: cfg, Bucket: b, Rounds: 1})
			if err != nil || !validate.OK(results) {
				var out strings.Builder
				validate.Print(&out, results)
				t.Errorf("validate: %v\n%s", err, out.String())
			}
			recs, err := lake.Read(t.Context(), b, cfg.Delivery.Prefix)
			if err != nil {
				t.Fatal(err)
			}
			typed := 0
			for _, r := range recs {
				switch {
				case r.Type == "data" && !strings.HasSuffix(r.Object, tc.ext):
					t.Fatalf("data record %s of %s is in %s, not in a %s object", r.Position, r.Table, r.Object, tc.ext)
				case r.Type == "data":
					typed++
				}
			}
			t.Logf("%d data records in %s objects", typed, tc.ext)

			// DuckDB: the last operation per key after the last truncate.
			var sql []string
			for _, name := range wordpressTables {
				tableDir := filepath.Join(dir, "wordpress-db", "wordpress-db", name)
				rows := "SELECT _op AS op, _partition_key AS k, _stream_position AS pos FROM read_parquet('" + tableDir + "/**/*.parquet', union_by_name=true)"
				deleted := "delete"
				if strings.HasPrefix(tc.name, "csv") {
					rows = "SELECT op, k, pos FROM read_csv('" + tableDir + "/**/*.csv*', header=" + fmt.Sprint(strings.Contains(tc.name, "header")) +
						", union_by_name=true, all_varchar=true, allow_quoted_nulls=false, max_line_size=100000000, delim=',', quote='\"', escape='\"', names=['op', 'pos', 'ts', 'tx', 'k'])"
					deleted = "D"
				}
				sql = append(sql, `SELECT '`+name+`' AS t, count(*) FILTER (WHERE op <> '`+deleted+`') AS n FROM (
					WITH r AS (`+rows+`),
					cut AS (SELECT coalesce(max(metadata->>'stream-position'), '') AS p
						FROM read_json('`+tableDir+`/**/*.json*', format='newline_delimited', columns={metadata: 'JSON'})
						WHERE metadata->>'operation' IN ('truncate-table', 'drop-table'))
					SELECT k, arg_max(op, pos) AS op FROM r, cut WHERE pos > cut.p GROUP BY k)`)
			}
			got := map[string]string{}
			for _, r := range duck.Query(t, strings.Join(sql, " UNION ALL ")) {
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
			statsDir := filepath.Join(dir, "wordpress-db", "wordpress-db", "wp_stats")
			query := "SELECT typeof(views) || ' ' || views::VARCHAR AS v FROM read_parquet('" + statsDir + "/**/*.parquet') WHERE views = 18446744073709551615 LIMIT 1"
			want := "UBIGINT 18446744073709551615"
			if strings.HasPrefix(tc.name, "csv") {
				// Op, 4 metadata columns, id, then views.
				query = "SELECT views AS v FROM read_csv('" + statsDir + "/**/*.csv*', header=" + fmt.Sprint(strings.Contains(tc.name, "header")) +
					", all_varchar=true, allow_quoted_nulls=false, max_line_size=100000000, delim=',', quote='\"', escape='\"', names=['op', 'pos', 'ts', 'tx', 'k', 'id', 'views'])" +
					" WHERE views = '18446744073709551615' LIMIT 1"
				want = "18446744073709551615"
			}
			if rows := duck.Query(t, query); len(rows) != 1 || rows[0]["v"] != want {
				t.Errorf("DuckDB reads wp_stats.views = 18446744073709551615 as %v, want %q", rows, want)
			}
			if strings.HasPrefix(tc.name, "parquet") {
				// WordPress's zero dates: NULL in the TIMESTAMP column, the
				// text in _zero_dates.
				rows := duck.Query(t, "SELECT count(*) AS n FROM read_parquet('"+filepath.Join(dir, "wordpress-db", "wordpress-db", "wp_posts")+"/**/*.parquet') "+
					"WHERE post_date_gmt IS NULL AND json_extract_string(_zero_dates, '$.post_date_gmt') = '0000-00-00 00:00:00'")
				if len(rows) != 1 || fmt.Sprint(rows[0]["n"]) == "0" {
					t.Errorf("DuckDB finds no wp_posts row whose zero post_date_gmt is in _zero_dates: %v", rows)
				}
			}
		})
	}
}

// runDrained runs a task with cfg until its full load is done, then runs
// during, waits until capture has caught up with the source, drains the
// task, and returns its lake in dir.
func runDrained(t *testing.T, m *testbed.MariaDB, cfg *config.Config, dir string, during func()) objstore.Bucket {
	t.Helper()
	tk := task.New(cfg, logger(t))
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	waitFor(t, 60e9, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })
	during()
	waitCaughtUp(t, tk, m)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// steps runs n steps of the workload.
func steps(t *testing.T, work *testbed.Workload, n int) {
	t.Helper()
	for range n {
		if err := work.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
