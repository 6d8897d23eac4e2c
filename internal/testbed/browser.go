package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Chromium is the path of Debian's chromium, driven by playwright-core.
const Chromium = "/usr/bin/chromium"

// ChromiumArgs are the flags a test browser starts with (plus a fresh
// --user-data-dir): headless, no sandbox (tests often run as root), and
// nothing that talks to the network on its own.
var ChromiumArgs = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
	"--disable-component-update", "--disable-sync", "--no-first-run",
}

// Browser is what a real-browser test needs: node, the playwright-core
// module and chromium.
type Browser struct {
	Node     string // node executable
	Module   string // directory of the playwright-core module, for require()
	Chromium string // chromium executable
}

// NewBrowser finds chromium and node and installs playwright-core from npm
// into $HOME/.cache/binlake/npm when it is missing. Anything missing goes
// through Missing (a failure under CI=true, else a skip).
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	if _, err := os.Stat(Chromium); err != nil {
		Missing(t, "chromium (for the console's browser test)", "scripts/deps.sh browser, or apt-get install -y chromium")
		return nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		Missing(t, "node (for playwright-core)", "apt-get install -y nodejs npm")
		return nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, ".cache", "binlake", "npm")
	module := filepath.Join(dir, "node_modules", "playwright-core")
	// The same lock as DuckDB's: npm must not run twice on one prefix.
	duckdbInstall.Lock()
	defer duckdbInstall.Unlock()
	if _, err := os.Stat(filepath.Join(module, "package.json")); errors.Is(err, os.ErrNotExist) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			Missing(t, "npm (for playwright-core)", "apt-get install -y npm")
			return nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "playwright-core").CombinedOutput()
		if err != nil {
			Missing(t, "playwright-core", fmt.Sprintf("npm install --prefix %s playwright-core (it failed: %v: %s)", dir, err, out))
			return nil
		}
	}
	return &Browser{Node: node, Module: module, Chromium: Chromium}
}
