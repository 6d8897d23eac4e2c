package capture

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
	"golang.org/x/text/transform"

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
	kindInet6 // MariaDB INET6: text as MariaDB prints it
	kindInet4 // MariaDB INET4 (11.3+): dotted quad
	kindUUID  // MariaDB UUID: 8-4-4-4-12 lower-case hex
)

// charsetDecoder returns the decoder from a MySQL character set to UTF-8, or
// nil when the bytes are already UTF-8 (or ASCII).
func charsetDecoder(charset string) *encoding.Decoder {
	switch strings.ToLower(charset) {
	case "", "utf8", "utf8mb3", "utf8mb4", "ascii", "binary":
		return nil
	case "latin1":
		return &encoding.Decoder{Transformer: mysqlLatin1}
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
	case "utf32":
		return utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM).NewDecoder()
	case "sjis", "cp932":
		return japanese.ShiftJIS.NewDecoder()
	case "ujis", "eucjpms":
		return japanese.EUCJP.NewDecoder()
	case "euckr":
		return korean.EUCKR.NewDecoder()
	case "gbk", "gb2312":
		return simplifiedchinese.GBK.NewDecoder()
	case "gb18030":
		return simplifiedchinese.GB18030.NewDecoder()
	case "big5":
		return traditionalchinese.Big5.NewDecoder()
	case "macroman":
		return charmap.Macintosh.NewDecoder()
	}
	return nil
}

// singleByte decodes a single-byte character set to UTF-8 with a table.
type singleByte [256]rune

func (t *singleByte) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	for nSrc < len(src) {
		r := t[src[nSrc]]
		if nDst+utf8.RuneLen(r) > len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		nDst += utf8.EncodeRune(dst[nDst:], r)
		nSrc++
	}
	return nDst, nSrc, nil
}

func (*singleByte) Reset() {}

