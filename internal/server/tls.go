package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// UseTLS makes the server answer over HTTPS only, with the certificate
// (and its chain) in certFile and the key in keyFile. Both are read again
// when either changes (looked at once a second at most, on a handshake),
// so a renewed certificate is served without a restart; a pair that does
// not load (one file written, the other not yet) leaves the previous one
// in use. With clientCA (a PEM file of authorities) every request but
// /healthz and /readyz, which probes make without a certificate, needs a
// client certificate one of them signed. Call it before Serve.
func (s *Server) UseTLS(certFile, keyFile, clientCA string) error {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: s.log}
	if err := r.load(); err != nil {
		return err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return fmt.Errorf("http.tls_client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("http.tls_client_ca %s: no PEM certificate in it", clientCA)
		}
		// Verified when given; required by requireClientCert, so that
		// health probes need none.
		cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, pool
		s.clientCert = true
	}
	s.ln = tls.NewListener(s.ln, cfg)
	s.scheme = "https"
	return nil
}

// requireClientCert answers 401 to a request without a verified client
// certificate, when the server asks for them.
func (s *Server) requireClientCert(w http.ResponseWriter, r *http.Request) bool {
	if !s.clientCert || isProbe(r) {
		return true
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true
	}
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized: this API needs a client certificate signed by an authority in http.tls_client_ca"})
	return false
}

// certReloader hands out the certificate in certFile and keyFile, loaded
// again when either file's size or modification time changes.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // the files' sizes and times when cert was loaded
	checked time.Time
	failed  string // the stamp a load failed on, not to warn twice
}

func (r *certReloader) filesStamp() string {
	var st string
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			st += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return st
}

// load reads the pair; it fails naming the file and what is wrong.
func (r *certReloader) load() error {
	stamp := r.filesStamp()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("http.tls_cert %s and http.tls_key %s: %w (want PEM files of the certificate, its chain after it, and of its private key)", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= time.Second {
		r.checked = time.Now()
		if st := r.filesStamp(); st != r.stamp && st != r.failed {
			if err := r.load(); err != nil {
				r.failed = st
				r.log.Warn("the HTTP API's certificate files changed but do not load; serving the previous certificate", "err", err)
			} else {
				r.failed = ""
				r.log.Info("the HTTP API serves a renewed certificate", "cert", r.certFile, "not_after", notAfter(r.cert))
			}
		}
	}
	return r.cert, nil
}

func notAfter(c *tls.Certificate) time.Time {
	if c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}
