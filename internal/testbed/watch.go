package testbed

import (
	"io/fs"
	"path/filepath"
	"testing"
)

// WatchFiles calls created with the path of each file or directory created,
// hard-linked or renamed into place under dir (which must exist) and under
// its subdirectories, those created later included, until t ends. The calls
// come one at a time, on a goroutine of their own, as soon as the operating
// system reports the change (inotify on Linux, a 2 ms scan elsewhere), so a
// test can act at a precise moment of another process's writes: SIGKILL it
// just as a commit claims a version. A path can be reported twice (an entry
// of a directory that appears while its watch is being set up).
func WatchFiles(t testing.TB, dir string, created func(path string)) {
	t.Helper()
	if err := watchFiles(t, dir, created); err != nil {
		t.Fatalf("watching %s: %v", dir, err)
	}
}

// walkEntries calls fn with every entry under dir, dir excluded.
func walkEntries(dir string, fn func(path string, isDir bool)) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && path != dir {
			fn(path, d.IsDir())
		}
		return nil
	})
}
