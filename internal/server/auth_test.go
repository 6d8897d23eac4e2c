package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlake/binlake/internal/server"
)

func TestBearerToken(t *testing.T) {
	s, err := server.Listen("127.0.0.1:0", &fakeSource{st: fixedStatus()}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.RequireToken("s3cr3t")
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	base := "http://" + s.Addr()
	call := func(path, auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/api/v1/status", "/api/v1/tables", "/api/v1/tables/wordpress-db/wp_posts", "/metrics", "/nope"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer s3cr3t2", "Basic s3cr3t", "s3cr3t", "Bearer "} {
			code, body := call(path, auth)
			if code != http.StatusUnauthorized {
				t.Errorf("GET %s with %q: %d, want 401", path, auth, code)
				continue
			}
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "Authorization: Bearer") {
				t.Errorf("GET %s with %q: body %q, want a JSON error", path, auth, body)
			}
		}
		code, _ := call(path, "Bearer s3cr3t")
		want := http.StatusOK
		if path == "/nope" {
			want = http.StatusNotFound
		}
		if code != want {
			t.Errorf("GET %s with the token: %d, want %d", path, code, want)
		}
		if code, _ := call(path, "bearer s3cr3t"); code != want {
			t.Errorf("GET %s with a lower-case scheme: %d, want %d", path, code, want)
		}
	}
	// Probes stay open: orchestrators call them without credentials. So
	// does the console page: static, no data, and a browser opening it
	// sends no header; its script sends the token with each API call.
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		if code, _ := call(path, ""); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", path, code)
		}
	}
	// The console page itself needs the token too, so it must know how to
	// send one: from a #token= fragment or a prompt, kept in sessionStorage.
	_, page := call("/", "")
	for _, want := range []string{"sessionStorage", "#token=", "Authorization: \"Bearer \" + tok"} {
		if !strings.Contains(page, want) {
			t.Errorf("console page lacks %q", want)
		}
	}
}
