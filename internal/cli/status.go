package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/binlake/binlake/internal/task"
)

// defaultAPI is where status and tables look when given neither --url nor
// --config: the http.listen of the example config.
const defaultAPI = "http://127.0.0.1:8080"

// apiFlags say where a running task's HTTP API is.
type apiFlags struct {
	url     string
	config  string
	token   string
	timeout time.Duration
	json    bool
	// TLS: authorities to trust besides the system's, and a client
	// certificate for an API that asks for one.
	cacert, cert, key string
	// pin, with --config and no --cacert, is the task's http.tls_cert: the
	// API must present that very certificate, whatever names it holds (the
	// URL's host is the loopback address when http.listen is a wildcard).
	pin string
}

func (f *apiFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "url", "", "base URL of the task's HTTP API (default "+defaultAPI+")")
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "take the API address from this pipeline config's http.listen (and the token from its http.token)")
	cmd.Flags().StringVar(&f.token, "token", "", "bearer token of the API (the task's http.token; default: the one in --config, else $BINLAKE_API_TOKEN)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the API")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the API's JSON instead of a table")
	cmd.Flags().StringVar(&f.cacert, "cacert", "", "PEM file of authorities (or the certificate itself) to trust for an https:// API, besides the system's (with --config and no --cacert, the API must present the config's http.tls_cert itself)")
	cmd.Flags().StringVar(&f.cert, "cert", "", "PEM file of a client certificate, for an API with http.tls_client_ca")
	cmd.Flags().StringVar(&f.key, "key", "", "PEM file of the client certificate's key")
}

// client is the HTTP client for the API, trusting --cacert and presenting
// --cert.
func (f *apiFlags) client() (*http.Client, error) {
	if f.cacert == "" && f.cert == "" && f.key == "" && f.pin == "" {
		return http.DefaultClient, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.pin != "" {
		pemBytes, err := os.ReadFile(f.pin)
		if err != nil {
			return nil, fmt.Errorf("http.tls_cert: %w", err)
		}
		block, _ := pem.Decode(pemBytes)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("http.tls_cert %s: no PEM certificate in it", f.pin)
		}
		want := block.Bytes
		cfg.InsecureSkipVerify = true // replaced by the comparison below
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], want) {
				return fmt.Errorf("the API presented another certificate than the task's http.tls_cert %s (give --cacert to verify it against authorities instead)", f.pin)
			}
			return nil
		}
	}
	if f.cacert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, usageError{fmt.Errorf("--cacert: %w", err)}
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Errorf("--cacert %s: no PEM certificate in it", f.cacert)}
		}
		cfg.RootCAs = pool
	}
	if (f.cert == "") != (f.key == "") {
		return nil, usageError{errors.New("give --cert and --key together")}
	}
	if f.cert != "" {
		c, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, usageError{fmt.Errorf("--cert %s and --key %s: %w", f.cert, f.key, err)}
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, nil
}

// base returns the API's base URL, without a trailing '/'.
func (f *apiFlags) base() (string, error) {
	switch {
	case f.url != "" && f.config != "":
		return "", usageError{errors.New("give --url or --config, not both")}
	case f.config != "":
		cfg, err := loadConfig(f.config)
		if err != nil {
			return "", err
		}
		if f.token == "" {
			f.token = cfg.HTTP.Token
		}
		if cfg.HTTP.Listen == "" {
			return "", usageError{fmt.Errorf("%s sets no http.listen, so its task serves no API: set http.listen (e.g. 127.0.0.1:8080) and restart the task, or give --url", f.config)}
		}
		if !cfg.HTTP.UsesTLS() {
			return listenURL(cfg.HTTP.Listen, "http")
		}
		if f.cacert == "" {
			f.pin = cfg.HTTP.TLSCert
		}
		return listenURL(cfg.HTTP.Listen, "https")
	case f.url != "":
		u, err := url.Parse(f.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", usageError{fmt.Errorf("--url %q: want an http:// or https:// URL such as %s", f.url, defaultAPI)}
		}
		return strings.TrimRight(f.url, "/"), nil
	}
	return defaultAPI, nil
}

