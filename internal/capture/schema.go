package capture

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlake/binlake/internal/change"
)

// Binlog rows events carry column types, not names. With
// binlog_row_metadata=FULL the table-map event before them names the
// columns; with MINIMAL (MySQL 8's default) or NO_LOG (MariaDB's) it does
// not, and capture takes the names from its schema history: the schema of
// each table when capture started (information_schema), changed by every DDL
// statement read from the binlog since (applied with the TiDB SQL parser,
// schemaddl.go), each version with the binlog position from which it holds.
// The history is saved in the capture checkpoint, so that after a restart
// an old event is decoded with the schema in force at its position, not with
// today's. Every table map decoded with the history is checked against it
// (column count and types); a mismatch, or a DDL the parser cannot apply,
// puts the table in "Table error" with the reason, and its events are left
// out from there: never a guess, and the other tables go on.

// SchemaHistory is the schema of the tables capture knows, by position.
type SchemaHistory struct {
	// ServerCharset is @@character_set_server: the character set of
	// columns of a table created later whose database, table and column
	// name none.
	ServerCharset string `json:"server_charset,omitempty"`
	// Databases holds each database's default character set.
	Databases map[string]string `json:"databases,omitempty"`
	// Tables holds the versions of each table ("schema.table"), oldest
	// first.
	Tables map[string][]TableVersion `json:"tables"`
	// Applied is the position of the last DDL applied: one read again
	// after a restart is not applied twice.
	Applied string `json:"applied,omitempty"`
}

// TableVersion is a table's schema from a binlog position on.
type TableVersion struct {
	// From is the stream-position of the DDL event (epoch/file/offset)
	// from which this version holds; empty: from before capture's start.
	From string `json:"from,omitempty"`
	// Schema is the table's schema; nil when the table does not exist
	// from From on (dropped, renamed away) or Error says why it is unknown.
	Schema *TableSchema `json:"schema,omitempty"`
	// Error tells why the schema is not known from From on (a DDL the
	// parser could not apply).
	Error string `json:"error,omitempty"`
}

// TableSchema is what decoding rows needs to know of a table.
type TableSchema struct {
	Columns    []SchemaColumn `json:"columns"`
	PrimaryKey []string       `json:"primary_key,omitempty"`
	// Charset is the table's default character set, for columns added
	// later without one.
	Charset string `json:"charset,omitempty"`
}

// SchemaColumn is one column, in information_schema's words.
type SchemaColumn struct {
	Name     string `json:"name"`
	DataType string `json:"data_type"`         // DATA_TYPE: "varchar"
	Type     string `json:"column_type"`       // COLUMN_TYPE: "varchar(40)", "int(10) unsigned"
	Charset  string `json:"charset,omitempty"` // character columns: their character set ("binary" for binary strings)
	Nullable bool   `json:"nullable,omitempty"`
	// Labels are the ENUM or SET labels, in order.
	Labels []string `json:"labels,omitempty"`
}

// column returns the index of the named column (column names are not case
// sensitive), or -1.
func (s *TableSchema) column(name string) int {
	return slices.IndexFunc(s.Columns, func(c SchemaColumn) bool { return strings.EqualFold(c.Name, name) })
}

func (s *TableSchema) clone() *TableSchema {
	c := &TableSchema{Charset: s.Charset, PrimaryKey: slices.Clone(s.PrimaryKey), Columns: slices.Clone(s.Columns)}
	return c
}

// def is the table definition control records carry.
func (s *TableSchema) def() change.TableDef {
	var d change.TableDef
	for _, c := range s.Columns {
		d.Columns = append(d.Columns, change.ColumnDef{Name: c.Name, Type: c.Type, DataType: c.DataType, Nullable: c.Nullable})
	}
	d.PrimaryKey = slices.Clone(s.PrimaryKey)
	return d
}

// pkIndexes returns the column indexes of the primary key.
func (s *TableSchema) pkIndexes() []int {
	var out []int
	for _, k := range s.PrimaryKey {
		if i := s.column(k); i >= 0 {
			out = append(out, i)
		}
	}
	return out
}

