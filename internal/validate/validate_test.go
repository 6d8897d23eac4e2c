package validate_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/cli"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
	"github.com/binlake/binlake/internal/validate"
)

// TestValidate runs the pipeline, validates a lake that matches, then
// changes the source behind binlake's back and checks that validate names
// the row, the column and both values, and that a table without a primary
// key is reported as such.
func TestValidate(t *testing.T) {
	m := testbed.NewMariaDB(t)
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if err := testbed.CreateWordPress(ctx, db, testbed.WordPressDB); err != nil {
		t.Fatal(err)
	}
	if err := testbed.SeedWordPress(ctx, db, testbed.WordPressDB, 50, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(ctx, "CREATE TABLE `wordpress-db`.nokey (a int, b varchar(10))", "INSERT INTO `wordpress-db`.nokey VALUES (1,'x'),(2,'y')"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	yml := fmt.Sprintf(`task: wp
source: {mysql: {host: 127.0.0.1, port: %d, user: root}}
migration: full-load
tables: [{include: "wordpress-db.%%"}, {exclude: "wordpress-db.wp[_]sessions"}]
delivery: {buffer: {size: 64KiB, interval: 1s}, prefix: lake/}
target: file://%s
state_dir: %s
`, m.Port, filepath.Join(dir, "lake"), filepath.Join(dir, "state"))
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))).Run(ctx); err != nil {
		t.Fatal(err)
	}
	bucket, err := objstore.NewFile(filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	o := validate.Options{Config: cfg, Bucket: bucket, Rounds: 1}
	results, err := validate.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]validate.Result{}
	for _, r := range results {
		states[r.Table] = r
	}
	for _, name := range []string{"wp_comments", "wp_options", "wp_postmeta", "wp_posts", "wp_stats", "wp_users"} {
		if r := states[name]; r.State != validate.StateValidated || r.SourceRows == 0 || r.SourceRows != r.LakeRows {
			t.Errorf("%s: %+v, want Validated with equal non-zero row counts", name, r)
		}
	}
	if r := states["nokey"]; r.State != validate.StateNoPK {
		t.Errorf("nokey: state %q, want %q", r.State, validate.StateNoPK)
	}
	if _, ok := states["wp_sessions"]; ok {
		t.Errorf("wp_sessions is excluded but was validated")
	}

	// Change the source while binlake is not running: the lake is now stale.
	if err := m.Exec(ctx, "UPDATE `wordpress-db`.wp_options SET option_value = 'changed' WHERE option_name = 'blogname'",
		"DELETE FROM `wordpress-db`.wp_users WHERE ID = 2"); err != nil {
		t.Fatal(err)
	}
	var optionID int
	if err := db.QueryRow("SELECT option_id FROM `wordpress-db`.wp_options WHERE option_name = 'blogname'").Scan(&optionID); err != nil {
		t.Fatal(err)
	}
	o.Rounds, o.Wait, o.Tables = 2, 10*time.Millisecond, []string{"wordpress-db.wp_options", "wordpress-db.wp_users"}
	results, err = validate.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	opt, users := results[0], results[1]
	if opt.State != validate.StateMismatched || opt.Differing != 1 || len(opt.Mismatches) != 1 {
		t.Fatalf("wp_options: %+v, want one mismatched row", opt)
	}
	mm := opt.Mismatches[0]
	if mm.Key != fmt.Sprintf("wordpress-db.wp_options.%d", optionID) || mm.Column != "option_value" || mm.Source != "changed" || mm.Lake == "changed" {
		t.Errorf("wp_options mismatch = %+v", mm)
	}
	if users.State != validate.StateMismatched || users.SourceRows != users.LakeRows-1 ||
		len(users.Mismatches) != 1 || users.Mismatches[0].String() != "wordpress-db.wp_users.2: in the lake but not at the source" {
		t.Errorf("wp_users: %+v", users)
	}

	// The command line: exit 1 and the mismatch printed.
	var out, errOut bytes.Buffer
	code := cli.Main([]string{"validate", "--config", cfgPath, "--tables", "wordpress-db.wp_options", "--rounds", "1"}, &out, &errOut)
	if code != cli.ExitFailed || !strings.Contains(out.String(), "Mismatched records") || !strings.Contains(out.String(), "column option_value: source changed") {
		t.Errorf("binlake validate: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	code = cli.Main([]string{"validate", "--config", cfgPath, "--tables", "wordpress-db.wp_posts", "--rounds", "1"}, &out, &errOut)
	if code != cli.ExitOK {
		t.Errorf("binlake validate of a matching table: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

// TestValidateFindsEditedObjects edits the lake itself: one row's value is
// altered, one row's records are removed and a row that the source never
// had is added. validate names each by key (and column for the altered
// value).
func TestValidateFindsEditedObjects(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(6,2))",
		"INSERT INTO shop.items VALUES (1,'apple',1.20),(2,'pear',2.50),(3,'plum',0.99)"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	cfg, err := config.Parse(fmt.Appendf(nil, `task: shop
source: {mysql: {host: 127.0.0.1, port: %d, user: root}}
migration: full-load
tables: [{include: "shop.%%"}]
stream: {partitions: 1}
delivery: {buffer: {size: 1MiB, interval: 1s}, compression: none, prefix: lake/}
target: file://%s
state_dir: %s
`, m.Port, lakeDir, filepath.Join(dir, "state")))
	if err != nil {
		t.Fatal(err)
	}
	if err := task.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))).Run(ctx); err != nil {
		t.Fatal(err)
	}
	bucket, err := objstore.NewFile(lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	o := validate.Options{Config: cfg, Bucket: bucket, Rounds: 1}
	if res, err := validate.Run(ctx, o); err != nil || !validate.OK(res) {
		t.Fatalf("before the edits: %+v %v", res, err)
	}

	// Edit the object holding the loaded rows.
	var key string
	bucket.List(ctx, "lake/", func(k string, size int64) error {
		if strings.Contains(k, "shop.items-p") && strings.HasSuffix(k, ".json") {
			body, _ := bucket.Get(ctx, k)
			if strings.Contains(string(body), `"operation":"load"`) {
				key = k
			}
		}
		return nil
	})
	if key == "" {
		t.Fatal("no object with the loaded rows")
	}
	body, err := bucket.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		switch {
		case strings.Contains(line, `"partition-key-value":"shop.items.2"`):
			continue // row 2 disappears from the lake
		case strings.Contains(line, `"partition-key-value":"shop.items.1"`):
			line = strings.Replace(line, `"price":"1.20"`, `"price":"9.99"`, 1) // row 1 altered
		case strings.Contains(line, `"partition-key-value":"shop.items.3"`):
			// A row the source never had, at a later position.
			extra := strings.NewReplacer(`"id":3`, `"id":4`, `shop.items.3`, `shop.items.4`, `"plum"`, `"kiwi"`).Replace(line)
			extra = lastRowField.ReplaceAllString(extra, `/0000000099"$1`)
			lines = append(lines, line, extra)
			continue
		}
		lines = append(lines, line)
	}
	if err := bucket.Put(ctx, key, []byte(strings.Join(lines, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
	res, err := validate.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].State != validate.StateMismatched || res[0].Differing != 3 {
		t.Fatalf("after the edits: %+v", res)
	}
	var got []string
	for _, mm := range res[0].Mismatches {
		got = append(got, mm.String())
	}
	want := []string{
		"shop.items.1 column price: source 1.20, lake 9.99",
		"shop.items.2: missing from the lake",
		"shop.items.4: in the lake but not at the source",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mismatches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A row that keeps changing at the source (binlake is stopped, so the
	// lake never catches up) is in flight, not a mismatch: its source row
	// moves between rounds.
	changing, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for i := 0; changing.Err() == nil; i++ {
			m.Exec(changing, fmt.Sprintf("UPDATE shop.items SET price = %d.00 WHERE id = 3", i%100))
			time.Sleep(20 * time.Millisecond)
		}
	}()
	o.Rounds, o.Wait = 3, 300*time.Millisecond
	res, err = validate.Run(ctx, o)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if res[0].State != validate.StateMismatched || res[0].Differing != 3 {
		t.Errorf("with row 3 changing: %+v, want the same 3 mismatches and row 3 not among them", res[0])
	}
	for _, mm := range res[0].Mismatches {
		if mm.Key == "shop.items.3" {
			t.Errorf("row 3, changing at the source, reported as a mismatch: %s", mm)
		}
	}
}

// lastRowField is the last field of a stream-position (the row number of a
// load record).
var lastRowField = regexp.MustCompile(`/\d{10}"(,"format-version")`)