// mysqlLatin1 is MySQL's latin1: cp1252, except that the five bytes cp1252
// leaves undefined (0x81, 0x8d, 0x8f, 0x90, 0x9d) are the C1 controls of
// the same code, as the server converts them.
var mysqlLatin1 = func() *singleByte {
	var t singleByte
	for b := range 256 {
		r := charmap.Windows1252.DecodeByte(byte(b))
		if r == utf8.RuneError {
			r = rune(b)
		}
		t[b] = r
	}
	return &t
}()

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
	labels []string // enum/set labels, in UTF-8
	// size is the declared byte length of BINARY(n) (and of the fixed-size
	// binary types: INET6, UUID...), whose trailing zero bytes the binlog
	// drops; 0 for other columns.
	size int
	// timeDec is the declared fraction digits n of a TIME(n) column, whose
	// fraction go-mysql leaves out when it is zero; 0 for other columns.
	timeDec int
	// int24 marks a MEDIUMINT, whose signed decoding (an int32 extended
	// from 24 bits) an unsigned column undoes.
	int24 bool
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
		// go-mysql decodes an integer as unsigned only where the table map
		// says so, which the binlog reader leaves out (decodeRows) and
		// which MariaDB's binlog_row_metadata=NO_LOG does not write: the
		// bits are the same, read as signed.
		switch x := v.(type) {
		case int8:
			return uint64(uint8(x)), nil
		case int16:
			return uint64(uint16(x)), nil
		case int32:
			if c.int24 {
				return uint64(uint32(x) & 0xffffff), nil
			}
			return uint64(uint32(x)), nil
		case int64:
			return uint64(x), nil
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
			if c.timeDec > 0 {
				s = withFraction(s, c.timeDec)
			}
			return s, nil
		}
	case kindText:
		switch x := v.(type) {
		case string:
			// go-mysql's strings share the event's bytes: one copy, for
			// UTF-8 columns the only work there is.
			if c.dec == nil {
				return strings.Clone(x), nil
			}
			return decodeText(c.dec, []byte(x)), nil
		case []byte:
			return decodeText(c.dec, x), nil
		}
	case kindJSON:
		switch x := v.(type) {
		case *replication.JsonDiff:
			return nil, errPartialJSON
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
			return padZeros([]byte(x), c.size), nil
		case []byte:
			return padZeros(x, c.size), nil
		}
	case kindInet6, kindInet4, kindUUID:
		switch x := v.(type) {
		case string:
			return formatFixedBinary(c.kind, padZeros([]byte(x), c.size))
		case []byte:
			return formatFixedBinary(c.kind, padZeros(x, c.size))
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
//
// MariaDB's INET6, INET4 and UUID columns look like BINARY(n) in the table
// map; the binlog reader marks them afterwards (see fixedBinaryColumns).
func binlogColumns(tm *replication.TableMapEvent, charsets map[uint64]string) ([]binlogColumn, error) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, fmt.Errorf("table %s.%s: the binlog carries no column names: set binlog_row_metadata=FULL on the source", tm.Schema, tm.Table)
	}
	unsigned := tm.UnsignedMap()
	collations := tm.CollationMap()
	enumSetCollations := tm.EnumSetCollationMap()
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()
	cols := make([]binlogColumn, tm.ColumnCount)
	for i := range cols {
		c := &cols[i]
		c.name = names[i]
		meta := tm.ColumnMeta[i]
		typ, strLen := realType(tm, i) // strLen: byte length of a CHAR/BINARY column
		switch typ {
		case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
			c.kind = kindSigned
			if unsigned[i] {
				c.kind = kindUnsigned
			}
			c.int24 = typ == mysql.MYSQL_TYPE_INT24
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
		case mysql.MYSQL_TYPE_TIME2:
			c.kind = kindTemporal
			c.timeDec = int(meta)
		case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_NEWDATE,
			mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
			c.kind = kindTemporal
		case mysql.MYSQL_TYPE_ENUM, mysql.MYSQL_TYPE_SET:
			c.kind = kindEnum
			labels := enums[i]
			if typ == mysql.MYSQL_TYPE_SET {
				c.kind = kindSet
				labels = sets[i]
			}
			// Labels come in the column's character set.
			dec := charsetDecoder(charsets[enumSetCollations[i]])
			c.labels = make([]string, len(labels))
			for j, l := range labels {
				c.labels[j] = decodeText(dec, []byte(l))
			}
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
				if typ == mysql.MYSQL_TYPE_STRING {
					c.size = strLen
				}
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

// errPartialJSON is a JSON column's value in a partial update (MySQL's
// binlog_row_value_options=PARTIAL_JSON): a change of the document, not the
// document.
var errPartialJSON = errors.New("partial JSON update")

// mappedTable is a table map with column names and its decoded columns.
type mappedTable struct {
	tm   *replication.TableMapEvent
	cols []binlogColumn
}

// sameTableMap reports whether two table maps describe the same table the
// same way: everything binlogColumns reads from them is equal.
func sameTableMap(a, b *replication.TableMapEvent) bool {
	bb := func(x, y [][]byte) bool { return slices.EqualFunc(x, y, bytes.Equal) }
	return a.TableID == b.TableID && a.Flags == b.Flags &&
		bytes.Equal(a.Schema, b.Schema) && bytes.Equal(a.Table, b.Table) &&
		a.ColumnCount == b.ColumnCount && bytes.Equal(a.ColumnType, b.ColumnType) &&
		slices.Equal(a.ColumnMeta, b.ColumnMeta) && bytes.Equal(a.NullBitmap, b.NullBitmap) &&
		bytes.Equal(a.SignednessBitmap, b.SignednessBitmap) &&
		slices.Equal(a.DefaultCharset, b.DefaultCharset) && slices.Equal(a.ColumnCharset, b.ColumnCharset) &&
		slices.EqualFunc(a.SetStrValue, b.SetStrValue, bb) && slices.EqualFunc(a.EnumStrValue, b.EnumStrValue, bb) &&
		bb(a.ColumnName, b.ColumnName) && slices.Equal(a.GeometryType, b.GeometryType) &&
		slices.Equal(a.PrimaryKey, b.PrimaryKey) && slices.Equal(a.PrimaryKeyPrefix, b.PrimaryKeyPrefix) &&
		slices.Equal(a.EnumSetDefaultCharset, b.EnumSetDefaultCharset) &&
		slices.Equal(a.EnumSetColumnCharset, b.EnumSetColumnCharset) &&
		bytes.Equal(a.VisibilityBitmap, b.VisibilityBitmap)
}

// mayBeFixedBinary reports whether cols has a BINARY(n) column that could be
// one of MariaDB's INET6, INET4 and UUID types, which the table map cannot
// tell apart from BINARY(16) and BINARY(4).
func mayBeFixedBinary(cols []binlogColumn) bool {
	for i := range cols {
		if cols[i].kind == kindBinary && (cols[i].size == 16 || cols[i].size == 4) {
			return true
		}
	}
	return false
}

// markFixedBinary gives the BINARY(n) columns of cols that types names
// (column name → kind, from information_schema) their own kind.
func markFixedBinary(cols []binlogColumn, types map[string]colKind) {
	for i := range cols {
		c := &cols[i]
		k, ok := types[c.name]
		if !ok || c.kind != kindBinary {
			continue
		}
		if (k == kindInet4 && c.size == 4) || ((k == kindInet6 || k == kindUUID) && c.size == 16) {
			c.kind = k
		}
	}
}

// padZeros restores the trailing zero bytes the binlog drops from BINARY(n).
func padZeros(b []byte, size int) []byte {
	if len(b) >= size {
		return b
	}
	out := make([]byte, size)
	copy(out, b)
	return out
}

// withFraction gives a TIME value exactly dec fraction digits, as MySQL
// prints TIME(dec): go-mysql leaves out a zero fraction.
func withFraction(s string, dec int) string {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) == dec {
		return s
	}
	if dec == 0 {
		return whole
	}
	if len(frac) > dec {
		return whole + "." + frac[:dec]
	}
	return whole + "." + frac + strings.Repeat("0", dec-len(frac))
}

// formatFixedBinary prints the stored bytes of an INET6, INET4 or UUID
// value as MariaDB does.
func formatFixedBinary(k colKind, b []byte) (any, error) {
	switch {
	case k == kindInet6 && len(b) == 16:
		return formatInet6(b), nil
	case k == kindInet4 && len(b) == 4:
		return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3]), nil
	case k == kindUUID && len(b) == 16:
		h := hex.EncodeToString(b)
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
	}
	return nil, fmt.Errorf("a value of %d bytes in a fixed-size binary column", len(b))
}

