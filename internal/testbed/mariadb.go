package testbed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver
)

const (
	mariadbReadyTimeout = 60 * time.Second
	mariadbStopGrace    = 20 * time.Second
	startAttempts       = 5
)

// mariadbDirs are searched after PATH, which for a non-login root shell may
// lack /usr/sbin.
var mariadbDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/mysql/bin", "/usr/local/mysql/scripts"}

// MariaDB is a throwaway MariaDB server with a ROW binlog (full row image and
// metadata), reachable over TCP as root without a password.
type MariaDB struct {
	Host     string
	Port     int
	User     string
	Password string
	DataDir  string

	server    string   // mariadbd binary
	extraArgs []string // options after the defaults
	mu        sync.Mutex
	process   *proc // nil when stopped
}

// NewMariaDB starts a MariaDB server in a temporary directory for the length
// of the test. It calls Missing when MariaDB is not installed.
func NewMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	return NewMariaDBWith(t)
}

// NewMariaDBWith is NewMariaDB with extra server options, which override
// the defaults (e.g. "--binlog-format=STATEMENT").
func NewMariaDBWith(t testing.TB, extraArgs ...string) *MariaDB {
	t.Helper()
	dir := t.TempDir()
	m, err := StartMariaDBWith(t.Context(), dir, extraArgs...)
	if errors.Is(err, ErrNotInstalled) {
		Missing(t, "MariaDB server", "scripts/deps.sh (sudo apt-get install -y mariadb-server)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stopping MariaDB: %v", err)
		}
	})
	return m
}

// StartMariaDB starts a MariaDB server with its data directory in
// dir/mariadb and its temporary directory in dir/mariadb-tmp, creating them
// if missing. It initialises the data directory unless it already holds one,
// so a server can be started again on the data of an earlier one. The server
// runs until Stop or Kill, whatever becomes of ctx, which only bounds the
// start.
func StartMariaDB(ctx context.Context, dir string) (*MariaDB, error) {
	return StartMariaDBWith(ctx, dir)
}

// StartMariaDBWith is StartMariaDB with extra server options, given after
// the defaults so that they override them (e.g. "--binlog-format=STATEMENT").
// Restart keeps them.
func StartMariaDBWith(ctx context.Context, dir string, extraArgs ...string) (*MariaDB, error) {
	server, err := findBinary([]string{"mariadbd", "mysqld"}, mariadbDirs...)
	if err != nil {
		return nil, fmt.Errorf("starting MariaDB: %w", err)
	}
	// /sbin/mariadbd on a merged /usr is /usr/sbin/mariadbd, whose base is /usr.
	if resolved, err := filepath.EvalSymlinks(server); err == nil {
		server = resolved
	}
	m := &MariaDB{
		Host:      "127.0.0.1",
		User:      "root",
		DataDir:   filepath.Join(dir, "mariadb"),
		server:    server,
		extraArgs: extraArgs,
	}
	for _, d := range []string{m.DataDir, m.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("starting MariaDB: %w", err)
		}
	}
	if err := m.install(ctx); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if m.Port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("starting MariaDB: %w", err)
		}
		err = m.start(ctx)
		switch {
		case err == nil:
			return m, nil
		case !errors.Is(err, errAddrInUse) || attempt == startAttempts:
			return nil, err
		}
	}
}

// install initialises the data directory unless it already holds one.
func (m *MariaDB) install(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(m.DataDir, "mysql")); err == nil {
		return nil
	}
	installDB, err := findBinary([]string{"mariadb-install-db", "mysql_install_db"}, mariadbDirs...)
	if err != nil {
		return fmt.Errorf("initialising MariaDB data directory: %w", err)
	}
	// basedir lets the script find the server outside its compiled-in paths
	// (/usr/sbin/mariadbd → /usr, /usr/local/mysql/bin/mariadbd → /usr/local/mysql).
	args := []string{
		"--no-defaults",
		"--basedir=" + filepath.Dir(filepath.Dir(m.server)),
		"--datadir=" + m.DataDir,
		"--tmpdir=" + m.tmpDir(), // unknown to the script, passed on to the server
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	out, err := exec.CommandContext(ctx, installDB, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("initialising MariaDB data directory %s: %w\n%s", m.DataDir, err, out)
	}
	return nil
}

