package capture

import (
	"math"
	"testing"

	"github.com/binlake/binlake/internal/change"
)

func TestPartitionKey(t *testing.T) {
	tests := []struct {
		name   string
		row    change.Row
		pk     []int
		want   string
		wantPK bool
	}{
		{
			name:   "int and string primary key",
			row:    change.Row{{Name: "id", Value: int64(1)}, {Name: "code", Value: "abc"}, {Name: "v", Value: "ignored"}},
			pk:     []int{0, 1},
			want:   "s.t.1.abc",
			wantPK: true,
		},
		{
			name:   "key columns in key order, not column order",
			row:    change.Row{{Name: "id", Value: int64(1)}, {Name: "code", Value: "abc"}},
			pk:     []int{1, 0},
			want:   "s.t.abc.1",
			wantPK: true,
		},
		{
			name:   "no primary key",
			row:    change.Row{{Name: "v", Value: int64(7)}},
			pk:     nil,
			want:   "s.t",
			wantPK: false,
		},
		{
			name:   "empty primary key",
			row:    change.Row{{Name: "v", Value: int64(7)}},
			pk:     []int{},
			want:   "s.t",
			wantPK: false,
		},
		{
			name:   "negative and unsigned extremes",
			row:    change.Row{{Name: "a", Value: int64(math.MinInt64)}, {Name: "b", Value: uint64(math.MaxUint64)}},
			pk:     []int{0, 1},
			want:   "s.t.-9223372036854775808.18446744073709551615",
			wantPK: true,
		},
		{
			name:   "string is written raw, not JSON-quoted",
			row:    change.Row{{Name: "k", Value: `say "hi" 😀`}},
			pk:     []int{0},
			want:   `s.t.say "hi" 😀`,
			wantPK: true,
		},
		{
			name:   "temporal key",
			row:    change.Row{{Name: "d", Value: "2024-01-02 03:04:05"}},
			pk:     []int{0},
			want:   "s.t.2024-01-02 03:04:05",
			wantPK: true,
		},
		{
			name:   "decimal key keeps its JSON quotes",
			row:    change.Row{{Name: "d", Value: change.Decimal("12.340")}},
			pk:     []int{0},
			want:   `s.t."12.340"`,
			wantPK: true,
		},
		{
			name:   "binary key is quoted base64",
			row:    change.Row{{Name: "b", Value: []byte{0, 1, 2}}},
			pk:     []int{0},
			want:   `s.t."AAEC"`,
			wantPK: true,
		},
		{
			name:   "float key",
			row:    change.Row{{Name: "f", Value: float32(0.1)}},
			pk:     []int{0},
			want:   "s.t.0.1",
			wantPK: true,
		},
		{
			name:   "key index past the row is skipped",
			row:    change.Row{{Name: "id", Value: int64(3)}},
			pk:     []int{0, 5},
			want:   "s.t.3",
			wantPK: true,
		},
	}
	tests = append(tests, struct {
		name   string
		row    change.Row
		pk     []int
		want   string
		wantPK bool
	}{
		name:   "composite key values with dots and backslashes are escaped",
		row:    change.Row{{Name: "host", Value: "example.com"}, {Name: "path", Value: `a\b`}},
		pk:     []int{0, 1},
		want:   `s.t.example\.com.a\\b`,
		wantPK: true,
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &change.Record{Schema: "s", Table: "t"}
			partitionKey(rec, tt.row, tt.pk)
			if rec.PartitionKey != tt.want {
				t.Errorf("PartitionKey = %q, want %q", rec.PartitionKey, tt.want)
			}
			if rec.PartitionKeyPK != tt.wantPK {
				t.Errorf("PartitionKeyPK = %v, want %v", rec.PartitionKeyPK, tt.wantPK)
			}
		})
	}
}

// The partition key is also the row identity that ReadTable and
// lake.ReplayRecords key rows by, so distinct primary keys must give distinct
// partition keys.
func TestPartitionKeyDistinguishesCompositeKeys(t *testing.T) {
	pairs := [][2]change.Row{
		{
			{{Name: "k1", Value: "a.b"}, {Name: "k2", Value: "c"}},
			{{Name: "k1", Value: "a"}, {Name: "k2", Value: "b.c"}},
		},
		{
			{{Name: "host", Value: "example.com"}, {Name: "path", Value: "x"}},
			{{Name: "host", Value: "example"}, {Name: "path", Value: "com.x"}},
		},
	}
	for _, p := range pairs {
		a := &change.Record{Schema: "s", Table: "t"}
		b := &change.Record{Schema: "s", Table: "t"}
		partitionKey(a, p[0], []int{0, 1})
		partitionKey(b, p[1], []int{0, 1})
		if a.PartitionKey == b.PartitionKey {
			t.Errorf("rows %v and %v share the partition key %q", p[0], p[1], a.PartitionKey)
		}
	}
}

func TestPKChanged(t *testing.T) {
	row := func(vals ...any) change.Row {
		r := make(change.Row, len(vals))
		for i, v := range vals {
			r[i] = change.Field{Name: string(rune('a' + i)), Value: v}
		}
		return r
	}
	tests := []struct {
		name          string
		before, after change.Row
		pk            []int
		want          bool
	}{
		{"same key, other column changed", row(int64(1), "x"), row(int64(1), "y"), []int{0}, false},
		{"key changed", row(int64(1), "x"), row(int64(2), "x"), []int{0}, true},
		{"second key column changed", row(int64(1), "x"), row(int64(1), "y"), []int{0, 1}, true},
		{"composite key unchanged", row(int64(1), "x", 3.5), row(int64(1), "x", 4.5), []int{0, 1}, false},
		{"no primary key", row(int64(1)), row(int64(2)), nil, false},
		{"string case differs", row("abc"), row("ABC"), []int{0}, true},
		{"trailing space differs", row("abc"), row("abc "), []int{0}, true},
		{"equal bytes", row([]byte{1, 2}), row([]byte{1, 2}), []int{0}, false},
		{"different bytes", row([]byte{1, 2}), row([]byte{1, 3}), []int{0}, true},
		{"same decimal", row(change.Decimal("1.50")), row(change.Decimal("1.50")), []int{0}, false},
		{"decimal digits differ", row(change.Decimal("1.50")), row(change.Decimal("1.5")), []int{0}, true},
		{"same number as signed and unsigned", row(int64(7)), row(uint64(7)), []int{0}, false},
		{"uint64 max unchanged", row(uint64(math.MaxUint64)), row(uint64(math.MaxUint64)), []int{0}, false},
		{"null to value", row(nil), row(int64(0)), []int{0}, true},
		{"key on a later column only", row("x", int64(1)), row("y", int64(1)), []int{1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pkChanged(tt.before, tt.after, tt.pk); got != tt.want {
				t.Errorf("pkChanged(%v, %v, %v) = %v, want %v", tt.before, tt.after, tt.pk, got, tt.want)
			}
		})
	}
}

func TestTableNameString(t *testing.T) {
	if got := (TableName{Schema: "s", Table: "t"}).String(); got != "s.t" {
		t.Errorf("String() = %q, want s.t", got)
	}
}
