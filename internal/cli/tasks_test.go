package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/cli"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/testbed"
)

// TestRunSeveralTasks: two full-load tasks in one process, each with its
// own state and lake, and a third whose source cannot be reached. The two
// deliver every row of their own database; the third fails, is named, and
// stops neither; run exits 1. Configs that would share a state_dir are
// refused before anything runs.
func TestRunSeveralTasks(t *testing.T) {
	m := testbed.NewMariaDB(t)
	for _, db := range []string{"shop", "blog"} {
		if err := m.Exec(t.Context(), "CREATE DATABASE "+db,
			"CREATE TABLE "+db+".items (id INT PRIMARY KEY, v VARCHAR(20))",
			fmt.Sprintf("INSERT INTO %s.items SELECT seq, CONCAT('%s ', seq) FROM %s.seq_1_to_500", db, db, db)); err != nil {
			t.Fatal(err)
		}
	}
	closed, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, db string, port int, state string) string {
		path := filepath.Join(dir, name+".yaml")
		yml := fmt.Sprintf(`task: %s
source: {mysql: {host: 127.0.0.1, port: %d, user: root, connect_timeout: 2s}}
migration: full-load
tables: [{include: "%s.%%"}]
delivery: {buffer: {interval: 1s}}
target: file://%s
state_dir: %s
`, name, port, db, filepath.Join(dir, "lake-"+name), filepath.Join(dir, state))
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	shop := write("shop", "shop", m.Port, "state-shop")
	blog := write("blog", "blog", m.Port, "state-blog")
	gone := write("gone", "shop", closed, "state-gone")

	var out, errOut bytes.Buffer
	code := cli.Main([]string{"run", "-c", shop, "-c", gone, "-c", blog}, &out, &errOut)
	if code != cli.ExitFailed {
		t.Errorf("exit code %d, want %d (one task failed)", code, cli.ExitFailed)
	}
	if msg := errOut.String(); !strings.Contains(msg, "task gone") || strings.Contains(msg, "task shop:") || strings.Contains(msg, "task blog:") {
		t.Errorf("the failure should name task gone only:\n%s", msg)
	}
	for _, db := range []string{"shop", "blog"} {
		b, err := objstore.NewFile(filepath.Join(dir, "lake-"+db))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := lake.Read(context.Background(), b, "")
		if err != nil {
			t.Fatal(err)
		}
		rows := lake.ReplayRecords(recs).Tables[db+".items"]
		if len(rows) != 500 {
			t.Errorf("task %s delivered %d rows of %s.items, want 500", db, len(rows), db)
		}
		for _, r := range recs {
			if r.Schema != db {
				t.Errorf("task %s's lake holds a record of %s.%s", db, r.Schema, r.Table)
				break
			}
		}
	}

	errOut.Reset()
	twin := write("twin", "blog", m.Port, "state-shop")
	if code := cli.Main([]string{"run", "-c", shop, "-c", twin}, &out, &errOut); code != cli.ExitUsage || !strings.Contains(errOut.String(), "same state_dir") {
		t.Errorf("two tasks on one state_dir: exit %d, %s; want %d and the clash named", code, errOut.String(), cli.ExitUsage)
	}
}
