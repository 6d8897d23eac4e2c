package lakehouse_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/binlake/binlake/internal/change"
)

// TestIcebergKilledCommitLeftovers leaves in a table's metadata directory
// what iceberg-go's file catalog leaves when binlake is killed in a
// commit: a version claimed but not published (v3.metadata.json.claim),
// and a version hint naming the version before the newest. A restarted
// binlake brings the hint to the newest version in its next run, even one
// with nothing to commit, and commits the next records at once (iceberg-go
// alone refuses every commit of the table for a minute after a claim).
func TestIcebergKilledCommitLeftovers(t *testing.T) {
	dir := t.TempDir()
	b, s := icebergSnapshotter(t, dir, "merge-on-read")
	l := newChangeLog(t, b)
	l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)"))
	for i := 10; i < 13; i++ {
		l.row(change.OpLoad, i, "name", fmt.Sprint("n", i))
	}
	l.flush()
	run(t, s) // v1 creates the table, v2 holds the rows

	meta := filepath.Join(dir, "lake", "_binlake", "iceberg", "s", "items", "metadata")
	v2, err := os.ReadFile(filepath.Join(meta, "v2.metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(meta, "v3.metadata.json.claim"), v2, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(meta, "version-hint.text"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}

	_, s = icebergSnapshotter(t, dir, "merge-on-read") // restarted
	if res := run(t, s); res.Records != 0 || res.Generation != 1 {
		t.Errorf("a run with nothing new: %+v", res)
	}
	if hint, err := os.ReadFile(filepath.Join(meta, "version-hint.text")); err != nil || string(hint) != "2" {
		t.Errorf("version hint %q (%v) after a run with nothing new, want 2", hint, err)
	}
	l.row(change.OpUpdate, 11, "name", "eleven")
	l.row(change.OpDelete, 12, "name", "n12")
	l.flush()
	if res := run(t, s); res.Generation != 2 {
		t.Errorf("generation %d after the commit that followed the killed one, want 2", res.Generation)
	}
	got, _ := readIceberg(t, dir)
	assertRows(t, got, want(
		map[string]any{"id": n(10), "name": "n10"},
		map[string]any{"id": n(11), "name": "eleven"},
	))
	if _, err := os.Stat(filepath.Join(meta, "v3.metadata.json.claim")); !os.IsNotExist(err) {
		t.Errorf("the killed commit's claim is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(meta, "v3.metadata.json")); err != nil {
		t.Errorf("the commit did not publish v3: %v", err)
	}
	if hint, err := os.ReadFile(filepath.Join(meta, "version-hint.text")); err != nil || string(hint) != "3" {
		t.Errorf("version hint %q (%v), want 3", hint, err)
	}
}
