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
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that no other FreePort, in this process or another, hands out while this
// process lives: a server a test stops and starts again on its port (a
// restart, a fail-over) finds the port still its own, even while other test
// packages start servers in parallel. The port is reserved by an flock on a
// file named after it (in portDir), held until the process exits, and is
// taken below Linux's ephemeral range (32768–60999), where the kernel picks
// ports for outgoing connections and for listeners on port 0. Another
// program, or another user's tests, may still bind it before the caller
// does, so servers started on it are retried on a new port when the bind
// fails.
func FreePort() (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	dir := portDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("reserving a port: %w", err)
	}
	if ports.next == 0 {
		ports.next = portLow + rand.IntN(portHigh-portLow)
	}
	for range portHigh - portLow {
		p := ports.next
		if ports.next++; ports.next == portHigh {
			ports.next = portLow
		}
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return 0, fmt.Errorf("reserving a port: %w", err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // another process's
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			f.Close() // taken by a program that does not reserve
			continue
		}
		l.Close()
		ports.held = append(ports.held, f)
		return p, nil
	}
	return 0, fmt.Errorf("reserving a port: every port from %d to %d is taken", portLow, portHigh-1)
}

// portDir holds FreePort's reservation files: one per user, whose
// permissions are the user's own.
func portDir() string {
	return filepath.Join(os.TempDir(), "binlake-test-ports-"+strconv.Itoa(os.Getuid()))
}

// The range FreePort reserves ports in.
const portLow, portHigh = 20000, 32768

var ports struct {
	mu   sync.Mutex
	next int
	held []*os.File // open for the life of the process: the flocks are the reservations
}
