package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/cli"
	"github.com/binlake/binlake/internal/server"
	"github.com/binlake/binlake/internal/task"
)

type fixedSource struct {
	mu sync.Mutex
	st task.Status
}

func (f *fixedSource) Status() task.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func sampleStatus() task.Status {
	lag, pct := 0.5, 100.0
	return task.Status{
		Task: "shop", Status: task.StatusRunning, Detail: "Load complete, replication ongoing", Migration: "full-load-and-cdc",
		StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), FullLoadPercent: 100, LagSeconds: &lag,
		Warnings: []task.Warning{{Code: task.WarnTargetRefusing, Message: "the target has refused 2 write(s)"}},
		Tables: []task.TableStatus{
			{Schema: "shop", Table: "items", State: "Table completed", FullLoadRows: 5, FullLoadPercent: &pct, Inserts: 3, Updates: 2, Deletes: 1, Objects: 4, Bytes: 2048, LastObject: "shop/items/1.json.gz"},
			{Schema: "shop", Table: "orders", State: "Table completed", FullLoadRows: 7, FullLoadPercent: &pct},
		},
	}
}

// serve runs the HTTP API on a free port for src and returns its address.
func serve(t *testing.T, src server.StatusSource) string {
	t.Helper()
	return serveWith(t, src, nil).Addr()
}

// serveWith is serve with setup (TLS, a token) applied before serving.
func serveWith(t *testing.T, src server.StatusSource, setup func(*server.Server) error) *server.Server {
	t.Helper()
	s, err := server.Listen("127.0.0.1:0", src, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		if err := setup(s); err != nil {
			s.Close()
			t.Fatal(err)
		}
	}
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := cli.Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeConfig(t *testing.T, listen string) string {
	t.Helper()
	dir := t.TempDir()
	yml := "task: shop\nsource: {mysql: {host: 127.0.0.1, port: 3306, user: root}}\ntables: [{include: \"shop.%\"}]\n" +
		"target: file://" + dir + "/lake\nstate_dir: " + dir + "/state\n"
	if listen != "" {
		yml += "http: {listen: \"" + listen + "\"}\n"
	}
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStatusCommand(t *testing.T) {
	src := &fixedSource{st: sampleStatus()}
	addr := serve(t, src)
	_, port, _ := net.SplitHostPort(addr)

	t.Run("table", func(t *testing.T) {
		code, out, errOut := runCLI("status", "--url", "http://"+addr)
		if code != cli.ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var want bytes.Buffer
		src.Status().WriteTable(&want)
		if out != want.String() {
			t.Errorf("output:\n%s\nwant:\n%s", out, want.String())
		}
		for _, s := range []string{"task shop: Running (Load complete, replication ongoing), lag 0.5s", "WARNING target_refusing_writes: the target has refused 2 write(s)", "shop.items"} {
			if !strings.Contains(out, s) {
				t.Errorf("output does not contain %q:\n%s", s, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := runCLI("status", "--url", "http://"+addr+"/", "--json")
		if code != cli.ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got task.Status
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("--json output: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(got, src.Status()) {
			t.Errorf("--json = %+v\nwant %+v", got, src.Status())
		}
	})
	t.Run("address from the config", func(t *testing.T) {
		for _, listen := range []string{"127.0.0.1:" + port, ":" + port, "0.0.0.0:" + port} {
			code, out, errOut := runCLI("status", "--config", writeConfig(t, listen))
			if code != cli.ExitOK || !strings.HasPrefix(out, "task shop: Running") {
				t.Errorf("http.listen %s: exit %d, %q %q", listen, code, out, errOut)
			}
		}
	})
	t.Run("failed task", func(t *testing.T) {
		failed := &fixedSource{st: task.Status{Task: "shop", Status: task.StatusFailed, Reason: "capture: connection refused", Tables: []task.TableStatus{}}}
		code, out, errOut := runCLI("status", "--url", "http://"+serve(t, failed))
		if code != cli.ExitFailed || !strings.Contains(out, "task shop: Failed: capture: connection refused") ||
			errOut != "binlake: task shop failed: capture: connection refused\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
}

func TestStatusCommandErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"nobody listening", []string{"status", "--url", "http://" + closed}, cli.ExitFailed, "is binlake run going, with http.listen at http://" + closed + "?"},
		{"url and config", []string{"status", "--url", "http://" + closed, "--config", "x.yaml"}, cli.ExitUsage, "give --url or --config, not both"},
		{"not a url", []string{"status", "--url", "127.0.0.1:8080"}, cli.ExitUsage, `--url "127.0.0.1:8080": want an http:// or https:// URL`},
		{"config without http.listen", []string{"status", "--config", writeConfig(t, "")}, cli.ExitUsage, "sets no http.listen"},
		{"missing config", []string{"status", "--config", "/nonexistent.yaml"}, cli.ExitUsage, "reading config"},
		{"stray argument", []string{"status", "extra"}, cli.ExitFailed, "unknown command"},
		{"tables: bad name", []string{"tables", "items"}, cli.ExitUsage, `table "items": want schema.table`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tt.code, tt.stderr)
			}
		})
	}
}

func TestTablesCommand(t *testing.T) {
	src := &fixedSource{st: sampleStatus()}
	url := "http://" + serve(t, src)
	t.Run("all", func(t *testing.T) {
		code, out, errOut := runCLI("tables", "--url", url)
		if code != cli.ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var want bytes.Buffer
		task.WriteTables(&want, src.Status().Tables)
		if out != want.String() {
			t.Errorf("output:\n%s\nwant:\n%s", out, want.String())
		}
	})
	t.Run("one, as JSON", func(t *testing.T) {
		code, out, errOut := runCLI("tables", "--url", url, "--json", "shop.orders")
		if code != cli.ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got []task.TableStatus
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, src.Status().Tables[1:]) {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("unknown table", func(t *testing.T) {
		code, out, errOut := runCLI("tables", "--url", url, "shop.items", "shop.nope")
		if code != cli.ExitFailed || errOut != "binlake: table shop.nope is not part of this task\n" || !strings.Contains(out, "shop.items") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
}
