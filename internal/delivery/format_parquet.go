package delivery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	pqcompress "github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
)

// colKind is how a MySQL column is stored in Parquet.
type colKind int

const (
	kindInt64    colKind = iota // INT64 (INT(64, signed))
	kindUint64                  // INT64 annotated INT(64, unsigned): BIGINT UNSIGNED, BIT
	kindFloat                   // FLOAT
	kindDouble                  // DOUBLE
	kindDecimal                 // FIXED_LEN_BYTE_ARRAY annotated DECIMAL(p, s), p <= 38
	kindDate                    // INT32 annotated DATE
	kindDatetime                // INT64 annotated TIMESTAMP(MICROS), local (DATETIME) or UTC (TIMESTAMP)
	kindString                  // BYTE_ARRAY annotated STRING
	kindBytes                   // BYTE_ARRAY: the bytes of a base64 JSON value
)

// maxParquetDecimal is the largest DECIMAL precision stored as a Parquet
// DECIMAL: what DuckDB, Spark, Trino and Athena hold exactly. Wider
// MySQL decimals (up to 65 digits) are stored as their text.
const maxParquetDecimal = 38

// parquetColumn is how one table column is written.
type parquetColumn struct {
	name      string
	kind      colKind
	precision int // DECIMAL
	scale     int // DECIMAL
	size      int // DECIMAL: bytes of the fixed-length two's complement
	fsp       int // DATETIME, TIMESTAMP: fraction digits
	utc       bool
}

var typeArgs = regexp.MustCompile(`^[a-z ]+\((\d+)(?:,(\d+))?\)`)

// planColumn maps a MySQL column to its Parquet type, from its DATA_TYPE
// and COLUMN_TYPE. Types without a typed mapping keep their JSON string.
func planColumn(c change.ColumnDef) parquetColumn {
	pc := parquetColumn{name: c.Name, kind: kindString}
	args := typeArgs.FindStringSubmatch(strings.ToLower(c.Type))
	arg := func(i int) int {
		if args == nil || args[i] == "" {
			return 0
		}
		n, _ := strconv.Atoi(args[i])
		return n
	}
	switch strings.ToLower(c.DataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "year":
		pc.kind = kindInt64
	case "bigint":
		pc.kind = kindInt64
		if strings.Contains(strings.ToLower(c.Type), "unsigned") {
			pc.kind = kindUint64
		}
	case "bit":
		pc.kind = kindUint64
	case "float":
		pc.kind = kindFloat
	case "double", "real", "double precision":
		pc.kind = kindDouble
	case "decimal", "numeric", "fixed", "dec":
		pc.precision, pc.scale = arg(1), arg(2)
		if args == nil {
			pc.precision = 10 // DECIMAL without arguments is DECIMAL(10,0)
		}
		if pc.precision >= 1 && pc.precision <= maxParquetDecimal && pc.scale <= pc.precision {
			pc.kind = kindDecimal
			pc.size = decimalSize(pc.precision)
		}
	case "date":
		pc.kind = kindDate
	case "datetime", "timestamp":
		pc.kind, pc.fsp, pc.utc = kindDatetime, arg(1), c.DataType == "timestamp"
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection", "geomcollection":
		pc.kind = kindBytes
	}
	return pc
}

// decimalSize is the number of bytes a two's complement integer of the
// given number of decimal digits needs.
func decimalSize(precision int) int {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
	for n := 1; ; n++ {
		if new(big.Int).Lsh(big.NewInt(1), uint(8*n-1)).Cmp(limit) >= 0 {
			return n
		}
	}
}

func (pc parquetColumn) node() parquet.Node {
	var n parquet.Node
	switch pc.kind {
	case kindInt64:
		n = parquet.Int(64)
	case kindUint64:
		n = parquet.Uint(64)
	case kindFloat:
		n = parquet.Leaf(parquet.FloatType)
	case kindDouble:
		n = parquet.Leaf(parquet.DoubleType)
	case kindDecimal:
		n = parquet.Decimal(pc.scale, pc.precision, parquet.FixedLenByteArrayType(pc.size))
	case kindDate:
		n = parquet.Date()
	case kindDatetime:
		n = parquet.TimestampAdjusted(parquet.Microsecond, pc.utc)
	case kindBytes:
		n = parquet.Leaf(parquet.ByteArrayType)
	default:
		n = parquet.String()
	}
	return parquet.Optional(n)
}

// parquetCodec is the page compression of delivery.parquet.compression.
func parquetCodec(name string) pqcompress.Codec {
	switch name {
	case "zstd":
		return &zstd.Codec{}
	case "gzip":
		return &gzip.Codec{}
	case "none":
		return &uncompressed.Codec{}
	default:
		return &snappy.Codec{}
	}
}

