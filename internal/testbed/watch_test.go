package testbed

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestWatchFiles creates, links and renames files in a directory that
// exists and in nested ones made after the watch began, and expects each
// path reported.
func TestWatchFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mu sync.Mutex
	seen := map[string]bool{}
	WatchFiles(t, dir, func(path string) {
		mu.Lock()
		defer mu.Unlock()
		rel, _ := filepath.Rel(dir, path)
		seen[filepath.ToSlash(rel)] = true
	})
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt")
	write("ns/tbl/metadata/tmp.json")
	if err := os.Link(filepath.Join(dir, "ns/tbl/metadata/tmp.json"), filepath.Join(dir, "ns/tbl/metadata/v1.json.claim")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "ns/tbl/metadata/hint")); err != nil {
		t.Fatal(err)
	}
	write("ns/tbl/data/f.parquet")
	want := []string{"a.txt", "ns", "ns/tbl", "ns/tbl/data", "ns/tbl/data/f.parquet", "ns/tbl/metadata",
		"ns/tbl/metadata/hint", "ns/tbl/metadata/tmp.json", "ns/tbl/metadata/v1.json.claim"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		var got []string
		for p := range seen {
			got = append(got, p)
		}
		mu.Unlock()
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reported %q; want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
