package lakehouse_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
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
	b, _ := icebergSnapshotter(t, dir, "merge-on-read")
	meta := filepath.Join(dir, "lake", "_binlake", "iceberg", "s", "items", "metadata")
	killedCommit(t, b, func() *lakehouse.Snapshotter {
		_, s := icebergSnapshotter(t, dir, "merge-on-read")
		return s
	}, func() map[string]map[string]any {
		rows, _ := readIceberg(t, dir)
		return rows
	}, metadataFiles{
		get: func(name string) (string, error) {
			b, err := os.ReadFile(filepath.Join(meta, name))
			return string(b), err
		},
		put: func(name, body string) error { return os.WriteFile(filepath.Join(meta, name), []byte(body), 0o644) },
	})
}

// metadataFiles reads and writes the files of a table's Iceberg metadata
// directory, wherever the warehouse is.
type metadataFiles struct {
	get func(name string) (string, error)
	put func(name, body string) error
}

// killedCommit commits s.items twice (v1 creates it, v2 holds three rows),
// leaves in its metadata what a binlake killed in its next commit leaves (a
// version claimed but not published, v3.metadata.json.claim, and a version
// hint naming the version before the newest), and checks that a restarted
// binlake brings the hint to the newest version in its next run, even one
// with nothing to commit, and commits the next records at once (iceberg-go
// alone refuses every commit of the table for a minute after a claim).
func killedCommit(t *testing.T, b objstore.Bucket, snapshotter func() *lakehouse.Snapshotter, read func() map[string]map[string]any, files metadataFiles) {
	t.Helper()
	l := newChangeLog(t, b)
	l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)"))
	for i := 10; i < 13; i++ {
		l.row(change.OpLoad, i, "name", fmt.Sprint("n", i))
	}
	l.flush()
	run(t, snapshotter())
	assertRows(t, read(), want(
		map[string]any{"id": n(10), "name": "n10"},
		map[string]any{"id": n(11), "name": "n11"},
		map[string]any{"id": n(12), "name": "n12"},
	))

	v2, err := files.get("v2.metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := files.put("v3.metadata.json.claim", v2); err != nil {
		t.Fatal(err)
	}
	if err := files.put("version-hint.text", "1"); err != nil {
		t.Fatal(err)
	}

	s := snapshotter() // restarted
	if res := run(t, s); res.Records != 0 || res.Generation != 1 {
		t.Errorf("a run with nothing new: %+v", res)
	}
	if hint, err := files.get("version-hint.text"); err != nil || hint != "2" {
		t.Errorf("version hint %q (%v) after a run with nothing new, want 2", hint, err)
	}
	l.row(change.OpUpdate, 11, "name", "eleven")
	l.row(change.OpDelete, 12, "name", "n12")
	l.flush()
	if res := run(t, s); res.Generation != 2 {
		t.Errorf("generation %d after the commit that followed the killed one, want 2", res.Generation)
	}
	assertRows(t, read(), want(
		map[string]any{"id": n(10), "name": "n10"},
		map[string]any{"id": n(11), "name": "eleven"},
	))
	if _, err := files.get("v3.metadata.json.claim"); err == nil {
		t.Errorf("the killed commit's claim is still there")
	}
	if _, err := files.get("v3.metadata.json"); err != nil {
		t.Errorf("the commit did not publish v3: %v", err)
	}
	if hint, err := files.get("version-hint.text"); err != nil || hint != "3" {
		t.Errorf("version hint %q (%v), want 3", hint, err)
	}
}
