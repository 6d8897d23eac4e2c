package task_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestSnapshotTablesEndToEnd is the acceptance of delivery.tables:
// snapshot. The WordPress workload runs with updates, deletes and
// primary-key changes; in the middle, ALTER TABLEs rename, drop and add
// columns (with a default, and NOT NULL without one) of a table no
// statement writes afterwards but one, and a TRUNCATE empties another.
// Snapshots are made every second while the task runs and once more at its
// drain. DuckDB then reads each table's snapshot files, as its manifest
// names them, and every row equals the source's, value by value.
func TestSnapshotTablesEndToEnd(t *testing.T) {
	duck := testbed.NewDuckDB(t)
	cfg, dir := currentStateWorkload(t, "", "snapshot, snapshot: {interval: 1s, grace: 0s, file_size: 48KiB}", readManifest)
	manifest := func(table string) *lakehouse.Manifest { return readManifest(t, dir, table) }
	for _, name := range wordpressTables {
		src, err := capture.ReadTable(t.Context(), cfg.Source.MySQL, testbed.WordPressDB, name)
		if err != nil {
			t.Fatal(err)
		}
		mf := manifest(name)
		if mf == nil {
			t.Fatalf("%s: no snapshot manifest", name)
		}
		if len(mf.Inexact) > 0 {
			t.Errorf("%s: the snapshot says it is not exact: %+v", name, mf.Inexact)
		}
		got := duckSnapshot(t, duck, dir, mf)
		if int64(len(got)) != mf.Rows || len(got) != len(src) {
			t.Errorf("%s: DuckDB reads %d rows, the manifest says %d, the source has %d", name, len(got), mf.Rows, len(src))
		}
		def, err := change.ParseTableDef(mf.TableDef)
		if err != nil {
			t.Fatal(err)
		}
		mismatches := 0
		for key, row := range src {
			want := lake.SourceRow(row)
			have, ok := got[key]
			if !ok {
				t.Errorf("%s %s: not in the snapshot", name, key)
				mismatches++
				continue
			}
			if len(want) != len(def.Columns) {
				t.Errorf("%s: the source has %d columns, the snapshot %d (%s)", name, len(want), len(def.Columns), mf.TableDef)
			}
			for _, c := range def.Columns {
				if !sameValue(c, want[c.Name], have[c.Name]) {
					mismatches++
					if mismatches < 10 {
						t.Errorf("%s %s column %s (%s): source %#v, snapshot %#v", name, key, c.Name, c.Type, want[c.Name], have[c.Name])
					}
				}
			}
		}
		t.Logf("%s: %d rows in %d files, generation %d, exact through %s", name, mf.Rows, len(mf.Files), mf.Generation, mf.ExactThrough)
	}
	users := manifest("wp_users")
	if !strings.Contains(string(users.TableDef), `"karma"`) || strings.Contains(string(users.TableDef), `"user_status"`) {
		t.Errorf("wp_users's snapshot columns after the ALTER: %s", users.TableDef)
	}
}

