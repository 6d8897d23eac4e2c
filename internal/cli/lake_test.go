package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/cli"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/lake/laketest"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
)

// TestSnapshotCommand runs binlake snapshot on a lake of one table: it
// prints the table's snapshot, and refuses to run beside a task that holds
// the state directory.
func TestSnapshotCommand(t *testing.T) {
	dir := t.TempDir()
	lakeDir, state := filepath.Join(dir, "lake"), filepath.Join(dir, "state")
	path := filepath.Join(dir, "pipeline.yaml")
	cfg := "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"shop.%\"}]\nstream: {partitions: 1}\ntarget: file://" + lakeDir + "\nstate_dir: " + state + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	def := &change.TableDef{PrimaryKey: []string{"id"}, Columns: []change.ColumnDef{{Name: "id", Type: "int(11)", DataType: "int"}, {Name: "v", Type: "text", DataType: "text", Nullable: true}}}
	recs := []change.Record{
		{Op: change.OpCreateTable, Schema: "shop", Table: "items", TableDef: def, PartitionKey: "shop.items", CommitTime: at,
			Position: change.Position{File: 1, Offset: 4, Kind: change.KindLoad}},
		{Op: change.OpLoad, Schema: "shop", Table: "items", Data: change.Row{{Name: "id", Value: int64(1)}, {Name: "v", Value: "a"}},
			PartitionKey: "shop.items.1", PartitionKeyPK: true, CommitTime: at, Position: change.Position{File: 1, Offset: 4, Kind: change.KindLoad, B: 1}},
		{Op: change.OpInsert, Schema: "shop", Table: "items", Data: change.Row{{Name: "id", Value: int64(2)}, {Name: "v", Value: "b"}},
			PartitionKey: "shop.items.2", PartitionKeyPK: true, CommitTime: at, Position: change.Position{File: 1, Offset: 90, Kind: change.KindEvent}},
	}
	var body []byte
	for _, r := range recs {
		body = append(r.AppendJSON(body), '\n')
	}
	digits := func(p change.Position) string { return strings.ReplaceAll(p.String(), "/", "") }
	obj := filepath.Join(lakeDir, "shop", "items", "t-shop.items-p0000-"+digits(recs[0].Position)+"-"+digits(recs[2].Position)+".json")
	if err := os.MkdirAll(filepath.Dir(obj), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(obj, body, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func() (int, string) {
		var out, errOut bytes.Buffer
		code := cli.Main([]string{"snapshot", "--config", path}, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	code, out := run()
	if code != cli.ExitOK || !strings.Contains(out, "shop.items") || !strings.Contains(out, "0000/0000000001/0000000000000090/1/0000000000/0000000000") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	fields := strings.Fields(strings.Split(out, "\n")[1])
	if strings.Join(fields[:6], " ") != "shop.items 1 2 1 3 1" {
		t.Errorf("table, generation, rows, files, records, written: %v", fields)
	}
	if _, err := os.Stat(filepath.Join(lakeDir, "_binlake", "snapshot", "shop", "items", "manifest.json")); err != nil {
		t.Error(err)
	}

	// binlake ddl: the change log and the snapshot table, where they are.
	var ddlOut, ddlErr bytes.Buffer
	if code := cli.Main([]string{"ddl", "--config", path}, &ddlOut, &ddlErr); code != cli.ExitOK {
		t.Fatalf("ddl: exit %d: %s", code, ddlErr.String())
	}
	for _, want := range []string{
		"CREATE EXTERNAL TABLE IF NOT EXISTS `shop`.`items_changes` (\n  `data` struct<`id`:bigint,`v`:string>,",
		"LOCATION 'file://" + lakeDir + "/shop/items/';",
		"CREATE EXTERNAL TABLE IF NOT EXISTS `shop`.`items` (",
		"LOCATION 'file://" + lakeDir + "/_binlake/snapshot/shop/items/symlink/';",
	} {
		if !strings.Contains(ddlOut.String(), want) {
			t.Errorf("binlake ddl does not print %q:\n%s", want, ddlOut.String())
		}
	}
	if code := cli.Main([]string{"ddl", "--config", path, "--engine", "presto"}, &ddlOut, &ddlErr); code != cli.ExitUsage {
		t.Errorf("ddl --engine presto: exit %d", code)
	}

	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, err := task.LockStateDir(state)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if code, out := run(); code != cli.ExitFailed || !strings.Contains(out, "is in use by another binlake process") {
		t.Errorf("beside a running task: exit %d: %s", code, out)
	}
}

// TestCompactCommand runs binlake compact on a lake of two small objects:
// they become one, which binlake's reader reads instead.
func TestCompactCommand(t *testing.T) {
	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	path := filepath.Join(dir, "pipeline.yaml")
	cfg := "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"shop.%\"}]\ntarget: file://" + lakeDir + "\nstate_dir: " + filepath.Join(dir, "state") + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := objstore.NewFile(lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r := change.Record{Op: change.OpInsert, Schema: "shop", Table: "items", Data: change.Row{{Name: "id", Value: int64(i)}},
			PartitionKey: "shop.items", Position: change.Position{File: 1, Offset: uint64(100 + i), Kind: change.KindEvent}}
		laketest.Put(t, b, "shop/items/", "t", "shop.items", 0, "gzip", r)
	}
	var out, errOut bytes.Buffer
	if code := cli.Main([]string{"compact", "--config", path}, &out, &errOut); code != cli.ExitOK || out.String() != "merged 2 objects into 1; deleted 0 merged earlier; expired 0\n" {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	recs, err := lake.Read(t.Context(), b, "")
	if err != nil || len(recs) != 2 || !strings.Contains(recs[0].Object, "-p0000-000000000000010000000000000100100000000000000000000-000000000000010000000000000101100000000000000000000.json.gz") {
		t.Errorf("after compact: %d records (%v), the first from %s", len(recs), err, recs[0].Object)
	}
}
