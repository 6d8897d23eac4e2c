package capture

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/binlake/binlake/internal/config"
)

// tlsConfig is the TLS of source.mysql.tls for the SQL connections and the
// binlog dump, nil when it is disabled. verify-identity checks the chain
// and the name (tls.server_name, else host); verify-ca the chain only;
// required nothing.
func tlsConfig(c config.MySQL) (*tls.Config, error) {
	t := c.TLS
	mode := t.EffectiveMode()
	if mode == config.TLSDisabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.Host}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("source.mysql.tls.ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("source.mysql.tls.ca: %s holds no PEM certificate", t.CA)
		}
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("source.mysql.tls.cert and key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	switch mode {
	case config.TLSRequired:
		cfg.InsecureSkipVerify = true
	case config.TLSVerifyCA:
		// The standard verification checks the name too: check the chain
		// here instead.
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return fmt.Errorf("verifying the server's certificate (source.mysql.tls.mode verify-ca): %w", err)
			}
			return nil
		}
	}
	return cfg, nil
}
