package lake_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/lake"
)

// defLine is a control record carrying a table definition, on partition
// part (its position's B).
func defLine(schema, table string, offset uint64, part uint64, order ...string) lake.Object {
	pos := change.Position{File: 1, Offset: offset, Kind: change.KindEvent, B: part}
	r := change.Record{Op: change.OpCreateTable, Schema: schema, Table: table, Statement: "CREATE TABLE x", Position: pos, PartitionKey: schema + "." + table}
	line := string(r.AppendJSON(nil))
	cols := map[string]any{}
	for _, c := range order {
		cols[c] = map[string]any{"type": "text", "data-type": "text", "nullable": true}
	}
	def, _ := json.Marshal(map[string]any{"columns": cols, "column-order": order, "primary-key": order[:1]})
	line = strings.Replace(line, `"statement":"CREATE TABLE x"`, `"statement":"CREATE TABLE x","table-def":`+string(def), 1)
	return lake.Object{Key: "lake/t1-" + schema + "." + table + "-p0000-" + digits(pos) + "-" + digits(pos) + ".json", Body: []byte(line + "\n")}
}

func digits(p change.Position) string { return strings.ReplaceAll(p.String(), "/", "") }

func csvKey(schemaTable string, part string, first change.Position) string {
	return "lake/t1-" + schemaTable + "-p" + part + "-" + digits(first) + "-" + digits(first) + ".csv"
}

// TestDecodeCSV reads CSV objects: quoted fields are text, bare ones
// numbers, empty bare ones NULL; CRLF and quotes inside fields; with a
// header and without, the columns then coming from the table definition.
func TestDecodeCSV(t *testing.T) {
	first := change.Position{File: 1, Offset: 500, Kind: change.KindEvent}
	rows := "I,0000/0000000001/0000000000000100/0/0000000001/0000000000,2026-11-24 10:00:00.000000,,\"s.t.1\",1,\"a \"\"b\"\"\r\nc\",\r\n" +
		"U,0000/0000000001/0000000000000500/1/0000000000/0000000000,2026-11-24 10:00:01.000000,7,\"s.t.1\",1,\"\",-1.5e-07\n" +
		"D,0000/0000000001/0000000000000600/1/0000000000/0000000000,2026-11-24 10:00:02.000000,8,\"s.t.2\",2,\"1\","
	at := func(sec int) time.Time { return time.Date(2026, 11, 24, 10, 0, sec, 0, time.UTC) }
	tx := func(id uint64) *uint64 { return &id }
	want := []lake.Record{
		{Op: "load", Type: "data", Schema: "s", Table: "t", Key: "s.t.1", Position: "0000/0000000001/0000000000000100/0/0000000001/0000000000",
			Data: map[string]any{"id": json.Number("1"), "v": "a \"b\"\r\nc", "n": nil}, CommitTime: at(0)},
		{Op: "update", Type: "data", Schema: "s", Table: "t", Key: "s.t.1", Position: "0000/0000000001/0000000000000500/1/0000000000/0000000000",
			Data: map[string]any{"id": json.Number("1"), "v": "", "n": json.Number("-1.5e-07")}, CommitTime: at(1), TransactionID: tx(7)},
		{Op: "delete", Type: "data", Schema: "s", Table: "t", Key: "s.t.2", Position: "0000/0000000001/0000000000000600/1/0000000000/0000000000",
			Data: map[string]any{"id": json.Number("2"), "v": "1", "n": nil}, CommitTime: at(2), TransactionID: tx(8)},
	}
	for _, tc := range []struct{ name, text string }{
		{"no header", rows},
		{"header", "Op,_stream_position,_commit_timestamp,_transaction_id,_partition_key,id,v,n\n" + rows},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := csvKey("s.t", "0000", first)
			got, err := lake.DecodeObjects([]lake.Object{defLine("s", "t", 50, 0, "id", "v", "n"), {Key: key, Body: []byte(tc.text)}})
			if err != nil {
				t.Fatal(err)
			}
			got = got[1:]
			for i := range want {
				want[i].Object = key
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeObjects =\n%#v\nwant\n%#v", got, want)
			}
		})
	}
}

// TestCSVTableDefinition checks which control record gives a CSV object
// its table and columns: the newest before its first row, on its
// partition, of the table its name carries, the longest name winning.
func TestCSVTableDefinition(t *testing.T) {
	first := change.Position{File: 1, Offset: 500, Kind: change.KindEvent, B: 0}
	objs := []lake.Object{
		defLine("s", "t", 50, 0, "id", "old"),
		defLine("s", "t", 60, 0, "id", "v"),       // the newest before the object on partition 0
		defLine("s", "t", 70, 1, "id", "other"),   // partition 1
		defLine("s", "t", 900, 0, "id", "later"),  // after the object's first row
		defLine("x-s", "t", 40, 0, "id", "x"),     // "x-s.t" ends in "s.t" too
		defLine("s", "u", 80, 0, "id", "another"), // another table
	}
	row := "I,0000/0000000001/0000000000000500/1/0000000000/0000000000,2026-11-24 10:00:00.000000,1,\"k\",1,\"a\"\n"
	for _, tc := range []struct{ table, column string }{{"s.t", "v"}, {"x-s.t", "x"}} {
		key := csvKey(tc.table, "0000", first)
		recs, err := lake.DecodeObjects(append(objs, lake.Object{Key: key, Body: []byte(row)}))
		if err != nil {
			t.Fatal(err)
		}
		got := recs[len(recs)-1]
		if got.Schema+"."+got.Table != tc.table || got.Data[tc.column] != "a" {
			t.Errorf("%s: read as %s.%s with %v, want the %s column", tc.table, got.Schema, got.Table, got.Data, tc.column)
		}
	}
	if _, err := lake.DecodeObjects([]lake.Object{{Key: csvKey("s.t", "0000", first), Body: []byte(row)}}); err == nil ||
		!strings.Contains(err.Error(), "no control record with the table definition") {
		t.Errorf("a CSV object without its definition: error %v", err)
	}
}

func TestDecodeCSVErrors(t *testing.T) {
	first := change.Position{File: 1, Offset: 500, Kind: change.KindEvent}
	ok := "I,0000/0000000001/0000000000000500/1/0000000000/0000000000,2026-11-24 10:00:00.000000,1,\"k\",1,\"a\"\n"
	for _, tc := range []struct{ name, text, want string }{
		{"fields", "I,0000/0000000001/0000000000000500/1/0000000000/0000000000,2026-11-24 10:00:00.000000,1,\"k\",1\n", "line 1: 6 fields, want 7"},
		{"op", strings.Replace(ok, "I,", "X,", 1), `line 1: Op "X" is not I, U or D`},
		{"quote", ok + "I,p,c,1,\"k\n", "line 2: a quoted field does not end"},
		{"quote in bare field", "I,p\"q,c\n", "line 1: a quote inside an unquoted field"},
		{"after quote", "I,\"p\"q,c\n", `line 1: unexpected 'q' after a quoted field`},
		{"position", strings.Replace(ok, "0000/0000000001", "00", 1), "line 1: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := csvKey("s.t", "0000", first)
			_, err := lake.DecodeObjects([]lake.Object{defLine("s", "t", 50, 0, "id", "v"), {Key: key, Body: []byte(tc.text)}})
			if err == nil || !strings.HasPrefix(err.Error(), key+" "+tc.want) {
				t.Errorf("error %v, want %q", err, key+" "+tc.want)
			}
		})
	}
}
