// Package testbed starts the real servers binlake is tested and demonstrated
// against — a throwaway MariaDB with a ROW binlog and a versitygw S3 gateway —
// and owns the WordPress-like sample database and the write workload that
// drive them.
//
// Servers run as child processes that this package starts and stops by PID.
// Tests get them through NewMariaDB and NewS3, which skip when a server
// binary is not installed, or fail when CI=true or BINLAKE_REQUIRE_SERVERS=1
// (see Missing). scripts/deps.sh installs the binaries.
package testbed

import (
	"errors"
	"net"
	"os"
	"testing"
)

// ErrNotInstalled is wrapped by the errors of StartMariaDB and StartS3 when a
// server binary cannot be found.
var ErrNotInstalled = errors.New("not installed")

// Missing reports that the test needs what, which can be installed with
// install. It fails the test when servers are required (CI=true or
// BINLAKE_REQUIRE_SERVERS=1) and skips it otherwise.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if os.Getenv("CI") == "true" || os.Getenv("BINLAKE_REQUIRE_SERVERS") == "1" {
		t.Fatalf("%s is required: install it with %s", what, install)
	} else {
		t.Skipf("%s is required: install it with %s", what, install)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller binds it, so servers started
// on it are retried on a new port when the bind fails.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
