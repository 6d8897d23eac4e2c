package validate_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
