package capture

import (
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlake/binlake/internal/change"
)

// tableMapDef builds a table's definition from a table-map event with full
// row metadata: the schema in force at that binlog position, whatever DDL
// came later. Types are written as information_schema's COLUMN_TYPE would
// write them, as far as the binlog tells (character lengths are not in it:
// "varchar", "char").
func tableMapDef(tm *replication.TableMapEvent, cols []binlogColumn) change.TableDef {
	var def change.TableDef
	unsigned := tm.UnsignedMap()
	for i := range cols {
		typ, dataType := binlogType(tm, i, unsigned[i], &cols[i])
		_, nullable := tm.Nullable(i)
		def.Columns = append(def.Columns, change.ColumnDef{Name: cols[i].name, Type: typ, DataType: dataType, Nullable: nullable})
	}
	for _, k := range tm.PrimaryKey {
		if int(k) < len(cols) {
			def.PrimaryKey = append(def.PrimaryKey, cols[k].name)
		}
	}
	return def
}

func binlogType(tm *replication.TableMapEvent, i int, unsigned bool, c *binlogColumn) (typ, dataType string) {
	meta := tm.ColumnMeta[i]
	t := tm.ColumnType[i]
	if t == mysql.MYSQL_TYPE_STRING && meta >= 256 {
		if rt := byte(meta >> 8); rt == mysql.MYSQL_TYPE_ENUM || rt == mysql.MYSQL_TYPE_SET {
			t = rt
		}
	}
	withSign := func(s string) (string, string) {
		if unsigned {
			return s + " unsigned", s
		}
		return s, s
	}
	withFsp := func(s string) (string, string) {
		if meta > 0 && meta <= 6 {
			return fmt.Sprintf("%s(%d)", s, meta), s
		}
		return s, s
	}
	quoted := func(labels []string) string {
		q := make([]string, len(labels))
		for j, l := range labels {
			q[j] = "'" + strings.ReplaceAll(l, "'", "''") + "'"
		}
		return strings.Join(q, ",")
	}
	switch c.kind {
	case kindInet6:
		return "inet6", "inet6"
	case kindInet4:
		return "inet4", "inet4"
	case kindUUID:
		return "uuid", "uuid"
	}
	switch t {
	case mysql.MYSQL_TYPE_TINY:
		return withSign("tinyint")
	case mysql.MYSQL_TYPE_SHORT:
		return withSign("smallint")
	case mysql.MYSQL_TYPE_INT24:
		return withSign("mediumint")
	case mysql.MYSQL_TYPE_LONG:
		return withSign("int")
	case mysql.MYSQL_TYPE_LONGLONG:
		return withSign("bigint")
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		typ, dataType := fmt.Sprintf("decimal(%d,%d)", meta>>8, meta&0xff), "decimal"
		if unsigned {
			typ += " unsigned"
		}
		return typ, dataType
	case mysql.MYSQL_TYPE_FLOAT:
		return withSign("float")
	case mysql.MYSQL_TYPE_DOUBLE:
		return withSign("double")
	case mysql.MYSQL_TYPE_BIT:
		return fmt.Sprintf("bit(%d)", (meta>>8)*8+meta&0xff), "bit"
	case mysql.MYSQL_TYPE_YEAR:
		return "year", "year"
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return "date", "date"
	case mysql.MYSQL_TYPE_TIME:
		return "time", "time"
	case mysql.MYSQL_TYPE_TIME2:
		return withFsp("time")
	case mysql.MYSQL_TYPE_DATETIME:
		return "datetime", "datetime"
	case mysql.MYSQL_TYPE_DATETIME2:
		return withFsp("datetime")
	case mysql.MYSQL_TYPE_TIMESTAMP:
		return "timestamp", "timestamp"
	case mysql.MYSQL_TYPE_TIMESTAMP2:
		return withFsp("timestamp")
	case mysql.MYSQL_TYPE_ENUM:
		return "enum(" + quoted(c.labels) + ")", "enum"
	case mysql.MYSQL_TYPE_SET:
		return "set(" + quoted(c.labels) + ")", "set"
	case mysql.MYSQL_TYPE_JSON:
		return "json", "json"
	case mysql.MYSQL_TYPE_GEOMETRY:
		return "geometry", "geometry"
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
		if c.kind == kindBinary {
			return "varbinary", "varbinary"
		}
		return "varchar", "varchar"
	case mysql.MYSQL_TYPE_STRING:
		if c.kind == kindBinary {
			if c.size > 0 {
				return fmt.Sprintf("binary(%d)", c.size), "binary"
			}
			return "binary", "binary"
		}
		return "char", "char"
	case mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
		size := map[uint16]string{1: "tiny", 2: "", 3: "medium", 4: "long"}[meta]
		if c.kind == kindBinary {
			return size + "blob", size + "blob"
		}
		if c.kind == kindJSON {
			return "json", "json" // MariaDB's JSON is a checked LONGTEXT
		}
		return size + "text", size + "text"
	}
	return "binary", "binary"
}
