package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// KinesaliteVersion is the npm package the tests run.
const KinesaliteVersion = "kinesalite@3.3.3"

const kinesaliteScript = `// Started by binlake's testbed: kinesalite on 127.0.0.1:PORT, its data in DIR.
const kinesalite = require(process.argv[2] + '/node_modules/kinesalite');
const server = kinesalite({path: process.argv[4], createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100});
server.listen(+process.argv[3], '127.0.0.1', () => console.log('kinesalite listening on ' + server.address().port));
`

// Kinesalite is a Kinesis-compatible server (the kinesalite npm package)
// running under node, with its data in a directory, so it can be stopped
// and started again with its streams intact.
type Kinesalite struct {
	Endpoint string // http://127.0.0.1:port
	Region   string
	// Any credentials do; the SDK needs some.
	AccessKey, SecretKey string

	node, modules, script, data, log string
	port                             int

	mu      sync.Mutex
	process *proc
}

// NewKinesalite starts kinesalite for the length of the test, installing
// the npm package into the cache (NpmCacheDir) when it is missing. It calls
// Missing when node or npm is not installed.
func NewKinesalite(t testing.TB) *Kinesalite {
	t.Helper()
	k, err := StartKinesalite(t.Context(), t.TempDir())
	if errors.Is(err, ErrNotInstalled) {
		Missing(t, "node and npm (for kinesalite)", "scripts/deps.sh kinesis")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k.Stop(); err != nil {
			t.Errorf("stopping kinesalite: %v", err)
		}
	})
	return k
}

// NpmCacheDir is where test servers from npm are installed:
// $BINLAKE_NPM_CACHE, else ~/.cache/binlake/npm.
func NpmCacheDir() string {
	if d := os.Getenv("BINLAKE_NPM_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "binlake", "npm")
}

// InstallKinesalite installs the kinesalite npm package into dir unless it
// is there already. Concurrent installs wait for each other.
func InstallKinesalite(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kinesalite", "package.json")); err == nil {
		return nil
	}
	npm, err := findBinary([]string{"npm"})
	if err != nil {
		return fmt.Errorf("installing kinesalite: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("installing kinesalite: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("installing kinesalite: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("installing kinesalite: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kinesalite", "package.json")); err == nil {
		return nil // another process installed it meanwhile
	}
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error", KinesaliteVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm install %s: %w\n%s", KinesaliteVersion, err, out)
	}
	return nil
}

// StartKinesalite starts kinesalite with its data and log under dir. The
// server runs until Stop, whatever becomes of ctx, which bounds the start.
func StartKinesalite(ctx context.Context, dir string) (*Kinesalite, error) {
	node, err := findBinary([]string{"node", "nodejs"})
	if err != nil {
		return nil, fmt.Errorf("starting kinesalite: %w", err)
	}
	modules := NpmCacheDir()
	if err := InstallKinesalite(ctx, modules); err != nil {
		return nil, err
	}
	k := &Kinesalite{
		Region: "us-east-1", AccessKey: "binlake", SecretKey: "binlake-secret",
		node: node, modules: modules,
		script: filepath.Join(dir, "kinesalite.js"),
		data:   filepath.Join(dir, "kinesalite-data"),
		log:    filepath.Join(dir, "kinesalite.log"),
	}
	if err := os.WriteFile(k.script, []byte(kinesaliteScript), 0o644); err != nil {
		return nil, fmt.Errorf("starting kinesalite: %w", err)
	}
	for attempt := 1; ; attempt++ {
		if k.port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("starting kinesalite: %w", err)
		}
		err = k.Start(ctx)
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt >= startAttempts {
			return nil, err
		}
	}
}

// Start starts a stopped server again on the same port, with the streams
// it had.
func (k *Kinesalite) Start(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.process != nil {
		return nil
	}
	k.Endpoint = "http://127.0.0.1:" + strconv.Itoa(k.port)
	offset := logSize(k.log)
	p, err := startProc(k.node, []string{k.script, k.modules, strconv.Itoa(k.port), k.data}, k.log)
	if err != nil {
		return fmt.Errorf("starting kinesalite: %w", err)
	}
	if err := p.waitReady(ctx, 30*time.Second, k.ping); err != nil {
		_ = p.kill()
		return startErr("kinesalite at "+k.Endpoint, err, logTail(k.log, offset))
	}
	k.process = p
	return nil
}

func (k *Kinesalite) ping(ctx context.Context) error { return pingHTTP(ctx, k.Endpoint) }

// Stop stops the server (SIGKILL: kinesalite keeps nothing in memory that
// its store has not written). Stopping a stopped server does nothing.
func (k *Kinesalite) Stop() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.process == nil {
		return nil
	}
	if err := k.process.kill(); err != nil {
		return fmt.Errorf("stopping kinesalite: %w", err)
	}
	k.process = nil
	return nil
}
