package capture

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"

	"github.com/binlake/binlake/internal/change"
)

// This file turns column values into the JSON-ready forms of docs/format.md,
// from both paths: text values of the full-load SELECT, and values decoded
// from binlog row events. Both must give identical results for the same
// stored value; the integration tests compare them.

// colKind is the value rule a column follows.
type colKind uint8

const (
	kindSigned colKind = iota
	kindUnsigned
	kindDecimal
	kindFloat
	kindDouble
	kindBit
	kindYear
	kindTemporal // DATE, DATETIME, TIMESTAMP, TIME: text as MySQL prints it
	kindText     // character data, decoded to UTF-8
	kindBinary   // base64
	kindEnum
	kindSet
	kindJSON
)

// charsetDecoder returns the decoder from a MySQL character set to UTF-8, or
// nil when the bytes are already UTF-8 (or ASCII).
func charsetDecoder(charset string) *encoding.Decoder {
	switch strings.ToLower(charset) {
	case "", "utf8", "utf8mb3", "utf8mb4", "ascii", "binary":
		return nil
	case "latin1": // MySQL's latin1 is cp1252
		return charmap.Windows1252.NewDecoder()
	case "latin2":
		return charmap.ISO8859_2.NewDecoder()
	case "cp1250":
		return charmap.Windows1250.NewDecoder()
	case "cp1251":
		return charmap.Windows1251.NewDecoder()
	case "cp1256":
		return charmap.Windows1256.NewDecoder()
	case "cp1257":
		return charmap.Windows1257.NewDecoder()
	case "greek":
		return charmap.ISO8859_7.NewDecoder()
	case "hebrew":
		return charmap.ISO8859_8.NewDecoder()
	case "latin5":
		return charmap.ISO8859_9.NewDecoder()
	case "latin7":
		return charmap.ISO8859_13.NewDecoder()
	case "koi8r":
		return charmap.KOI8R.NewDecoder()
	case "koi8u":
		return charmap.KOI8U.NewDecoder()
	case "cp850":
		return charmap.CodePage850.NewDecoder()
	case "cp866":
		return charmap.CodePage866.NewDecoder()
	case "ucs2", "utf16":
		return unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM).NewDecoder()
	case "utf16le":
		return unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM).NewDecoder()
	}
	return nil
}

func decodeText(dec *encoding.Decoder, b []byte) string {
	if dec == nil {
		return string(b)
	}
	out, err := dec.Bytes(b)
	if err != nil {
		return string(b)
	}
	return string(out)
}

// binlogColumn says how to convert one column of a table-map event.
type binlogColumn struct {
	name   string
	kind   colKind
	dec    *encoding.Decoder
	labels []string // enum/set labels
}

// binlogValue converts a value decoded by go-mysql.
func (c *binlogColumn) value(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.kind {
	case kindSigned:
		switch x := v.(type) {
		case int8:
			return int64(x), nil
		case int16:
			return int64(x), nil
		case int32:
			return int64(x), nil
		case int64:
			return x, nil
		}
	case kindUnsigned:
		switch x := v.(type) {
		case uint8:
			return uint64(x), nil
		case uint16:
			return uint64(x), nil
		case uint32:
			return uint64(x), nil
		case uint64:
			return x, nil
		}
	case kindDecimal:
		if s, ok := v.(string); ok {
			return change.Decimal(s), nil
		}
	case kindFloat:
		if f, ok := v.(float32); ok {
			return f, nil
		}
	case kindDouble:
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case kindBit:
		if x, ok := v.(int64); ok {
			return uint64(x), nil
		}
	case kindYear:
		if x, ok := v.(int); ok {
			return int64(x), nil
		}
	case kindTemporal:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case kindText:
		switch x := v.(type) {
		case string:
			return decodeText(c.dec, []byte(x)), nil
		case []byte:
			return decodeText(c.dec, x), nil
		}
	case kindJSON:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			if len(x) == 0 {
				return "null", nil
			}
			return string(x), nil
		}
	case kindBinary:
		switch x := v.(type) {
		case string:
			return []byte(x), nil
		case []byte:
			return x, nil
		}
	case kindEnum:
		if x, ok := v.(int64); ok {
			if x <= 0 || int(x) > len(c.labels) {
				return "", nil // the empty "error value" of non-strict inserts
			}
			return c.labels[x-1], nil
		}
	case kindSet:
		if x, ok := v.(int64); ok {
			var parts []string
			for i, l := range c.labels {
				if x&(1<<uint(i)) != 0 {
					parts = append(parts, l)
				}
			}
			return strings.Join(parts, ","), nil
		}
	}
	return nil, fmt.Errorf("column %s: unexpected binlog value %T for its type", c.name, v)
}

