package lake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/binlake/binlake/internal/change"
)

var fractionDigits = regexp.MustCompile(`^(?:datetime|timestamp)\((\d)\)`)

// fsp is the number of fraction digits of a DATETIME or TIMESTAMP column
// type ("datetime(3)"), 0 for others.
func fsp(columnType string) int {
	m := fractionDigits.FindStringSubmatch(strings.ToLower(columnType))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// decodeParquet reads a Parquet object binlake wrote back into records
// whose data values are those of the JSON records: numbers as json.Number
// with the same digits, decimals and dates as MySQL's text, binary as
// base64, zero dates from _zero_dates.
func decodeParquet(key string, body []byte) ([]Record, error) {
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	schema, _ := f.Lookup(change.ParquetSchema)
	table, _ := f.Lookup(change.ParquetTable)
	rawDef, ok := f.Lookup(change.ParquetTableDef)
	if !ok || schema == "" || table == "" {
		return nil, fmt.Errorf("%s: not a Parquet object written by binlake (no binlake.table-def, binlake.schema-name or binlake.table-name metadata)", key)
	}
	def, err := change.ParseTableDef([]byte(rawDef))
	if err != nil {
		return nil, fmt.Errorf("%s: binlake.table-def: %w", key, err)
	}
	types := map[string]string{}
	for _, c := range def.Columns {
		types[c.Name] = c.Type
	}
	fields := f.Schema().Fields()
	cols := make([]func(parquet.Value) (any, error), len(fields))
	index := map[string]int{}
	for i, field := range fields {
		index[field.Name()] = i
		if !field.Leaf() {
			return nil, fmt.Errorf("%s: column %s is not a leaf", key, field.Name())
		}
		cols[i], err = parquetValue(field, fsp(types[field.Name()]))
		if err != nil {
			return nil, fmt.Errorf("%s: column %s: %w", key, field.Name(), err)
		}
	}
	for _, name := range []string{change.ColumnOp, change.ColumnPosition, change.ColumnKey} {
		if _, ok := index[name]; !ok {
			return nil, fmt.Errorf("%s: no %s column", key, name)
		}
	}
	zeroCol, hasZero := index[change.ColumnZeroDates]
	var out []Record
	buf := make([]parquet.Row, 128)
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, row := range buf[:n] {
				rec := Record{Type: "data", Schema: schema, Table: table, Object: key, Data: make(map[string]any, len(fields))}
				var zero map[string]string
				if hasZero && !row[zeroCol].IsNull() {
					if err := json.Unmarshal(row[zeroCol].ByteArray(), &zero); err != nil {
						return nil, fmt.Errorf("%s: %s: %w", key, change.ColumnZeroDates, err)
					}
				}
				for i, v := range row {
					name := fields[i].Name()
					switch name {
					case change.ColumnOp:
						rec.Op = string(v.ByteArray())
					case change.ColumnPosition:
						rec.Position = string(v.ByteArray())
					case change.ColumnKey:
						rec.Key = string(v.ByteArray())
					case change.ColumnCommitTime:
						rec.CommitTime = time.UnixMicro(v.Int64()).UTC()
					case change.ColumnTxID:
						if !v.IsNull() {
							id := v.Uint64()
							rec.TransactionID = &id
						}
					case change.ColumnZeroDates:
					default:
						x, err := cols[i](v)
						if err != nil {
							return nil, fmt.Errorf("%s: column %s: %w", key, name, err)
						}
						if text, ok := zero[name]; ok && x == nil {
							x = text
						}
						rec.Data[name] = x
					}
				}
				out = append(out, rec)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return out, nil
}

// parquetValue returns the conversion of a column's values to their JSON
// form, decided by the column's Parquet type.
func parquetValue(field parquet.Field, fsp int) (func(parquet.Value) (any, error), error) {
	typ := field.Type()
	var logical format.LogicalTypeValue
	if lt := typ.LogicalType(); lt != nil {
		logical = lt.Value
	}
	null := func(conv func(parquet.Value) (any, error)) func(parquet.Value) (any, error) {
		return func(v parquet.Value) (any, error) {
			if v.IsNull() {
				return nil, nil
			}
			return conv(v)
		}
	}
	switch lt := logical.(type) {
	case *format.DecimalType:
		scale := int(lt.Scale)
		return null(func(v parquet.Value) (any, error) {
			b := v.ByteArray()
			u := new(big.Int).SetBytes(b)
			if len(b) > 0 && b[0]&0x80 != 0 { // negative: two's complement
				u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
			}
			return change.FormatDecimal(u, scale), nil
		}), nil
	case *format.DateType:
		return null(func(v parquet.Value) (any, error) {
			return time.Unix(int64(v.Int32())*86400, 0).UTC().Format(time.DateOnly), nil
		}), nil
	case *format.TimestampType:
		if _, ok := lt.Unit.Value.(*format.MicroSeconds); !ok {
			return nil, fmt.Errorf("timestamp unit %s, binlake writes microseconds", &lt.Unit)
		}
		return null(func(v parquet.Value) (any, error) {
			return change.FormatDatetime(time.UnixMicro(v.Int64()).UTC(), fsp), nil
		}), nil
	case *format.IntType:
		if !lt.IsSigned && typ.Kind() == parquet.Int64 {
			return null(func(v parquet.Value) (any, error) {
				return json.Number(strconv.FormatUint(uint64(v.Int64()), 10)), nil
			}), nil
		}
	case *format.StringType:
		return null(func(v parquet.Value) (any, error) { return string(v.ByteArray()), nil }), nil
	case nil:
	default:
		return nil, fmt.Errorf("logical type %s is not one binlake writes", logical)
	}
	switch typ.Kind() {
	case parquet.Int32:
		return null(func(v parquet.Value) (any, error) { return json.Number(strconv.FormatInt(int64(v.Int32()), 10)), nil }), nil
	case parquet.Int64:
		return null(func(v parquet.Value) (any, error) { return json.Number(strconv.FormatInt(v.Int64(), 10)), nil }), nil
	case parquet.Float:
		return null(func(v parquet.Value) (any, error) {
			return json.Number(strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)), nil
		}), nil
	case parquet.Double:
		return null(func(v parquet.Value) (any, error) {
			return json.Number(strconv.FormatFloat(v.Double(), 'g', -1, 64)), nil
		}), nil
	case parquet.ByteArray:
		return null(func(v parquet.Value) (any, error) { return base64.StdEncoding.EncodeToString(v.ByteArray()), nil }), nil
	}
	return nil, fmt.Errorf("type %s is not one binlake writes", typ)
}

// ParquetTableDef returns the table definition a Parquet object binlake
// wrote carries (binlake.table-def), in its JSON form.
func ParquetTableDef(key string, body []byte) (json.RawMessage, error) {
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	def, ok := f.Lookup(change.ParquetTableDef)
	if !ok {
		return nil, fmt.Errorf("%s: no %s metadata", key, change.ParquetTableDef)
	}
	return json.RawMessage(def), nil
}
