package change

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// FormatVersion is written into every record's metadata so that readers can
// tell encodings apart as the format evolves.
const FormatVersion = 1

// Op is the DMS operation of a record.
type Op string

// Data operations, as DMS writes them.
const (
	OpLoad   Op = "load"
	OpInsert Op = "insert"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Control operations (record-type "control").
const (
	OpCreateTable   Op = "create-table"
	OpDropTable     Op = "drop-table"
	OpRenameTable   Op = "rename-table"
	OpTruncateTable Op = "truncate-table"
	OpChangeColumns Op = "change-columns"
)

// IsControl reports whether op belongs to a control record.
func (op Op) IsControl() bool {
	switch op {
	case OpLoad, OpInsert, OpUpdate, OpDelete:
		return false
	}
	return true
}

// Field is one column of a row. Value is one of: nil, int64, uint64,
// float32, float64, string, Decimal, []byte (binary: encoded as base64).
type Field struct {
	Name  string
	Value any
}

// Decimal is a DECIMAL value with exactly the digits MySQL prints; it is
// encoded as a JSON string so that no digit is lost.
type Decimal string

// Row is an ordered list of columns.
type Row []Field

// Get returns the value of the named column and whether it exists.
func (r Row) Get(name string) (any, bool) {
	for _, f := range r {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// Record is one change record in the DMS format.
type Record struct {
	Op             Op
	Schema         string
	Table          string
	Data           Row       // the row after the change (before it, for deletes)
	Before         Row       // before image of updates and deletes ("before-image"); nil when not captured
	Statement      string    // DDL text of control records
	TableDef       *TableDef // the table's definition after a control record (nil: unknown or dropped)
	TransactionID  uint64    // source transaction (MariaDB/MySQL GTID sequence number, or 0)
	CommitTime     time.Time // source commit time (full load: snapshot time)
	Position       Position
	PartitionKey   string // schema.table.<pk values>, as DMS's partition-key-value
	PartitionKeyPK bool   // the partition key holds primary-key values
	BuiltAt        time.Time
	TransactionSeq uint32 // 1-based record number within its transaction
	// Prev, when not nil, is the CDC record published before this one,
	// written as DMS's prev-transaction-id and prev-transaction-record-id
	// (IncludeTransactionDetails).
	Prev *TransactionRef
}

// TransactionRef names a CDC record by its transaction-id and
// transaction-record-id.
type TransactionRef struct {
	ID  uint64
	Seq uint32
}

// RecordType is "data" or "control".
func (r *Record) RecordType() string {
	if r.Op.IsControl() {
		return "control"
	}
	return "data"
}

const tsLayout = "2006-01-02T15:04:05.000000Z"

// AppendJSON appends the record's DMS JSON form (one line, no newline).
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if r.Op.IsControl() {
		b = append(b, `"control":{"statement":`...)
		b = AppendString(b, r.Statement)
		if r.TableDef != nil {
			b = append(b, `,"table-def":`...)
			b = r.TableDef.appendJSON(b)
		}
		b = append(b, '}')
	} else {
		b = append(b, `"data":`...)
		b = appendRow(b, r.Data)
		if r.Before != nil {
			b = append(b, `,"before-image":`...)
			b = appendRow(b, r.Before)
		}
	}
	b = append(b, `,"metadata":{"timestamp":`...)
	b = appendTime(b, r.BuiltAt)
	b = append(b, `,"record-type":"`...)
	b = append(b, r.RecordType()...)
	b = append(b, `","operation":`...)
	b = AppendString(b, string(r.Op))
	b = append(b, `,"partition-key-type":`...)
	if r.PartitionKeyPK {
		b = append(b, `"primary-key"`...)
	} else {
		b = append(b, `"schema-table"`...)
	}
	b = append(b, `,"partition-key-value":`...)
	b = AppendString(b, r.PartitionKey)
	b = append(b, `,"schema-name":`...)
	b = AppendString(b, r.Schema)
	b = append(b, `,"table-name":`...)
	b = AppendString(b, r.Table)
	// Records read at a snapshot watermark (full-load rows and the control
	// records around them) belong to no source transaction.
	if r.Op != OpLoad && !(r.Op.IsControl() && r.Position.Kind == KindLoad && r.TransactionID == 0) {
		b = append(b, `,"transaction-id":`...)
		b = strconv.AppendUint(b, r.TransactionID, 10)
		if r.Prev != nil {
			b = append(b, `,"prev-transaction-id":`...)
			b = strconv.AppendUint(b, r.Prev.ID, 10)
		}
		b = append(b, `,"transaction-record-id":`...)
		b = strconv.AppendUint(b, uint64(r.TransactionSeq), 10)
		if r.Prev != nil {
			b = append(b, `,"prev-transaction-record-id":`...)
			b = strconv.AppendUint(b, uint64(r.Prev.Seq), 10)
		}
	}
	b = append(b, `,"commit-timestamp":`...)
	b = appendTime(b, r.CommitTime)
	b = append(b, `,"stream-position":"`...)
	b = r.Position.Append(b)
	b = append(b, `","format-version":`...)
	b = strconv.AppendInt(b, FormatVersion, 10)
	b = append(b, "}}"...)
	return b
}

// appendTime appends t as a JSON string in tsLayout (digits and
// separators only, so no escaping), in UTC. It writes the digits itself:
// two timestamps go into every record, and time.AppendFormat was 40% of the
// JSON encoding's time.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, tsLayout)
		return append(b, '"')
	}
	hour, minute, sec := t.Clock()
	n := len(b)
	b = append(b, `"0000-00-00T00:00:00.000000Z"`...)
	d := b[n+1:]
	putDigits(d[0:4], uint64(year))
	putDigits(d[5:7], uint64(month))
	putDigits(d[8:10], uint64(day))
	putDigits(d[11:13], uint64(hour))
	putDigits(d[14:16], uint64(minute))
	putDigits(d[17:19], uint64(sec))
	putDigits(d[20:26], uint64(t.Nanosecond()/1000))
	return b
}

