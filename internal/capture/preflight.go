package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/binlake/binlake/internal/config"
)

// Level grades a preflight finding.
type Level uint8

const (
	LevelOK   Level = iota // nothing to do
	LevelWarn              // works, but worth a look
	LevelFail              // binlake cannot run until it is fixed
)

func (l Level) String() string {
	switch l {
	case LevelOK:
		return "OK"
	case LevelWarn:
		return "WARN"
	}
	return "FAIL"
}

// Finding is the result of one preflight check.
type Finding struct {
	Check  string // what was checked, e.g. "binlog_format"
	Level  Level
	Detail string // what was found
	Fix    string // how to fix it; empty when Level is LevelOK
	// binlogLost marks the failure of a checkpoint whose binlog was
	// purged, which full_load.on_binlog_loss: resnapshot cures by itself.
	binlogLost bool
}

func (f Finding) String() string {
	s := fmt.Sprintf("%-4s  %s: %s", f.Level, f.Check, f.Detail)
	if f.Fix != "" {
		s = strings.TrimRight(s, ".") + ". Fix: " + f.Fix
	}
	return s
}

// Preflight connects to the source of cfg and checks what the task depends
// on there: binlog settings, privileges, the replica server id, the tables
// the selection rules select, binlog retention and primary keys. It never
// fails: a source it cannot reach is a failed finding. binlake run makes the
// same checks and refuses to start on any LevelFail.
func Preflight(ctx context.Context, cfg *config.Config) []Finding {
	src, err := openSource(ctx, cfg.Source.MySQL)
	if err != nil {
		return []Finding{connectFinding(cfg.Source.MySQL, err)}
	}
	defer src.Close()
	return src.preflight(ctx, cfg)
}

// connectFinding explains a failed connection.
func connectFinding(c config.MySQL, err error) Finding {
	f := Finding{Check: "source", Level: LevelFail, Detail: fmt.Sprintf("cannot connect to %s@%s:%d: %v", c.User, c.Host, c.Port, err)}
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &me) && me.Number == 1045:
		f.Fix = "check source.mysql.user and source.mysql.password, and that the user may connect from this host"
	case errors.As(err, &me):
		f.Fix = "see the server's error above"
	default:
		f.Fix = "check source.mysql.host and source.mysql.port, that the server listens on TCP there (not only on a socket: skip-networking, bind-address) and that no firewall is in the way"
	}
	return f
}

// FailedError is returned by Run when the source fails a preflight check.
type FailedError struct {
	Version  string
	Findings []Finding // the failed ones
}

func (e *FailedError) Error() string {
	lines := make([]string, len(e.Findings))
	for i, f := range e.Findings {
		lines[i] = f.Check + ": " + strings.TrimRight(f.Detail, ".") + ". Fix: " + f.Fix
	}
	return fmt.Sprintf("source %s is not ready (binlake check lists every check):\n  %s", e.Version, strings.Join(lines, "\n  "))
}

// preflight runs every source check.
func (s *source) preflight(ctx context.Context, cfg *config.Config) []Finding {
	my := cfg.Source.MySQL
	out := []Finding{{Check: "source", Level: LevelOK,
		Detail: fmt.Sprintf("connected to %s at %s:%d as %s, server_id %d", s.version, my.Host, my.Port, my.User, s.serverID)}}
	if s.detected != "" && s.detected != s.flavor {
		out = append(out, Finding{Check: "flavor", Level: LevelWarn,
			Detail: fmt.Sprintf("source.mysql.flavor is %s, but the server's version %q reads as %s: binlake speaks %s's binlog protocol, GTIDs and SQL, as configured", s.flavor, s.version, s.detected, s.flavor),
			Fix:    "remove source.mysql.flavor (or set it to auto) unless something in front of the server reports another version than the server's own"})
	}
	// Every task reads the binlog: CDC does, and so does the full load,
	// whose chunks the binlog reader merges with the changes (load.go).
	out = append(out, s.checkBinlogSettings(ctx)...)
	out = append(out, s.checkServerID(my.ServerID))
	tables, selFinding := s.checkSelection(ctx, cfg)
	out = append(out, s.checkPrivileges(ctx, cfg, tables)...)
	out = append(out, selFinding)
	out = append(out, s.checkRetention(ctx))
	if f, ok := s.checkCheckpoint(ctx, cfg.StateDir); ok {
		if f.binlogLost && cfg.FullLoad.OnBinlogLoss == config.OnBinlogLossResnapshot {
			f.Level = LevelWarn
			f.Detail += "; binlake run loads every selected table again (full_load.on_binlog_loss: resnapshot)"
			f.Fix = "none needed; keep binlogs longer than binlake may stay stopped (binlog_expire_logs_seconds / expire_logs_days)"
		}
		out = append(out, f)
	}
	if len(tables) > 0 {
		out = append(out, s.checkPrimaryKeys(ctx, tables))
	}
	return out
}

