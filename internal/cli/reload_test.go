package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/cli"
)

// TestReload checks that binlake reload leaves one request per table in
// state_dir/reload, and refuses tables the rules do not select.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	path := filepath.Join(dir, "pipeline.yaml")
	cfg := "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"shop.%\"}, {exclude: \"shop.tmp\"}]\ntarget: file:///tmp/lake\nstate_dir: " + state + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := cli.Main(append([]string{"reload", "--config", path}, args...), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := run("--table", "shop.orders", "--table", "shop.items"); code != cli.ExitOK || !strings.Contains(out, "reload of shop.orders requested") {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, table := range []string{"orders", "items"} {
		b, err := os.ReadFile(filepath.Join(state, "reload", "shop."+table+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var req struct{ Schema, Table string }
		if err := json.Unmarshal(b, &req); err != nil || req.Schema != "shop" || req.Table != table {
			t.Errorf("request %s: %+v %v", b, req, err)
		}
	}
	for _, bad := range [][]string{{"--table", "shop.tmp"}, {"--table", "orders"}, {}} {
		if code, out := run(bad...); code != cli.ExitUsage {
			t.Errorf("reload %q: exit %d, want %d: %s", bad, code, cli.ExitUsage, out)
		}
	}
}