// kind is the value rule of column i.
func (s *TableSchema) kind(i int) colKind {
	c := s.Columns[i]
	var cs *string
	if c.Charset != "" {
		cs = &c.Charset
	}
	return sqlKind(c.DataType, c.Type, cs)
}

// at returns the version of table t in force at position pos (a
// stream-position string), and whether the history knows the table there.
func (h *SchemaHistory) at(t TableName, pos string) (TableVersion, bool) {
	vs := h.Tables[t.String()]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].From <= pos {
			return vs[i], true
		}
	}
	return TableVersion{}, false
}

// latest returns the newest version of table key and whether there is one.
func (h *SchemaHistory) latest(key string) (TableVersion, bool) {
	vs := h.Tables[key]
	if len(vs) == 0 {
		return TableVersion{}, false
	}
	return vs[len(vs)-1], true
}

// set makes v the version of table key from v.From on; it replaces one
// from the same position (a statement that changes a table twice, as
// RENAME TABLE a TO b, c TO a does).
func (h *SchemaHistory) set(key string, v TableVersion) {
	vs := h.Tables[key]
	if n := len(vs); n > 0 && vs[n-1].From == v.From {
		vs[n-1] = v
		return
	}
	h.Tables[key] = append(vs, v)
}

// prune drops the versions no position at or after pos (the checkpoint)
// can need, and the tables that no longer exist there.
func (h *SchemaHistory) prune(pos string) {
	for key, vs := range h.Tables {
		i := len(vs) - 1
		for i > 0 && vs[i].From > pos {
			i--
		}
		vs = vs[i:]
		if len(vs) == 1 && vs[0].Schema == nil && vs[0].Error == "" && vs[0].From <= pos {
			delete(h.Tables, key)
			continue
		}
		h.Tables[key] = vs
	}
}

// positionKey is the stream-position string of a binlog event's start, as
// history versions are keyed.
func positionKey(epoch uint32, file, offset uint64) string {
	return change.Position{Epoch: epoch, File: file, Offset: offset}.String()
}

