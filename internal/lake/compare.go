package lake

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"

	"github.com/binlake/binlake/internal/change"
)

// Mismatch is one difference between the lake and the source.
type Mismatch struct {
	Key    string
	Column string // empty when the whole row is missing or extra
	Source any
	Lake   any
}

func (m Mismatch) String() string {
	switch {
	case m.Column == "" && m.Lake == nil:
		return fmt.Sprintf("%s: missing from the lake", m.Key)
	case m.Column == "" && m.Source == nil:
		return fmt.Sprintf("%s: in the lake but not at the source", m.Key)
	}
	return fmt.Sprintf("%s column %s: source %v, lake %v", m.Key, m.Column, m.Source, m.Lake)
}

// Compare compares a replayed table with the source rows (both keyed by
// partition-key-value) value by value, in the JSON form of docs/format.md.
// Mismatches are sorted by key.
func Compare(lakeTable Table, source map[string]change.Row) []Mismatch {
	var out []Mismatch
	for key, row := range source {
		got, ok := lakeTable[key]
		if !ok {
			out = append(out, Mismatch{Key: key, Source: "row"})
			continue
		}
		want := SourceRow(row)
		for col, wv := range want {
			gv, ok := got[col]
			if !ok || !reflect.DeepEqual(gv, wv) {
				out = append(out, Mismatch{Key: key, Column: col, Source: wv, Lake: gv})
			}
		}
		for col, gv := range got {
			if _, ok := want[col]; !ok {
				out = append(out, Mismatch{Key: key, Column: col, Source: nil, Lake: gv})
			}
		}
	}
	for key := range lakeTable {
		if _, ok := source[key]; !ok {
			out = append(out, Mismatch{Key: key, Lake: "row"})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Column < out[j].Column
	})
	return out
}

// HashRow hashes a decoded row by its canonical JSON (keys sorted, numbers
// as written), so rows can be compared without keeping both in memory.
func HashRow(row map[string]any) [32]byte {
	b, err := json.Marshal(row)
	if err != nil {
		panic(fmt.Sprintf("lake: hashing a row: %v", err))
	}
	return sha256.Sum256(b)
}

// SourceRow gives a source row the shape a decoded lake row has.
func SourceRow(row change.Row) map[string]any {
	var b []byte
	b = append(b, '{')
	for i, f := range row {
		if i > 0 {
			b = append(b, ',')
		}
		name, _ := json.Marshal(f.Name)
		b = append(b, name...)
		b = append(b, ':')
		b = change.AppendValue(b, f.Value)
	}
	b = append(b, '}')
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(fmt.Sprintf("lake: encoding a source row: %v", err))
	}
	return m
}
