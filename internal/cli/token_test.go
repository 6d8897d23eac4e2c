package cli_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/server"
)

func TestStatusAndTablesToken(t *testing.T) {
	t.Setenv("BINLAKE_API_TOKEN", "")
	s, err := server.Listen("127.0.0.1:0", &fixedSource{st: sampleStatus()}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.RequireToken("tok-123")
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	url := "http://" + s.Addr()

	for _, cmd := range []string{"status", "tables"} {
		code, _, stderr := runCLI(cmd, "--url", url)
		if code != 1 || !strings.Contains(stderr, "requires a token") {
			t.Errorf("%s without a token: exit %d, stderr %q", cmd, code, stderr)
		}
		code, _, stderr = runCLI(cmd, "--url", url, "--token", "wrong")
		if code != 1 || !strings.Contains(stderr, "refused the token") {
			t.Errorf("%s with a wrong token: exit %d, stderr %q", cmd, code, stderr)
		}
		code, stdout, stderr := runCLI(cmd, "--url", url, "--token", "tok-123")
		if code != 0 || !strings.Contains(stdout, "shop.items") {
			t.Errorf("%s --token: exit %d, stdout %q, stderr %q", cmd, code, stdout, stderr)
		}
	}

	// --config: the address and the token (${ENV} expanded) from the file.
	t.Setenv("BINLAKE_TEST_TOKEN", "tok-123")
	dir := t.TempDir()
	yml := "task: shop\nsource: {mysql: {host: 127.0.0.1, port: 3306, user: root}}\ntables: [{include: \"shop.%\"}]\n" +
		"target: file://" + dir + "/lake\nstate_dir: " + dir + "/state\nhttp: {listen: \"" + s.Addr() + "\", token: \"${BINLAKE_TEST_TOKEN}\"}\n"
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI("status", "--config", path); code != 0 || !strings.Contains(stdout, "shop.items") {
		t.Errorf("status --config: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// --token wins over the config's.
	if code, _, stderr := runCLI("tables", "--config", path, "--token", "other"); code != 1 || !strings.Contains(stderr, "refused the token") {
		t.Errorf("tables --config --token other: exit %d, stderr %q", code, stderr)
	}
	// BINLAKE_API_TOKEN when neither gives one.
	t.Setenv("BINLAKE_API_TOKEN", "tok-123")
	if code, _, stderr := runCLI("tables", "--url", url, "--json"); code != 0 {
		t.Errorf("tables with BINLAKE_API_TOKEN: exit %d, stderr %q", code, stderr)
	}
}