// start launches the server on m.Port and waits until it answers queries.
func (m *MariaDB) start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.process != nil && !m.process.exited() {
		return fmt.Errorf("starting MariaDB: already running as pid %d", m.process.cmd.Process.Pid)
	}
	errLog := filepath.Join(m.DataDir, "err.log")
	offset := logSize(errLog)
	p, err := startProc(m.server, m.args(), errLog)
	if err != nil {
		return fmt.Errorf("starting MariaDB: %w", err)
	}
	if err := p.waitReady(ctx, mariadbReadyTimeout, m.ping); err != nil {
		_ = p.kill()
		return startErr(fmt.Sprintf("MariaDB on port %d", m.Port), err, logTail(errLog, offset))
	}
	m.process = p
	return nil
}

func (m *MariaDB) args() []string {
	d := m.DataDir
	args := []string{
		"--no-defaults",
		"--datadir=" + d,
		"--tmpdir=" + m.tmpDir(),
		"--port=" + strconv.Itoa(m.Port),
		"--bind-address=" + m.Host,
		"--socket=" + m.socket(),
		"--pid-file=" + filepath.Join(d, "mariadbd.pid"),
		"--log-error=" + filepath.Join(d, "err.log"),
		"--server-id=1",
		"--log-bin=mysql-bin",
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL",
		"--sync-binlog=0",
		"--max-allowed-packet=256M",
		"--innodb-buffer-pool-size=256M",
		"--innodb-flush-log-at-trx-commit=2",
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root") // else mariadbd refuses to run as root
	}
	return append(args, m.extraArgs...)
}

// tmpDir returns the server's own temporary directory. Servers sharing one
// clash over temporary table files while initialising their data directories.
// It is not in the data directory, where it would be taken for a database.
func (m *MariaDB) tmpDir() string { return m.DataDir + "-tmp" }

// socket returns the server's Unix socket path: in the data directory unless
// that would exceed the 108-byte limit of a socket address, as deep test
// directories can.
func (m *MariaDB) socket() string {
	if s := filepath.Join(m.DataDir, "s.sock"); len(s) < 100 {
		return s
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("binlake-mariadb-%d.sock", m.Port))
}

// ping succeeds once the server accepts TCP connections and answers SELECT 1.
func (m *MariaDB) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// Dialling first keeps the driver from logging failed handshakes while
	// the server is still coming up.
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", m.addr())
	if err != nil {
		return err
	}
	c.Close()
	db, err := m.Open("")
	if err != nil {
		return err
	}
	defer db.Close()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Stop shuts the server down with SIGTERM, sending SIGKILL if it has not
// exited after 20 s. Stopping a stopped server does nothing.
func (m *MariaDB) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.process == nil {
		return nil
	}
	if err := m.process.stop(mariadbStopGrace); err != nil {
		return fmt.Errorf("stopping MariaDB: %w", err)
	}
	m.process = nil
	return nil
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to exit.
func (m *MariaDB) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.process == nil {
		return nil
	}
	if err := m.process.kill(); err != nil {
		return fmt.Errorf("killing MariaDB: %w", err)
	}
	m.process = nil
	return nil
}

// Restart stops the server, if running, and starts it again on the same port
// and data directory.
func (m *MariaDB) Restart(ctx context.Context) error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.start(ctx)
}

// DSN returns a go-sql-driver/mysql DSN for database, which may be empty.
func (m *MariaDB) DSN(database string) string {
	user := m.User
	if m.Password != "" {
		user += ":" + m.Password
	}
	return fmt.Sprintf("%s@tcp(%s)/%s?multiStatements=true&parseTime=false&maxAllowedPacket=0",
		user, m.addr(), url.PathEscape(database))
}

// Open returns a connection pool for database, which may be empty.
func (m *MariaDB) Open(database string) (*sql.DB, error) {
	db, err := sql.Open("mysql", m.DSN(database))
	if err != nil {
		return nil, fmt.Errorf("opening MariaDB: %w", err)
	}
	return db, nil
}

// Exec runs stmts in order on one new connection, stopping at the first error.
func (m *MariaDB) Exec(ctx context.Context, stmts ...string) error {
	db, err := m.Open("")
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connecting to MariaDB: %w", err)
	}
	defer conn.Close()
	for _, stmt := range stmts {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("executing %q: %w", abbrev(stmt), err)
		}
	}
	return nil
}

func (m *MariaDB) addr() string {
	return net.JoinHostPort(m.Host, strconv.Itoa(m.Port))
}

// abbrev shortens a statement for an error message.
func abbrev(stmt string) string {
	const limit = 200
	if r := []rune(stmt); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return stmt
}

// BinlogEnd returns the server's binlog end as "file:pos" (SHOW MASTER
// STATUS), the position a task has captured up to once it has caught up.
func (m *MariaDB) BinlogEnd(t testing.TB) string {
	t.Helper()
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var file, pos, doDB, ignoreDB string
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatalf("SHOW MASTER STATUS: %v", err)
	}
	return file + ":" + pos
}
