package capture

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/binlake/binlake/internal/config"
)

// Retention is how long the source keeps its binlogs, read once at start.
type Retention struct {
	Known  bool          // false: not read (yet), or not readable
	Period time.Duration // 0: binlogs are never purged automatically
	From   string        // the setting it was read from
}

// BinlogRetention is the source's binlog retention, read when capture
// connected (CDC tasks only).
func (c *Capture) BinlogRetention() Retention {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retention
}

// observeSource reads what status and warnings use and the checks do not
// keep: the binlog retention, and the estimated row count of each table
// about to be loaded (information_schema.TABLES.TABLE_ROWS, exact for
// MyISAM, a statistic for InnoDB). Neither is required: errors leave them
// unknown.
func (c *Capture) observeSource(ctx context.Context, toLoad []TableName) {
	var r Retention
	if c.cfg.Migration != config.MigrationFullLoad {
		r = c.src.binlogRetention(ctx)
	}
	est := map[string]uint64{}
	for _, t := range toLoad {
		var n sql.NullInt64
		err := c.src.db.QueryRowContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", t.Schema, t.Table).Scan(&n)
		if err == nil && n.Valid && n.Int64 >= 0 {
			est[t.String()] = uint64(n.Int64)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retention = r
	for name, n := range est {
		if p := c.state.Tables[name]; p != nil {
			p.EstimatedRows = n
		}
	}
}

// binlogRetention reads the source's binlog retention: RDS's 'binlog
// retention hours' where it exists, else binlog_expire_logs_seconds, else
// expire_logs_days.
func (s *source) binlogRetention(ctx context.Context) Retention {
	var hours sql.NullString
	if err := s.db.QueryRowContext(ctx, "SELECT value FROM mysql.rds_configuration WHERE name = 'binlog retention hours'").Scan(&hours); err == nil {
		h, err := strconv.ParseFloat(hours.String, 64)
		if !hours.Valid || err != nil || h <= 0 {
			return Retention{} // RDS purges as soon as it can: no period to compare with
		}
		return Retention{Known: true, Period: time.Duration(h * float64(time.Hour)), From: "RDS binlog retention hours=" + hours.String}
	}
	var secs sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_expire_logs_seconds").Scan(&secs); err == nil && secs.Valid && secs.Int64 > 0 {
		return Retention{Known: true, Period: time.Duration(secs.Int64) * time.Second, From: fmt.Sprintf("binlog_expire_logs_seconds=%d", secs.Int64)}
	}
	var days sql.NullFloat64
	err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.expire_logs_days").Scan(&days)
	switch {
	case err == nil && days.Valid && days.Float64 > 0:
		return Retention{Known: true, Period: time.Duration(days.Float64 * float64(24*time.Hour)), From: "expire_logs_days=" + strconv.FormatFloat(days.Float64, 'f', -1, 64)}
	case err == nil || secs.Valid:
		return Retention{Known: true, From: "binlog_expire_logs_seconds=0, expire_logs_days=0"}
	}
	return Retention{}
}
