package lake_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/lake"
)

// jsonLines encodes records as the delivery writes them: one JSON object a
// line.
func jsonLines(recs ...change.Record) []byte {
	var b []byte
	for i := range recs {
		b = recs[i].AppendJSON(b)
		b = append(b, '\n')
	}
	return b
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sampleRecords() []change.Record {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	return []change.Record{
		{
			Op: change.OpLoad, Schema: "s", Table: "t",
			Data: change.Row{
				{Name: "id", Value: int64(1)},
				{Name: "big", Value: uint64(18446744073709551615)},
				{Name: "price", Value: change.Decimal("12.340")},
				{Name: "f", Value: float32(0.1)},
				{Name: "name", Value: "café 😀"},
				{Name: "blob", Value: []byte{0, 1, 2}},
				{Name: "gone", Value: nil},
			},
			CommitTime: ts, BuiltAt: ts, PartitionKey: "s.t.1", PartitionKeyPK: true,
			Position: change.Position{File: 1, Offset: 100, Kind: change.KindLoad, A: 1},
		},
		{
			Op: change.OpTruncateTable, Schema: "s", Table: "t", Statement: "TRUNCATE t",
			CommitTime: ts, BuiltAt: ts, PartitionKey: "s.t",
			Position: change.Position{File: 1, Offset: 200, Kind: change.KindEvent},
		},
	}
}

func wantSample(object string) []lake.Record {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var tx0 uint64
	return []lake.Record{
		{
			Data: map[string]any{
				"id":    json.Number("1"),
				"big":   json.Number("18446744073709551615"),
				"price": "12.340",
				"f":     json.Number("0.1"),
				"name":  "café 😀",
				"blob":  "AAEC",
				"gone":  nil,
			},
			Op: "load", Type: "data", Schema: "s", Table: "t", Key: "s.t.1",
			Position: "0000/0000000001/0000000000000100/0/0000000001/0000000000",
			Object:   object, CommitTime: ts,
		},
		{
			Op: "truncate-table", Type: "control", Schema: "s", Table: "t", Key: "s.t",
			Position: "0000/0000000001/0000000000000200/1/0000000000/0000000000",
			Object:   object, CommitTime: ts, TransactionID: &tx0, Statement: "TRUNCATE t",
		},
	}
}

func TestDecode(t *testing.T) {
	plain := jsonLines(sampleRecords()...)
	tests := []struct {
		name string
		key  string
		body []byte
	}{
		{"gzip", "s/t/0001.json.gz", gzipped(t, plain)},
		{"plain", "s/t/0001.json", plain},
		{"plain without a final newline", "s/t/0002.json", bytes.TrimSuffix(plain, []byte("\n"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lake.Decode(tt.key, tt.body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := wantSample(tt.key); !reflect.DeepEqual(got, want) {
				t.Errorf("Decode =\n%#v\nwant\n%#v", got, want)
			}
		})
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, tc := range []struct {
		key  string
		body []byte
	}{
		{"empty.json", nil},
		{"empty.json.gz", gzipped(t, nil)},
	} {
		got, err := lake.Decode(tc.key, tc.body)
		if err != nil || len(got) != 0 {
			t.Errorf("Decode(%s) = %v, %v; want no records, no error", tc.key, got, err)
		}
	}
}

// A record larger than bufio.Scanner's default 64 KiB line limit.
func TestDecodeLongLine(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	rec := change.Record{
		Op: change.OpInsert, Schema: "s", Table: "t", PartitionKey: "s.t.1",
		Data: change.Row{{Name: "v", Value: big}},
	}
	got, err := lake.Decode("big.json.gz", gzipped(t, jsonLines(rec)))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(got) != 1 || got[0].Data["v"] != big {
		t.Errorf("Decode lost the long value")
	}
}

func TestDecodeErrors(t *testing.T) {
	good := jsonLines(sampleRecords()[0])
	tests := []struct {
		name string
		key  string
		body []byte
		want string // the error's prefix
	}{
		{"plain body under a .gz key", "a/b.json.gz", good, "a/b.json.gz: "},
		{"truncated gzip", "a/c.json.gz", gzipped(t, good)[:20], "a/c.json.gz: "},
		{"bad JSON on line 2", "a/d.json", append(append([]byte{}, good...), "{not json\n"...), "a/d.json line 2: "},
		{"bad JSON on line 1", "a/e.json", []byte("[1,2]\n"), "a/e.json line 1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lake.Decode(tt.key, tt.body)
			if err == nil {
				t.Fatalf("Decode = %d records, want an error", len(got))
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q does not start with %q", err, tt.want)
			}
		})
	}
}

// rec builds a decoded lake record.
func rec(table, op, key string, pos change.Position, data map[string]any) lake.Record {
	typ := "data"
	if change.Op(op).IsControl() {
		typ = "control"
	}
	return lake.Record{Data: data, Op: op, Type: typ, Schema: "s", Table: table, Key: key, Position: pos.String()}
}

func ev(offset uint64, a, b uint64) change.Position {
	return change.Position{File: 3, Offset: offset, Kind: change.KindEvent, A: a, B: b}
}

func load(watermark, row uint64) change.Position {
	return change.Position{File: 3, Offset: watermark, Kind: change.KindLoad, A: 1, B: row}
}

func row(id int, v string) map[string]any {
	return map[string]any{"id": json.Number(string(rune('0' + id))), "v": v}
}

func TestReplayRecordsSequence(t *testing.T) {
	recs := []lake.Record{
		// Key 1: loaded, updated, deleted, inserted again.
		rec("t", "load", "s.t.1", load(100, 0), row(1, "loaded")),
		rec("t", "update", "s.t.1", ev(150, 0, 0), row(1, "updated")),
		rec("t", "delete", "s.t.1", ev(200, 0, 0), row(1, "updated")),
		rec("t", "insert", "s.t.1", ev(250, 0, 0), row(1, "reinserted")),
		// Key 2: loaded and updated twice in one event and once more.
		rec("t", "load", "s.t.2", load(100, 1), row(2, "loaded")),
		rec("t", "update", "s.t.2", ev(150, 1, 0), row(2, "u1")),
		rec("t", "update", "s.t.2", ev(1<<32+10, 0, 0), row(2, "u2 past 4 GiB")),
		// Key 3: loaded, then deleted.
		rec("t", "load", "s.t.3", load(100, 2), row(3, "loaded")),
		rec("t", "delete", "s.t.3", ev(300, 0, 0), row(3, "loaded")),
		// Key 4: an event before the watermark is superseded by the load.
		rec("t", "insert", "s.t.4", ev(50, 0, 0), row(4, "old")),
		rec("t", "load", "s.t.4", load(100, 3), row(4, "loaded")),
		// Key 5 -> 6: a primary-key change, delete (B=0) then insert (B=1).
		rec("t", "insert", "s.t.5", ev(60, 0, 0), row(5, "five")),
		rec("t", "delete", "s.t.5", ev(400, 0, 0), row(5, "five")),
		rec("t", "insert", "s.t.6", ev(400, 0, 1), row(6, "five")),
		// A DDL changes nothing.
		rec("t", "change-columns", "s.t", ev(500, 0, 0), nil),
	}
	want := lake.Table{
		"s.t.1": row(1, "reinserted"),
		"s.t.2": row(2, "u2 past 4 GiB"),
		"s.t.4": row(4, "loaded"),
		"s.t.6": row(6, "five"),
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 50 {
		shuffled := slices.Clone(recs)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := lake.ReplayRecords(shuffled)
		if len(got.Duplicates) != 0 {
			t.Errorf("shuffle %d: duplicates %q, want none", i, got.Duplicates)
		}
		if len(got.Tables) != 1 {
			t.Errorf("shuffle %d: tables %v, want only s.t", i, slices.Collect(maps.Keys(got.Tables)))
		}
		if !reflect.DeepEqual(got.Tables["s.t"], want) {
			t.Fatalf("shuffle %d: s.t =\n%v\nwant\n%v", i, got.Tables["s.t"], want)
		}
	}
}

func TestReplayRecordsTruncateAndDrop(t *testing.T) {
	tests := []struct {
		name string
		recs []lake.Record
		want lake.Table
	}{
		{
			name: "truncate empties the table",
			recs: []lake.Record{
				rec("t", "load", "s.t.1", load(100, 0), row(1, "a")),
				rec("t", "insert", "s.t.2", ev(150, 0, 0), row(2, "b")),
				rec("t", "truncate-table", "s.t", ev(200, 0, 0), nil),
			},
			want: lake.Table{},
		},
		{
			name: "rows after the truncate stay",
			recs: []lake.Record{
				rec("t", "insert", "s.t.3", ev(300, 0, 0), row(3, "after")),
				rec("t", "insert", "s.t.1", ev(100, 0, 0), row(1, "before")),
				rec("t", "truncate-table", "s.t", ev(200, 0, 0), nil),
			},
			want: lake.Table{"s.t.3": row(3, "after")},
		},
		{
			name: "truncate broadcast to two partitions",
			recs: []lake.Record{
				rec("t", "insert", "s.t.1", ev(100, 0, 0), row(1, "before")),
				rec("t", "truncate-table", "s.t", ev(200, 0, 1), nil),
				rec("t", "truncate-table", "s.t", ev(200, 0, 0), nil),
				rec("t", "insert", "s.t.2", ev(300, 0, 0), row(2, "after")),
			},
			want: lake.Table{"s.t.2": row(2, "after")},
		},
		{
			name: "drop empties the table",
			recs: []lake.Record{
				rec("t", "insert", "s.t.1", ev(100, 0, 0), row(1, "a")),
				rec("t", "drop-table", "s.t", ev(200, 0, 0), nil),
			},
			want: lake.Table{},
		},
		{
			name: "create and rename keep the rows",
			recs: []lake.Record{
				rec("t", "create-table", "s.t", ev(50, 0, 0), nil),
				rec("t", "insert", "s.t.1", ev(100, 0, 0), row(1, "a")),
				rec("t", "rename-table", "s.t", ev(200, 0, 0), nil),
			},
			want: lake.Table{"s.t.1": row(1, "a")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lake.ReplayRecords(tt.recs)
			if !reflect.DeepEqual(got.Tables["s.t"], tt.want) {
				t.Errorf("s.t = %v, want %v", got.Tables["s.t"], tt.want)
			}
			if len(got.Duplicates) != 0 {
				t.Errorf("duplicates %q, want none", got.Duplicates)
			}
		})
	}
}

func TestReplayRecordsDuplicates(t *testing.T) {
	first := rec("t", "insert", "s.t.1", ev(100, 0, 0), row(1, "a"))
	update := rec("t", "update", "s.t.1", ev(200, 0, 0), row(1, "b"))
	// A re-send of the insert in another object, after the update was read.
	resend := first
	resend.Object = "other.json.gz"
	got := lake.ReplayRecords([]lake.Record{first, update, resend, update})
	wantDup := []string{ev(100, 0, 0).String(), ev(200, 0, 0).String()}
	slices.Sort(got.Duplicates)
	if !reflect.DeepEqual(got.Duplicates, wantDup) {
		t.Errorf("duplicates = %q, want %q", got.Duplicates, wantDup)
	}
	if want := (lake.Table{"s.t.1": row(1, "b")}); !reflect.DeepEqual(got.Tables["s.t"], want) {
		t.Errorf("s.t = %v, want %v (a re-send must not undo the update)", got.Tables["s.t"], want)
	}

	// Three copies count as two duplicates.
	got = lake.ReplayRecords([]lake.Record{first, first, first})
	if want := []string{first.Position, first.Position}; !reflect.DeepEqual(got.Duplicates, want) {
		t.Errorf("three copies: duplicates = %q, want %q", got.Duplicates, want)
	}
}

func TestReplayRecordsTablesKeptApart(t *testing.T) {
	recs := []lake.Record{
		rec("a", "insert", "s.a.1", ev(100, 0, 0), row(1, "in a")),
		rec("b", "insert", "s.b.1", ev(100, 1, 0), row(1, "in b")),
		rec("a", "delete", "s.a.1", ev(200, 0, 0), row(1, "in a")),
		rec("b", "truncate-table", "s.b", ev(50, 0, 0), nil),
		// The same position in two tables is not a duplicate: replay is per table.
		rec("c", "insert", "s.c.1", ev(100, 0, 0), row(1, "in c")),
	}
	got := lake.ReplayRecords(recs)
	want := map[string]lake.Table{
		"s.a": {},
		"s.b": {"s.b.1": row(1, "in b")},
		"s.c": {"s.c.1": row(1, "in c")},
	}
	if !reflect.DeepEqual(got.Tables, want) {
		t.Errorf("tables = %v, want %v", got.Tables, want)
	}
	if len(got.Duplicates) != 0 {
		t.Errorf("duplicates %q, want none", got.Duplicates)
	}
}

func TestReplayRecordsDottedNamesKeptApart(t *testing.T) {
	x := lake.Record{Op: "insert", Type: "data", Schema: "a", Table: "b.c", Key: "a.b.c.1", Position: ev(100, 0, 0).String(), Data: row(1, "x")}
	y := lake.Record{Op: "insert", Type: "data", Schema: "a.b", Table: "c", Key: "a.b.c.1", Position: ev(200, 0, 0).String(), Data: row(1, "y")}
	got := lake.ReplayRecords([]lake.Record{x, y})
	want := map[string]lake.Table{
		"a.`b.c`": {"a.b.c.1": row(1, "x")},
		"`a.b`.c": {"a.b.c.1": row(1, "y")},
	}
	if !reflect.DeepEqual(got.Tables, want) {
		t.Errorf("tables = %v, want %v", got.Tables, want)
	}
}

func TestReplayRecordsEmpty(t *testing.T) {
	got := lake.ReplayRecords(nil)
	if got.Tables == nil || len(got.Tables) != 0 || got.Duplicates != nil {
		t.Errorf("ReplayRecords(nil) = %+v, want empty tables and no duplicates", got)
	}
}

// TestDecodeReplayRoundTrip writes records with change.Record.AppendJSON into
// two objects, decodes and replays them.
func TestDecodeReplayRoundTrip(t *testing.T) {
	mk := func(op change.Op, id int64, v string, pos change.Position) change.Record {
		return change.Record{
			Op: op, Schema: "s", Table: "t", PartitionKey: "s.t." + string(rune('0'+id)), PartitionKeyPK: true,
			Data: change.Row{{Name: "id", Value: id}, {Name: "v", Value: v}}, Position: pos,
		}
	}
	obj1 := gzipped(t, jsonLines(
		mk(change.OpLoad, 1, "a", load(100, 0)),
		mk(change.OpLoad, 2, "b", load(100, 1)),
	))
	obj2 := jsonLines(
		mk(change.OpUpdate, 1, "a2", ev(200, 0, 0)),
		mk(change.OpDelete, 2, "b", ev(300, 0, 0)),
		mk(change.OpLoad, 2, "b", load(100, 1)), // a re-send
	)
	var all []lake.Record
	for key, body := range map[string][]byte{"o1.json.gz": obj1, "o2.json": obj2} {
		recs, err := lake.Decode(key, body)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
	}
	got := lake.ReplayRecords(all)
	want := lake.Table{"s.t.1": row(1, "a2")}
	if !reflect.DeepEqual(got.Tables["s.t"], want) {
		t.Errorf("s.t = %v, want %v", got.Tables["s.t"], want)
	}
	if wantDup := []string{load(100, 1).String()}; !reflect.DeepEqual(got.Duplicates, wantDup) {
		t.Errorf("duplicates = %q, want %q", got.Duplicates, wantDup)
	}
}
