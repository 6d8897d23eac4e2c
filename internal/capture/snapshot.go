package capture

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// snapshot starts a consistent-snapshot transaction on conn and returns its
// exact binlog position W: the snapshot holds exactly the transactions
// that commit before W in the binlog. Each chunk of the full load is read
// in one (chunk.go).
func (s *source) snapshot(ctx context.Context, conn *sql.Conn, lock bool) (string, uint32, error) {
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
	if !lock {
		return "", 0, fmt.Errorf("full load: MySQL snapshots need watermarks or a lock (full_load.snapshot)")
	}
	// full_load.snapshot: lock. MySQL has no binlog_snapshot_* status: hold
	// a global read lock for the instant it takes to start the snapshot and
	// read the position.
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		return "", 0, fmt.Errorf("full_load.snapshot: lock needs FLUSH TABLES WITH READ LOCK (grant RELOAD; RDS and Aurora refuse it: leave full_load.snapshot at auto, which writes watermarks instead): %w", err)
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
