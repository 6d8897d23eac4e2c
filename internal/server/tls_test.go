package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/server"
	"github.com/binlake/binlake/internal/testbed"
)

// tlsClient trusts the authority in caFile and presents the client
// certificate of certs when withCert.
func tlsClient(t *testing.T, caFile string, certs *testbed.Certs) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	cfg := &tls.Config{RootCAs: pool}
	if certs != nil {
		c, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// serveTLS serves fixedStatus over TLS with the pair at cert and key.
func serveTLS(t *testing.T, cert, key, clientCA string) *server.Server {
	t.Helper()
	s, err := server.Listen("127.0.0.1:0", &fakeSource{st: fixedStatus()}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UseTLS(cert, key, clientCA); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// leaf is the DER of the first certificate in a PEM file.
func leaf(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	return block.Bytes
}

// TestTLS: with http.tls_cert and tls_key the API answers over HTTPS with
// that certificate, and plain HTTP gets no status; files replaced while it
// runs (a renewal) are served on the next connections without a restart; a
// pair that does not load leaves the previous certificate in use.
func TestTLS(t *testing.T) {
	first := testbed.NewCerts(t, "127.0.0.1")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	copyFile(t, first.ServerCert, cert)
	copyFile(t, first.ServerKey, key)
	s := serveTLS(t, cert, key, "")
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s, want https://", s.URL())
	}

	resp, err := tlsClient(t, first.CA, nil).Get(s.URL() + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Task, Status string }
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || st.Task != "wordpress" || st.Status != "Running" {
		t.Fatalf("status over TLS: %d %+v %v", resp.StatusCode, st, err)
	}
	if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leaf(t, first.ServerCert)) {
		t.Fatal("the server presented another certificate than http.tls_cert")
	}
	// Plain HTTP: Go's server answers 400 and no status.
	if resp, err := http.Get("http://" + s.Addr() + "/api/v1/status"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "wordpress") {
			t.Errorf("plain HTTP to the TLS API: %d %q", resp.StatusCode, body)
		}
	}

	// A renewal: new files (here from another authority) in place.
	second := testbed.NewCerts(t, "127.0.0.1")
	time.Sleep(1100 * time.Millisecond) // the files are looked at once a second at most
	copyFile(t, second.ServerCert, cert)
	copyFile(t, second.ServerKey, key)
	var got []byte
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := tlsClient(t, second.CA, nil).Get(s.URL() + "/healthz"); err == nil {
			resp.Body.Close()
			got = resp.TLS.PeerCertificates[0].Raw
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !bytes.Equal(got, leaf(t, second.ServerCert)) {
		t.Fatal("after the certificate files were replaced, the server did not present the new certificate")
	}

	// A broken pair (a key that is not the certificate's): the previous
	// certificate stays.
	time.Sleep(1100 * time.Millisecond)
	copyFile(t, first.ServerKey, key)
	time.Sleep(1100 * time.Millisecond)
	for range 2 {
		resp, err := tlsClient(t, second.CA, nil).Get(s.URL() + "/healthz")
		if err != nil {
			t.Fatalf("with a mismatched key in place: %v; want the previous certificate served", err)
		}
		resp.Body.Close()
		if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leaf(t, second.ServerCert)) {
			t.Fatal("with a mismatched key in place, the server changed its certificate")
		}
	}
}

// TestTLSClientCA: with http.tls_client_ca every endpoint but the probes
// needs a client certificate that authority signed.
func TestTLSClientCA(t *testing.T) {
	c := testbed.NewCerts(t, "127.0.0.1")
	s := serveTLS(t, c.ServerCert, c.ServerKey, c.CA)
	anon, withCert := tlsClient(t, c.CA, nil), tlsClient(t, c.CA, &c)
	for _, tc := range []struct {
		client *http.Client
		path   string
		code   int
	}{
		{anon, "/api/v1/status", http.StatusUnauthorized},
		{anon, "/metrics", http.StatusUnauthorized},
		{anon, "/", http.StatusUnauthorized},
		{anon, "/healthz", http.StatusOK},
		{anon, "/readyz", http.StatusOK},
		{withCert, "/api/v1/status", http.StatusOK},
	} {
		resp, err := tc.client.Get(s.URL() + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s (client certificate: %v): %d %q, want %d", tc.path, tc.client == withCert, resp.StatusCode, body, tc.code)
		}
		if tc.code == http.StatusUnauthorized && !strings.Contains(string(body), "client certificate") {
			t.Errorf("GET %s without a client certificate: %q, want the reason", tc.path, body)
		}
	}
	// A certificate from another authority is refused in the handshake.
	other := testbed.NewCerts(t, "127.0.0.1")
	stranger := tlsClient(t, c.CA, &other)
	if resp, err := stranger.Get(s.URL() + "/api/v1/status"); err == nil {
		resp.Body.Close()
		t.Fatalf("a client certificate of another authority: %d, want the handshake refused", resp.StatusCode)
	}
}

// TestTLSBadFiles: files that do not hold a certificate and its key stop
// the start with what is wrong.
func TestTLSBadFiles(t *testing.T) {
	c := testbed.NewCerts(t, "127.0.0.1")
	s, err := server.Listen("127.0.0.1:0", &fakeSource{}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct{ cert, key, ca, want string }{
		{c.ServerCert, c.ClientKey, "", "http.tls_cert"},
		{filepath.Join(t.TempDir(), "none.crt"), c.ServerKey, "", "http.tls_cert"},
		{c.ServerCert, c.ServerKey, c.ServerKey, "http.tls_client_ca"},
	} {
		if err := s.UseTLS(tc.cert, tc.key, tc.ca); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UseTLS(%s, %s, %q): %v, want an error naming %s", filepath.Base(tc.cert), filepath.Base(tc.key), tc.ca, err, tc.want)
		}
	}
}
