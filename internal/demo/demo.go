// Package demo runs `binlake demo`: a throwaway MariaDB with a sample
// WordPress database, the pipeline on the embedded stream into a local lake
// directory, live changes flowing and the status shown, then a clean stop.
package demo

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// Options configure the demo.
type Options struct {
	Dir      string        // everything the demo makes lives here
	Duration time.Duration // how long live changes flow
	Keep     bool          // run until interrupted
	HTTP     string        // status API address
	Posts    int
	Out      io.Writer // what the user reads
	Log      io.Writer // unused when logs go to Dir/binlake.log
	// RunTask runs the pipeline (the same code as `binlake run`).
	RunTask func(ctx context.Context, cfg *config.Config, log *slog.Logger) error
}

const pipelineTemplate = `# The demo's pipeline: the same file you would write for your own database.
task: wordpress
source:
  mysql:
    host: 127.0.0.1
    port: %d
    user: root
    password: ""
migration: full-load-and-cdc
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
stream:
  type: embedded
delivery:
  buffer: {size: 1MiB, interval: 5s}
  format: json
  compression: gzip
  prefix: "wordpress-db/"
target: file://%s
state_dir: %s
http:
  listen: %s
`

// Run runs the demo.
func Run(ctx context.Context, o Options) error {
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	for _, sub := range []string{"mariadb", "state", "lake"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return fmt.Errorf("cleaning the previous demo: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out := o.Out
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }

	step("starting a throwaway MariaDB (ROW binlog, full row metadata) in %s", filepath.Join(dir, "mariadb"))
	db, err := testbed.StartMariaDB(ctx, dir)
	if errors.Is(err, testbed.ErrNotInstalled) {
		return fmt.Errorf("MariaDB is not installed: run `apt-get install -y mariadb-server` (or `make demo`, which does it for root)")
	}
	if err != nil {
		return err
	}
	defer db.Stop()
	sqlDB, err := db.Open("")
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	step("creating the sample WordPress database `%s` with %d posts", testbed.WordPressDB, o.Posts)
	if err := testbed.CreateWordPress(ctx, sqlDB, testbed.WordPressDB); err != nil {
		return err
	}
	if err := testbed.SeedWordPress(ctx, sqlDB, testbed.WordPressDB, o.Posts, 1); err != nil {
		return err
	}

	httpAddr := o.HTTP
	if httpAddr == "" || strings.HasSuffix(httpAddr, ":0") {
		port, err := testbed.FreePort()
		if err != nil {
			return err
		}
		httpAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	lake := filepath.Join(dir, "lake")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	yml := fmt.Sprintf(pipelineTemplate, db.Port, lake, filepath.Join(dir, "state"), httpAddr)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "binlake.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))

	step("running binlake with %s (logs: %s)", cfgPath, logFile.Name())
	taskCtx, stopTask := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTask()
	taskDone := make(chan error, 1)
	go func() { taskDone <- o.RunTask(taskCtx, cfg, log) }()

	step("live changes: a WordPress workload writes posts, comments, options and sessions")
	work := testbed.NewWorkload(sqlDB, testbed.WordPressDB, 2)
	workCtx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- work.Run(workCtx, 20) }()

	statusURL := "http://" + httpAddr + "/api/v1/status"
	step("status API: %s", statusURL)
	var deadline <-chan time.Time
	if !o.Keep {
		deadline = time.After(o.Duration)
	} else {
		step("--keep: running until Ctrl-C")
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			break loop
		case err := <-taskDone:
			runErr = fmt.Errorf("the pipeline stopped: %w (see %s)", err, logFile.Name())
			break loop
		case <-tick.C:
			printStatus(out, statusURL)
		}
	}
	stopWork()
	if err := <-workDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("workload: %w", err)
	}
	if runErr != nil {
		return runErr
	}
	time.Sleep(time.Second)
	printStatus(out, statusURL)
	step("stopping: binlake drains (everything captured is delivered, checkpoints saved)")
	stopTask()
	if err := <-taskDone; err != nil {
		return fmt.Errorf("the pipeline failed: %w (see %s)", err, logFile.Name())
	}
	if err := describeLake(out, lake); err != nil {
		return err
	}
	step("done. Run it yourself: go run ./cmd/binlake run --config %s", cfgPath)
	step("watch it live: go run ./cmd/binlake demo --keep, then curl %s", statusURL)
	return nil
}

func printStatus(out io.Writer, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(out, "(status not available yet: %v)\n", err)
		return
	}
	defer resp.Body.Close()
	var s task.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		fmt.Fprintf(out, "(bad status: %v)\n", err)
		return
	}
	fmt.Fprintln(out)
	s.WriteTable(out)
	fmt.Fprintln(out)
}

// describeLake prints the objects per table and a few records.
func describeLake(out io.Writer, lake string) error {
	type tableFiles struct {
		files int
		bytes int64
		last  string
	}
	tables := map[string]*tableFiles{}
	err := filepath.WalkDir(lake, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, _ := filepath.Rel(lake, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) < 3 || strings.HasPrefix(parts[1], "_binlake") {
			return nil // markers, not a table's objects
		}
		name := parts[1] + "." + parts[2]
		tf := tables[name]
		if tf == nil {
			tf = &tableFiles{}
			tables[name] = tf
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		tf.files++
		tf.bytes += info.Size()
		if path > tf.last {
			tf.last = path
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "==> the lake: %s\n", lake)
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(out, "    %-28s %4d objects %10d bytes (gzip JSON lines)\n", n, tables[n].files, tables[n].bytes)
	}
	if tf := tables["wordpress-db.wp_options"]; tf != nil {
		fmt.Fprintf(out, "==> a few records of %s:\n", tf.last)
		return printRecords(out, tf.last, 3)
	}
	return nil
}

func printRecords(out io.Writer, path string, n int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for i := 0; i < n && sc.Scan(); i++ {
		line := sc.Text()
		if len(line) > 600 {
			line = line[:600] + "…"
		}
		fmt.Fprintln(out, "   ", line)
	}
	return sc.Err()
}
