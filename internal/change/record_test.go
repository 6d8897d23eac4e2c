package change_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/binlake/binlake/internal/change"
)

var (
	builtAt    = time.Date(2024, 5, 6, 7, 8, 9, 987654321, time.UTC)
	commitTime = time.Date(2024, 5, 6, 9, 8, 7, 123456789, time.FixedZone("CEST", 2*3600))
)

func TestRecordAppendJSON(t *testing.T) {
	tests := []struct {
		name string
		rec  change.Record
		want string
	}{
		{
			name: "insert with every value kind",
			rec: change.Record{
				Op:     change.OpInsert,
				Schema: "shop",
				Table:  "orders",
				Data: change.Row{
					{Name: "id", Value: int64(1)},
					{Name: "nothing", Value: nil},
					{Name: "min", Value: int64(math.MinInt64)},
					{Name: "max", Value: uint64(math.MaxUint64)},
					{Name: "f32", Value: float32(0.1)},
					{Name: "f64", Value: 2.718281828459045},
					{Name: "price", Value: change.Decimal("12.340")},
					{Name: "text", Value: "say \"hi\"\nback\\slash\x01tab\t😀 bad\xff sep\u2028end"},
					{Name: "blob", Value: []byte{0, 1, 2, 0xfe, 0xff}},
				},
				TransactionID:  77,
				TransactionSeq: 3,
				CommitTime:     commitTime,
				BuiltAt:        builtAt,
				Position:       change.Position{Epoch: 1, File: 10, Offset: 1<<32 + 5, Kind: change.KindEvent, A: 2, B: 0},
				PartitionKey:   "shop.orders.1",
				PartitionKeyPK: true,
			},
			want: `{"data":{"id":1,"nothing":null,"min":-9223372036854775808,"max":18446744073709551615,` +
				`"f32":0.1,"f64":2.718281828459045,"price":"12.340",` +
				`"text":"say \"hi\"\nback\\slash\u0001tab\t😀 bad\ufffd sep\u2028end","blob":"AAEC/v8="},` +
				`"metadata":{"timestamp":"2024-05-06T07:08:09.987654Z","record-type":"data","operation":"insert",` +
				`"partition-key-type":"primary-key","partition-key-value":"shop.orders.1",` +
				`"schema-name":"shop","table-name":"orders","transaction-id":77,"transaction-record-id":3,` +
				`"commit-timestamp":"2024-05-06T07:08:07.123456Z",` +
				`"stream-position":"0001/0000000010/0000004294967301/1/0000000002/0000000000","format-version":1}}`,
		},
		{
			name: "update with a before image",
			rec: change.Record{
				Op:             change.OpUpdate,
				Schema:         "s",
				Table:          "t",
				Data:           change.Row{{Name: "id", Value: int64(5)}, {Name: "v", Value: "new"}},
				Before:         change.Row{{Name: "id", Value: int64(5)}, {Name: "v", Value: "old"}},
				TransactionID:  1,
				TransactionSeq: 1,
				CommitTime:     commitTime,
				BuiltAt:        builtAt,
				Position:       change.Position{File: 2, Offset: 400, Kind: change.KindEvent},
				PartitionKey:   "s.t.5",
				PartitionKeyPK: true,
			},
			want: `{"data":{"id":5,"v":"new"},"before-image":{"id":5,"v":"old"},` +
				`"metadata":{"timestamp":"2024-05-06T07:08:09.987654Z","record-type":"data","operation":"update",` +
				`"partition-key-type":"primary-key","partition-key-value":"s.t.5",` +
				`"schema-name":"s","table-name":"t","transaction-id":1,"transaction-record-id":1,` +
				`"commit-timestamp":"2024-05-06T07:08:07.123456Z",` +
				`"stream-position":"0000/0000000002/0000000000000400/1/0000000000/0000000000","format-version":1}}`,
		},
		{
			name: "load record has no transaction fields",
			rec: change.Record{
				Op:     change.OpLoad,
				Schema: "s",
				Table:  "nopk",
				Data:   change.Row{{Name: "v", Value: "x"}},
				// Set, but not written for load records.
				TransactionID:  9,
				TransactionSeq: 9,
				CommitTime:     commitTime,
				BuiltAt:        builtAt,
				Position:       change.Position{File: 3, Offset: 1234, Kind: change.KindLoad, A: 7, B: 42},
				PartitionKey:   "s.nopk",
			},
			want: `{"data":{"v":"x"},` +
				`"metadata":{"timestamp":"2024-05-06T07:08:09.987654Z","record-type":"data","operation":"load",` +
				`"partition-key-type":"schema-table","partition-key-value":"s.nopk",` +
				`"schema-name":"s","table-name":"nopk",` +
				`"commit-timestamp":"2024-05-06T07:08:07.123456Z",` +
				`"stream-position":"0000/0000000003/0000000000001234/0/0000000007/0000000042","format-version":1}}`,
		},
		{
			name: "control record",
			rec: change.Record{
				Op:            change.OpTruncateTable,
				Schema:        "s",
				Table:         "t",
				Statement:     "TRUNCATE TABLE `s`.`t` /* \"quoted\" */",
				TransactionID: 12,
				CommitTime:    commitTime,
				BuiltAt:       builtAt,
				Position:      change.Position{File: 4, Offset: 99, Kind: change.KindEvent, B: 3},
				PartitionKey:  "s.t",
			},
			want: `{"control":{"statement":"TRUNCATE TABLE ` + "`s`.`t`" + ` /* \"quoted\" */"},` +
				`"metadata":{"timestamp":"2024-05-06T07:08:09.987654Z","record-type":"control","operation":"truncate-table",` +
				`"partition-key-type":"schema-table","partition-key-value":"s.t",` +
				`"schema-name":"s","table-name":"t","transaction-id":12,"transaction-record-id":0,` +
				`"commit-timestamp":"2024-05-06T07:08:07.123456Z",` +
				`"stream-position":"0000/0000000004/0000000000000099/1/0000000000/0000000003","format-version":1}}`,
		},
		{
			name: "empty row and zero times",
			rec: change.Record{
				Op:     change.OpDelete,
				Schema: "s",
				Table:  "t",
				Data:   change.Row{},
			},
			want: `{"data":{},` +
				`"metadata":{"timestamp":"0001-01-01T00:00:00.000000Z","record-type":"data","operation":"delete",` +
				`"partition-key-type":"schema-table","partition-key-value":"",` +
				`"schema-name":"s","table-name":"t","transaction-id":0,"transaction-record-id":0,` +
				`"commit-timestamp":"0001-01-01T00:00:00.000000Z",` +
				`"stream-position":"0000/0000000000/0000000000000000/0/0000000000/0000000000","format-version":1}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix ")
			out := tt.rec.AppendJSON(prefix)
			if !strings.HasPrefix(string(out), "prefix ") {
				t.Fatalf("AppendJSON did not append to its argument: %q", out)
			}
			got := string(out[len(prefix):])
			if got != tt.want {
				t.Errorf("AppendJSON =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("AppendJSON output is not valid JSON: %s", got)
			}
			if strings.ContainsAny(got, "\n\r") {
				t.Errorf("AppendJSON output is not one line: %q", got)
			}
		})
	}
}

// TestRecordAppendJSONDecodes decodes the output with encoding/json and
// checks every value comes back with all its digits.
func TestRecordAppendJSONDecodes(t *testing.T) {
	rec := change.Record{
		Op: change.OpInsert, Schema: "s", Table: "t",
		Data: change.Row{
			{Name: "min", Value: int64(math.MinInt64)},
			{Name: "max", Value: uint64(math.MaxUint64)},
			{Name: "f32", Value: float32(0.1)},
			{Name: "price", Value: change.Decimal("12.340")},
			{Name: "blob", Value: []byte("\x00binary\xff")},
			{Name: "emoji", Value: "😀"},
		},
	}
	var doc struct {
		Data struct {
			Min   json.Number `json:"min"`
			Max   json.Number `json:"max"`
			F32   float32     `json:"f32"`
			Price string      `json:"price"`
			Blob  []byte      `json:"blob"`
			Emoji string      `json:"emoji"`
		} `json:"data"`
		Metadata map[string]any `json:"metadata"`
	}
	dec := json.NewDecoder(strings.NewReader(string(rec.AppendJSON(nil))))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Data.Min != "-9223372036854775808" || doc.Data.Max != "18446744073709551615" {
		t.Errorf("integers: min %s max %s", doc.Data.Min, doc.Data.Max)
	}
	if doc.Data.F32 != float32(0.1) {
		t.Errorf("f32 = %v, want float32(0.1)", doc.Data.F32)
	}
	if doc.Data.Price != "12.340" {
		t.Errorf("price = %q", doc.Data.Price)
	}
	if string(doc.Data.Blob) != "\x00binary\xff" {
		t.Errorf("blob = %q", doc.Data.Blob)
	}
	if doc.Data.Emoji != "😀" {
		t.Errorf("emoji = %q", doc.Data.Emoji)
	}
}

func TestRecordType(t *testing.T) {
	tests := []struct {
		op      change.Op
		control bool
	}{
		{change.OpLoad, false},
		{change.OpInsert, false},
		{change.OpUpdate, false},
		{change.OpDelete, false},
		{change.OpCreateTable, true},
		{change.OpDropTable, true},
		{change.OpRenameTable, true},
		{change.OpTruncateTable, true},
		{change.OpChangeColumns, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.op), func(t *testing.T) {
			if got := tt.op.IsControl(); got != tt.control {
				t.Errorf("IsControl() = %v, want %v", got, tt.control)
			}
			want := "data"
			if tt.control {
				want = "control"
			}
			r := change.Record{Op: tt.op}
			if got := r.RecordType(); got != want {
				t.Errorf("RecordType() = %q, want %q", got, want)
			}
		})
	}
}

func TestRowGet(t *testing.T) {
	row := change.Row{{Name: "a", Value: int64(1)}, {Name: "n", Value: nil}, {Name: "a", Value: int64(2)}}
	if v, ok := row.Get("a"); !ok || v != int64(1) {
		t.Errorf(`Get("a") = %v, %v; want the first column, 1, true`, v, ok)
	}
	if v, ok := row.Get("n"); !ok || v != nil {
		t.Errorf(`Get("n") = %v, %v; want nil, true`, v, ok)
	}
	if v, ok := row.Get("missing"); ok || v != nil {
		t.Errorf(`Get("missing") = %v, %v; want nil, false`, v, ok)
	}
}

func TestAppendValue(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, `null`},
		{"int64 zero", int64(0), `0`},
		{"int64 negative", int64(-42), `-42`},
		{"int64 min", int64(math.MinInt64), `-9223372036854775808`},
		{"int64 max", int64(math.MaxInt64), `9223372036854775807`},
		{"uint64 max", uint64(math.MaxUint64), `18446744073709551615`},
		{"uint64 2^53+1", uint64(1<<53 + 1), `9007199254740993`},
		{"float32 0.1", float32(0.1), `0.1`},
		{"float32 pi", float32(3.1415927), `3.1415927`},
		{"float32 max", float32(math.MaxFloat32), `3.4028235e+38`},
		{"float32 smallest", float32(math.SmallestNonzeroFloat32), `1e-45`},
		{"float32 NaN", float32(math.NaN()), `null`},
		{"float32 -Inf", float32(math.Inf(-1)), `null`},
		{"float64 0.1", 0.1, `0.1`},
		{"float64 1/3", 1.0 / 3, `0.3333333333333333`},
		{"float64 integral", 100.0, `100`},
		{"float64 large", 1e21, `1e+21`},
		{"float64 small", 1e-7, `1e-07`},
		{"float64 negative zero", math.Copysign(0, -1), `-0`},
		{"float64 max", math.MaxFloat64, `1.7976931348623157e+308`},
		{"float64 NaN", math.NaN(), `null`},
		{"float64 +Inf", math.Inf(1), `null`},
		{"decimal", change.Decimal("12.340"), `"12.340"`},
		{"decimal negative long", change.Decimal("-12345678901234567890123456789.123456789"), `"-12345678901234567890123456789.123456789"`},
		{"empty string", "", `""`},
		{"plain string", "hello", `"hello"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"newline, return, tab", "a\nb\rc\td", `"a\nb\rc\td"`},
		{"control characters", "\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"DEL passes", "\x7f", "\"\x7f\""},
		{"html characters pass", "<a href='x'>&</a>", `"<a href='x'>&</a>"`},
		{"latin accents", "café", `"café"`},
		{"emoji", "😀", `"😀"`},
		{"line and paragraph separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"invalid UTF-8 byte", "a\xffb", `"a\ufffdb"`},
		{"truncated sequence", "\xe2\x82", `"\ufffd\ufffd"`},
		{"encoded surrogate", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"replacement character itself", "\ufffd", "\"\ufffd\""},
		{"bytes", []byte{0, 1, 2, 0xfe, 0xff}, `"AAEC/v8="`},
		{"empty bytes", []byte{}, `""`},
		{"text bytes", []byte("hi"), `"aGk="`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(change.AppendValue([]byte("x"), tt.v))
			if got != "x"+tt.want {
				t.Errorf("AppendValue(%#v) = %s, want %s", tt.v, got[1:], tt.want)
			}
			if !json.Valid([]byte(got[1:])) {
				t.Errorf("AppendValue(%#v) = %s is not valid JSON", tt.v, got[1:])
			}
		})
	}
}