// currentStateWorkload runs the WordPress workload through a task with
// delivery.tables: <tables>: updates, deletes and primary-key changes;
// once state says a periodic run holds wp_users in its first shape,
// ALTER TABLEs rename, drop and add columns (with a default, and NOT NULL
// without one) of wp_users, which no statement writes afterwards but one,
// and of wp_options, and a TRUNCATE empties wp_comments; then more
// workload, and a drain. It returns the config and the lake directory.
// s3, when set, is the config's s3 section and the target s3://lake/cdc
// (dir is then unused).
func currentStateWorkload(t *testing.T, s3, tables string, state func(t *testing.T, dir, table string) *lakehouse.Manifest) (*config.Config, string) {
	t.Helper()
	m := startWordPress(t, 120)
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	work := testbed.NewWorkload(db, testbed.WordPressDB, 13)
	dir := t.TempDir()
	target := "file://" + dir
	if s3 != "" {
		target = "s3://lake/cdc"
	}
	cfg := testConfig(t, m, target, s3+`delivery: {buffer: {size: 64KiB, interval: 1s}, prefix: "wordpress-db/", tables: `+tables+`}
`)
	tk := task.New(cfg, logger(t))
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	waitFor(t, 60e9, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })
	steps(t, work, 40)
	if err := m.Exec(t.Context(), "UPDATE `wordpress-db`.wp_users SET ID = ID + 1000 WHERE ID = 2"); err != nil {
		t.Fatal(err)
	}
	// A periodic run holds wp_users in its first shape.
	waitFor(t, 60e9, func() bool {
		mf := state(t, dir, "wp_users")
		return mf != nil && mf.Rows == 5 && strings.Contains(string(mf.TableDef), "display_name")
	})
	first := state(t, dir, "wp_posts").Generation
	if err := m.Exec(t.Context(),
		"ALTER TABLE `wordpress-db`.wp_users RENAME COLUMN display_name TO public_name, DROP COLUMN user_status,"+
			" ADD COLUMN karma decimal(6,2) NOT NULL DEFAULT '1.5', ADD COLUMN nick varchar(20) NOT NULL AFTER user_login",
		"ALTER TABLE `wordpress-db`.wp_options ADD COLUMN snap_note varchar(30) DEFAULT 'fresh'",
		"TRUNCATE TABLE `wordpress-db`.wp_comments",
	); err != nil {
		t.Fatal(err)
	}
	steps(t, work, 40)
	if err := m.Exec(t.Context(),
		"UPDATE `wordpress-db`.wp_users SET nick = 'changed', karma = 7.25 WHERE ID = 1",
		"UPDATE `wordpress-db`.wp_users SET ID = ID + 2000 WHERE ID = 3",
		"DELETE FROM `wordpress-db`.wp_users WHERE ID = 4",
		"UPDATE `wordpress-db`.wp_options SET snap_note = NULL WHERE option_name = 'home'",
	); err != nil {
		t.Fatal(err)
	}
	steps(t, work, 20)
	waitCaughtUp(t, tk, m)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g := state(t, dir, "wp_posts").Generation; g <= first {
		t.Errorf("wp_posts: generation %d after the ALTERs, %d before: no run was made while the task ran", g, first)
	}
	return cfg, dir
}

// TestIcebergTablesEndToEnd is the acceptance of delivery.tables:
// iceberg: the workload of currentStateWorkload, committed to Iceberg
// tables every second and at the drain, then each table read back with
// iceberg-go (deletes applied) equals the source, value by value.
func TestIcebergTablesEndToEnd(t *testing.T) {
	for _, tc := range []struct{ mode, target string }{{"copy-on-write", "file"}, {"merge-on-read", "file"}, {"merge-on-read", "s3"}} {
		t.Run(tc.mode+"-"+tc.target, func(t *testing.T) {
			mode := tc.mode
			// On S3 (versitygw over HTTP): target s3://lake/cdc.
			var s3yml string
			var loc *lakehouse.IcebergLocation
			if tc.target == "s3" {
				srv := testbed.NewS3(t)
				if err := srv.CreateBucket(t.Context(), "lake"); err != nil {
					t.Fatal(err)
				}
				s3yml = fmt.Sprintf("s3: {endpoint: %q, region: %s, path_style: true, access_key_id: %s, secret_access_key: %s}\n", srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey)
				c, err := config.Parse([]byte("task: x\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"x.%\"}]\ntarget: s3://lake/cdc\n" + s3yml + "delivery: {prefix: \"wordpress-db/\", tables: iceberg}\n"))
				if err != nil {
					t.Fatal(err)
				}
				l, err := lakehouse.IcebergLocationOf(c)
				if err != nil {
					t.Fatal(err)
				}
				loc = &l
			}
			state := func(t *testing.T, dir, table string) (map[string]map[string]any, *lakehouse.Manifest) {
				where := lakehouse.FileIceberg(dir, "wordpress-db/")
				if loc != nil {
					where = *loc
				}
				rows, mf, err := lakehouse.ReadIcebergTable(t.Context(), where, testbed.WordPressDB, table)
				if err != nil {
					t.Fatal(err)
				}
				return rows, mf
			}
			cfg, dir := currentStateWorkload(t, s3yml, "iceberg, iceberg: {delete_mode: "+mode+"}, snapshot: {interval: 1s}", func(t *testing.T, dir, table string) *lakehouse.Manifest {
				_, mf := state(t, dir, table)
				return mf
			})
			for _, name := range wordpressTables {
				src, err := capture.ReadTable(t.Context(), cfg.Source.MySQL, testbed.WordPressDB, name)
				if err != nil {
					t.Fatal(err)
				}
				got, mf := state(t, dir, name)
				if mf == nil {
					t.Fatalf("%s: no Iceberg table", name)
				}
				if len(mf.Inexact) > 0 {
					t.Errorf("%s: the table says it is not exact: %+v", name, mf.Inexact)
				}
				if len(got) != len(src) {
					t.Errorf("%s: iceberg-go reads %d rows, the source has %d", name, len(got), len(src))
				}
				mismatches := 0
				for key, row := range src {
					want := lake.SourceRow(row)
					have, ok := got[key]
					if !ok || !reflect.DeepEqual(have, want) {
						if mismatches++; mismatches < 10 {
							t.Errorf("%s %s: source %v\niceberg %v", name, key, want, have)
						}
					}
				}
				t.Logf("%s: %d rows, generation %d, exact through %s", name, len(got), mf.Generation, mf.ExactThrough)
			}
		})
	}
}

