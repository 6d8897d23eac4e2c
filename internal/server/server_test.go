package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlake/binlake/internal/server"
	"github.com/binlake/binlake/internal/task"
)

// fakeSource returns a fixed status that a test may replace.
type fakeSource struct {
	mu sync.Mutex
	st task.Status
}

func (f *fakeSource) Status() task.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSource) set(st task.Status) {
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
}

var _ server.StatusSource = (*fakeSource)(nil)

func fixedStatus() task.Status {
	lag := 1.5
	start := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	end := time.Date(2024, 1, 2, 3, 14, 5, 0, time.UTC)
	return task.Status{
		Task:              "wordpress",
		Status:            task.StatusRunning,
		Detail:            "Load complete, replication ongoing",
		Migration:         "full-load-and-cdc",
		StartedAt:         start,
		FullLoadPercent:   50,
		LagSeconds:        &lag,
		SourcePosition:    "mysql-bin.000010:4294967301",
		BufferedBytes:     1024,
		DuplicatesDropped: 3,
		Tables: []task.TableStatus{
			{
				Schema: "wordpress-db", Table: "wp_posts", State: "Table completed",
				FullLoadRows: 100, Inserts: 5, Updates: 6, Deletes: 7, DDLs: 1,
				FullLoadStart: &start, FullLoadEnd: &end,
				Objects: 2, Bytes: 2048, LastObject: "wordpress-db/wp_posts/0001.json.gz",
			},
			{Schema: "my db", Table: "odd.name", State: "Before load"},
			{Schema: "wordpress-db", Table: "wp_users", State: "Table error", Error: "column count mismatch"},
		},
	}
}

// startServer serves src on a free port until the test ends.
func startServer(t *testing.T, src server.StatusSource) string {
	t.Helper()
	return startServerWith(t, src, nil)
}

// startServerWith serves src and metrics on a free port until the test ends.
func startServerWith(t *testing.T, src server.StatusSource, metrics prometheus.Gatherer) string {
	t.Helper()
	s, err := server.Listen("127.0.0.1:0", src, metrics, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after Shutdown, want nil", err)
		}
	})
	return "http://" + s.Addr()
}

type response struct {
	code        int
	contentType string
	body        string
}

func get(t *testing.T, url string) response {
	t.Helper()
	return do(t, http.MethodGet, url)
}

func do(t *testing.T, method, url string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(body)}
}

func TestListenBadAddress(t *testing.T) {
	s, err := server.Listen("127.0.0.1:notaport", &fakeSource{}, nil, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatalf("Listen on a bad address succeeded: %s", s.Addr())
	}
}

func TestStatus(t *testing.T) {
	base := startServer(t, &fakeSource{st: fixedStatus()})
	r := get(t, base+"/api/v1/status")
	if r.code != http.StatusOK || r.contentType != "application/json" {
		t.Fatalf("GET /api/v1/status: %d %q", r.code, r.contentType)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	want := map[string]any{
		"task":                       "wordpress",
		"status":                     "Running",
		"detail":                     "Load complete, replication ongoing",
		"migration":                  "full-load-and-cdc",
		"started_at":                 "2024-01-02T03:04:05Z",
		"full_load_progress_percent": 50.0,
		"replication_lag_seconds":    1.5,
		"source_position":            "mysql-bin.000010:4294967301",
		"buffered_bytes":             1024.0,
		"duplicates_dropped":         3.0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("status %q = %#v, want %#v", k, got[k], v)
		}
	}
	tables, ok := got["tables"].([]any)
	if !ok || len(tables) != 3 {
		t.Fatalf("status tables = %#v, want 3 tables", got["tables"])
	}
	first := tables[0].(map[string]any)
	if first["schema"] != "wordpress-db" || first["table"] != "wp_posts" || first["full_load_rows"] != 100.0 ||
		first["full_load_start"] != "2024-01-02T03:04:05Z" || first["full_load_end"] != "2024-01-02T03:14:05Z" {
		t.Errorf("first table = %v", first)
	}
}

