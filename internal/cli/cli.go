// Package cli is binlake's command line: init, run, check, validate, status,
// tables, reload, snapshot, compact, ddl, demo and version, with the exit
// codes scripts rely on (0 done, 1 failed, 2 bad usage or config).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/demo"
	"github.com/binlake/binlake/internal/server"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/validate"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// usageError marks errors that come from bad flags or config.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "binlake",
		Short:         "Land MySQL and MariaDB changes in object storage as an ordered change log",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCmd(stderr), checkCmd(stdout), validateCmd(stdout), statusCmd(stdout), tablesCmd(stdout),
		reloadCmd(stdout), snapshotCmd(stdout, stderr), compactCmd(stdout, stderr), ddlCmd(stdout), initCmd(stdout), demoCmd(stdout, stderr), versionCmd(stdout))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "binlake:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailed
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usageError{errors.New("--config is required (a YAML file; see docs/config.md)")}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	switch c.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runCmd(stderr io.Writer) *cobra.Command {
	var paths []string
	var role string
	var progress, logToStderr, resnapshot bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the task until SIGINT/SIGTERM, then drain and exit 0 (a full-load task exits when the load is delivered)",
		Long: `Run the task until SIGINT/SIGTERM, then drain and exit 0 (a full-load task exits when the load is delivered).

On a terminal, binlake run draws a live view every second: a full-load progress
bar per table while the load runs, and a line of rates (records/s captured and
delivered), capture and delivery lag and warnings; the logs then go to
<state_dir>/binlake.log (--log-to-stderr keeps them on the terminal, with a
summary line every 5s instead of the live view). When stderr is not a
terminal, the logs go there as they are; --progress adds the summary line.

--role runs part of the pipeline, for running capture and delivery on
separate machines over a nats, kafka or kinesis stream: capture (source →
stream) or deliver (stream → object store); all, the default, runs both.

--resnapshot loads every selected table again and continues CDC from the
binlog's end: the remedy when the checkpoint's binlog was purged while
binlake was stopped (binlake run and binlake check say so). Each table's
load starts with a truncate-table record, so the lake's current state is
exact again, deletes made during the gap included.

Several --config flags run several tasks (source databases) in this one
process, each with its own checkpoints, stream, status, metrics and HTTP
server: their task names, state_dir and listen addresses must differ. The
logs of all go to stderr, each line with its task. A task that fails is
logged and the others go on; binlake run exits once every task has ended,
1 if any failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(paths) == 0 {
				paths = []string{""} // loadConfig says --config is required
			}
			var cfgs []*config.Config
			for _, path := range paths {
				cfg, err := loadConfig(path)
				if err != nil {
					return err
				}
				if role != "" {
					cfg.Role = role
					if err := cfg.Validate(); err != nil {
						return usageError{fmt.Errorf("%s with --role %s: %w", path, role, err)}
					}
				}
				if resnapshot {
					if cfg.Role == config.RoleDeliver {
						return usageError{fmt.Errorf("--resnapshot applies to capture: run it with --role capture or all")}
					}
					if err := capture.RequestResnapshot(cfg.StateDir); err != nil {
						return err
					}
				}
				cfgs = append(cfgs, cfg)
			}
			if len(cfgs) > 1 {
				if err := apart(paths, cfgs); err != nil {
					return usageError{err}
				}
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				var pw io.Writer
				if progress {
					pw = stderr
				}
				return runTasks(ctx, cfgs, stderr, pw)
			}
			cfg := cfgs[0]
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			live := isTerminal(stderr) && !logToStderr
			if !live {
				var pw io.Writer
				if progress || isTerminal(stderr) {
					pw = stderr
				}
				return runTask(ctx, cfg, newLogger(stderr, cfg.Log), pw, false)
			}
			logPath := filepath.Join(cfg.StateDir, "binlake.log")
			if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(stderr, "binlake run: task %s; logs go to %s (--log-to-stderr keeps them here)\n", cfg.Task, logPath)
			err = runTask(ctx, cfg, newLogger(f, cfg.Log), stderr, true)
			if err != nil {
				fmt.Fprintf(stderr, "binlake run: failed; see %s\n", logPath)
			}
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&paths, "config", "c", nil, "pipeline config file (YAML); give it several times to run several tasks in this process")
	cmd.Flags().BoolVar(&progress, "progress", false, "when stderr is not a terminal: print a one-line summary (status, full-load %, records, rate, lag) to stderr every 5s")
	cmd.Flags().BoolVar(&resnapshot, "resnapshot", false, "load every selected table again and continue CDC from the binlog's end (after the checkpoint's binlog was purged)")
	cmd.Flags().StringVar(&role, "role", "", "the stages this process runs: all, capture or deliver (overrides the config's role)")
	cmd.Flags().BoolVar(&logToStderr, "log-to-stderr", false, "on a terminal: keep the logs on stderr (with a summary line every 5s) instead of the live view and <state_dir>/binlake.log")
	return cmd
}

// RunTask runs a task with its HTTP API (when http.listen is set) until ctx
// is cancelled and the task has drained.
func RunTask(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	return runTask(ctx, cfg, log, nil, false)
}

// RunTaskWith is RunTask that, when progress is not nil, also writes a
// one-line summary of the task there every progressEvery.
func RunTaskWith(ctx context.Context, cfg *config.Config, log *slog.Logger, progress io.Writer) error {
	return runTask(ctx, cfg, log, progress, false)
}

// runTask is RunTaskWith that, with live, redraws the terminal progress
// there every liveEvery instead.
func runTask(ctx context.Context, cfg *config.Config, log *slog.Logger, progress io.Writer, live bool) error {
	setMemoryLimit(cfg.MemoryLimit)
	return runOne(ctx, cfg, log, progress, live)
}

// setMemoryLimit sets the Go runtime's soft memory limit (memory_limit),
// unless it is 0 or GOMEMLIMIT is set.
func setMemoryLimit(limit config.ByteSize) {
	if limit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(limit))
	}
}

// runOne is runTask without the memory limit, which is the process's.
func runOne(ctx context.Context, cfg *config.Config, log *slog.Logger, progress io.Writer, live bool) error {
	t := task.New(cfg, log)
	if cfg.HTTP.Listen != "" {
		srv, err := server.Listen(cfg.HTTP.Listen, t, t.Registry(), log)
		if err != nil {
			return err
		}
		srv.RequireToken(cfg.HTTP.Token)
		if cfg.HTTP.UsesTLS() {
			if err := srv.UseTLS(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey, cfg.HTTP.TLSClientCA); err != nil {
				srv.Close()
				return err
			}
		}
		go func() {
			if err := srv.Serve(); err != nil {
				log.Error("http server", "err", err)
			}
		}()
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		}()
		log.Info("http api listening", "console", srv.URL()+"/", "status", srv.URL()+"/api/v1/status", "metrics", srv.URL()+"/metrics")
		if live {
			fmt.Fprintf(progress, "console %s/ · metrics %s/metrics\n", srv.URL(), srv.URL())
		}
	}
	if progress != nil {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			if live {
				drawLive(stop, t, progress, liveEvery)
			} else {
				reportProgress(stop, t, progress, progressEvery)
			}
		}()
		defer func() { close(stop); <-done }()
	}
	return t.Run(ctx)
}

func demoCmd(stdout, stderr io.Writer) *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a throwaway MariaDB with a sample WordPress database and run the pipeline into a local lake",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Out = stdout
			o.Log = stderr
			o.RunTask = RunTask
			return demo.Run(ctx, o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "demo-lake", "directory for the lake, the state and the throwaway database")
	cmd.Flags().DurationVar(&o.Duration, "duration", 30*time.Second, "how long live changes flow before the demo drains and stops")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "keep running (and serving the status API) until Ctrl-C")
	cmd.Flags().StringVar(&o.HTTP, "http", "127.0.0.1:0", "status API address")
	cmd.Flags().IntVar(&o.Posts, "posts", 2000, "posts in the sample WordPress database")
	return cmd
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(stdout, "binlake", Version)
		},
	}
}

func validateCmd(stdout io.Writer) *cobra.Command {
	var path string
	var o validate.Options
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Compare each selected source table with the lake, row by row; exit 0 only when everything matches",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			b, err := task.OpenTarget(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			o.Config, o.Bucket = cfg, b
			results, err := validate.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			validate.Print(stdout, results)
			if !validate.OK(results) {
				return errors.New("the lake does not match the source (see above)")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "pipeline config file (YAML)")
	cmd.Flags().StringSliceVar(&o.Tables, "tables", nil, "tables to validate (schema.table, comma-separated); default: every selected table")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 3, "how many times differing rows are checked again (changes in flight settle)")
	cmd.Flags().DurationVar(&o.Wait, "wait", 5*time.Second, "pause between rounds")
	cmd.Flags().IntVar(&o.MaxMismatches, "max-mismatches", 10, "mismatches listed per table")
	return cmd
}
