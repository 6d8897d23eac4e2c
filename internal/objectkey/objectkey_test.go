package objectkey_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/objectkey"
)

func pos(offset uint64) string {
	return change.Position{File: 1, Offset: offset, Kind: change.KindEvent}.String()
}

func TestFormatParse(t *testing.T) {
	key := objectkey.Format("w/wordpress-db/wp_posts/2026/", "my-task", "wordpress-db.wp_posts", 3, pos(10), pos(90), ".json.gz")
	if key != "w/wordpress-db/wp_posts/2026/my-task-wordpress-db.wp_posts-p0003-000000000000010000000000000010100000000000000000000-000000000000010000000000000090100000000000000000000.json.gz" {
		t.Fatalf("Format = %s", key)
	}
	n, ok := objectkey.Parse(key)
	if !ok || n.Head != "my-task-wordpress-db.wp_posts" || n.Partition != 3 || n.First != pos(10) || n.Last != pos(90) || n.Ext != ".json.gz" ||
		n.Dir() != "w/wordpress-db/wp_posts/2026/" {
		t.Fatalf("Parse = %+v %v", n, ok)
	}
	if table, ok := n.Table("my-task"); !ok || table != "wordpress-db.wp_posts" {
		t.Errorf("Table = %q %v", table, ok)
	}
	if _, ok := n.Table("other"); ok {
		t.Error("another task's object")
	}
	for _, bad := range []string{"x.json", "t-s.t-p0001-12-34.json",
		objectkey.Format("", "t", "s.t", 0, pos(90), pos(10), ".json")} { // last before first
		if _, ok := objectkey.Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// TestCovered: an object compacted from others covers them, in any
// directory; one with the same range (an error output object) or an
// overlapping one does not.
func TestCovered(t *testing.T) {
	name := func(dir string, part int, first, last uint64) objectkey.Name {
		n, ok := objectkey.Parse(objectkey.Format(dir, "t", "s.x", part, pos(first), pos(last), ".json.gz"))
		if !ok {
			t.Fatal("unparsable")
		}
		return n
	}
	a, b, c := name("d1/", 0, 10, 20), name("d2/", 0, 30, 40), name("d2/", 0, 50, 60)
	merged := name("d1/", 0, 10, 40)
	errOut := name("errors/", 0, 50, 60)
	other := name("d1/", 1, 30, 40) // another partition
	overlap := name("d3/", 0, 35, 55)
	got := objectkey.Covered([]objectkey.Name{c, merged, a, errOut, b, other, overlap})
	want := []string{a.Key, b.Key}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Errorf("Covered = %v, want %v", keys, want)
	}
	if !merged.Covers(a) || merged.Covers(merged) || errOut.Covers(c) || c.Covers(errOut) {
		t.Error("Covers")
	}
}
