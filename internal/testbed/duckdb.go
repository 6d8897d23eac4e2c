package testbed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// DuckDB runs SQL in DuckDB through its Node.js API (@duckdb/node-api from
// npm), an independent reader of what binlake writes: JSON lines, gzip and
// zstd objects, Parquet.
type DuckDB struct {
	node   string
	script string
	module string
}

var duckdbInstall sync.Mutex

const duckdbScript = `const { DuckDBInstance } = require(process.env.BINLAKE_DUCKDB_MODULE);
(async () => {
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  const r = await conn.runAndReadAll(process.argv[2]);
  process.stdout.write(JSON.stringify(r.getRowObjectsJson()));
})().catch(e => { process.stderr.write(String(e && e.message || e)); process.exit(1); });
`

// NewDuckDB installs @duckdb/node-api into $HOME/.cache/binlake/npm when it
// is missing and returns a runner. Missing node or npm goes through Missing.
func NewDuckDB(t testing.TB) *DuckDB {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		Missing(t, "node (for DuckDB)", "apt-get install -y nodejs npm")
		return nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, ".cache", "binlake", "npm")
	module := filepath.Join(dir, "node_modules", "@duckdb", "node-api")
	duckdbInstall.Lock()
	defer duckdbInstall.Unlock()
	if _, err := os.Stat(filepath.Join(module, "package.json")); errors.Is(err, os.ErrNotExist) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			Missing(t, "npm (for DuckDB)", "apt-get install -y npm")
			return nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "@duckdb/node-api").CombinedOutput()
		if err != nil {
			Missing(t, "@duckdb/node-api", fmt.Sprintf("npm install --prefix %s @duckdb/node-api (it failed: %v: %s)", dir, err, out))
			return nil
		}
	}
	script := filepath.Join(t.TempDir(), "duckdb.js")
	if err := os.WriteFile(script, []byte(duckdbScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return &DuckDB{node: node, script: script, module: module}
}

// Query runs sql and returns its rows as JSON objects (DuckDB's JSON form:
// big integers and decimals come as strings).
func (d *DuckDB) Query(t testing.TB, sql string) []map[string]any {
	t.Helper()
	cmd := exec.Command(d.node, d.script, sql)
	cmd.Env = append(os.Environ(), "BINLAKE_DUCKDB_MODULE="+d.module)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb: %v: %s\nquery: %s", err, stderr.String(), sql)
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("duckdb output: %v: %s", err, stdout.String())
	}
	return rows
}
