package cli_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/server"
	"github.com/binlake/binlake/internal/testbed"
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

// TestStatusOverTLS: status and tables reach an API served over HTTPS:
// with --config (the task's own certificate, whatever names it holds, is
// what the API must present), with --url and --cacert, and with a client
// certificate when the API asks for one.
func TestStatusOverTLS(t *testing.T) {
	t.Setenv("BINLAKE_API_TOKEN", "")
	c := testbed.NewCerts(t, "binlake.example") // not the address the CLI dials
	s := serveWith(t, &fixedSource{st: sampleStatus()}, func(s *server.Server) error { return s.UseTLS(c.ServerCert, c.ServerKey, c.CA) })
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(s.Addr())
	yml := "task: shop\nsource: {mysql: {host: 127.0.0.1, port: 3306, user: root}}\ntables: [{include: \"shop.%\"}]\n" +
		"target: file://" + dir + "/lake\nstate_dir: " + dir + "/state\n" +
		"http: {listen: \"0.0.0.0:" + port + "\", tls_cert: " + c.ServerCert + ", tls_key: " + c.ServerKey + ", tls_client_ca: " + c.CA + "}\n"
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	withCert := []string{"--cert", c.ClientCert, "--key", c.ClientKey}
	if code, stdout, stderr := runCLI(append([]string{"status", "--config", path}, withCert...)...); code != 0 || !strings.Contains(stdout, "shop.items") {
		t.Errorf("status --config over TLS: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr := runCLI("status", "--config", path); code != 1 || !strings.Contains(stderr, "client certificate") {
		t.Errorf("status --config without a client certificate: exit %d, stderr %q, want the API's reason", code, stderr)
	}
	// --url: the certificate is for binlake.example, not 127.0.0.1, so
	// verifying it against the authority fails on the name...
	url := "https://" + s.Addr()
	if code, _, stderr := runCLI(append([]string{"tables", "--url", url, "--cacert", c.CA}, withCert...)...); code != 1 || !strings.Contains(stderr, "cannot validate certificate for 127.0.0.1") {
		t.Errorf("tables --url with a certificate for another name: exit %d, stderr %q", code, stderr)
	}
	// ...and without --cacert the system's authorities do not know it.
	if code, _, stderr := runCLI(append([]string{"tables", "--url", url}, withCert...)...); code != 1 || !strings.Contains(stderr, "certificate") {
		t.Errorf("tables --url without --cacert: exit %d, stderr %q", code, stderr)
	}
	// A config whose http.tls_cert is another certificate than the API's.
	other := testbed.NewCerts(t, "127.0.0.1")
	// --url and --cacert with a certificate for the address dialled.
	s2 := serveWith(t, &fixedSource{st: sampleStatus()}, func(s *server.Server) error { return s.UseTLS(other.ServerCert, other.ServerKey, "") })
	if code, stdout, stderr := runCLI("tables", "--url", s2.URL(), "--cacert", other.CA); code != 0 || !strings.Contains(stdout, "shop.items") {
		t.Errorf("tables --url https --cacert: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	wrong := strings.Replace(yml, "tls_cert: "+c.ServerCert, "tls_cert: "+other.ServerCert, 1)
	if err := os.WriteFile(path, []byte(wrong), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(append([]string{"status", "--config", path}, withCert...)...); code != 1 || !strings.Contains(stderr, "another certificate") {
		t.Errorf("status --config with another certificate: exit %d, stderr %q", code, stderr)
	}
}
