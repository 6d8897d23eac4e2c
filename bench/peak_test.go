//go:build bench

package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
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
			if v, ok := vmHWM(pid); ok {
				mu.Lock()
				peak = max(peak, v)
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

// vmHWM reads /proc/<pid>/status's VmHWM in MiB.
func vmHWM(pid int) (float64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}