// binlogColumns builds converters from a table-map event with full row
// metadata. charsets maps collation ids to character set names.
func binlogColumns(tm *replication.TableMapEvent, charsets map[uint64]string) ([]binlogColumn, error) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, fmt.Errorf("table %s.%s: the binlog carries no column names: set binlog_row_metadata=FULL on the source", tm.Schema, tm.Table)
	}
	unsigned := tm.UnsignedMap()
	collations := tm.CollationMap()
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()
	cols := make([]binlogColumn, tm.ColumnCount)
	for i := range cols {
		c := &cols[i]
		c.name = names[i]
		typ := tm.ColumnType[i]
		if typ == mysql.MYSQL_TYPE_STRING && tm.ColumnMeta[i] >= 256 {
			if rt := byte(tm.ColumnMeta[i] >> 8); rt == mysql.MYSQL_TYPE_ENUM || rt == mysql.MYSQL_TYPE_SET {
				typ = rt
			}
		}
		switch typ {
		case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
			c.kind = kindSigned
			if unsigned[i] {
				c.kind = kindUnsigned
			}
		case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
			c.kind = kindDecimal
		case mysql.MYSQL_TYPE_FLOAT:
			c.kind = kindFloat
		case mysql.MYSQL_TYPE_DOUBLE:
			c.kind = kindDouble
		case mysql.MYSQL_TYPE_BIT:
			c.kind = kindBit
		case mysql.MYSQL_TYPE_YEAR:
			c.kind = kindYear
		case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE, mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2,
			mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
			c.kind = kindTemporal
		case mysql.MYSQL_TYPE_ENUM:
			c.kind = kindEnum
			c.labels = enums[i]
		case mysql.MYSQL_TYPE_SET:
			c.kind = kindSet
			c.labels = sets[i]
		case mysql.MYSQL_TYPE_JSON:
			c.kind = kindJSON
		case mysql.MYSQL_TYPE_GEOMETRY:
			c.kind = kindBinary
		case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_BLOB,
			mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
			coll, ok := collations[i]
			if !ok {
				return nil, fmt.Errorf("table %s.%s column %s: the binlog carries no character set: set binlog_row_metadata=FULL on the source", tm.Schema, tm.Table, c.name)
			}
			if coll == 63 {
				c.kind = kindBinary
			} else {
				c.kind = kindText
				c.dec = charsetDecoder(charsets[coll])
			}
		default:
			c.kind = kindBinary
		}
	}
	return cols, nil
}

// sqlColumn describes a column for the full-load SELECT.
// The connection's character set is utf8mb4, so the server sends text
// already converted to UTF-8.
type sqlColumn struct {
	name string
	kind colKind
}

// selectExpr is the SELECT expression of the column. FLOAT is widened to
// DOUBLE so that the server prints every digit of the stored value; BIT is
// read as a number.
func (c *sqlColumn) selectExpr() string {
	q := quoteIdent(c.name)
	switch c.kind {
	case kindFloat:
		return "(" + q + "+0e0)"
	case kindBit:
		return "(" + q + "+0)"
	}
	return q
}

// value converts the text protocol bytes of the column (nil is NULL).
func (c *sqlColumn) value(b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	s := string(b)
	switch c.kind {
	case kindSigned, kindYear:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.name, err)
		}
		return n, nil
	case kindUnsigned, kindBit:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.name, err)
		}
		return n, nil
	case kindDecimal:
		return change.Decimal(s), nil
	case kindFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.name, err)
		}
		return float32(f), nil
	case kindDouble:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.name, err)
		}
		return f, nil
	case kindBinary:
		return append([]byte(nil), b...), nil
	case kindText:
		return s, nil
	}
	return s, nil // temporal, enum, set, json: text as the server prints it
}

// sqlKind maps information_schema.COLUMNS to a value rule.
func sqlKind(dataType, columnType string, charset *string) colKind {
	unsigned := strings.Contains(strings.ToLower(columnType), "unsigned")
	switch strings.ToLower(dataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		if unsigned {
			return kindUnsigned
		}
		return kindSigned
	case "decimal", "numeric":
		return kindDecimal
	case "float":
		return kindFloat
	case "double", "real", "double precision":
		return kindDouble
	case "bit":
		return kindBit
	case "year":
		return kindYear
	case "date", "datetime", "timestamp", "time":
		return kindTemporal
	case "enum":
		return kindEnum
	case "set":
		return kindSet
	case "json":
		return kindJSON
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		if charset == nil || *charset == "binary" {
			return kindBinary
		}
		return kindText
	}
	return kindBinary // binary, varbinary, blobs, geometry and anything unknown
}

func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}
