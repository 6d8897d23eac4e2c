package capture

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/checkpoint"
)

// Reloads on demand: `binlake reload --table schema.table` leaves a request
// file in state_dir/reload; the running capture takes it in at a transaction
// boundary (or at its next start) and loads the table again with the same
// chunked algorithm while CDC goes on. No truncate is needed: each chunk's
// rows supersede, for their keys, everything before them in the lake.

// reloadDir is where reload requests wait.
const reloadDir = "reload"

type reloadRequest struct {
	Schema      string    `json:"schema"`
	Table       string    `json:"table"`
	RequestedAt time.Time `json:"requested_at"`
}

// RequestReload asks the capture of the task with state directory stateDir
// to load table t again. The request is a file, so it waits for a task that
// is not running and survives a crash until the table's reload is in the
// capture checkpoint.
func RequestReload(stateDir string, t TableName) (string, error) {
	if t.Schema == "" || t.Table == "" {
		return "", fmt.Errorf("reload: a table is schema.table")
	}
	path := filepath.Join(stateDir, reloadDir, url.PathEscape(t.String())+".json")
	if err := checkpoint.Save(path, reloadRequest{Schema: t.Schema, Table: t.Table, RequestedAt: time.Now().UTC()}); err != nil {
		return "", fmt.Errorf("reload request: %w", err)
	}
	return path, nil
}

// ParseTableName splits "schema.table" at its first dot.
func ParseTableName(s string) (TableName, error) {
	schema, table, ok := strings.Cut(s, ".")
	if !ok || schema == "" || table == "" {
		return TableName{}, fmt.Errorf("%q is not schema.table", s)
	}
	return TableName{Schema: schema, Table: table}, nil
}

// takeReloads applies the waiting reload requests to the checkpoint: each
// selected table goes back to "Before load" from its first row, unless
// loading (in loading) already. It saves the checkpoint before it removes
// the requests, and returns the tables to load.
func (c *Capture) takeReloads(ctx context.Context, loading func(TableName) bool) ([]TableName, error) {
	dir := filepath.Join(c.opts.StateDir, reloadDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading reload requests: %w", err)
	}
	var taken []string
	var tables []TableName
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		taken = append(taken, path)
		var req reloadRequest
		if _, err := checkpoint.Load(path, &req); err != nil {
			c.log.Warn("ignoring a damaged reload request", "file", path, "err", err)
			continue
		}
		t := TableName{Schema: req.Schema, Table: req.Table}
		if !c.cfg.Selected(t.Schema, t.Table) {
			c.log.Warn("ignoring a reload request for a table the selection rules do not select", "table", t.String())
			continue
		}
		if loading(t) || slices.Contains(tables, t) {
			c.log.Info("reload requested for a table being loaded already", "table", t.String())
			continue
		}
		c.mu.Lock()
		p := c.state.Tables[t.String()]
		if p == nil {
			p = &TableProgress{}
			c.state.Tables[t.String()] = p
		}
		*p = TableProgress{State: StateBeforeLoad, Defined: p.Defined, EstimatedRows: p.EstimatedRows, Reload: true}
		c.mu.Unlock()
		c.log.Info("reloading a table while CDC runs", "table", t.String(), "requested_at", req.RequestedAt)
		tables = append(tables, t)
	}
	if len(taken) == 0 {
		return nil, nil
	}
	if len(tables) > 0 {
		if err := c.save(ctx); err != nil {
			return nil, err
		}
	}
	for _, path := range taken {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("removing reload request: %w", err)
		}
	}
	return tables, nil
}

// pickUpReloads queues the waiting reload requests on the running load.
func (c *Capture) pickUpReloads(ctx context.Context, l *loader) error {
	tables, err := c.takeReloads(ctx, func(t TableName) bool {
		return slices.ContainsFunc(l.tables, func(x *tableLoad) bool { return x.name == t })
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	for _, t := range tables {
		l.add(t, c.state.Tables[t.String()])
	}
	c.mu.Unlock()
	return nil
}
