//go:build bench

package bench

import (
	"sync"
	"time"

	"github.com/binlake/binlake/internal/testbed"
)

// watchPeak samples a running process's VmHWM, the peak resident set of
// its own memory, until the returned function is called (after the process
// is waited for), which returns the largest in MiB. getrusage's ru_maxrss
// is not that on Linux: a child's starts at the resident set its parent
// had when it was spawned (exec keeps the old memory's high-water mark), so
// a bench process holding a NATS cluster made every worker it started look
// over 1 GiB large.
func watchPeak(pid int) func() float64 {
	var mu sync.Mutex
	var peak float64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if kib, err := testbed.PeakRSS(pid); err == nil {
				mu.Lock()
				peak = max(peak, float64(kib)/1024)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() float64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
