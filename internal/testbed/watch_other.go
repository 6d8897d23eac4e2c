//go:build !linux

package testbed

import (
	"sync"
	"testing"
	"time"
)

// watchFiles scans dir every 2 ms and reports the paths it had not seen.
func watchFiles(t testing.TB, dir string, created func(path string)) error {
	seen := map[string]bool{}
	walkEntries(dir, func(path string, _ bool) { seen[path] = true })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { close(stop); wg.Wait() })
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			walkEntries(dir, func(path string, _ bool) {
				if !seen[path] {
					seen[path] = true
					created(path)
				}
			})
		}
	}()
	return nil
}
