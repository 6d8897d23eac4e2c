// Package server serves a task's HTTP API: status and table statistics as
// JSON, liveness and readiness probes, Prometheus metrics and the web
// console, a static page embedded in the binary that reads the API.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/binlake/binlake/internal/task"
)

// console is the web console: one page, no build step, no external assets.
//
//go:embed console.html
var console []byte

// StatusSource is what the server reports on.
type StatusSource interface {
	Status() task.Status
}

// Server is the HTTP API.
type Server struct {
	src   StatusSource
	log   *slog.Logger
	srv   *http.Server
	ln    net.Listener
	token []byte // sha256 of the bearer token; nil: no token required
	// scheme is "https" after UseTLS; clientCert tells that requests need
	// a client certificate.
	scheme     string
	clientCert bool
}

// RequireToken makes every endpoint but /healthz, /readyz and the console
// page answer 401 unless the request carries "Authorization: Bearer
// <token>". The console page is static and holds no data: a browser cannot
// send a header when it opens it, and the page's script sends the token with
// every API call. Call it before Serve; an empty token requires none.
func (s *Server) RequireToken(token string) {
	if token == "" {
		s.token = nil
		return
	}
	h := sha256.Sum256([]byte(token))
	s.token = h[:]
}

// authorize wraps next with the bearer-token check.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.requireClientCert(w, r) {
			return
		}
		if s.token == nil || isProbe(r) || (r.URL.Path == "/" && r.Method == http.MethodGet) {
			next.ServeHTTP(w, r)
			return
		}
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		// Comparing hashes keeps the comparison constant-time whatever
		// the lengths.
		h := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(h[:], s.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="binlake"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized: this API needs the header Authorization: Bearer <http.token>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isProbe tells the health probes, which need neither token nor client
// certificate.
func isProbe(r *http.Request) bool { return r.URL.Path == "/healthz" || r.URL.Path == "/readyz" }

// Listen binds addr; Serve starts answering. metrics is served at /metrics
// in the Prometheus text format; nil serves no metrics (404).
func Listen(addr string, src StatusSource, metrics prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", addr, err)
	}
	s := &Server{src: src, log: log, ln: ln, scheme: "http"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", s.status)
	mux.HandleFunc("GET /api/v1/tables", s.tables)
	mux.HandleFunc("GET /api/v1/tables/{schema}/{table}", s.table)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	if metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		// Everything the page needs is in it; it talks to this server only.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'")
		w.Write(console)
	})
	s.srv = &http.Server{Handler: s.authorize(mux), ReadHeaderTimeout: 10 * time.Second,
		// Failed TLS handshakes and the like, in the task's log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelInfo)}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL, http:// or https://, without a trailing '/'.
func (s *Server) URL() string { return s.scheme + "://" + s.Addr() }

// Serve answers until Shutdown.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close releases the listener of a server that was never served.
func (s *Server) Close() error { return s.ln.Close() }

// Shutdown stops the server.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.src.Status())
}

func (s *Server) tables(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.src.Status().Tables)
}

func (s *Server) table(w http.ResponseWriter, r *http.Request) {
	schema, table := r.PathValue("schema"), r.PathValue("table")
	for _, t := range s.src.Status().Tables {
		if t.Schema == schema && t.Table == table {
			writeJSON(w, http.StatusOK, t)
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("table %s.%s is not part of this task", schema, table)})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	if st.Status == task.StatusRunning {
		writeJSON(w, http.StatusOK, map[string]string{"status": st.Status})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": st.Status, "reason": st.Reason})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
