// Command binlake lands MySQL and MariaDB data in object storage as a
// complete, ordered change log.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/cli"
)

func main() { os.Exit(run()) }

func run() int {
	// BINLAKE_CPUPROFILE=file writes a CPU profile of the whole run, for
	// `go tool pprof` (used by make bench's investigations).
	if path := os.Getenv("BINLAKE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "binlake: BINLAKE_CPUPROFILE:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "binlake: BINLAKE_CPUPROFILE:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	// BINLAKE_TRACE=file writes an execution trace of the whole run, for
	// `go tool trace` (where the pipeline's goroutines wait).
	if path := os.Getenv("BINLAKE_TRACE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "binlake: BINLAKE_TRACE:", err)
			return 1
		}
		defer func() {
			trace.Stop()
			f.Close()
		}()
	}
	// BINLAKE_MEMPROFILE=file writes a heap profile whenever the heap in
	// use is the largest seen so far (checked every second): the profile
	// of the peak. "%p" in it is replaced by the process id.
	if path := os.Getenv("BINLAKE_MEMPROFILE"); path != "" {
		go heapPeaks(strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid())))
	}
	return cli.Main(os.Args[1:], os.Stdout, os.Stderr)
}

func heapPeaks(path string) {
	var peak uint64
	for range time.Tick(time.Second) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse <= peak {
			continue
		}
		peak = ms.HeapInuse
		if f, err := os.Create(path); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
}
