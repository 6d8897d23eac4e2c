package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/binlake/binlake/internal/capture"
)

// reloadCmd asks a task to load tables again while its CDC keeps running.
func reloadCmd(stdout io.Writer) *cobra.Command {
	var path string
	var tables []string
	cmd := &cobra.Command{
		Use:   "reload --config F --table schema.table",
		Short: "Load tables again while CDC keeps running (the running task picks the request up within a second, a stopped one at its next start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			if len(tables) == 0 {
				return usageError{fmt.Errorf("--table schema.table is required")}
			}
			var names []capture.TableName
			for _, s := range tables {
				t, err := capture.ParseTableName(s)
				if err != nil {
					return usageError{fmt.Errorf("--table: %w", err)}
				}
				if !cfg.Selected(t.Schema, t.Table) {
					return usageError{fmt.Errorf("--table %s: the selection rules of %s do not select it", s, path)}
				}
				names = append(names, t)
			}
			for _, t := range names {
				file, err := capture.RequestReload(cfg.StateDir, t)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "reload of %s requested (%s)\n", t, file)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "pipeline config file (YAML)")
	cmd.Flags().StringArrayVarP(&tables, "table", "t", nil, "schema.table to load again (repeatable)")
	return cmd
}