func TestStatusOmitsEmptyOptionalFields(t *testing.T) {
	base := startServer(t, &fakeSource{st: task.Status{Task: "t", Status: task.StatusStarting, Tables: []task.TableStatus{}}})
	r := get(t, base+"/api/v1/status")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"detail", "reason", "replication_lag_seconds", "source_position"} {
		if _, ok := got[k]; ok {
			t.Errorf("empty %q is present: %s", k, r.body)
		}
	}
	if tables, ok := got["tables"].([]any); !ok || len(tables) != 0 {
		t.Errorf("tables = %#v, want an empty list (not null)", got["tables"])
	}
}

func TestTables(t *testing.T) {
	st := fixedStatus()
	base := startServer(t, &fakeSource{st: st})
	r := get(t, base+"/api/v1/tables")
	if r.code != http.StatusOK || r.contentType != "application/json" {
		t.Fatalf("GET /api/v1/tables: %d %q", r.code, r.contentType)
	}
	var got []task.TableStatus
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("body: %v\n%s", err, r.body)
	}
	if !reflect.DeepEqual(got, st.Tables) {
		t.Errorf("tables = %+v\nwant %+v", got, st.Tables)
	}
}

func TestTable(t *testing.T) {
	base := startServer(t, &fakeSource{st: fixedStatus()})
	tests := []struct {
		name string
		path string
		code int
		body string
	}{
		{
			name: "found",
			path: "/api/v1/tables/wordpress-db/wp_users",
			code: http.StatusOK,
			body: "{\n" +
				"  \"schema\": \"wordpress-db\",\n" +
				"  \"table\": \"wp_users\",\n" +
				"  \"state\": \"Table error\",\n" +
				"  \"full_load_rows\": 0,\n" +
				"  \"inserts\": 0,\n" +
				"  \"updates\": 0,\n" +
				"  \"deletes\": 0,\n" +
				"  \"ddls\": 0,\n" +
				"  \"objects\": 0,\n" +
				"  \"bytes\": 0,\n" +
				"  \"error\": \"column count mismatch\"\n" +
				"}\n",
		},
		{
			name: "escaped names",
			path: "/api/v1/tables/my%20db/odd.name",
			code: http.StatusOK,
			body: "{\n" +
				"  \"schema\": \"my db\",\n" +
				"  \"table\": \"odd.name\",\n" +
				"  \"state\": \"Before load\",\n" +
				"  \"full_load_rows\": 0,\n" +
				"  \"inserts\": 0,\n" +
				"  \"updates\": 0,\n" +
				"  \"deletes\": 0,\n" +
				"  \"ddls\": 0,\n" +
				"  \"objects\": 0,\n" +
				"  \"bytes\": 0\n" +
				"}\n",
		},
		{
			name: "unknown table",
			path: "/api/v1/tables/wordpress-db/wp_nope",
			code: http.StatusNotFound,
			body: "{\n  \"error\": \"table wordpress-db.wp_nope is not part of this task\"\n}\n",
		},
		{
			name: "schema and table swapped",
			path: "/api/v1/tables/wp_posts/wordpress-db",
			code: http.StatusNotFound,
			body: "{\n  \"error\": \"table wp_posts.wordpress-db is not part of this task\"\n}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, base+tt.path)
			if r.code != tt.code {
				t.Errorf("GET %s: status %d, want %d", tt.path, r.code, tt.code)
			}
			if r.contentType != "application/json" {
				t.Errorf("Content-Type %q, want application/json", r.contentType)
			}
			if r.body != tt.body {
				t.Errorf("GET %s body:\n%s\nwant:\n%s", tt.path, r.body, tt.body)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	// Liveness does not depend on the task's state.
	src := &fakeSource{st: task.Status{Status: task.StatusFailed, Reason: "source unreachable"}}
	base := startServer(t, src)
	r := get(t, base+"/healthz")
	if r.code != http.StatusOK || r.contentType != "application/json" || r.body != "{\n  \"status\": \"ok\"\n}\n" {
		t.Errorf("GET /healthz = %d %q %q", r.code, r.contentType, r.body)
	}
}

func TestReadyz(t *testing.T) {
	src := &fakeSource{}
	base := startServer(t, src)
	tests := []struct {
		status, reason string
		code           int
		body           string
	}{
		{task.StatusRunning, "", http.StatusOK, "{\n  \"status\": \"Running\"\n}\n"},
		{task.StatusStarting, "", http.StatusServiceUnavailable, "{\n  \"reason\": \"\",\n  \"status\": \"Starting\"\n}\n"},
		{task.StatusStopping, "", http.StatusServiceUnavailable, "{\n  \"reason\": \"\",\n  \"status\": \"Stopping\"\n}\n"},
		{task.StatusStopped, "", http.StatusServiceUnavailable, "{\n  \"reason\": \"\",\n  \"status\": \"Stopped\"\n}\n"},
		{task.StatusFailed, "source unreachable", http.StatusServiceUnavailable, "{\n  \"reason\": \"source unreachable\",\n  \"status\": \"Failed\"\n}\n"},
		{"", "", http.StatusServiceUnavailable, "{\n  \"reason\": \"\",\n  \"status\": \"\"\n}\n"},
		{"running", "", http.StatusServiceUnavailable, "{\n  \"reason\": \"\",\n  \"status\": \"running\"\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			src.set(task.Status{Status: tt.status, Reason: tt.reason})
			r := get(t, base+"/readyz")
			if r.code != tt.code || r.contentType != "application/json" || r.body != tt.body {
				t.Errorf("GET /readyz = %d %q %q, want %d application/json %q", r.code, r.contentType, r.body, tt.code, tt.body)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	base := startServer(t, &fakeSource{st: fixedStatus()})
	tests := []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/api/v1/status", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/api/v1/tables/wordpress-db/wp_posts", http.StatusMethodNotAllowed},
		{http.MethodHead, "/healthz", http.StatusOK},
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodGet, "/metrics", http.StatusNotFound}, // no registry given
		{http.MethodGet, "/api/v1/tables/wordpress-db", http.StatusNotFound},
		{http.MethodGet, "/api/v1/tables/a/b/c", http.StatusNotFound},
		{http.MethodGet, "/api/v2/status", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			if r := do(t, tt.method, base+tt.path); r.code != tt.code {
				t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, r.code, tt.code)
			}
		})
	}
}

func TestShutdownStopsServing(t *testing.T) {
	s, err := server.Listen("127.0.0.1:0", &fakeSource{}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	url := "http://" + s.Addr() + "/healthz"
	if r := get(t, url); r.code != http.StatusOK {
		t.Fatalf("before Shutdown: %d", r.code)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil after Shutdown", err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("GET after Shutdown answered %d, want a connection error", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "binlake_test_total", Help: "A test counter."}, []string{"table"})
	reg.MustRegister(c)
	c.WithLabelValues("wordpress-db.wp_posts").Add(3)
	base := startServerWith(t, &fakeSource{st: fixedStatus()}, reg)
	r := get(t, base+"/metrics")
	if r.code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", r.code, r.body)
	}
	if !strings.HasPrefix(r.contentType, "text/plain") {
		t.Errorf("Content-Type %q, want the Prometheus text format", r.contentType)
	}
	want := "# HELP binlake_test_total A test counter.\n# TYPE binlake_test_total counter\nbinlake_test_total{table=\"wordpress-db.wp_posts\"} 3\n"
	if r.body != want {
		t.Errorf("GET /metrics:\n%s\nwant:\n%s", r.body, want)
	}
}

// TestConsole checks that the web console is served from the binary, reads
// the status API, and loads nothing from elsewhere.
func TestConsole(t *testing.T) {
	base := startServer(t, &fakeSource{st: fixedStatus()})
	r := get(t, base+"/")
	if r.code != http.StatusOK || r.contentType != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q", r.code, r.contentType)
	}
	for _, want := range []string{"<title>binlake</title>", `"api/v1/status"`, "setTimeout(poll, POLL_MS)", "const POLL_MS = 2000;",
		"Table statistics", "full_load_progress_percent", "lag_seconds", "last_object", "warnings"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the console does not contain %q", want)
		}
	}
	// No CDN, no remote font: every URL in the page is relative.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(`).FindString(r.body); m != "" {
		t.Errorf("the console loads something from elsewhere: %q", m)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not keep the page to this server", csp)
	}
}