// readManifest reads the snapshot manifest of a WordPress table in the
// lake in dir.
func readManifest(t *testing.T, dir, table string) *lakehouse.Manifest {
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := lakehouse.ReadManifest(t.Context(), b, "wordpress-db/", testbed.WordPressDB, table)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// duckSnapshot reads a snapshot's files with DuckDB: each row by its
// partition-key-value, each value as the text of its JSON form (or nil).
func duckSnapshot(t *testing.T, duck *testbed.DuckDB, dir string, mf *lakehouse.Manifest) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	if len(mf.Files) == 0 {
		return out
	}
	def, err := change.ParseTableDef(mf.TableDef)
	if err != nil {
		t.Fatal(err)
	}
	var files, cols []string
	for _, f := range mf.Files {
		files = append(files, "'"+filepath.Join(dir, f.Key)+"'")
	}
	for i, c := range def.Columns {
		q := `"` + c.Name + `"`
		zero := "json_extract_string(_zero_dates, '$." + c.Name + "')"
		var e string
		switch strings.ToLower(c.DataType) {
		case "datetime":
			e = "coalesce(strftime(" + q + ", '%Y-%m-%d %H:%M:%S.%f'), " + zero + ")"
		case "timestamp":
			e = "coalesce(strftime(timezone('UTC', " + q + "), '%Y-%m-%d %H:%M:%S.%f'), " + zero + ")"
		case "date":
			e = "coalesce(strftime(" + q + ", '%Y-%m-%d'), " + zero + ")"
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			e = "base64(" + q + ")"
		default:
			e = q + "::VARCHAR"
		}
		cols = append(cols, fmt.Sprintf("%s AS c%d", e, i))
	}
	rows := duck.Query(t, "SELECT _partition_key AS k, "+strings.Join(cols, ", ")+" FROM read_parquet(["+strings.Join(files, ", ")+"])")
	for _, r := range rows {
		row := map[string]any{}
		for i, c := range def.Columns {
			v := r[fmt.Sprintf("c%d", i)]
			if s, ok := v.(string); ok && (c.DataType == "datetime" || c.DataType == "timestamp") && !strings.HasPrefix(s, "0000") {
				// strftime's %f has 6 digits; the type has fsp.
				fsp := 0
				if _, args, ok := strings.Cut(c.Type, "("); ok {
					fsp, _ = strconv.Atoi(strings.TrimSuffix(args, ")"))
				}
				if fsp == 0 {
					v = s[:19]
				} else {
					v = s[:20+fsp]
				}
			}
			row[c.Name] = v
		}
		k := r["k"].(string)
		if _, dup := out[k]; dup {
			t.Errorf("key %s twice in the snapshot", k)
		}
		out[k] = row
	}
	return out
}

// sameValue compares a source value in its JSON form (json.Number, string,
// nil) with the text DuckDB printed: exactly, except that floating-point
// numbers are compared as the numbers they are (DuckDB prints 1e6 as
// 1000000.0).
func sameValue(c change.ColumnDef, want, got any) bool {
	if want == nil || got == nil {
		return want == nil && got == nil
	}
	w := fmt.Sprint(want)
	g, ok := got.(string)
	if !ok {
		return false
	}
	switch strings.ToLower(c.DataType) {
	case "float", "double":
		bits := 64
		if c.DataType == "float" {
			bits = 32
		}
		wf, err1 := strconv.ParseFloat(w, bits)
		gf, err2 := strconv.ParseFloat(g, bits)
		return err1 == nil && err2 == nil && math.Float64bits(wf) == math.Float64bits(gf)
	}
	return w == g
}