// putDigits writes v's last len(d) decimal digits into d, zero-padded.
func putDigits(d []byte, v uint64) {
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = '0' + byte(v%10)
		v /= 10
	}
}

func appendRow(b []byte, row Row) []byte {
	b = append(b, '{')
	for i, f := range row {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, f.Name)
		b = append(b, ':')
		b = AppendValue(b, f.Value)
	}
	return append(b, '}')
}

// AppendValue appends the JSON form of a column value (see docs/format.md).
func AppendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case float32:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, f, 'g', -1, 32)
	case Decimal:
		return AppendString(b, string(x))
	case string:
		return AppendString(b, x)
	case []byte:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, x)
		return append(b, '"')
	default:
		panic("change: unsupported value type")
	}
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 is replaced with
// U+FFFD so that the output is always valid JSON.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) && plain8(s[i:i+8]) {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plain8 tells whether the 8 bytes of s are ASCII that JSON takes as it is
// (no control character, quote or backslash), testing them at once: in
// each byte lane, subtracting 0x20 from a control character, or 1 from a
// quote or backslash XORed to zero, sets the lane's top bit, as ASCII's
// top bit is clear. A borrow into the next lane comes only from a lane
// that is itself flagged.
func plain8(s string) bool {
	_ = s[7]
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	const ones, tops = 0x0101010101010101, 0x8080808080808080
	return (x|(x-ones*0x20)|((x^ones*'"')-ones)|((x^ones*'\\')-ones))&tops == 0
}

// ColumnDef describes a column: its MySQL type as information_schema shows
// it (COLUMN_TYPE, e.g. "decimal(10,3) unsigned", and DATA_TYPE).
type ColumnDef struct {
	Name     string
	Type     string
	DataType string
	Nullable bool
}

// TableDef is the definition control records carry, in DMS's shape
// ("columns" keyed by name) plus the column order and primary key.
type TableDef struct {
	Columns    []ColumnDef
	PrimaryKey []string
}

// MarshalJSON writes the definition in the form control records carry
// (control.table-def), which ParseTableDef reads.
func (d *TableDef) MarshalJSON() ([]byte, error) { return d.appendJSON(nil), nil }

func (d *TableDef) appendJSON(b []byte) []byte {
	b = append(b, `{"columns":{`...)
	for i, c := range d.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, c.Name)
		b = append(b, `:{"type":`...)
		b = AppendString(b, c.Type)
		b = append(b, `,"data-type":`...)
		b = AppendString(b, c.DataType)
		b = append(b, `,"nullable":`...)
		b = strconv.AppendBool(b, c.Nullable)
		b = append(b, '}')
	}
	b = append(b, `},"column-order":[`...)
	for i, c := range d.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, c.Name)
	}
	b = append(b, `],"primary-key":[`...)
	for i, c := range d.PrimaryKey {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, c)
	}
	return append(b, "]}"...)
}