// failed returns the findings of level LevelFail.
func failed(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Level == LevelFail {
			out = append(out, f)
		}
	}
	return out
}

// binlogSetting is a server variable CDC depends on.
type binlogSetting struct {
	name, want, why, fix string
	// warnOnly: capture works otherwise, at a cost why tells.
	warnOnly bool
}

var binlogSettings = []binlogSetting{
	{"log_bin", "ON", "binlake reads changes from the binary log, and the full load takes its snapshot position from it",
		"start the server with --log-bin (RDS/Aurora: enable automated backups)", false},
	{"binlog_format", "ROW", "CDC decodes row events",
		"SET GLOBAL binlog_format=ROW, and start the server with --binlog-format=ROW so that it stays after a restart (sessions already open keep their format)", false},
	{"binlog_row_image", "FULL", "update and delete records carry every column",
		"SET GLOBAL binlog_row_image=FULL, and start the server with --binlog-row-image=FULL", false},
	{"binlog_row_metadata", "FULL", "without FULL metadata the binlog's table maps do not name the columns, so capture decodes rows with its schema history (the schema at start plus every DDL in the binlog, parsed); a DDL the parser cannot read (MariaDB's system versioning or compressed columns), or a schema changed without the binlog (sql_log_bin=0), puts that table in \"Table error\" until it is reloaded, and a task started at an older cdc_start_position begins with today's schema",
		"SET GLOBAL binlog_row_metadata=FULL, and start the server with --binlog-row-metadata=FULL (needs MySQL 8.0.1 or MariaDB 10.5)", true},
}

func (s *source) checkBinlogSettings(ctx context.Context) []Finding {
	var out []Finding
	if s.flavor == "mysql" {
		// MySQL 8 may write JSON updates as diffs, which leave the new
		// document out of the binlog.
		f := Finding{Check: "binlog_row_value_options", Level: LevelOK, Detail: "JSON updates carry whole documents"}
		var v sql.NullString
		if err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_row_value_options").Scan(&v); err == nil && strings.Contains(strings.ToUpper(v.String), "PARTIAL_JSON") {
			f.Level, f.Detail = LevelFail, "is PARTIAL_JSON, want '': an update of a JSON column would carry a change of the document, not the document, and the table would go to \"Table error\""
			f.Fix = "SET GLOBAL binlog_row_value_options='' (and PERSIST it; sessions keep the setting they started with)"
		}
		out = append(out, f)
	}
	for _, w := range binlogSettings {
		f := Finding{Check: w.name, Level: LevelOK}
		var v sql.NullString
		err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL."+w.name).Scan(&v)
		switch {
		case err != nil:
			f.Level, f.Detail, f.Fix = LevelFail, fmt.Sprintf("cannot read it (%v); want %s: %s", err, w.want, w.why), w.fix
		case strings.EqualFold(v.String, w.want) || (w.want == "ON" && v.String == "1"):
			f.Detail = w.want
		default:
			f.Level, f.Detail, f.Fix = LevelFail, fmt.Sprintf("is %s, want %s: %s", v.String, w.want, w.why), w.fix
		}
		if f.Level == LevelFail && w.warnOnly {
			f.Level = LevelWarn
		}
		out = append(out, f)
	}
	return out
}

