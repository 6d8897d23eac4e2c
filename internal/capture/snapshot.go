package capture

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/change"
)

// fullLoad reads the tables in one consistent snapshot whose exact binlog
// position W is known, without locks on MariaDB (binlog_snapshot_file and
// binlog_snapshot_position). Each row becomes a load record at position
// W/0/<chunk>/<row>, so it sorts after every change before W and before
// every change from W on; CDC later skips a table's binlog events before its
// W, which the loaded rows already contain.
//
// A table whose previous load was interrupted gets a truncate-table control
// record first (DMS's TRUNCATE_BEFORE_LOAD), so that replaying the lake in
// stream-position order forgets the rows of the interrupted attempt.
func (c *Capture) fullLoad(ctx context.Context, tables []TableName) error {
	conn, err := c.src.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("full load: %w", err)
	}
	defer conn.Close()
	file, pos, err := c.src.snapshot(ctx, conn)
	if err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	fileNum, err := change.BinlogFileNumber(file)
	if err != nil {
		return err
	}
	snapTime := time.Now().UTC()
	c.log.Info("full load snapshot", "binlog_file", file, "binlog_pos", pos, "tables", len(tables))
	c.mu.Lock()
	if c.state.BinlogFile == "" {
		// CDC starts where the first snapshot was taken.
		c.state.BinlogFile, c.state.BinlogPos = file, pos
	}
	c.mu.Unlock()

	for _, t := range tables {
		if err := c.loadTable(ctx, conn, t, fileNum, uint64(pos), snapTime); err != nil {
			c.mu.Lock()
			p := c.state.Tables[t.String()]
			p.State, p.Error = StateError, err.Error()
			c.mu.Unlock()
			return err
		}
	}
	return nil
}

func (c *Capture) loadTable(ctx context.Context, conn *sql.Conn, t TableName, fileNum, pos uint64, snapTime time.Time) error {
	info, err := readTableInfo(ctx, conn, t)
	if err != nil {
		return err
	}
	c.mu.Lock()
	p := c.state.Tables[t.String()]
	restarted := p.State == StateFullLoad || p.State == StateError
	chunk := c.state.NextChunk
	c.state.NextChunk += 3 // restart marker, table definition, rows
	now := time.Now().UTC()
	p.State, p.LoadRows, p.LoadStart, p.LoadEnd, p.Error = StateFullLoad, 0, &now, nil, ""
	p.LoadPosition = change.Position{Epoch: c.state.Epoch, File: fileNum, Offset: pos}.String()
	epoch := c.state.Epoch
	c.mu.Unlock()
	// The chunk counter is saved before any record of the chunk is published,
	// so a later attempt never reuses its positions.
	if err := c.save(ctx); err != nil {
		return err
	}
	base := change.Position{Epoch: epoch, File: fileNum, Offset: pos, Kind: change.KindLoad, A: chunk}
	if restarted {
		c.log.Warn("reloading a table whose full load was interrupted", "table", t.String())
		if err := c.broadcast(ctx, &change.Record{
			Op: change.OpTruncateTable, Schema: t.Schema, Table: t.Table,
			Statement:  "-- binlake: full load restarted; rows loaded before this record are superseded",
			CommitTime: snapTime, Position: base, PartitionKey: t.String(),
		}); err != nil {
			return err
		}
	}
	// The table's definition comes before its rows, so that delivery knows
	// every column's type (Parquet, CSV) from the first row on.
	base.A = chunk + 1
	if err := c.broadcast(ctx, &change.Record{
		Op: change.OpCreateTable, Schema: t.Schema, Table: t.Table,
		Statement: "-- binlake: table definition at the full load", TableDef: &info.def,
		CommitTime: snapTime, Position: base, PartitionKey: t.String(),
	}); err != nil {
		return err
	}
	c.mu.Lock()
	p.Defined = true
	c.mu.Unlock()
	base.A = chunk + 2

	pkIdx := info.pkIndexes()
	rows, err := conn.QueryContext(ctx, info.selectAll())
	if err != nil {
		return fmt.Errorf("full load of %s: %w", t, err)
	}
	defer rows.Close()
	raw, dest := info.scanDest()
	var n uint64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("full load of %s: %w", t, err)
		}
		row, err := info.row(raw)
		if err != nil {
			return fmt.Errorf("full load of %s: %w", t, err)
		}
		pos := base
		pos.B = n
		rec := &change.Record{Op: change.OpLoad, Schema: t.Schema, Table: t.Table, Data: row, CommitTime: snapTime, Position: pos}
		partitionKey(rec, row, pkIdx)
		if err := c.emit(ctx, rec); err != nil {
			return err
		}
		n++
		if n%10000 == 0 {
			c.mu.Lock()
			p.LoadRows = n
			c.mu.Unlock()
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("full load of %s: %w", t, err)
	}
	end := time.Now().UTC()
	c.mu.Lock()
	p.State, p.LoadRows, p.LoadEnd = StateCompleted, n, &end
	c.mu.Unlock()
	if err := c.save(ctx); err != nil {
		return err
	}
	c.log.Info("table loaded", "table", t.String(), "rows", n, "seconds", end.Sub(*p.LoadStart).Seconds())
	return nil
}

// snapshot starts a consistent-snapshot transaction on conn and returns its
// exact binlog position.
func (s *source) snapshot(ctx context.Context, conn *sql.Conn) (string, uint32, error) {
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return "", 0, fmt.Errorf("full load: %w", err)
	}
	if s.flavor == "mariadb" {
		if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
			return "", 0, fmt.Errorf("full load: %w", err)
		}
		rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return "", 0, fmt.Errorf("full load: reading the snapshot's binlog position: %w", err)
		}
		defer rows.Close()
		var file string
		var pos uint32
		for rows.Next() {
			var name, value string
			if err := rows.Scan(&name, &value); err != nil {
				return "", 0, fmt.Errorf("full load: %w", err)
			}
			switch strings.ToLower(name) {
			case "binlog_snapshot_file":
				file = value
			case "binlog_snapshot_position":
				fmt.Sscan(value, &pos)
			}
		}
		if err := rows.Err(); err != nil {
			return "", 0, fmt.Errorf("full load: %w", err)
		}
		if file == "" {
			return "", 0, fmt.Errorf("full load: the server reports no binlog snapshot position: is the binary log enabled (--log-bin)?")
		}
		return file, pos, nil
	}
	// MySQL has no binlog_snapshot_* status: hold a global read lock for the
	// instant it takes to start the snapshot and read the position.
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		return "", 0, fmt.Errorf("full load on MySQL needs a brief FLUSH TABLES WITH READ LOCK (grant RELOAD) until lock-free watermarks land: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "UNLOCK TABLES")
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return "", 0, fmt.Errorf("full load: %w", err)
	}
	file, pos, err := s.binlogPositionOn(ctx, conn)
	if err != nil {
		return "", 0, err
	}
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		return "", 0, fmt.Errorf("full load: %w", err)
	}
	return file, pos, nil
}
