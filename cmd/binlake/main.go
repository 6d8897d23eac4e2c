// Command binlake lands MySQL and MariaDB data in object storage as a
// complete, ordered change log.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/binlake/binlake/internal/cli"
)

func main() {
	// BINLAKE_CPUPROFILE=file writes a CPU profile of the whole run, for
	// `go tool pprof` (used by make bench's investigations).
	if path := os.Getenv("BINLAKE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "binlake: BINLAKE_CPUPROFILE:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "binlake: BINLAKE_CPUPROFILE:", err)
			os.Exit(1)
		}
		code := cli.Main(os.Args[1:], os.Stdout, os.Stderr)
		pprof.StopCPUProfile()
		f.Close()
		os.Exit(code)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
