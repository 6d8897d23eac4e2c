package lake_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/lake"
)

// sourceRow is a source row with a value of every kind.
func sourceRow() change.Row {
	return change.Row{
		{Name: "id", Value: int64(1)},
		{Name: "big", Value: uint64(18446744073709551615)},
		{Name: "neg", Value: int64(-9223372036854775808)},
		{Name: "price", Value: change.Decimal("1.50")},
		{Name: "f", Value: float32(0.1)},
		{Name: "d", Value: 2.5},
		{Name: "v", Value: "a\"b😀"},
		{Name: "b", Value: []byte{1, 2, 3}},
		{Name: "n", Value: nil},
	}
}

// lakeRow is sourceRow as the lake decodes it.
func lakeRow() map[string]any {
	return map[string]any{
		"id":    json.Number("1"),
		"big":   json.Number("18446744073709551615"),
		"neg":   json.Number("-9223372036854775808"),
		"price": "1.50",
		"f":     json.Number("0.1"),
		"d":     json.Number("2.5"),
		"v":     "a\"b😀",
		"b":     "AQID",
		"n":     nil,
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == del {
			delete(m, kv[i].(string))
			continue
		}
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// del as a value in with removes the column.
var del = &struct{}{}

func TestCompare(t *testing.T) {
	tests := []struct {
		name    string
		lake    lake.Table
		source  map[string]change.Row
		want    []lake.Mismatch
		strings []string
	}{
		{
			name:   "equal",
			lake:   lake.Table{"s.t.1": lakeRow()},
			source: map[string]change.Row{"s.t.1": sourceRow()},
		},
		{
			name:   "both empty",
			lake:   lake.Table{},
			source: map[string]change.Row{},
		},
		{
			name:    "missing row",
			lake:    lake.Table{},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.1", Source: "row"}},
			strings: []string{"s.t.1: missing from the lake"},
		},
		{
			name:    "extra row",
			lake:    lake.Table{"s.t.1": lakeRow(), "s.t.9": lakeRow()},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.9", Lake: "row"}},
			strings: []string{"s.t.9: in the lake but not at the source"},
		},
		{
			name:    "differing string column",
			lake:    lake.Table{"s.t.1": with(lakeRow(), "v", "other")},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.1", Column: "v", Source: "a\"b😀", Lake: "other"}},
			strings: []string{`s.t.1 column v: source a"b😀, lake other`},
		},
		{
			name:    "differing number",
			lake:    lake.Table{"s.t.1": with(lakeRow(), "big", json.Number("18446744073709551614"))},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.1", Column: "big", Source: json.Number("18446744073709551615"), Lake: json.Number("18446744073709551614")}},
			strings: []string{"s.t.1 column big: source 18446744073709551615, lake 18446744073709551614"},
		},
		{
			name:    "decimal digits are compared as text",
			lake:    lake.Table{"s.t.1": with(lakeRow(), "price", "1.5")},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.1", Column: "price", Source: "1.50", Lake: "1.5"}},
			strings: []string{"s.t.1 column price: source 1.50, lake 1.5"},
		},
		{
			name:    "number written differently",
			lake:    lake.Table{"s.t.1": with(lakeRow(), "f", json.Number("0.10000000149011612"))},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.1", Column: "f", Source: json.Number("0.1"), Lake: json.Number("0.10000000149011612")}},
			strings: []string{"s.t.1 column f: source 0.1, lake 0.10000000149011612"},
		},
		{
			name:    "null in the lake",
			lake:    lake.Table{"s.t.1": with(lakeRow(), "id", nil)},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.1", Column: "id", Source: json.Number("1"), Lake: nil}},
			strings: []string{"s.t.1 column id: source 1, lake <nil>"},
		},
		{
			name:    "extra column",
			lake:    lake.Table{"s.t.1": with(lakeRow(), "added", "x")},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.1", Column: "added", Source: nil, Lake: "x"}},
			strings: []string{"s.t.1 column added: source <nil>, lake x"},
		},
		{
			name:    "missing column",
			lake:    lake.Table{"s.t.1": with(lakeRow(), "b", del)},
			source:  map[string]change.Row{"s.t.1": sourceRow()},
			want:    []lake.Mismatch{{Key: "s.t.1", Column: "b", Source: "AQID", Lake: nil}},
			strings: []string{"s.t.1 column b: source AQID, lake <nil>"},
		},
		{
			name: "sorted by key, then column",
			lake: lake.Table{
				"s.t.1": with(lakeRow(), "v", "x", "id", json.Number("7")),
				"s.t.3": lakeRow(),
				"s.t.0": lakeRow(),
			},
			source: map[string]change.Row{"s.t.1": sourceRow(), "s.t.2": sourceRow(), "s.t.0": sourceRow()},
			want: []lake.Mismatch{
				{Key: "s.t.1", Column: "id", Source: json.Number("1"), Lake: json.Number("7")},
				{Key: "s.t.1", Column: "v", Source: "a\"b😀", Lake: "x"},
				{Key: "s.t.2", Source: "row"},
				{Key: "s.t.3", Lake: "row"},
			},
			strings: []string{
				"s.t.1 column id: source 1, lake 7",
				`s.t.1 column v: source a"b😀, lake x`,
				"s.t.2: missing from the lake",
				"s.t.3: in the lake but not at the source",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lake.Compare(tt.lake, tt.source)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Compare =\n%#v\nwant\n%#v", got, tt.want)
			}
			var strs []string
			for _, m := range got {
				strs = append(strs, m.String())
			}
			if !reflect.DeepEqual(strs, tt.strings) {
				t.Errorf("String() =\n%q\nwant\n%q", strs, tt.strings)
			}
		})
	}
}

// Compare is meant for tables replayed from records that change.Record
// wrote: a round trip through AppendJSON, Decode and ReplayRecords compares
// equal.
func TestCompareAfterRoundTrip(t *testing.T) {
	src := sourceRow()
	r := change.Record{Op: change.OpInsert, Schema: "s", Table: "t", Data: src, PartitionKey: "s.t.1", PartitionKeyPK: true}
	recs, err := lake.Decode("o.json", r.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	replay := lake.ReplayRecords(recs)
	if m := lake.Compare(replay.Tables["s.t"], map[string]change.Row{"s.t.1": src}); len(m) != 0 {
		t.Errorf("mismatches after a round trip: %v", m)
	}
}