// fullRowMetadata reports whether the source writes binlog_row_metadata=FULL
// (an error reading it, as on MySQL before 8.0.1, says no).
func (s *source) fullRowMetadata(ctx context.Context) bool {
	var v sql.NullString
	err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_row_metadata").Scan(&v)
	return err == nil && strings.EqualFold(v.String, "FULL")
}

func (s *source) checkServerID(id uint32) Finding {
	if id == s.serverID {
		return Finding{Check: "server_id", Level: LevelFail,
			Detail: fmt.Sprintf("source.mysql.server_id %d is the source's own @@server_id; a replica must use an id of its own", id),
			Fix:    "set source.mysql.server_id to an id no server or replica of this source uses, or leave it out to derive one from the task name"}
	}
	return Finding{Check: "server_id", Level: LevelOK, Detail: fmt.Sprintf("replica id %d differs from the source's %d", id, s.serverID)}
}

// checkSelection lists the selected tables.
func (s *source) checkSelection(ctx context.Context, cfg *config.Config) ([]TableName, Finding) {
	f := Finding{Check: "tables"}
	tables, err := s.listTables(ctx, cfg.Selected)
	if err != nil {
		f.Level, f.Detail, f.Fix = LevelFail, err.Error(), "grant the user SELECT on the tables to capture"
		return nil, f
	}
	if len(tables) > 0 {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.String()
		}
		f.Level, f.Detail = LevelOK, fmt.Sprintf("%d selected: %s", len(tables), abbreviate(names, 10))
		return tables, f
	}
	schemas, err := s.schemas(ctx)
	if err != nil {
		schemas = []string{"(cannot list them: " + err.Error() + ")"}
	}
	seen := "none"
	if len(schemas) > 0 {
		seen = strings.Join(schemas, ", ")
	}
	f.Detail = "no table matches the selection rules; schemas seen: " + seen
	f.Fix = "correct the patterns under tables: (they are case-sensitive, and _ matches any character); if the tables exist, grant the user SELECT on them, since information_schema shows only tables the user has a privilege on"
	if cfg.Migration == config.MigrationFullLoad {
		f.Level = LevelFail
	} else {
		f.Level = LevelWarn
		f.Detail += "; tables created later are captured from the binlog"
	}
	return nil, f
}

