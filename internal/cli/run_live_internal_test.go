package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/testbed"
)

// TestRunOnTerminal runs a full-load task as if stderr were a terminal: the
// first line names the log file, the logs go there, the live view ends with
// the stopped task; with --log-to-stderr the logs stay on stderr and no log
// file is written.
func TestRunOnTerminal(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop", "CREATE TABLE shop.items (id INT PRIMARY KEY)", "INSERT INTO shop.items VALUES (1),(2),(3)"); err != nil {
		t.Fatal(err)
	}
	defer func(f func(io.Writer) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(io.Writer) bool { return true }
	run := func(args ...string) (string, string) {
		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		path := filepath.Join(dir, "binlake.yml")
		yml := fmt.Sprintf("task: shop\nmigration: full-load\nsource: {mysql: {host: 127.0.0.1, port: %d, user: root, password: \"\"}}\ntables: [{include: \"shop.%%\"}]\ntarget: file://%s/lake\nstate_dir: %s\n", m.Port, dir, state)
		if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := Main(append([]string{"run", "-c", path}, args...), &out, &errOut); code != ExitOK {
			t.Fatalf("binlake run %v: exit %d\n%s", args, code, errOut.String())
		}
		return errOut.String(), state
	}

	stderr, state := run()
	logPath := filepath.Join(state, "binlake.log")
	plain := regexp.MustCompile("\x1b\\[[?0-9;]*[A-Za-z]").ReplaceAllString(stderr, "") // the terminal's escapes
	lines := strings.Split(strings.TrimSuffix(plain, "\n"), "\n")
	if lines[0] != "binlake run: task shop; logs go to "+logPath+" (--log-to-stderr keeps them here)" ||
		!strings.HasPrefix(lines[len(lines)-1], "Stopped · load 100% · ") || strings.Contains(stderr, "level=") {
		t.Errorf("stderr on a terminal:\n%s", stderr)
	}
	if logs, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(logs), `msg="task running" task=shop`) {
		t.Errorf("%s: %v\n%s", logPath, err, logs)
	}

	stderr, state = run("--log-to-stderr")
	if !strings.Contains(stderr, `msg="task running" task=shop`) || strings.Contains(stderr, "logs go to") {
		t.Errorf("stderr on a terminal with --log-to-stderr:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "binlake.log")); !os.IsNotExist(err) {
		t.Errorf("binlake.log with --log-to-stderr: %v", err)
	}
}
