package checkpoint_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/checkpoint"
)

type state struct {
	Version    int               `json:"version"`
	BinlogFile string            `json:"binlog_file"`
	BinlogPos  uint64            `json:"binlog_pos"`
	Tables     map[string]string `json:"tables"`
	SavedAt    time.Time         `json:"saved_at"`
}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "capture.json")
	tests := []state{
		{
			Version:    1,
			BinlogFile: "mysql-bin.000010",
			BinlogPos:  1<<32 + 7,
			Tables:     map[string]string{"db.a": "Table completed", "db.b": "Full load"},
			SavedAt:    time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
		},
		// A second save replaces the first completely: no field of the
		// previous state survives.
		{Version: 2},
	}
	for i, want := range tests {
		if err := checkpoint.Save(path, &want); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		var got state
		ok, err := checkpoint.Load(path, &got)
		if err != nil || !ok {
			t.Fatalf("load %d: %v, %v; want true, nil", i, ok, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("load %d = %+v, want %+v", i, got, want)
		}
		if names := dirEntries(t, dir); !reflect.DeepEqual(names, []string{"capture.json"}) {
			t.Errorf("after save %d the directory holds %q, want only capture.json (no temp files)", i, names)
		}
	}
}

func TestSaveWritesIndentedJSONWithNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	if err := checkpoint.Save(path, map[string]int{"b": 2, "a": 1}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"a\": 1,\n  \"b\": 2\n}\n"
	if string(data) != want {
		t.Errorf("file = %q, want %q", data, want)
	}
}

func TestSaveCreatesDirectory(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "state", "deep", "er", "delivery.json")
	if err := checkpoint.Save(path, state{Version: 3}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	var got state
	if ok, err := checkpoint.Load(path, &got); !ok || err != nil || got.Version != 3 {
		t.Fatalf("Load = %v, %v, %+v; want true, nil, version 3", ok, err, got)
	}
	if names := dirEntries(t, filepath.Dir(path)); !reflect.DeepEqual(names, []string{"delivery.json"}) {
		t.Errorf("directory holds %q, want only delivery.json", names)
	}
}

func TestLoadMissingFile(t *testing.T) {
	tests := []struct {
		name string
		path func(dir string) string
	}{
		{"missing file", func(dir string) string { return filepath.Join(dir, "nothing.json") }},
		{"missing directory", func(dir string) string { return filepath.Join(dir, "no", "such", "dir", "cp.json") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := state{Version: 42}
			ok, err := checkpoint.Load(tt.path(t.TempDir()), &v)
			if ok || err != nil {
				t.Fatalf("Load = %v, %v; want false, nil", ok, err)
			}
			if v.Version != 42 {
				t.Errorf("Load of a missing file changed the value to %+v", v)
			}
		})
	}
}

func TestLoadDamagedFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"truncated", `{"version": 1, "binlog_fi`},
		{"empty", ``},
		{"not JSON", "\x00\x00\x00\x00"},
		{"wrong type", `{"version": "one"}`},
		{"trailing garbage", `{"version": 1} {"version": 2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "capture.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			var v state
			ok, err := checkpoint.Load(path, &v)
			if err == nil {
				t.Fatalf("Load of a damaged file = %v, nil; want an error", ok)
			}
			if ok {
				t.Errorf("Load of a damaged file reported true")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	// A directory where the file should be: not "missing", an error.
	path := filepath.Join(t.TempDir(), "cp.json")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	var v state
	ok, err := checkpoint.Load(path, &v)
	if err == nil || ok {
		t.Fatalf("Load of a directory = %v, %v; want false and an error", ok, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestSaveErrorsLeaveNoTempFiles(t *testing.T) {
	t.Run("value that cannot be encoded", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "cp.json")
		err := checkpoint.Save(path, map[string]any{"ch": make(chan int)})
		if err == nil {
			t.Fatal("Save of a channel succeeded")
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name %s", err, path)
		}
		if names := dirEntries(t, dir); len(names) != 0 {
			t.Errorf("directory holds %q after a failed save, want nothing", names)
		}
	})
	t.Run("previous state kept when the rename fails", func(t *testing.T) {
		dir := t.TempDir()
		// The target is a non-empty directory, so the rename fails after the
		// temp file was written.
		path := filepath.Join(dir, "cp.json")
		if err := os.MkdirAll(filepath.Join(path, "child"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := checkpoint.Save(path, state{Version: 1}); err == nil {
			t.Fatal("Save over a directory succeeded")
		}
		if names := dirEntries(t, dir); !reflect.DeepEqual(names, []string{"cp.json"}) {
			t.Errorf("directory holds %q after a failed save, want only cp.json (no temp files)", names)
		}
	})
	t.Run("parent is a file", func(t *testing.T) {
		dir := t.TempDir()
		parent := filepath.Join(dir, "file")
		if err := os.WriteFile(parent, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := checkpoint.Save(filepath.Join(parent, "cp.json"), state{}); err == nil {
			t.Fatal("Save under a regular file succeeded")
		}
	})
}