// listenURL turns an http.listen address into a URL to reach it from this
// machine: a wildcard or missing host becomes the loopback address.
func listenURL(listen, scheme string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", usageError{fmt.Errorf("http.listen %q: %w", listen, err)}
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// get reads path from the API into v and returns the body as it came.
func (f *apiFlags) get(ctx context.Context, base, path string, v any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	tok := f.token
	if tok == "" {
		tok = os.Getenv("BINLAKE_API_TOKEN")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	client, err := f.client()
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the task's API (is binlake run going, with http.listen at %s?): %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", base+path, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && strings.Contains(e.Error, "client certificate") {
			return nil, fmt.Errorf("GET %s: %s: give --cert and --key", base+path, e.Error)
		}
		if tok == "" {
			return nil, fmt.Errorf("GET %s: the API requires a token: give --token (the task's http.token), --config, or set BINLAKE_API_TOKEN", base+path)
		}
		return nil, fmt.Errorf("GET %s: the API refused the token (401): check --token against the task's http.token", base+path)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("GET %s: %s", base+path, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("GET %s: not a binlake API answer: %w", base+path, err)
	}
	return body, nil
}

func statusCmd(stdout io.Writer) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print a running task's status, warnings and table statistics, read from its HTTP API",
		Long: `status reads GET /api/v1/status from a running task (binlake run with http.listen set)
and prints the task's status, its warnings and the table statistics, or with --json the
API's JSON document. It exits 0 when it read the status of a task that has not failed,
1 when the API cannot be read or the task's status is Failed, 2 for bad flags or config.`,
		Example: `  binlake status --config pipeline.yaml
  binlake status --url http://127.0.0.1:8080 --json | jq .warnings`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := f.base()
			if err != nil {
				return err
			}
			var st task.Status
			body, err := f.get(cmd.Context(), base, "/api/v1/status", &st)
			if err != nil {
				return err
			}
			if f.json {
				stdout.Write(body)
			} else {
				st.WriteTable(stdout)
			}
			if st.Status == task.StatusFailed {
				return fmt.Errorf("task %s failed: %s", st.Task, st.Reason)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func tablesCmd(stdout io.Writer) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "tables [schema.table ...]",
		Short: "Print a running task's table statistics (all tables, or the ones named), read from its HTTP API",
		Long: `tables reads the table statistics from a running task's HTTP API: GET /api/v1/tables, or
GET /api/v1/tables/{schema}/{table} for each table named (schema.table, split at the first
dot). It prints state, full-load progress, rows, inserts, updates, deletes, DDLs, lag,
objects, bytes, last update and last object, or with --json a JSON array of tables. It exits
0 when every table was found, 1 when the API cannot be read or a named table is not part of
the task, 2 for bad flags or config.`,
		Example: `  binlake tables --config pipeline.yaml
  binlake tables wordpress-db.wp_posts --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if s, t, ok := strings.Cut(a, "."); !ok || s == "" || t == "" {
					return usageError{fmt.Errorf("table %q: want schema.table", a)}
				}
			}
			base, err := f.base()
			if err != nil {
				return err
			}
			var tables []task.TableStatus
			if len(args) == 0 {
				if _, err := f.get(cmd.Context(), base, "/api/v1/tables", &tables); err != nil {
					return err
				}
			}
			var missing []error
			for _, a := range args {
				schema, table, _ := strings.Cut(a, ".")
				var ts task.TableStatus
				if _, err := f.get(cmd.Context(), base, "/api/v1/tables/"+url.PathEscape(schema)+"/"+url.PathEscape(table), &ts); err != nil {
					missing = append(missing, err)
					continue
				}
				tables = append(tables, ts)
			}
			if tables == nil {
				tables = []task.TableStatus{}
			}
			if f.json {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(tables); err != nil {
					return err
				}
			} else if len(tables) > 0 || len(args) == 0 {
				task.WriteTables(stdout, tables)
			}
			return errors.Join(missing...)
		},
	}
	f.register(cmd)
	return cmd
}
