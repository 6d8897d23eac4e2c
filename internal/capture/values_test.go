package capture

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"

	"github.com/binlake/binlake/internal/change"
)

// sameValue reports whether got and want are equal with the same dynamic
// type (int64(1) and uint64(1) differ). Byte slices compare by content: an
// empty non-NULL value may be a nil slice, which still encodes as "".
func sameValue(got, want any) bool {
	if w, ok := want.([]byte); ok {
		g, ok := got.([]byte)
		return ok && bytes.Equal(g, w)
	}
	return reflect.TypeOf(got) == reflect.TypeOf(want) && reflect.DeepEqual(got, want)
}

func TestSQLColumnValue(t *testing.T) {
	tests := []struct {
		name string
		kind colKind
		in   []byte
		want any
	}{
		{"signed min", kindSigned, []byte("-9223372036854775808"), int64(math.MinInt64)},
		{"signed max", kindSigned, []byte("9223372036854775807"), int64(math.MaxInt64)},
		{"signed zero", kindSigned, []byte("0"), int64(0)},
		{"unsigned max", kindUnsigned, []byte("18446744073709551615"), uint64(math.MaxUint64)},
		{"unsigned 2^53+1", kindUnsigned, []byte("9007199254740993"), uint64(1<<53 + 1)},
		{"year", kindYear, []byte("2024"), int64(2024)},
		{"zero year", kindYear, []byte("0000"), int64(0)},
		{"bit", kindBit, []byte("5"), uint64(5)},
		{"bit(64) all ones", kindBit, []byte("18446744073709551615"), uint64(math.MaxUint64)},
		{"decimal keeps trailing zeros", kindDecimal, []byte("12.340"), change.Decimal("12.340")},
		{"decimal tiny negative", kindDecimal, []byte("-0.000000001"), change.Decimal("-0.000000001")},
		{"decimal 65 digits", kindDecimal, []byte("12345678901234567890123456789012345678901234567890.123456789012345"), change.Decimal("12345678901234567890123456789012345678901234567890.123456789012345")},
		{"float widened to double", kindFloat, []byte("3.1415927410125732"), float32(3.1415927)},
		{"float 0.1", kindFloat, []byte("0.10000000149011612"), float32(0.1)},
		{"float max", kindFloat, []byte("3.4028234663852886e38"), float32(math.MaxFloat32)},
		{"float negative", kindFloat, []byte("-1.5"), float32(-1.5)},
		{"double", kindDouble, []byte("0.1"), 0.1},
		{"double max", kindDouble, []byte("1.7976931348623157e308"), math.MaxFloat64},
		{"double exponent", kindDouble, []byte("-2.5e-300"), -2.5e-300},
		{"binary", kindBinary, []byte{0, 1, 0xfe, 0xff}, []byte{0, 1, 0xfe, 0xff}},
		{"empty binary", kindBinary, []byte{}, []byte{}},
		{"text", kindText, []byte("café 😀"), "café 😀"},
		{"empty text", kindText, []byte{}, ""},
		{"date", kindTemporal, []byte("2024-01-02"), "2024-01-02"},
		{"zero date", kindTemporal, []byte("0000-00-00"), "0000-00-00"},
		{"zero datetime", kindTemporal, []byte("0000-00-00 00:00:00"), "0000-00-00 00:00:00"},
		{"datetime with fraction", kindTemporal, []byte("2024-01-02 03:04:05.120000"), "2024-01-02 03:04:05.120000"},
		{"negative time", kindTemporal, []byte("-838:59:59"), "-838:59:59"},
		{"enum", kindEnum, []byte("medium"), "medium"},
		{"empty enum", kindEnum, []byte(""), ""},
		{"set", kindSet, []byte("x,z"), "x,z"},
		{"json", kindJSON, []byte(`{"a": [1, 2.50]}`), `{"a": [1, 2.50]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sqlColumn{name: "c", kind: tt.kind}
			got, err := c.value(tt.in)
			if err != nil {
				t.Fatalf("value(%q): %v", tt.in, err)
			}
			if !sameValue(got, tt.want) {
				t.Errorf("value(%q) = %#v (%T), want %#v (%T)", tt.in, got, got, tt.want, tt.want)
			}
		})
	}
}

func TestSQLColumnValueNull(t *testing.T) {
	for kind := kindSigned; kind <= kindJSON; kind++ {
		c := sqlColumn{name: "c", kind: kind}
		got, err := c.value(nil)
		if got != nil || err != nil {
			t.Errorf("kind %d: value(nil) = %#v, %v; want nil, nil", kind, got, err)
		}
	}
}

// The scan buffer is reused for the next row: binary values must be copies.
func TestSQLColumnValueCopiesBinary(t *testing.T) {
	buf := []byte{1, 2, 3}
	c := sqlColumn{name: "b", kind: kindBinary}
	got, err := c.value(buf)
	if err != nil {
		t.Fatal(err)
	}
	buf[0] = 9
	if !reflect.DeepEqual(got, []byte{1, 2, 3}) {
		t.Errorf("value changed with the scan buffer: %v", got)
	}
}

func TestSQLColumnValueErrors(t *testing.T) {
	tests := []struct {
		name string
		kind colKind
		in   string
	}{
		{"signed letters", kindSigned, "abc"},
		{"signed overflow", kindSigned, "9223372036854775808"},
		{"signed empty", kindSigned, ""},
		{"signed fraction", kindSigned, "1.5"},
		{"year letters", kindYear, "twenty"},
		{"unsigned negative", kindUnsigned, "-1"},
		{"unsigned overflow", kindUnsigned, "18446744073709551616"},
		{"bit letters", kindBit, "b'101'"},
		{"float letters", kindFloat, "pi"},
		{"double letters", kindDouble, "1,5"},
		{"double out of range", kindDouble, "1e309"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sqlColumn{name: "the_col", kind: tt.kind}
			got, err := c.value([]byte(tt.in))
			if err == nil {
				t.Fatalf("value(%q) = %#v, want an error", tt.in, got)
			}
			if got != nil {
				t.Errorf("value(%q) returned %#v along with its error", tt.in, got)
			}
			if !strings.HasPrefix(err.Error(), "column the_col: ") {
				t.Errorf("error %q does not start by naming the column", err)
			}
			if !strings.Contains(err.Error(), `"`+tt.in+`"`) {
				t.Errorf("error %q does not quote the bad value", err)
			}
		})
	}
}

func TestSQLKind(t *testing.T) {
	utf8mb4, latin1, binary := "utf8mb4", "latin1", "binary"
	tests := []struct {
		dataType, columnType string
		charset              *string
		want                 colKind
	}{
		{"tinyint", "tinyint(4)", nil, kindSigned},
		{"tinyint", "tinyint(3) unsigned", nil, kindUnsigned},
		{"smallint", "smallint(6)", nil, kindSigned},
		{"mediumint", "mediumint(8) unsigned", nil, kindUnsigned},
		{"int", "int(11)", nil, kindSigned},
		{"integer", "int", nil, kindSigned},
		{"bigint", "bigint(20) unsigned zerofill", nil, kindUnsigned},
		{"BIGINT", "BIGINT UNSIGNED", nil, kindUnsigned},
		{"bigint", "bigint", nil, kindSigned},
		{"decimal", "decimal(10,3)", nil, kindDecimal},
		{"decimal", "decimal(10,3) unsigned", nil, kindDecimal},
		{"numeric", "numeric(5,0)", nil, kindDecimal},
		{"float", "float", nil, kindFloat},
		{"float", "float unsigned", nil, kindFloat},
		{"double", "double", nil, kindDouble},
		{"real", "double", nil, kindDouble},
		{"double precision", "double", nil, kindDouble},
		{"bit", "bit(64)", nil, kindBit},
		{"year", "year(4)", nil, kindYear},
		{"date", "date", nil, kindTemporal},
		{"datetime", "datetime(6)", nil, kindTemporal},
		{"timestamp", "timestamp(3)", nil, kindTemporal},
		{"time", "time", nil, kindTemporal},
		{"enum", "enum('a','b')", &utf8mb4, kindEnum},
		{"set", "set('x','y','z')", &utf8mb4, kindSet},
		{"json", "json", &utf8mb4, kindJSON},
		{"char", "char(10)", &utf8mb4, kindText},
		{"varchar", "varchar(255)", &latin1, kindText},
		{"VARCHAR", "VARCHAR(255)", &utf8mb4, kindText},
		{"tinytext", "tinytext", &utf8mb4, kindText},
		{"text", "text", &utf8mb4, kindText},
		{"mediumtext", "mediumtext", &utf8mb4, kindText},
		{"longtext", "longtext", &utf8mb4, kindText},
		{"char", "char(10)", nil, kindBinary},
		{"varchar", "varchar(10)", &binary, kindBinary},
		{"binary", "binary(16)", nil, kindBinary},
		{"varbinary", "varbinary(255)", nil, kindBinary},
		{"tinyblob", "tinyblob", nil, kindBinary},
		{"blob", "blob", nil, kindBinary},
		{"mediumblob", "mediumblob", nil, kindBinary},
		{"longblob", "longblob", nil, kindBinary},
		{"geometry", "geometry", nil, kindBinary},
		{"point", "point", nil, kindBinary},
		{"something new", "something new", nil, kindBinary},
	}
	for _, tt := range tests {
		cs := "<nil>"
		if tt.charset != nil {
			cs = *tt.charset
		}
		t.Run(tt.dataType+"/"+tt.columnType+"/"+cs, func(t *testing.T) {
			if got := sqlKind(tt.dataType, tt.columnType, tt.charset); got != tt.want {
				t.Errorf("sqlKind(%q, %q, %s) = %d, want %d", tt.dataType, tt.columnType, cs, got, tt.want)
			}
		})
	}
}

func TestSelectExpr(t *testing.T) {
	tests := []struct {
		col  sqlColumn
		want string
	}{
		{sqlColumn{name: "f", kind: kindFloat}, "(`f`+0e0)"},
		{sqlColumn{name: "b", kind: kindBit}, "(`b`+0)"},
		{sqlColumn{name: "d", kind: kindDouble}, "`d`"},
		{sqlColumn{name: "s", kind: kindText}, "`s`"},
		{sqlColumn{name: "we`ird", kind: kindFloat}, "(`we``ird`+0e0)"},
	}
	for _, tt := range tests {
		if got := tt.col.selectExpr(); got != tt.want {
			t.Errorf("%+v.selectExpr() = %q, want %q", tt.col, got, tt.want)
		}
	}
}

func TestBinlogColumnValue(t *testing.T) {
	xyz := []string{"x", "y", "z"}
	labels64 := make([]string, 64)
	for i := range labels64 {
		labels64[i] = string(rune('A' + i%26))
	}
	labels64[63] = "last"
	tests := []struct {
		name string
		col  binlogColumn
		in   any
		want any
	}{
		{"int8", binlogColumn{kind: kindSigned}, int8(-128), int64(-128)},
		{"int16", binlogColumn{kind: kindSigned}, int16(-32768), int64(-32768)},
		{"int32 (INT and MEDIUMINT)", binlogColumn{kind: kindSigned}, int32(math.MinInt32), int64(math.MinInt32)},
		{"int64", binlogColumn{kind: kindSigned}, int64(math.MinInt64), int64(math.MinInt64)},
		{"uint8", binlogColumn{kind: kindUnsigned}, uint8(255), uint64(255)},
		{"uint16", binlogColumn{kind: kindUnsigned}, uint16(65535), uint64(65535)},
		{"uint32 (INT and MEDIUMINT)", binlogColumn{kind: kindUnsigned}, uint32(math.MaxUint32), uint64(math.MaxUint32)},
		{"uint64", binlogColumn{kind: kindUnsigned}, uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{"unsigned TINYINT read signed", binlogColumn{kind: kindUnsigned}, int8(-1), uint64(255)},
		{"unsigned SMALLINT read signed", binlogColumn{kind: kindUnsigned}, int16(math.MinInt16), uint64(32768)},
		{"unsigned MEDIUMINT read signed", binlogColumn{kind: kindUnsigned, int24: true}, int32(-1), uint64(1<<24 - 1)},
		{"unsigned INT read signed", binlogColumn{kind: kindUnsigned}, int32(-1), uint64(math.MaxUint32)},
		{"unsigned BIGINT read signed", binlogColumn{kind: kindUnsigned}, int64(-2), uint64(math.MaxUint64 - 1)},
		{"decimal", binlogColumn{kind: kindDecimal}, "12.340", change.Decimal("12.340")},
		{"float", binlogColumn{kind: kindFloat}, float32(0.1), float32(0.1)},
		{"double", binlogColumn{kind: kindDouble}, 0.1, 0.1},
		{"bit", binlogColumn{kind: kindBit}, int64(5), uint64(5)},
		{"bit(64) all ones", binlogColumn{kind: kindBit}, int64(-1), uint64(math.MaxUint64)},
		{"year", binlogColumn{kind: kindYear}, int(2024), int64(2024)},
		{"zero year", binlogColumn{kind: kindYear}, int(0), int64(0)},
		{"temporal", binlogColumn{kind: kindTemporal}, "2024-01-02 03:04:05.123", "2024-01-02 03:04:05.123"},
		{"utf8 text string", binlogColumn{kind: kindText}, "😀 café", "😀 café"},
		{"utf8 text bytes", binlogColumn{kind: kindText}, []byte("blob text"), "blob text"},
		{"latin1 string", binlogColumn{kind: kindText, dec: charsetDecoder("latin1")}, "caf\xe9", "café"},
		{"latin1 bytes", binlogColumn{kind: kindText, dec: charsetDecoder("latin1")}, []byte("caf\xe9"), "café"},
		{"latin1 is cp1252", binlogColumn{kind: kindText, dec: charsetDecoder("LATIN1")}, "\x80 \x93q\x94", "€ “q”"},
		{"cp1251", binlogColumn{kind: kindText, dec: charsetDecoder("cp1251")}, "\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"},
		{"utf16 big endian", binlogColumn{kind: kindText, dec: charsetDecoder("utf16")}, []byte{0, 'h', 0, 'i', 0xd8, 0x3d, 0xde, 0x00}, "hi😀"},
		{"utf16le", binlogColumn{kind: kindText, dec: charsetDecoder("utf16le")}, []byte{'h', 0, 'i', 0}, "hi"},
		{"json string", binlogColumn{kind: kindJSON}, `{"a":1}`, `{"a":1}`},
		{"json bytes", binlogColumn{kind: kindJSON}, []byte(`[1,2]`), `[1,2]`},
		{"empty json document", binlogColumn{kind: kindJSON}, []byte{}, "null"},
		{"binary string", binlogColumn{kind: kindBinary}, "\x00\xff", []byte{0, 0xff}},
		{"binary bytes", binlogColumn{kind: kindBinary}, []byte{1, 2}, []byte{1, 2}},
		{"enum index 0 is the empty error value", binlogColumn{kind: kindEnum, labels: xyz}, int64(0), ""},
		{"enum first", binlogColumn{kind: kindEnum, labels: xyz}, int64(1), "x"},
		{"enum last", binlogColumn{kind: kindEnum, labels: xyz}, int64(3), "z"},
		{"enum out of range", binlogColumn{kind: kindEnum, labels: xyz}, int64(4), ""},
		{"set empty", binlogColumn{kind: kindSet, labels: xyz}, int64(0), ""},
		{"set bitmask 5", binlogColumn{kind: kindSet, labels: xyz}, int64(5), "x,z"},
		{"set all", binlogColumn{kind: kindSet, labels: xyz}, int64(7), "x,y,z"},
		{"set single", binlogColumn{kind: kindSet, labels: xyz}, int64(2), "y"},
		{"set of 64 members, top bit", binlogColumn{kind: kindSet, labels: labels64}, int64(math.MinInt64), "last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.col.name = "c"
			got, err := tt.col.value(tt.in)
			if err != nil {
				t.Fatalf("value(%#v): %v", tt.in, err)
			}
			if !sameValue(got, tt.want) {
				t.Errorf("value(%#v) = %#v (%T), want %#v (%T)", tt.in, got, got, tt.want, tt.want)
			}
		})
	}
}

func TestBinlogColumnValueNull(t *testing.T) {
	for kind := kindSigned; kind <= kindJSON; kind++ {
		c := binlogColumn{name: "c", kind: kind, labels: []string{"a"}}
		got, err := c.value(nil)
		if got != nil || err != nil {
			t.Errorf("kind %d: value(nil) = %#v, %v; want nil, nil", kind, got, err)
		}
	}
}

func TestBinlogColumnValueTypeMismatch(t *testing.T) {
	tests := []struct {
		name string
		kind colKind
		in   any
		typ  string
	}{
		{"signed column, unsigned value", kindSigned, uint8(1), "uint8"},
		{"signed column, int", kindSigned, int(1), "int"},
		{"unsigned column, int", kindUnsigned, int(1), "int"},
		{"decimal column, float", kindDecimal, 1.5, "float64"},
		{"float column, double", kindFloat, 1.5, "float64"},
		{"double column, float", kindDouble, float32(1.5), "float32"},
		{"bit column, uint64", kindBit, uint64(1), "uint64"},
		{"year column, int64", kindYear, int64(2024), "int64"},
		{"temporal column, bytes", kindTemporal, []byte("2024-01-01"), "[]uint8"},
		{"text column, int", kindText, int64(1), "int64"},
		{"binary column, int", kindBinary, int32(1), "int32"},
		{"json column, int", kindJSON, int64(1), "int64"},
		{"enum column, string", kindEnum, "x", "string"},
		{"set column, string", kindSet, "x,y", "string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := binlogColumn{name: "the_col", kind: tt.kind, labels: []string{"x", "y"}}
			got, err := c.value(tt.in)
			if err == nil {
				t.Fatalf("value(%#v) = %#v, want an error", tt.in, got)
			}
			want := "column the_col: unexpected binlog value " + tt.typ + " for its type"
			if err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
		})
	}
}