// schemas lists the user schemas the user can see.
func (s *source) schemas(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA
		WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY SCHEMA_NAME`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// checkRetention warns when the source may purge binlogs before a stopped
// binlake comes back for them.
func (s *source) checkRetention(ctx context.Context) Finding {
	f := Finding{Check: "binlog retention", Level: LevelOK}
	const want = 24 * time.Hour
	fix := "keep binlogs at least a day, better a week: SET GLOBAL binlog_expire_logs_seconds=604800 (MariaDB before 10.6: SET GLOBAL expire_logs_days=7), and the same in the server's config file"
	// RDS and Aurora purge by their own setting, NULL meaning as soon as possible.
	var hours sql.NullString
	if err := s.db.QueryRowContext(ctx, "SELECT value FROM mysql.rds_configuration WHERE name = 'binlog retention hours'").Scan(&hours); err == nil {
		h, _ := strconv.ParseFloat(hours.String, 64)
		if !hours.Valid || time.Duration(h*float64(time.Hour)) < want {
			f.Level = LevelWarn
			f.Detail = fmt.Sprintf("RDS 'binlog retention hours' is %s: binlogs may be purged before binlake reads them after a stop", nullText(hours))
			f.Fix = "CALL mysql.rds_set_configuration('binlog retention hours', 168)"
			return f
		}
		f.Detail = fmt.Sprintf("RDS 'binlog retention hours' is %s", hours.String)
		return f
	}
	var retention time.Duration
	var from string
	var secs sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_expire_logs_seconds").Scan(&secs); err == nil && secs.Int64 > 0 {
		retention, from = time.Duration(secs.Int64)*time.Second, fmt.Sprintf("binlog_expire_logs_seconds=%d", secs.Int64)
	} else {
		var days sql.NullFloat64
		if err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.expire_logs_days").Scan(&days); err == nil && days.Float64 > 0 {
			retention = time.Duration(days.Float64 * float64(24*time.Hour))
			from = "expire_logs_days=" + strconv.FormatFloat(days.Float64, 'f', -1, 64)
		}
	}
	switch {
	case retention == 0:
		f.Detail = "binlogs are never purged automatically (binlog_expire_logs_seconds and expire_logs_days are 0): mind the disk"
	case retention < want:
		f.Level = LevelWarn
		f.Detail = fmt.Sprintf("binlogs are purged after %s (%s): if binlake is stopped longer, the binlog it must resume from is gone and the tables must be loaded again", retention, from)
		f.Fix = fix
	default:
		f.Detail = fmt.Sprintf("binlogs are kept %s (%s)", retention, from)
	}
	return f
}

func nullText(s sql.NullString) string {
	if !s.Valid {
		return "NULL"
	}
	return s.String
}

// checkPrimaryKeys warns about selected tables without a primary key, nor
// a unique key on NOT NULL columns that the server takes for one (its
// columns are marked PRI).
func (s *source) checkPrimaryKeys(ctx context.Context, tables []TableName) Finding {
	f := Finding{Check: "primary keys"}
	rows, err := s.db.QueryContext(ctx, "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.COLUMNS WHERE COLUMN_KEY = 'PRI'")
	if err != nil {
		f.Level, f.Detail = LevelWarn, "cannot read primary keys: "+err.Error()
		f.Fix = "grant the user SELECT on the selected tables"
		return f
	}
	defer rows.Close()
	hasPK := map[TableName]bool{}
	for rows.Next() {
		var t TableName
		if err := rows.Scan(&t.Schema, &t.Table); err != nil {
			f.Level, f.Detail = LevelWarn, "cannot read primary keys: "+err.Error()
			return f
		}
		hasPK[t] = true
	}
	var without []string
	for _, t := range tables {
		if !hasPK[t] {
			without = append(without, t.String())
		}
	}
	if len(without) == 0 {
		f.Level, f.Detail = LevelOK, fmt.Sprintf("all %d selected tables have one", len(tables))
		return f
	}
	f.Level = LevelWarn
	f.Detail = fmt.Sprintf("%d selected tables have none: %s (nor a unique key on NOT NULL columns); the full load reads such a table in one pass, in one snapshot, not in resumable chunks, and every record of it has partition-key-value schema.table, so a replay cannot tell its rows apart", len(without), abbreviate(without, 10))
	f.Fix = "add a primary key (ALTER TABLE ... ADD PRIMARY KEY (...)), or read these tables as an append-only change log"
	return f
}

func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

// grant is one line of SHOW GRANTS: privileges on an object.
type grant struct {
	privs  map[string]bool // upper case; "ALL" for ALL [PRIVILEGES]
	schema string          // "*" for *.*; a LIKE pattern at schema level
	table  string          // "*" for schema.*
}

var grantRe = regexp.MustCompile(`(?is)^GRANT\s+(.+?)\s+ON\s+(?:TABLE\s+)?(\S+)\s+TO\s`)

// parseGrant parses a GRANT line of SHOW GRANTS; ok is false for lines that
// grant no privileges on tables (roles, PROXY, procedures).
func parseGrant(line string) (g grant, ok bool) {
	m := grantRe.FindStringSubmatch(line)
	if m == nil {
		return grant{}, false
	}
	obj := m[2]
	if i := splitQualified(obj); i >= 0 {
		g.schema, g.table = unquote(obj[:i]), unquote(obj[i+1:])
	} else {
		return grant{}, false // PROCEDURE/FUNCTION objects, or unknown
	}
	g.privs = map[string]bool{}
	depth, start := 0, 0
	privs := m[1]
	for i := 0; i <= len(privs); i++ {
		if i < len(privs) {
			switch privs[i] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		p := strings.ToUpper(strings.TrimSpace(privs[start:i]))
		if j := strings.IndexByte(p, '('); j >= 0 {
			p = "" // column-level privileges cover only some columns
		}
		p = strings.Join(strings.Fields(p), " ")
		if p == "ALL PRIVILEGES" {
			p = "ALL"
		}
		if p != "" {
			g.privs[p] = true
		}
		start = i + 1
	}
	return g, true
}

// has reports whether g grants any of privs (or ALL).
func (g grant) has(privs ...string) bool {
	if g.privs["ALL"] {
		return true
	}
	for _, p := range privs {
		if g.privs[p] {
			return true
		}
	}
	return false
}

// covers reports whether g's object covers table t.
func (g grant) covers(t TableName) bool {
	if g.schema == "*" {
		return true
	}
	if !likeMatch(g.schema, t.Schema) {
		return false
	}
	return g.table == "*" || g.table == t.Table
}

// likeMatch matches a schema-level grant's name, a LIKE pattern in which _
// and % are wildcards and \ escapes them.
func likeMatch(pattern, s string) bool {
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '\\':
			if i+1 < len(pattern) {
				i++
				re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			}
		case '_':
			re.WriteString(".")
		case '%':
			re.WriteString(".*")
		default:
			re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	re.WriteString("$")
	ok, _ := regexp.MatchString(re.String(), s)
	return ok
}

// checkPrivileges reads SHOW GRANTS for the current user and checks
// REPLICATION SLAVE (binlog dump), REPLICATION CLIENT (binlog position) and
// SELECT on the selected tables. Privileges that may come from a role are
// not followed: a gap then is a warning, not a failure.
func (s *source) checkPrivileges(ctx context.Context, cfg *config.Config, tables []TableName) []Finding {
	var user string
	if err := s.db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user); err != nil {
		user = cfg.Source.MySQL.User
	}
	grantee := quoteUser(user)
	rows, err := s.db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return []Finding{{Check: "privileges", Level: LevelWarn, Detail: "cannot read SHOW GRANTS: " + err.Error(),
			Fix: "check by hand that " + grantee + " has REPLICATION SLAVE, REPLICATION CLIENT and SELECT"}}
	}
	defer rows.Close()
	var grants []grant
	roles := false
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return []Finding{{Check: "privileges", Level: LevelWarn, Detail: "cannot read SHOW GRANTS: " + err.Error()}}
		}
		if g, ok := parseGrant(line); ok {
			grants = append(grants, g)
		} else if !strings.Contains(strings.ToUpper(line), " ON ") {
			roles = true // GRANT `role` TO user
		}
	}
	global := func(privs ...string) bool {
		for _, g := range grants {
			if g.schema == "*" && g.has(privs...) {
				return true
			}
		}
		return false
	}
	severity := func(needed bool) Level {
		if !needed || roles {
			return LevelWarn
		}
		return LevelFail
	}

	var out []Finding
	var missing []string
	var why []string
	var level Level
	if !global("REPLICATION SLAVE", "REPLICATION REPLICA") {
		missing = append(missing, "REPLICATION SLAVE")
		why = append(why, "REPLICATION SLAVE to read the binlog")
		level = max(level, severity(true))
	}
	// MariaDB 10.5+ shows REPLICATION CLIENT as BINLOG MONITOR.
	if !global("REPLICATION CLIENT", "BINLOG MONITOR") {
		missing = append(missing, "REPLICATION CLIENT")
		why = append(why, "REPLICATION CLIENT to read the binlog position (SHOW MASTER STATUS)")
		level = max(level, severity(true))
	}
	if len(missing) > 0 {
		out = append(out, Finding{Check: "replication privileges", Level: level,
			Detail: fmt.Sprintf("%s lacks %s", grantee, strings.Join(why, " and ")),
			Fix:    fmt.Sprintf("GRANT %s ON *.* TO %s", strings.Join(missing, ", "), grantee)})
	} else {
		out = append(out, Finding{Check: "replication privileges", Level: LevelOK, Detail: grantee + " has REPLICATION SLAVE and REPLICATION CLIENT"})
	}

	out = append(out, s.checkSnapshotPrivileges(ctx, cfg, grants, grantee, severity(cfg.Migration != config.MigrationCDC))...)

	if global("SELECT") {
		return append(out, Finding{Check: "select privilege", Level: LevelOK, Detail: grantee + " has SELECT on *.*"})
	}
	var uncovered []string
	schemas := map[string]bool{}
	for _, t := range tables {
		ok := false
		for _, g := range grants {
			if g.has("SELECT") && g.covers(t) {
				ok = true
				break
			}
		}
		if !ok {
			uncovered = append(uncovered, t.String())
			schemas[t.Schema] = true
		}
	}
	if len(uncovered) == 0 {
		return append(out, Finding{Check: "select privilege", Level: LevelOK, Detail: fmt.Sprintf("%s has SELECT on the %d selected tables", grantee, len(tables))})
	}
	var fixes []string
	for _, sc := range sortedKeys(schemas) {
		fixes = append(fixes, fmt.Sprintf("GRANT SELECT ON %s.* TO %s", quoteIdent(sc), grantee))
	}
	return append(out, Finding{Check: "select privilege", Level: severity(cfg.Migration != config.MigrationCDC),
		Detail: fmt.Sprintf("%s lacks SELECT, which the full load needs, on %s", grantee, abbreviate(uncovered, 10)),
		Fix:    strings.Join(fixes, "; ")})
}

// checkSnapshotPrivileges checks what the full load's snapshots need
// beyond SELECT: on MySQL, writing the watermark table (or, with
// full_load.snapshot: lock, RELOAD). level is a gap's severity: a failure
// when the task loads tables.
func (s *source) checkSnapshotPrivileges(ctx context.Context, cfg *config.Config, grants []grant, grantee string, level Level) []Finding {
	may := func(t TableName, privs ...string) bool {
		for _, p := range privs {
			ok := false
			for _, g := range grants {
				if g.has(p) && g.covers(t) {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
	if !useWatermarks(cfg, s.flavor) {
		if s.flavor != "mysql" {
			return nil // MariaDB's snapshots need nothing more
		}
		if may(TableName{"*", "*"}, "RELOAD") {
			return []Finding{{Check: "snapshot privileges", Level: LevelOK, Detail: grantee + " has RELOAD (full_load.snapshot: lock)"}}
		}
		return []Finding{{Check: "snapshot privileges", Level: level,
			Detail: grantee + " lacks RELOAD, which full_load.snapshot: lock needs for FLUSH TABLES WITH READ LOCK",
			Fix:    "GRANT RELOAD ON *.* TO " + grantee + ", or leave full_load.snapshot at auto (watermarks, no lock)"}}
	}
	w := newWatermarks(cfg)
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", w.table.Schema, w.table.Table).Scan(&n); err != nil {
		n = 1 // unknown: check the writes only
	}
	privs := []string{"SELECT", "INSERT", "UPDATE"}
	if n == 0 {
		privs = append(privs, "CREATE")
	}
	if may(w.table, privs...) {
		detail := fmt.Sprintf("%s may write the watermark table %s", grantee, w.table)
		if n == 0 {
			detail = fmt.Sprintf("%s may create and write the watermark table %s (binlake creates it at the first chunk)", grantee, w.table)
		}
		return []Finding{{Check: "watermark table", Level: LevelOK, Detail: detail}}
	}
	fix := fmt.Sprintf("GRANT %s ON %s TO %s", strings.Join(privs, ", "), w.quoted(), grantee)
	if n == 0 {
		fix = fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s; CREATE TABLE %s %s; GRANT SELECT, INSERT, UPDATE ON %s TO %s", quoteIdent(w.table.Schema), w.quoted(), watermarkColumns, w.quoted(), grantee)
	}
	return []Finding{{Check: "watermark table", Level: level,
		Detail: fmt.Sprintf("%s cannot %s the watermark table %s (full_load.watermark_table), which the full load's snapshots write to (full_load.snapshot: %s)", grantee, strings.ToLower(strings.Join(privs, ", ")), w.table, cfg.FullLoad.SnapshotMode()),
		Fix:    fix + ", or set full_load.snapshot: lock (needs RELOAD)"}}
}

// quoteUser turns CURRENT_USER()'s user@host into 'user'@'host'.
func quoteUser(u string) string {
	i := strings.LastIndexByte(u, '@')
	if i < 0 {
		return "'" + u + "'"
	}
	name, host := u[:i], u[i+1:]
	return "'" + strings.ReplaceAll(name, "'", "''") + "'@'" + strings.ReplaceAll(host, "'", "''") + "'"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
