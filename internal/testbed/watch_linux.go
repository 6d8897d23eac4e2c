package testbed

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchFiles reads inotify events of every directory under dir. The inotify
// descriptor is non-blocking and read through an *os.File, so the runtime's
// poller waits on it and closing the file at t's end ends the reader.
func watchFiles(t testing.TB, dir string, created func(path string)) error {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "inotify")
	dirs := map[int]string{} // watch descriptor → directory
	add := func(d string) error {
		wd, err := unix.InotifyAddWatch(fd, d, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR)
		if err != nil {
			return err
		}
		dirs[wd] = d
		return nil
	}
	// Directories are watched before the goroutine starts and, later, by it
	// alone: dirs needs no lock.
	if err := add(dir); err != nil {
		f.Close()
		return err
	}
	walkEntries(dir, func(path string, isDir bool) {
		if isDir {
			add(path)
		}
	})
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { f.Close(); wg.Wait() })
	go func() {
		defer wg.Done()
		buf := make([]byte, 64*1024)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if !errors.Is(err, os.ErrClosed) {
					t.Errorf("reading inotify events: %v", err)
				}
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				off += unix.SizeofInotifyEvent + int(ev.Len)
				d, ok := dirs[int(ev.Wd)]
				if !ok || ev.Len == 0 {
					continue
				}
				path := filepath.Join(d, unix.ByteSliceToString(name))
				created(path)
				if ev.Mask&unix.IN_ISDIR != 0 && add(path) == nil {
					// Entries made before the watch was in place.
					walkEntries(path, func(p string, isDir bool) {
						if isDir {
							add(p)
						}
						created(p)
					})
				}
			}
		}
	}()
	return nil
}
