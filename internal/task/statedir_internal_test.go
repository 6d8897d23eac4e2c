package task

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/checkpoint"
	"github.com/binlake/binlake/internal/config"
)

// TestStateFilesPrivate: what binlake creates in state_dir — the directory,
// its lock, checkpoints and their directories — is readable by its owner
// only (the checkpoints hold binlog positions and table definitions, the
// embedded stream holds row data).
func TestStateFilesPrivate(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "state")
	// A target under a plain file: Run creates state_dir and takes its lock,
	// then fails to open the target.
	if err := os.WriteFile(filepath.Join(tmp, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("task: t\nsource: {mysql: {host: 127.0.0.1, user: u}}\ntables: [{include: a.b}]\n" +
		"target: file://" + filepath.Join(tmp, "file", "lake") + "\nstate_dir: " + dir + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := New(cfg, slog.New(slog.DiscardHandler)).Run(t.Context()); err == nil || !strings.Contains(err.Error(), "target") {
		t.Fatalf("Run = %v, want a target error", err)
	}
	if err := checkpoint.Save(filepath.Join(dir, "sub", "delivery.json"), map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		dir:                        0o700 | os.ModeDir,
		filepath.Join(dir, "LOCK"): 0o600,
		filepath.Join(dir, "sub"):  0o700 | os.ModeDir,
		filepath.Join(dir, "sub", "delivery.json"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %s, want %s", path, fi.Mode(), want)
		}
	}
}