// encodeParquet writes rows of one table definition as a Parquet file:
// the metadata columns, then the table's columns in table order (see
// docs/format.md#parquet). Every value is checked to read back exactly as
// its JSON form; one that does not is an error, except dates, whose text
// goes to _zero_dates.
func encodeParquet(table string, def *tableDef, rows []tableRow, opts config.Parquet) ([]byte, error) {
	cols := make([]parquetColumn, len(def.Columns))
	temporal := false
	for i, c := range def.Columns {
		cols[i] = planColumn(c)
		temporal = temporal || cols[i].kind == kindDate || cols[i].kind == kindDatetime
	}
	fields := []orderedField{
		{change.ColumnOp, parquet.Encoded(parquet.String(), &parquet.RLEDictionary)},
		{change.ColumnPosition, parquet.String()},
		{change.ColumnCommitTime, parquet.Timestamp(parquet.Microsecond)},
		{change.ColumnTxID, parquet.Optional(parquet.Uint(64))},
		{change.ColumnKey, parquet.String()},
	}
	if temporal {
		fields = append(fields, orderedField{change.ColumnZeroDates, parquet.Optional(parquet.String())})
	}
	meta := len(fields)
	for _, c := range cols {
		fields = append(fields, orderedField{c.name, c.node()})
	}
	schemaName, tableName, _ := strings.Cut(table, ".")
	var out bytes.Buffer
	w := parquet.NewWriter(&out,
		parquet.NewSchema(tableName, orderedGroup(fields)),
		parquet.Compression(parquetCodec(opts.Compression)),
		parquet.DataPageVersion(1), // the page version every reader knows
		parquet.CreatedBy("binlake", "", ""),
		parquet.KeyValueMetadata(change.ParquetTableDef, string(def.raw)),
		parquet.KeyValueMetadata(change.ParquetSchema, schemaName),
		parquet.KeyValueMetadata(change.ParquetTable, tableName),
	)
	row := make(parquet.Row, len(fields))
	groupBytes := 0
	for _, r := range rows {
		row[0] = parquet.ByteArrayValue([]byte(r.op))
		row[1] = parquet.ByteArrayValue([]byte(r.position))
		row[2] = parquet.Int64Value(r.commitTime.UnixMicro())
		row[3] = parquet.NullValue()
		if r.hasTxID {
			row[3] = parquet.Int64Value(int64(r.txID))
		}
		row[4] = parquet.ByteArrayValue([]byte(r.key))
		var zero []string // "name", "text" pairs
		for i, c := range cols {
			v, text, err := c.value(r.values[i])
			if err != nil {
				return nil, fmt.Errorf("record %s column %s (%s): %w", r.position, c.name, def.Columns[i].Type, err)
			}
			if text != "" {
				zero = append(zero, c.name, text)
			}
			row[meta+i] = v
		}
		if temporal {
			row[5] = parquet.NullValue()
			if zero != nil {
				row[5] = parquet.ByteArrayValue(zeroDatesJSON(zero))
			}
		}
		for i := range row {
			// Definition level: 1 for a value of an optional column, 0
			// for a null and for a required column.
			level := 0
			if !row[i].IsNull() && fields[i].Optional() {
				level = 1
			}
			row[i] = row[i].Level(0, level, i)
		}
		if _, err := w.WriteRows([]parquet.Row{row}); err != nil {
			return nil, fmt.Errorf("writing Parquet: %w", err)
		}
		groupBytes += r.size
		if groupBytes >= int(opts.RowGroupSize) {
			if err := w.Flush(); err != nil {
				return nil, fmt.Errorf("writing Parquet: %w", err)
			}
			groupBytes = 0
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("writing Parquet: %w", err)
	}
	return out.Bytes(), nil
}

// zeroDatesJSON encodes "name", "text" pairs as a JSON object.
func zeroDatesJSON(pairs []string) []byte {
	b := []byte{'{'}
	for i := 0; i < len(pairs); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(pairs[i])
		v, _ := json.Marshal(pairs[i+1])
		b = append(b, k...)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '}')
}

