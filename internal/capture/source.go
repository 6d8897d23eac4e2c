package capture

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
)

// source is the SQL side of the MySQL/MariaDB connection: settings checks,
// table metadata and full-load reads.
type source struct {
	db     *sql.DB
	flavor string // "mysql" or "mariadb"
	// detected is the flavor VERSION() tells when source.mysql.flavor set
	// flavor; "" with flavor auto.
	detected string
	version  string
	serverID uint32
	charsets map[uint64]string // collation id → character set
	tls      *tls.Config       // source.mysql.tls; nil: plain TCP
}

func openSource(ctx context.Context, c config.MySQL) (*source, error) {
	mc := mysql.NewConfig()
	mc.User = c.User
	mc.Passwd = c.Password
	mc.Net = "tcp"
	mc.Addr = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	mc.Timeout = c.ConnectTimeout.D()
	mc.MaxAllowedPacket = 0 // ask the server
	mc.Params = map[string]string{"time_zone": "'+00:00'"}
	mc.InterpolateParams = true
	if err := mc.Apply(mysql.Charset("utf8mb4", "")); err != nil {
		return nil, fmt.Errorf("source.mysql: %w", err)
	}
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	mc.TLS = tc
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("source.mysql: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	s := &source{db: db, tls: tc}
	if err := s.inspect(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if f := c.Flavor; f == "mysql" || f == "mariadb" {
		// Configured: it wins over VERSION() (a proxy in front of the
		// server may report another version); preflight warns when they
		// disagree.
		s.detected, s.flavor = s.flavor, f
	}
	return s, nil
}

func (s *source) Close() error { return s.db.Close() }

// inspect reads the server's identity and checks the binlog settings CDC
// needs, naming the fix for each one that is wrong.
func (s *source) inspect(ctx context.Context) error {
	if err := s.db.QueryRowContext(ctx, "SELECT VERSION(), @@server_id").Scan(&s.version, &s.serverID); err != nil {
		return fmt.Errorf("connecting to source: %w", err)
	}
	s.flavor = "mysql"
	if strings.Contains(strings.ToLower(s.version), "mariadb") {
		s.flavor = "mariadb"
	}
	s.charsets = map[uint64]string{63: "binary"}
	rows, err := s.db.QueryContext(ctx, "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
	if err != nil {
		return fmt.Errorf("reading collations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uint64
		var cs string
		if err := rows.Scan(&id, &cs); err != nil {
			return fmt.Errorf("reading collations: %w", err)
		}
		s.charsets[id] = cs
	}
	return rows.Err()
}

// TableName is a schema-qualified table.
type TableName struct{ Schema, Table string }

func (t TableName) String() string { return t.Schema + "." + t.Table }

// listTables returns the base tables the selection rules select.
func (s *source) listTables(ctx context.Context, selected func(schema, table string) bool) ([]TableName, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
		ORDER BY TABLE_SCHEMA, TABLE_NAME`)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	defer rows.Close()
	var out []TableName
	for rows.Next() {
		var t TableName
		if err := rows.Scan(&t.Schema, &t.Table); err != nil {
			return nil, fmt.Errorf("listing tables: %w", err)
		}
		if selected(t.Schema, t.Table) {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

// fixedBinaryColumns returns the columns of t that are MariaDB's INET6,
// INET4 or UUID, which binlog table maps describe as BINARY(n). It reads the
// schema of now, not of the event's binlog position: the binlog reader asks
// again after every DDL, so only an event read long after a later ALTER
// TABLE changed such a column could be misread.
func (s *source) fixedBinaryColumns(ctx context.Context, t TableName) (map[string]colKind, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND DATA_TYPE IN ('inet6', 'inet4', 'uuid')`, t.Schema, t.Table)
	if err != nil {
		return nil, fmt.Errorf("reading column types of %s: %w", t, err)
	}
	defer rows.Close()
	out := map[string]colKind{}
	for rows.Next() {
		var name, dataType string
		if err := rows.Scan(&name, &dataType); err != nil {
			return nil, fmt.Errorf("reading column types of %s: %w", t, err)
		}
		out[name] = sqlKind(dataType, "", nil)
	}
	return out, rows.Err()
}

// tableInfo is what the full load needs to know of a table.
type tableInfo struct {
	name    TableName
	columns []sqlColumn
	pk      []string // primary-key column names, in key order; empty without one
	// pkIndex names the index pk comes from: PRIMARY, or the unique index
	// on NOT NULL columns that the server uses as the primary key of a
	// table without one (and writes as such in binlog table maps).
	pkIndex string
	def     change.TableDef
}

// noTableError: information_schema knows no columns of the table.
type noTableError struct{ t TableName }

func (e noTableError) Error() string {
	return fmt.Sprintf("table %s does not exist (was it dropped or renamed?)", e.t)
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func readTableInfo(ctx context.Context, q queryer, t TableName) (*tableInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, COLUMN_KEY, IS_NULLABLE
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, t.Schema, t.Table)
	if err != nil {
		return nil, fmt.Errorf("reading columns of %s: %w", t, err)
	}
	defer rows.Close()
	ti := &tableInfo{name: t}
	pri := map[string]bool{} // COLUMN_KEY = 'PRI': the primary key, or the unique key standing in for it
	for rows.Next() {
		var name, dataType, columnType, key, nullable string
		var charset sql.NullString
		if err := rows.Scan(&name, &dataType, &columnType, &charset, &key, &nullable); err != nil {
			return nil, fmt.Errorf("reading columns of %s: %w", t, err)
		}
		var cs *string
		if charset.Valid {
			cs = &charset.String
		}
		ti.columns = append(ti.columns, sqlColumn{name: name, kind: sqlKind(dataType, columnType, cs)})
		if key == "PRI" {
			pri[name] = true
		}
		ti.def.Columns = append(ti.def.Columns, change.ColumnDef{Name: name, Type: columnType, DataType: dataType, Nullable: nullable == "YES"})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading columns of %s: %w", t, err)
	}
	if len(ti.columns) == 0 {
		return nil, noTableError{t}
	}
	if ti.pkIndex, ti.pk, err = primaryKey(ctx, q, t, pri); err != nil {
		return nil, err
	}
	ti.def.PrimaryKey = ti.pk
	return ti, nil
}

// primaryKey returns the index and columns (in key order) that identify a
// table's rows: PRIMARY, else the unique index whose columns are the ones
// information_schema marks PRI (pri), which the server promotes to primary
// key when a table has none and names as its primary key in binlog table
// maps. Without either, the table has no key.
func primaryKey(ctx context.Context, q queryer, t TableName, pri map[string]bool) (string, []string, error) {
	if len(pri) == 0 {
		return "", nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX`, t.Schema, t.Table)
	if err != nil {
		return "", nil, fmt.Errorf("reading primary key of %s: %w", t, err)
	}
	defer rows.Close()
	var names []string
	cols := map[string][]string{}
	for rows.Next() {
		var index, col string
		if err := rows.Scan(&index, &col); err != nil {
			return "", nil, fmt.Errorf("reading primary key of %s: %w", t, err)
		}
		if _, ok := cols[index]; !ok {
			names = append(names, index)
		}
		cols[index] = append(cols[index], col)
	}
	if err := rows.Err(); err != nil {
		return "", nil, fmt.Errorf("reading primary key of %s: %w", t, err)
	}
	for _, index := range names {
		c := cols[index]
		if index == "PRIMARY" {
			return index, c, nil
		}
		same := len(c) == len(pri)
		for _, name := range c {
			same = same && pri[name]
		}
		if same {
			return index, c, nil
		}
	}
	return "", nil, nil
}
