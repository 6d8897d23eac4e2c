package change

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzParsePosition: a stream-position that parses prints back to exactly
// the same text (fixed width: text order is change order), and nothing
// makes the parser panic.
func FuzzParsePosition(f *testing.F) {
	f.Add("0000/0000000001/0000000000000004/1/0000000000/0000000000")
	f.Add("9999/9999999999/9999999999999999/0/9999999999/9999999999")
	f.Add("0000/0000000001/0000000000000004/2/0000000000/0000000000")
	f.Add("0000/000000000a/0000000000000004/1/0000000000/0000000000")
	f.Add("0000/0000000001/0000000000000004/1/0000000000")
	f.Add("+000/0000000001/0000000000000004/1/0000000000/0000000000")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		if got := p.String(); got != s {
			t.Fatalf("ParsePosition(%q).String() = %q", s, got)
		}
	})
}

// FuzzRecordJSON: any record with any names and string values encodes to
// valid JSON that decodes back to the same values.
func FuzzRecordJSON(f *testing.F) {
	f.Add("wordpress-db", "wp_posts", "post_title", "Hello \"world\" \u2028 \x00 😀")
	f.Add("s", "t", "c", "\xff\xfe invalid utf-8")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, schema, table, column, value string) {
		rec := Record{
			Op: OpInsert, Schema: schema, Table: table, PartitionKey: schema + "." + table,
			Data:     Row{{Name: column, Value: value}},
			Position: Position{File: 1, Offset: 4, Kind: KindEvent},
		}
		b := rec.AppendJSON(nil)
		var got struct {
			Data     map[string]string `json:"data"`
			Metadata map[string]any    `json:"metadata"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		want := toValidUTF8(value)
		if utf8.ValidString(value) && want != value {
			t.Fatalf("valid UTF-8 %q came back as %q", value, want)
		}
		if got.Data[toValidUTF8(column)] != want {
			t.Fatalf("data %v, want %q = %q", got.Data, column, want)
		}
		if got.Metadata["schema-name"] != toValidUTF8(schema) || got.Metadata["table-name"] != toValidUTF8(table) {
			t.Fatalf("metadata %v", got.Metadata)
		}
	})
}

// toValidUTF8 is what AppendString does to invalid UTF-8, as encoding/json
// reads it back.
func toValidUTF8(s string) string {
	var out string
	if err := json.Unmarshal(AppendString(nil, s), &out); err != nil {
		panic(err)
	}
	return out
}