func TestAppendValueUnsupportedTypePanics(t *testing.T) {
	for _, v := range []any{int(1), int32(1), uint32(1), true, time.Time{}, struct{}{}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AppendValue(%T) did not panic", v)
				}
			}()
			change.AppendValue(nil, v)
		}()
	}
}

// FuzzAppendValue checks that every string is encoded as valid JSON that
// decodes back to the string, with each invalid UTF-8 byte replaced by
// U+FFFD, and that the output is one line.
func FuzzAppendValue(f *testing.F) {
	for _, s := range []string{
		"", "plain", `a"b\c`, "a\nb\r\t", "\x00\x1f\x7f", "😀", "a\xffb", "\xe2\x82",
		"\xed\xa0\x80", "\u2028\u2029", "<>&", "\ufffd", "\xc0\x80", "\xf4\x90\x80\x80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := change.AppendValue(nil, s)
		if !json.Valid(out) {
			t.Fatalf("AppendValue(%q) = %s: not valid JSON", s, out)
		}
		if strings.ContainsAny(string(out), "\n\r\u2028\u2029") {
			t.Errorf("AppendValue(%q) = %q: contains a line break", s, out)
		}
		if !utf8.Valid(out) {
			t.Errorf("AppendValue(%q) = %q: not valid UTF-8", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("decoding %s: %v", out, err)
		}
		// Converting to runes replaces each invalid byte with U+FFFD.
		if want := string([]rune(s)); got != want {
			t.Errorf("AppendValue(%q) decodes to %q, want %q", s, got, want)
		}

		// The same string as a []byte value round-trips through base64.
		var raw []byte
		if err := json.Unmarshal(change.AppendValue(nil, []byte(s)), &raw); err != nil {
			t.Fatalf("decoding bytes: %v", err)
		}
		if string(raw) != s {
			t.Errorf("[]byte(%q) decodes to %q", s, raw)
		}
	})
}