// value converts a JSON value to the column's Parquet value. A date that
// the column type cannot hold exactly (a zero date such as 0000-00-00) is
// null, and its text is returned for _zero_dates.
func (pc parquetColumn) value(raw json.RawMessage) (parquet.Value, string, error) {
	if isNull(raw) {
		return parquet.NullValue(), "", nil
	}
	text := string(raw)
	switch pc.kind {
	case kindInt64:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != text {
			return parquet.Value{}, "", fmt.Errorf("%s is not an integer", raw)
		}
		return parquet.Int64Value(n), "", nil
	case kindUint64:
		n, err := strconv.ParseUint(text, 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != text {
			return parquet.Value{}, "", fmt.Errorf("%s is not an unsigned integer", raw)
		}
		return parquet.Int64Value(int64(n)), "", nil
	case kindFloat:
		f, err := strconv.ParseFloat(text, 32)
		if err != nil || strconv.FormatFloat(f, 'g', -1, 32) != text {
			return parquet.Value{}, "", fmt.Errorf("%s is not a FLOAT as binlake writes it", raw)
		}
		return parquet.FloatValue(float32(f)), "", nil
	case kindDouble:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || strconv.FormatFloat(f, 'g', -1, 64) != text {
			return parquet.Value{}, "", fmt.Errorf("%s is not a DOUBLE as binlake writes it", raw)
		}
		return parquet.DoubleValue(f), "", nil
	}
	s, err := jsonString(raw)
	if err != nil {
		return parquet.Value{}, "", err
	}
	switch pc.kind {
	case kindDecimal:
		b, err := decimalBytes(s, pc.precision, pc.scale, pc.size)
		if err != nil {
			return parquet.Value{}, "", err
		}
		return parquet.FixedLenByteArrayValue(b), "", nil
	case kindDate:
		t, err := time.Parse(time.DateOnly, s)
		if err != nil || t.Format(time.DateOnly) != s {
			return parquet.NullValue(), s, nil
		}
		return parquet.Int32Value(int32(t.Unix() / 86400)), "", nil
	case kindDatetime:
		t, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil || change.FormatDatetime(t, pc.fsp) != s {
			return parquet.NullValue(), s, nil
		}
		return parquet.Int64Value(t.UnixMicro()), "", nil
	case kindBytes:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || base64.StdEncoding.EncodeToString(b) != s {
			return parquet.Value{}, "", fmt.Errorf("%q is not base64 as binlake writes it", s)
		}
		return parquet.ByteArrayValue(b), "", nil
	default:
		return parquet.ByteArrayValue([]byte(s)), "", nil
	}
}

// decimalBytes converts a DECIMAL's text to the big-endian two's
// complement of its unscaled value in size bytes, after checking that the
// text has exactly scale decimals and reads back the same.
func decimalBytes(s string, precision, scale, size int) ([]byte, error) {
	digits := strings.TrimPrefix(s, "-")
	intPart, frac, dot := strings.Cut(digits, ".")
	if len(frac) != scale || dot != (scale > 0) || intPart == "" {
		return nil, fmt.Errorf("%q is not a DECIMAL(%d,%d) as MySQL prints it", s, precision, scale)
	}
	u, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok || len(strings.TrimLeft(intPart+frac, "0")) > precision {
		return nil, fmt.Errorf("%q is not a DECIMAL(%d,%d) as MySQL prints it", s, precision, scale)
	}
	if s[0] == '-' {
		u.Neg(u)
	}
	if change.FormatDecimal(u, scale) != s {
		return nil, fmt.Errorf("%q does not read back the same as a DECIMAL(%d,%d)", s, precision, scale)
	}
	out := make([]byte, size)
	if u.Sign() >= 0 {
		u.FillBytes(out)
		return out, nil
	}
	// Two's complement: 2^(8 size) + u.
	m := new(big.Int).Lsh(big.NewInt(1), uint(8*size))
	m.Add(m, u).FillBytes(out)
	return out, nil
}

// orderedGroup is a Parquet group whose columns keep their order (a
// parquet.Group sorts them by name): metadata columns first, then the
// table's columns as the table has them.
type orderedGroup []orderedField

type orderedField struct {
	name string
	parquet.Node
}

func (f *orderedField) Name() string { return f.name }

// Value is used only to write Go structs, which binlake does not do.
func (f *orderedField) Value(reflect.Value) reflect.Value { return reflect.Value{} }

func (g orderedGroup) ID() int                       { return 0 }
func (g orderedGroup) String() string                { return "orderedGroup" }
func (g orderedGroup) Type() parquet.Type            { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool                { return false }
func (g orderedGroup) Repeated() bool                { return false }
func (g orderedGroup) Required() bool                { return true }
func (g orderedGroup) Leaf() bool                    { return false }
func (g orderedGroup) Encoding() encoding.Encoding   { return nil }
func (g orderedGroup) Compression() pqcompress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type          { return reflect.TypeFor[map[string]any]() }
func (g orderedGroup) Fields() []parquet.Field {
	out := make([]parquet.Field, len(g))
	for i := range g {
		out[i] = &g[i]
	}
	return out
}

var _ parquet.Node = orderedGroup(nil)

// ParquetKind says how a MySQL column is stored in binlake's Parquet
// objects (docs/format.md#parquet): "int64", "uint64" (INT64 annotated
// unsigned), "float", "double", "decimal" (with its precision and scale),
// "date", "timestamp" (local: DATETIME), "timestamptz" (UTC: TIMESTAMP),
// "binary" or "string". Table definitions for query engines follow it.
func ParquetKind(c change.ColumnDef) (kind string, precision, scale int) {
	pc := planColumn(c)
	switch pc.kind {
	case kindInt64:
		return "int64", 0, 0
	case kindUint64:
		return "uint64", 0, 0
	case kindFloat:
		return "float", 0, 0
	case kindDouble:
		return "double", 0, 0
	case kindDecimal:
		return "decimal", pc.precision, pc.scale
	case kindDate:
		return "date", 0, 0
	case kindDatetime:
		if pc.utc {
			return "timestamptz", 0, 0
		}
		return "timestamp", 0, 0
	case kindBytes:
		return "binary", 0, 0
	}
	return "string", 0, 0
}
