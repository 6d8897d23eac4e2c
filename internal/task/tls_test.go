package task_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestSourceTLS runs MariaDB with a server certificate for db.internal,
// signed by a CA made by the test, and a user that may only connect with
// TLS and a client certificate of that CA (REQUIRE X509). Each
// source.mysql.tls setting connects or fails as it must — verification by
// default, the name checked against the host unless server_name says
// otherwise, verify-ca without the name, an unknown CA refused — and the
// whole pipeline (the full load's SELECTs and the binlog dump) runs over
// TLS to a lake equal to the source.
func TestSourceTLS(t *testing.T) {
	certs := testbed.NewCerts(t, "db.internal")
	other := testbed.NewCerts(t, "db.internal") // another CA
	m := testbed.NewMariaDBWith(t, certs.MariaDBTLSArgs()...)
	ctx := t.Context()
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := testbed.CreateWordPress(ctx, db, testbed.WordPressDB); err != nil {
		t.Fatal(err)
	}
	if err := testbed.SeedWordPress(ctx, db, testbed.WordPressDB, 30, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(ctx, "CREATE USER 'tls'@'%' IDENTIFIED BY 'tls-pw' REQUIRE X509",
		"GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'tls'@'%'"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TLS_PW", "tls-pw")
	source := func(tls string) string {
		return fmt.Sprintf("source:\n  mysql: {host: 127.0.0.1, port: %d, user: tls, password: \"${TLS_PW}\", tls: %s}\n", m.Port, tls)
	}
	parse := func(t *testing.T, yml string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	client := fmt.Sprintf("cert: %s, key: %s", certs.ClientCert, certs.ClientKey)
	for _, tc := range []struct {
		name, tls, err string
	}{
		{"no TLS", "{}", "Access denied for user 'tls'"},
		{"verify by default: the name is the host's", fmt.Sprintf("{ca: %s, %s}", certs.CA, client), "x509: cannot validate certificate for 127.0.0.1"},
		{"verify-identity with server_name", fmt.Sprintf("{ca: %s, server_name: db.internal, %s}", certs.CA, client), ""},
		{"verify-ca", fmt.Sprintf("{mode: verify-ca, ca: %s, %s}", certs.CA, client), ""},
		{"required", fmt.Sprintf("{mode: required, %s}", client), ""},
		{"another CA", fmt.Sprintf("{ca: %s, server_name: db.internal, %s}", other.CA, client), "x509: certificate signed by unknown authority"},
		{"verify-ca, another CA", fmt.Sprintf("{mode: verify-ca, ca: %s, %s}", other.CA, client), "certificate signed by unknown authority"},
		{"no client certificate", fmt.Sprintf("{ca: %s, server_name: db.internal}", certs.CA), "Access denied for user 'tls'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parse(t, "task: tls\ntables: [{include: \"wordpress-db.%\"}]\ntarget: file:///unused\n"+source(tc.tls))
			rows, err := capture.ReadTable(ctx, cfg.Source.MySQL, testbed.WordPressDB, "wp_users")
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("connecting with tls %s: %v", tc.tls, err)
			case tc.err == "" && len(rows) != 5:
				t.Errorf("read %d rows of wp_users over TLS, want 5", len(rows))
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("connecting with tls %s: %v, want an error containing %q", tc.tls, err, tc.err)
			}
		})
	}

	// The pipeline over TLS.
	dir := t.TempDir()
	cfg := parse(t, fmt.Sprintf(`task: tls
tables: [{include: "wordpress-db.%%"}, {exclude: "wordpress-db.wp_sessions"}]
target: file://%s
state_dir: %s
delivery: {buffer: {size: 64KiB, interval: 300ms}, prefix: "wordpress-db/"}
`, dir, filepath.Join(t.TempDir(), "state"))+source(fmt.Sprintf("{ca: %s, server_name: db.internal, %s}", certs.CA, client)))
	work := testbed.NewWorkload(db, testbed.WordPressDB, 4)
	tk := task.New(cfg, logger(t))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- tk.Run(runCtx) }()
	waitFor(t, 60*time.Second, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })
	for range 50 {
		if err := work.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, tk, m)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("task: %v", err)
	}
	bucket, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertLakeEqualsSource(t, bucket, cfg, false)
}
