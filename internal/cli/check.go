package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/task"
)

// targetCheckTimeout bounds the target check, whose S3 calls could
// otherwise wait for a long time on an unreachable endpoint.
const targetCheckTimeout = time.Minute

func checkCmd(stdout io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a config, then check the source, the target and the state directory without starting the task; exit 1 if a check fails",
		Long: `check validates the config file, then checks what binlake run depends on, without
starting the task:

  - the source: it connects and checks the binlog settings (log_bin, binlog_format,
    binlog_row_image, binlog_row_metadata; row metadata other than FULL only warns, as
    does everything but log_bin for a full-load task), the privileges, that source.mysql.server_id is not the source's own id, the
    tables the selection rules select, the binlog retention (CDC tasks) and primary keys;
  - the target: it lists the delivery prefix, then writes a small probe object under
    <prefix>_binlake/check-<random> and deletes it again;
  - the state directory: that it is writable, or can be created.

It does not check the stream of stream.type nats, kinesis or kafka. It prints one line
per check, OK, WARN or FAIL, each problem with its fix, then "ready: N checks, M
warning(s)". Exit codes: 0 when no check fails (warnings allowed), 1 when one fails, 2 for
bad flags or an invalid config. binlake run makes the same source checks at every start
and refuses to start on a failed one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			findings := []capture.Finding{{Check: "config", Level: capture.LevelOK,
				Detail: fmt.Sprintf("%s: task %s, %s, target %s", path, cfg.Task, cfg.Migration, cfg.Target)}}
			for _, w := range cfg.Warnings() {
				findings = append(findings, capture.Finding{Check: "config", Level: capture.LevelWarn, Detail: w})
			}
			findings = append(findings, capture.Preflight(ctx, cfg)...)
			findings = append(findings, checkTarget(ctx, cfg), checkStateDir(cfg.StateDir))
			var fails, warns int
			for _, f := range findings {
				fmt.Fprintln(stdout, f)
				switch f.Level {
				case capture.LevelFail:
					fails++
				case capture.LevelWarn:
					warns++
				}
			}
			if fails > 0 {
				return fmt.Errorf("check: %d failed, %d warning(s)", fails, warns)
			}
			fmt.Fprintf(stdout, "ready: %d checks, %d warning(s)\n", len(findings), warns)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "pipeline config file (YAML)")
	return cmd
}

// errStopList stops a listing after its first object.
var errStopList = errors.New("stop listing")

// checkTarget opens the target, lists the delivery prefix and writes and
// deletes a small object under it, as delivery will write there.
func checkTarget(ctx context.Context, cfg *config.Config) capture.Finding {
	ctx, cancel := context.WithTimeout(ctx, targetCheckTimeout)
	defer cancel()
	f := capture.Finding{Check: "target"}
	s3 := strings.HasPrefix(cfg.Target, "s3://")
	fix := func(action string) string {
		if s3 {
			return fmt.Sprintf("check the bucket name, s3.region and s3.endpoint, and that the credentials (s3.access_key_id, or the AWS default chain) allow %s under %s", action, cfg.Target)
		}
		return "check that the directory of target exists or can be created, and that binlake's user may write to it"
	}
	b, err := task.OpenTarget(ctx, cfg) // as run opens it: the probe is written with the same encryption
	if err != nil {
		f.Level, f.Detail, f.Fix = capture.LevelFail, "cannot open "+cfg.Target+": "+err.Error(), fix("access")
		return f
	}
	prefix := literalPrefix(cfg.Delivery.Prefix)
	existing := 0
	err = b.List(ctx, prefix, func(string, int64) error {
		existing++
		return errStopList
	})
	if err != nil && !errors.Is(err, errStopList) {
		f.Level, f.Detail, f.Fix = capture.LevelFail, fmt.Sprintf("cannot list %s under %q: %v", b, prefix, err), fix("s3:ListBucket")
		return f
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	key := prefix + "_binlake/check-" + hex.EncodeToString(rnd[:])
	if err := b.Put(ctx, key, []byte("written by binlake check; safe to delete\n")); err != nil {
		f.Level, f.Detail, f.Fix = capture.LevelFail, fmt.Sprintf("cannot write %s to %s: %v", key, b, err), fix("s3:PutObject")
		return f
	}
	if err := b.Delete(ctx, key); err != nil {
		f.Level, f.Detail = capture.LevelWarn, fmt.Sprintf("wrote %s to %s but cannot delete it (%v); delivery does not delete, so this only leaves the check object behind", key, b, err)
		f.Fix = "delete it by hand, or allow s3:DeleteObject"
		return f
	}
	state := "empty"
	if existing > 0 {
		state = "holds objects already"
	}
	f.Level, f.Detail = capture.LevelOK, fmt.Sprintf("%s: listed (prefix %q %s), wrote and deleted %s", b, prefix, state, key)
	return f
}

// literalPrefix is the part of a delivery prefix before its first
// placeholder ({schema}, !{timestamp:...}), up to a '/': the key prefix
// every object of the task is written under.
func literalPrefix(p string) string {
	if i := strings.IndexByte(p, '{'); i >= 0 {
		p = p[:i]
		p = p[:strings.LastIndexByte(p, '/')+1]
	}
	return p
}

// checkStateDir checks that the state directory can be written, or created.
func checkStateDir(dir string) capture.Finding {
	f := capture.Finding{Check: "state_dir"}
	probe := dir
	for {
		fi, err := os.Stat(probe)
		if err == nil {
			if !fi.IsDir() {
				f.Level, f.Detail = capture.LevelFail, probe+" is not a directory"
				f.Fix = "point state_dir at a directory binlake may create or write"
				return f
			}
			break
		}
		parent := filepath.Dir(probe)
		if !os.IsNotExist(err) || parent == probe {
			f.Level, f.Detail, f.Fix = capture.LevelFail, err.Error(), "point state_dir at a directory binlake may create or write"
			return f
		}
		probe = parent
	}
	tmp, err := os.CreateTemp(probe, ".binlake-check-*")
	if err != nil {
		f.Level, f.Detail = capture.LevelFail, fmt.Sprintf("cannot write in %s: %v", probe, err)
		f.Fix = "give binlake's user write access there, or point state_dir elsewhere"
		return f
	}
	tmp.Close()
	os.Remove(tmp.Name())
	f.Level = capture.LevelOK
	if probe == dir {
		f.Detail = dir + " is writable"
	} else {
		f.Detail = fmt.Sprintf("%s will be created (in writable %s)", dir, probe)
	}
	return f
}