func TestCharsetDecoder(t *testing.T) {
	for _, cs := range []string{"", "utf8", "utf8mb3", "utf8mb4", "UTF8MB4", "ascii", "binary"} {
		if charsetDecoder(cs) != nil {
			t.Errorf("charsetDecoder(%q) is not nil: the bytes are UTF-8 already", cs)
		}
	}
	for _, cs := range []string{
		"latin1", "LATIN1", "latin2", "cp1250", "cp1251", "cp1256", "cp1257", "greek", "hebrew", "latin5", "latin7",
		"koi8r", "koi8u", "cp850", "cp866", "ucs2", "utf16", "utf16le",
		"gbk", "gb2312", "gb18030", "big5", "sjis", "cp932", "ujis", "eucjpms", "euckr",
	} {
		if charsetDecoder(cs) == nil {
			t.Errorf("charsetDecoder(%q) is nil", cs)
		}
	}
}

// MySQL's latin1 is cp1252 with the five bytes cp1252 leaves undefined
// mapped to the C1 controls of the same number (MySQL reference manual,
// "West European Character Sets"); the full-load SELECT, converted by the
// server to utf8mb4, gets those, so the binlog path must too.
func TestLatin1UndefinedCp1252Bytes(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte{0x81, 0x8d, 0x8f, 0x90, 0x9d}, "\u0081\u008d\u008f\u0090\u009d"},
		{[]byte{0x00, 'A', 0x7f}, "\x00A\x7f"},
		{[]byte{0x80, 0x8a, 0x9f}, "€ŠŸ"},
		{[]byte{0xa0, 0xe9, 0xff}, "\u00a0éÿ"},
		// Longer than any transform buffer.
		{bytes.Repeat([]byte{0xe9, 0x81}, 100_000), strings.Repeat("é\u0081", 100_000)},
	}
	for _, tt := range tests {
		got := decodeText(charsetDecoder("latin1"), tt.in)
		if got != tt.want {
			if len(got) > 40 {
				t.Errorf("latin1 decode of %d bytes: got %d bytes, want %d", len(tt.in), len(got), len(tt.want))
				continue
			}
			t.Errorf("latin1 decode of %x = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Multi-byte Asian character sets must be decoded too: passed on as if they
// were UTF-8, the binlog path would turn their text into U+FFFD while the
// full load (converted by the server) is right.
func TestMultiByteCharsets(t *testing.T) {
	tests := []struct {
		charset string
		text    string
		encode  func(string) (string, error)
	}{
		{"gbk", "中文", simplifiedchinese.GBK.NewEncoder().String},
		{"gb18030", "中文", simplifiedchinese.GB18030.NewEncoder().String},
		{"gb2312", "中文", simplifiedchinese.GBK.NewEncoder().String}, // EUC-CN, a subset of GBK
		{"big5", "中文", traditionalchinese.Big5.NewEncoder().String},
		{"sjis", "日本語", japanese.ShiftJIS.NewEncoder().String},
		{"cp932", "日本語", japanese.ShiftJIS.NewEncoder().String},
		{"ujis", "日本語", japanese.EUCJP.NewEncoder().String},
		{"eucjpms", "日本語", japanese.EUCJP.NewEncoder().String},
		{"euckr", "한국어", korean.EUCKR.NewEncoder().String},
	}
	for _, tt := range tests {
		raw, err := tt.encode(tt.text)
		if err != nil {
			t.Fatal(err)
		}
		col := binlogColumn{name: "c", kind: kindText, dec: charsetDecoder(tt.charset)}
		got, err := col.value(raw)
		if err != nil || got != tt.text {
			t.Errorf("%s: value(%q) = %q, %v; want %q", tt.charset, raw, got, err, tt.text)
		}
	}
}

// TestBinlogColumnValuePartialJSON: a JSON column's partial update (MySQL's
// binlog_row_value_options=PARTIAL_JSON) is not a value: it is refused as
// such, and the reader puts the table in Table error (rows).
func TestBinlogColumnValuePartialJSON(t *testing.T) {
	c := binlogColumn{name: "doc", kind: kindJSON}
	got, err := c.value(&replication.JsonDiff{Op: replication.JsonDiffOperationReplace, Path: "$.a", Value: "1"})
	if !errors.Is(err, errPartialJSON) {
		t.Fatalf("value(JsonDiff) = %#v, %v; want errPartialJSON", got, err)
	}
}