// seedSchemaHistory reads the schema of tables and the character set
// defaults from information_schema: the history's first versions, right
// for positions from now on. Read before capture's start position is
// taken, so that a DDL in between is read from the binlog and applied.
func (s *source) seedSchemaHistory(ctx context.Context, tables []TableName) (*SchemaHistory, error) {
	h := &SchemaHistory{Databases: map[string]string{}, Tables: map[string][]TableVersion{}}
	if err := s.db.QueryRowContext(ctx, "SELECT @@character_set_server").Scan(&h.ServerCharset); err != nil {
		return nil, fmt.Errorf("reading the server's character set: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA")
	if err != nil {
		return nil, fmt.Errorf("reading database character sets: %w", err)
	}
	for rows.Next() {
		var db, cs string
		if err := rows.Scan(&db, &cs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading database character sets: %w", err)
		}
		h.Databases[db] = cs
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading database character sets: %w", err)
	}
	for _, t := range tables {
		ts, err := readTableSchema(ctx, s.db, t)
		if err != nil {
			if _, gone := err.(noTableError); gone {
				continue // dropped since it was listed: the binlog says so
			}
			return nil, err
		}
		h.Tables[t.String()] = []TableVersion{{Schema: ts}}
	}
	return h, nil
}

// readTableSchema reads a table's schema from information_schema.
func readTableSchema(ctx context.Context, q queryer, t TableName) (*TableSchema, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.CHARACTER_SET_NAME, c.IS_NULLABLE, c.COLUMN_KEY,
			COALESCE(cc.CHARACTER_SET_NAME, '')
		FROM information_schema.COLUMNS c
		JOIN information_schema.TABLES tb ON tb.TABLE_SCHEMA = c.TABLE_SCHEMA AND tb.TABLE_NAME = c.TABLE_NAME
		LEFT JOIN information_schema.COLLATION_CHARACTER_SET_APPLICABILITY cc ON cc.COLLATION_NAME = tb.TABLE_COLLATION
		WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION`, t.Schema, t.Table)
	if err != nil {
		return nil, fmt.Errorf("reading the schema of %s: %w", t, err)
	}
	defer rows.Close()
	ts := &TableSchema{}
	pri := map[string]bool{}
	for rows.Next() {
		var c SchemaColumn
		var charset sql.NullString
		var nullable, key string
		if err := rows.Scan(&c.Name, &c.DataType, &c.Type, &charset, &nullable, &key, &ts.Charset); err != nil {
			return nil, fmt.Errorf("reading the schema of %s: %w", t, err)
		}
		c.DataType = strings.ToLower(c.DataType)
		c.Nullable = nullable == "YES"
		if charset.Valid {
			c.Charset = charset.String
		} else if isBinaryString(c.DataType) {
			c.Charset = "binary"
		}
		if c.DataType == "enum" || c.DataType == "set" {
			c.Labels = change.TypeLabels(c.Type)
		}
		if key == "PRI" {
			pri[c.Name] = true
		}
		ts.Columns = append(ts.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the schema of %s: %w", t, err)
	}
	if len(ts.Columns) == 0 {
		return nil, noTableError{t}
	}
	if _, ts.PrimaryKey, err = primaryKey(ctx, q, t, pri); err != nil {
		return nil, err
	}
	return ts, nil
}

// isBinaryString reports the string types without a character set.
func isBinaryString(dataType string) bool {
	switch dataType {
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return true
	}
	return false
}

// realType returns column i's type as the table map gives it, with the
// real type of ENUM, SET and CHAR columns (which the binlog writes as
// MYSQL_TYPE_STRING) and the byte length of CHAR and BINARY columns.
func realType(tm *replication.TableMapEvent, i int) (typ byte, strLen int) {
	typ, meta := tm.ColumnType[i], tm.ColumnMeta[i]
	strLen = int(meta)
	if typ == mysql.MYSQL_TYPE_STRING && meta >= 256 {
		// The real type and the length share the metadata, as
		// go-mysql's decodeValue reads them.
		b0, b1 := byte(meta>>8), int(meta&0xff)
		if b0&0x30 != 0x30 {
			strLen = b1 | int((b0&0x30)^0x30)<<4
			typ = b0 | 0x30
		} else {
			strLen = b1
			typ = b0
		}
	}
	return typ, strLen
}

// checkTableMap checks that a table map describes the columns of s: as
// many, each of a binlog type the column's type is written as.
func checkTableMap(tm *replication.TableMapEvent, s *TableSchema) error {
	if int(tm.ColumnCount) != len(s.Columns) {
		return fmt.Errorf("the binlog's table map has %d columns, the schema history %d (%s)", tm.ColumnCount, len(s.Columns), columnNames(s))
	}
	for i, c := range s.Columns {
		typ, _ := realType(tm, i)
		want := binlogTypesOf(c.DataType)
		if want == nil {
			return fmt.Errorf("column %d (%s) has type %s, which binlake cannot check against the binlog", i+1, c.Name, c.Type)
		}
		if !slices.Contains(want, typ) {
			return fmt.Errorf("column %d (%s) is %s in the schema history, but the binlog's table map gives it binlog type %d", i+1, c.Name, c.Type, typ)
		}
		if typ == mysql.MYSQL_TYPE_BLOB {
			size := map[string]uint16{"tinytext": 1, "tinyblob": 1, "text": 2, "blob": 2, "mediumtext": 3, "mediumblob": 3, "longtext": 4, "longblob": 4, "json": 4}[c.DataType]
			if size != 0 && tm.ColumnMeta[i] != size {
				return fmt.Errorf("column %d (%s) is %s in the schema history, but the binlog's table map gives it a %d-byte length", i+1, c.Name, c.Type, tm.ColumnMeta[i])
			}
		}
		if typ == mysql.MYSQL_TYPE_NEWDECIMAL {
			var p, sc int
			if _, err := fmt.Sscanf(c.Type, "decimal(%d,%d)", &p, &sc); err == nil && (uint16(p) != tm.ColumnMeta[i]>>8 || uint16(sc) != tm.ColumnMeta[i]&0xff) {
				return fmt.Errorf("column %d (%s) is %s in the schema history, but decimal(%d,%d) in the binlog's table map", i+1, c.Name, c.Type, tm.ColumnMeta[i]>>8, tm.ColumnMeta[i]&0xff)
			}
		}
	}
	return nil
}

func columnNames(s *TableSchema) string {
	names := make([]string, len(s.Columns))
	for i, c := range s.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// binlogTypesOf returns the binlog types a column of information_schema
// DATA_TYPE dataType is written with (the real type, for ENUM, SET and
// CHAR), or nil for a type binlake does not know.
func binlogTypesOf(dataType string) []byte {
	switch dataType {
	case "tinyint":
		return []byte{mysql.MYSQL_TYPE_TINY}
	case "smallint":
		return []byte{mysql.MYSQL_TYPE_SHORT}
	case "mediumint":
		return []byte{mysql.MYSQL_TYPE_INT24}
	case "int", "integer":
		return []byte{mysql.MYSQL_TYPE_LONG}
	case "bigint":
		return []byte{mysql.MYSQL_TYPE_LONGLONG}
	case "decimal", "numeric":
		return []byte{mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL}
	case "float":
		return []byte{mysql.MYSQL_TYPE_FLOAT}
	case "double", "real", "double precision":
		return []byte{mysql.MYSQL_TYPE_DOUBLE}
	case "bit":
		return []byte{mysql.MYSQL_TYPE_BIT}
	case "year":
		return []byte{mysql.MYSQL_TYPE_YEAR}
	case "date":
		return []byte{mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE}
	case "time":
		return []byte{mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2}
	case "datetime":
		return []byte{mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2}
	case "timestamp":
		return []byte{mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2}
	case "char", "binary", "inet6", "inet4", "uuid":
		return []byte{mysql.MYSQL_TYPE_STRING}
	case "varchar", "varbinary":
		return []byte{mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING}
	case "enum":
		return []byte{mysql.MYSQL_TYPE_ENUM}
	case "set":
		return []byte{mysql.MYSQL_TYPE_SET}
	case "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob":
		return []byte{mysql.MYSQL_TYPE_BLOB}
	case "json":
		return []byte{mysql.MYSQL_TYPE_JSON, mysql.MYSQL_TYPE_BLOB} // MariaDB's JSON is a LONGTEXT
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		return []byte{mysql.MYSQL_TYPE_GEOMETRY}
	}
	return nil
}

// historyColumns builds the converters of a table map without column
// names from the schema s it was checked against (checkTableMap). The
// table map's own character sets are used where it has them (MINIMAL
// metadata), the history's otherwise (MariaDB's NO_LOG).
func historyColumns(tm *replication.TableMapEvent, s *TableSchema, charsets map[uint64]string) []binlogColumn {
	collations := tm.CollationMap()
	cols := make([]binlogColumn, len(s.Columns))
	for i, sc := range s.Columns {
		c := &cols[i]
		c.name = sc.Name
		c.kind = s.kind(i)
		typ, strLen := realType(tm, i)
		c.int24 = typ == mysql.MYSQL_TYPE_INT24
		switch c.kind {
		case kindText:
			cs := sc.Charset
			if coll, ok := collations[i]; ok {
				cs = charsets[coll]
			}
			c.dec = charsetDecoder(cs)
		case kindBinary:
			if typ == mysql.MYSQL_TYPE_STRING {
				c.size = strLen
			}
		case kindInet6, kindUUID, kindInet4:
			c.size = strLen
		case kindEnum, kindSet:
			c.labels = sc.Labels
		case kindTemporal:
			if typ == mysql.MYSQL_TYPE_TIME2 {
				c.timeDec = int(tm.ColumnMeta[i])
			}
		}
	}
	return cols
}
