package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/binlake/binlake/internal/compaction"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/ddl"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
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
			cfg, b, unlock, err := openLake(cmd.Context(), path, "with delivery.tables: snapshot makes the snapshots itself")
			if err != nil {
				return err
			}
			defer unlock()
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

// openLake loads the config at path and opens its target for a command
// that works on the lake and must not run beside a task: it takes the
// state directory's lock when the directory is on this machine (why says
// what the task does instead). unlock releases it.
func openLake(ctx context.Context, path, why string) (cfg *config.Config, b objstore.Bucket, unlock func(), err error) {
	if cfg, err = loadConfig(path); err != nil {
		return nil, nil, nil, err
	}
	unlock = func() {}
	if _, err := os.Stat(cfg.StateDir); err == nil {
		if unlock, err = task.LockStateDir(cfg.StateDir); err != nil {
			return nil, nil, nil, fmt.Errorf("%w; a running task %s", err, why)
		}
	}
	if b, err = task.OpenTarget(ctx, cfg); err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return cfg, b, unlock, nil
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

func compactCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Compact the change log once (delivery.compaction) and expire objects older than delivery.retention",
		Long: `Compact the change log once: merge runs of small objects of each table
partition into one (delivery.compaction: target_size), delete the objects
earlier runs merged once delivery.compaction.grace has passed, and delete
objects whose records are older than delivery.retention (if set). Readers
never see a record twice or miss one while it runs.

A task with delivery.compaction.enabled (or a retention) does this itself
every delivery.compaction.interval; this command is for running it on a
schedule elsewhere. It refuses to run while a task uses the config's
state_dir on this machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, b, unlock, err := openLake(cmd.Context(), path, "compacts the change log itself")
			if err != nil {
				return err
			}
			defer unlock()
			cfg.Delivery.Compaction.Enabled = true
			c, err := compaction.New(compaction.Options{Config: cfg, Bucket: b, Logger: newLogger(stderr, cfg.Log)})
			if err != nil {
				return err
			}
			res, err := c.Run(cmd.Context())
			fmt.Fprintf(stdout, "merged %d objects into %d; deleted %d merged earlier; expired %d\n", res.Parts, res.Merged, res.Deleted, res.Expired)
			return err
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "pipeline config file (YAML)")
	return cmd
}

func ddlCmd(stdout io.Writer) *cobra.Command {
	var path, engine, catalog string
	var tables []string
	cmd := &cobra.Command{
		Use:   "ddl",
		Short: "Print the CREATE TABLE statements that let Athena or Trino query the lake: each table's change log and, with snapshot tables, its current rows",
		Long: `Print the CREATE TABLE statements that let Amazon Athena (Hive DDL, the Glue
catalog) or Trino (its Hive connector) query the lake: per table, one for its
change log in the format delivery writes, named <table>_changes, and, with
delivery.tables: snapshot, one for its current rows, named <table>, read
through the snapshot's symlink manifest (Athena; Trino reads such tables
from the metastore). Databases are named after the source schemas.

The columns come from each table's newest table definition in the lake (its
snapshot manifest, or the newest change-log object that carries one). After
a schema change, print them again and replace the tables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			b, err := task.OpenTarget(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			found, err := ddl.Discover(cmd.Context(), cfg, b, tables)
			if err != nil {
				return err
			}
			if len(found) == 0 {
				return errors.New("no change-log objects of task " + cfg.Task + " under " + b.String() + "/" + cfg.Delivery.Root())
			}
			if err := ddl.Write(stdout, cfg, ddl.Options{Engine: engine, Catalog: catalog, URL: b.String()}, found); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "pipeline config file (YAML)")
	cmd.Flags().StringVar(&engine, "engine", ddl.Athena, "athena or trino")
	cmd.Flags().StringVar(&catalog, "catalog", "hive", "trino: the catalog of the Hive connector")
	cmd.Flags().StringSliceVar(&tables, "table", nil, "only these tables (schema.table; repeat or comma-separate)")
	return cmd
}