// formatInet6 prints an IPv6 address as MariaDB's Inet6::to_string does:
// lower-case hex words without leading zeros, the first longest run of zero
// words (even a single one) written "::", and IPv4-compatible (::a.b.c.d)
// and IPv4-mapped (::ffff:a.b.c.d) addresses with a dotted IPv4 tail.
func formatInet6(b []byte) string {
	var w [8]uint16
	for i := range w {
		w[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	gapPos, gapLen := -1, -1
	runPos, runLen := -1, -1
	for i, x := range w {
		switch {
		case x != 0 && runPos >= 0:
			if runLen > gapLen {
				gapPos, gapLen = runPos, runLen
			}
			runPos, runLen = -1, -1
		case x == 0 && runPos >= 0:
			runLen++
		case x == 0:
			runPos, runLen = i, 1
		}
	}
	if runPos >= 0 && runLen > gapLen {
		gapPos, gapLen = runPos, runLen
	}
	out := make([]byte, 0, 40)
	for i := 0; i < len(w); i++ {
		switch {
		case i == gapPos:
			if i == 0 {
				out = append(out, ':')
			}
			out = append(out, ':')
			i += gapLen - 1
		case i == 6 && gapPos == 0 && (gapLen == 6 || (gapLen == 5 && w[5] == 0xffff)):
			return string(out) + fmt.Sprintf("%d.%d.%d.%d", b[12], b[13], b[14], b[15])
		default:
			out = strconv.AppendUint(out, uint64(w[i]), 16)
			if i+1 != len(w) {
				out = append(out, ':')
			}
		}
	}
	return string(out)
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
	return s, nil // temporal, enum, set, json, inet6, uuid: text as the server prints it
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
	case "inet6":
		return kindInet6
	case "inet4":
		return kindInet4
	case "uuid":
		return kindUUID
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
