package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Tmpfs is a small file system of its own, mounted for a test: a
// directory that can be filled up or made read-only without touching the
// rest of the machine.
type Tmpfs struct {
	Dir  string
	fill string // the file that fills it, while it does
}

// NewTmpfs mounts a tmpfs of size bytes for the length of the test. Mounting
// needs root (CAP_SYS_ADMIN); without it the test is skipped, or fails under
// CI=true or BINLAKE_REQUIRE_SERVERS=1.
func NewTmpfs(t testing.TB, size int64) *Tmpfs {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", dir).CombinedOutput(); err != nil {
		Missing(t, "mounting a tmpfs ("+strings.TrimSpace(string(out))+")", "running the tests as root")
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	return &Tmpfs{Dir: dir}
}

// Fill writes a file until the file system is full.
func (f *Tmpfs) Fill() error {
	f.fill = filepath.Join(f.Dir, "fill")
	w, err := os.OpenFile(f.fill, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("filling %s: %w", f.Dir, err)
	}
	defer w.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := w.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// Small writes take what is left in partial pages.
				for err == nil || !errors.Is(err, syscall.ENOSPC) {
					_, err = w.Write(buf[:512])
				}
				return nil
			}
			return fmt.Errorf("filling %s: %w", f.Dir, err)
		}
	}
}

// Free removes what Fill wrote.
func (f *Tmpfs) Free() error {
	if f.fill == "" {
		return nil
	}
	err := os.Remove(f.fill)
	f.fill = ""
	return err
}

// ReadOnly remounts the file system read-only (ro true) or read-write.
func (f *Tmpfs) ReadOnly(ro bool) error {
	mode := "remount,rw"
	if ro {
		mode = "remount,ro"
	}
	if out, err := exec.Command("mount", "-o", mode, f.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("mount -o %s %s: %v: %s", mode, f.Dir, err, out)
	}
	return nil
}
