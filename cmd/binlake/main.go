// Command binlake lands MySQL and MariaDB data in object storage as a
// complete, ordered change log.
package main

import (
	"os"

	"github.com/binlake/binlake/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
