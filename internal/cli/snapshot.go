package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/task"
)

func snapshotCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Bring every table's snapshot (current rows as Parquet, see delivery.tables) up to the change log in the lake, once",
		Long: `Bring every table's snapshot (its current rows as Parquet files named by a
manifest, see delivery.tables in docs/config.md) up to the change log in the
lake, once, and print what it holds.

A task with delivery.tables: snapshot makes its snapshots itself; this command
is for lakes whose task does not, or runs elsewhere. It refuses to run while
a task uses the config's state_dir on this machine: a snapshot has one writer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			if _, err := os.Stat(cfg.StateDir); err == nil {
				unlock, err := task.LockStateDir(cfg.StateDir)
				if err != nil {
					return fmt.Errorf("%w; a running task with delivery.tables: snapshot makes the snapshots itself", err)
				}
				defer unlock()
			}
			b, err := task.OpenTarget(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			s, err := lakehouse.New(lakehouse.Options{Config: cfg, Bucket: b, Logger: newLogger(stderr, cfg.Log)})
			if err != nil {
				return err
			}
			results, err := s.Run(cmd.Context())
			printSnapshots(stdout, results)
			if len(results) == 0 && err == nil {
				return errors.New("no change-log objects of task " + cfg.Task + " under " + b.String() + "/" + s.Root())
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "pipeline config file (YAML)")
	return cmd
}

// printSnapshots writes a line per table.
func printSnapshots(w io.Writer, results []lakehouse.TableResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tGENERATION\tROWS\tFILES\tRECORDS APPLIED\tFILES WRITTEN\tEXACT THROUGH")
	for _, r := range results {
		through := r.ExactThrough
		switch {
		case r.Err != nil:
			through = "error: " + r.Err.Error()
		case r.Skipped != "":
			through = "skipped: " + r.Skipped
		}
		fmt.Fprintf(tw, "%s.%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Schema, r.Table, r.Generation, r.Rows, r.Files, r.Records, r.Written, through)
	}
	tw.Flush()
}
