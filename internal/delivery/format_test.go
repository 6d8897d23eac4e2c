package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/memstream"
	"github.com/binlake/binlake/internal/testbed"
)

// zooDef is a table with a column of most MySQL types, as capture
// describes it in a control record.
const zooDef = `{"columns":{` +
	`"id":{"type":"bigint(20) unsigned","data-type":"bigint","nullable":false},` +
	`"i":{"type":"int(11)","data-type":"int","nullable":true},` +
	`"d":{"type":"decimal(10,3)","data-type":"decimal","nullable":true},` +
	`"neg":{"type":"decimal(5,2)","data-type":"decimal","nullable":true},` +
	`"wide":{"type":"decimal(65,30)","data-type":"decimal","nullable":true},` +
	`"f":{"type":"float","data-type":"float","nullable":true},` +
	`"db":{"type":"double","data-type":"double","nullable":true},` +
	`"day":{"type":"date","data-type":"date","nullable":true},` +
	`"at":{"type":"timestamp(6)","data-type":"timestamp","nullable":true},` +
	`"dt":{"type":"datetime","data-type":"datetime","nullable":true},` +
	`"dur":{"type":"time(3)","data-type":"time","nullable":true},` +
	`"yr":{"type":"year(4)","data-type":"year","nullable":true},` +
	`"kind":{"type":"enum('a','b','c')","data-type":"enum","nullable":true},` +
	`"doc":{"type":"json","data-type":"json","nullable":true},` +
	`"raw":{"type":"varbinary(16)","data-type":"varbinary","nullable":true},` +
	`"bits":{"type":"bit(5)","data-type":"bit","nullable":true},` +
	`"note":{"type":"varchar(50)","data-type":"varchar","nullable":true},` +
	`"n":{"type":"int(11)","data-type":"int","nullable":true}},` +
	`"column-order":["id","i","d","neg","wide","f","db","day","at","dt","dur","yr","kind","doc","raw","bits","note","n"],"primary-key":["id"]}`

var zooBase = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// zooRecords are the data records of s.zoo: edge values of every type,
// zero dates, NULL and the empty string.
func zooRecords() []*change.Record {
	row := func(id uint64, vals ...any) change.Row {
		names := []string{"i", "d", "neg", "wide", "f", "db", "day", "at", "dt", "dur", "yr", "kind", "doc", "raw", "bits", "note", "n"}
		r := change.Row{{Name: "id", Value: id}}
		for i, v := range vals {
			r = append(r, change.Field{Name: names[i], Value: v})
		}
		return r
	}
	recs := []*change.Record{
		{Op: change.OpLoad, Position: change.Position{File: 1, Offset: 100, Kind: change.KindLoad, A: 3, B: 0},
			Data: row(18446744073709551615, int64(-2147483648), change.Decimal("9999999.999"), change.Decimal("-0.50"),
				change.Decimal("99999999999999999999999999999999999.999999999999999999999999999999"), float32(3.40282e+38), 1.7976931348623157e+308,
				"9999-12-31", "2038-01-19 03:14:07.999999", "0000-00-00 00:00:00", "838:59:59.000", int64(2155), "c",
				`{"a": [1, 2.50, "é😀"], "b": null}`, []byte{0xff, 0, 1}, uint64(31), "ÿ café, \"quoted\"\nline", nil)},
		{Op: change.OpInsert, TransactionID: 7, Position: change.Position{File: 1, Offset: 200, Kind: change.KindEvent},
			Data: row(1, int64(0), change.Decimal("0.000"), change.Decimal("-999.99"), change.Decimal("-0.000000000000000000000000000001"),
				float32(0.1), 5e-324, "0000-00-00", "1970-01-01 00:00:01.000000", "2024-06-01 01:58:02", "-00:00:01.000", int64(0), "",
				"null", []byte{}, uint64(0), "1", int64(42))},
		{Op: change.OpUpdate, TransactionID: 8, Position: change.Position{File: 1, Offset: 300, Kind: change.KindEvent},
			Data: row(1, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, "", nil)},
		{Op: change.OpDelete, TransactionID: 9, Position: change.Position{File: 1, Offset: 400, Kind: change.KindEvent},
			Data: row(18446744073709551615, int64(2147483647), change.Decimal("-0.001"), change.Decimal("0.00"), change.Decimal("10.000000000000000000000000000000"),
				float32(-1e-38), -1e-05, "1000-01-01", "0000-00-00 00:00:00.000000", "9999-12-31 23:59:59", "00:00:00.000", int64(1901), "a",
				`"text"`, []byte("abc"), uint64(1), "  trail  ", int64(-1))},
	}
	for i, r := range recs {
		r.Schema, r.Table, r.CommitTime, r.BuiltAt = "s", "zoo", zooBase.Add(time.Duration(i)*time.Second), zooBase
		v, _ := r.Data.Get("id")
		r.PartitionKey, r.PartitionKeyPK = fmt.Sprintf("s.zoo.%d", v), true
	}
	return recs
}

// controlLine is a control record's JSON line with a table definition.
func controlLine(op change.Op, table, statement string, pos change.Position, def string) []byte {
	r := &change.Record{Op: op, Schema: "s", Table: table, Statement: statement, Position: pos,
		PartitionKey: "s." + table, CommitTime: zooBase, BuiltAt: zooBase}
	line := r.AppendJSON(nil)
	if def == "" {
		return line
	}
	st, _ := json.Marshal(statement)
	return bytes.Replace(line, append([]byte(`{"control":{"statement":`), st...), []byte(`{"control":{"statement":`+string(st)+`,"table-def":`+def), 1)
}

func jsonLines(recs []*change.Record) []byte {
	var b []byte
	for _, r := range recs {
		b = r.AppendJSON(b)
		b = append(b, '\n')
	}
	return b
}

func mustDef(t *testing.T, raw string) *tableDef {
	t.Helper()
	def, err := parseTableDef([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return def
}

// assertSameRecords checks that an object decodes to the same records as
// the JSON lines it was written from, value by value.
func assertSameRecords(t *testing.T, key string, body, lines []byte) []lake.Record {
	t.Helper()
	got, err := lake.DecodeObjects([]lake.Object{
		{Key: "lake/t1-s.zoo-p0000-" + strings.Repeat("0", 51) + "-" + strings.Repeat("0", 51) + ".json", Body: controlLine(change.OpCreateTable, "zoo", "CREATE TABLE zoo", change.Position{File: 1, Offset: 50}, zooDef)},
		{Key: key, Body: body},
	})
	if err != nil {
		t.Fatal(err)
	}
	got = got[1:]
	want, err := lake.Decode("x.json", lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records read back, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		g.Object, w.Object = "", ""
		if !reflect.DeepEqual(g, w) {
			t.Errorf("record %d reads back as\n%#v\nwant\n%#v", i, g, w)
		}
	}
	return got
}

func zooKey(ext string) string {
	return "lake/s/zoo/t1-s.zoo-p0000-" + compactPosition(zooRecords()[0].Position.String()) + "-" + compactPosition(zooRecords()[3].Position.String()) + ext
}

// TestParquetValues writes every type's edge values as Parquet and checks
// the file's schema, the values binlake's reader gets back (exactly the
// JSON records), and what DuckDB reads.
func TestParquetValues(t *testing.T) {
	lines := jsonLines(zooRecords())
	for _, codec := range []string{"snappy", "zstd", "gzip", "none"} {
		t.Run(codec, func(t *testing.T) {
			dc := testConfig(t, "delivery: {format: parquet, parquet: {compression: "+codec+"}}\n").Delivery
			body, ext, err := encodeTyped(dc, bufKey{table: "s.zoo"}, mustDef(t, zooDef), lines)
			if err != nil || ext != ".parquet" {
				t.Fatalf("encodeTyped: %q, %v", ext, err)
			}
			assertSameRecords(t, zooKey(ext), body, lines)
			f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
			if err != nil {
				t.Fatal(err)
			}
			want := `message zoo {
	required binary _op (STRING);
	required binary _stream_position (STRING);
	required int64 _commit_timestamp (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	optional int64 _transaction_id (INT(64,false));
	required binary _partition_key (STRING);
	optional binary _zero_dates (STRING);
	optional int64 id (INT(64,false));
	optional int64 i (INT(64,true));
	optional fixed_len_byte_array(5) d (DECIMAL(10,3));
	optional fixed_len_byte_array(3) neg (DECIMAL(5,2));
	optional binary wide (STRING);
	optional float f;
	optional double db;
	optional int32 day (DATE);
	optional int64 at (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	optional int64 dt (TIMESTAMP(isAdjustedToUTC=false,unit=MICROS));
	optional binary dur (STRING);
	optional int64 yr (INT(64,true));
	optional binary kind (STRING);
	optional binary doc (STRING);
	optional binary raw;
	optional int64 bits (INT(64,false));
	optional binary note (STRING);
	optional int64 n (INT(64,true));
}`
			if got := f.Schema().String(); got != want {
				t.Errorf("schema:\n%s\nwant\n%s", got, want)
			}
			if v, _ := f.Lookup("binlake.table-def"); v != zooDef {
				t.Errorf("binlake.table-def = %s", v)
			}
			if got := f.Metadata().RowGroups[0].Columns[0].MetaData.Codec.String(); !strings.EqualFold(got, map[string]string{"none": "UNCOMPRESSED"}[codec]+map[bool]string{true: codec}[codec != "none"]) {
				t.Errorf("page compression %s, want %s", got, codec)
			}
		})
	}
	t.Run("duckdb", func(t *testing.T) {
		duck := testbed.NewDuckDB(t)
		dc := testConfig(t, "delivery: {format: parquet}\n").Delivery
		body, _, err := encodeTyped(dc, bufKey{table: "s.zoo"}, mustDef(t, zooDef), lines)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "zoo.parquet")
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		rows := duck.Query(t, `SELECT _op, _transaction_id::VARCHAR AS tx, epoch_us(_commit_timestamp)::VARCHAR AS commit_us,
			typeof(id) || ' ' || id::VARCHAR AS id, typeof(d) || ' ' || d::VARCHAR AS d, neg::VARCHAR AS neg, typeof(wide) || ' ' || wide AS wide,
			typeof(f) || ' ' || f::VARCHAR AS f, db::VARCHAR AS db, typeof(day) || ' ' || day::VARCHAR AS day,
			typeof("at") || ' ' || epoch_us("at")::VARCHAR AS "at", typeof(dt) || ' ' || dt::VARCHAR AS dt, dur, yr::VARCHAR AS yr,
			typeof(raw) || ' ' || hex(raw) AS raw, typeof(bits) || ' ' || bits::VARCHAR AS bits, note, n::VARCHAR AS n, _zero_dates
			FROM read_parquet('`+path+`') ORDER BY _stream_position`)
		want := []map[string]any{
			{"_op": "load", "tx": nil, "commit_us": "1795514400000000", "id": "UBIGINT 18446744073709551615", "d": "DECIMAL(10,3) 9999999.999", "neg": "-0.50",
				"wide": "VARCHAR 99999999999999999999999999999999999.999999999999999999999999999999", "f": "FLOAT 3.40282e+38", "db": "1.7976931348623157e+308",
				"day": "DATE 9999-12-31", "at": "TIMESTAMP WITH TIME ZONE 2147483647999999", "dt": nil, "dur": "838:59:59.000", "yr": "2155",
				"raw": "BLOB FF0001", "bits": "UBIGINT 31", "note": "ÿ café, \"quoted\"\nline", "n": nil, "_zero_dates": `{"dt":"0000-00-00 00:00:00"}`},
			{"_op": "insert", "tx": "7", "commit_us": "1795514401000000", "id": "UBIGINT 1", "d": "DECIMAL(10,3) 0.000", "neg": "-999.99",
				"wide": "VARCHAR -0.000000000000000000000000000001", "f": "FLOAT 0.1", "db": "5e-324",
				"day": nil, "at": "TIMESTAMP WITH TIME ZONE 1000000", "dt": "TIMESTAMP 2024-06-01 01:58:02", "dur": "-00:00:01.000", "yr": "0",
				"raw": "BLOB ", "bits": "UBIGINT 0", "note": "1", "n": "42", "_zero_dates": `{"day":"0000-00-00"}`},
			{"_op": "update", "tx": "8", "commit_us": "1795514402000000", "id": "UBIGINT 1", "d": nil, "neg": nil, "wide": nil, "f": nil, "db": nil,
				"day": nil, "at": nil, "dt": nil, "dur": nil, "yr": nil, "raw": nil, "bits": nil, "note": "", "n": nil, "_zero_dates": nil},
			{"_op": "delete", "tx": "9", "commit_us": "1795514403000000", "id": "UBIGINT 18446744073709551615", "d": "DECIMAL(10,3) -0.001", "neg": "0.00",
				"wide": "VARCHAR 10.000000000000000000000000000000", "f": "FLOAT -1e-38", "db": "-1e-05",
				"day": "DATE 1000-01-01", "at": nil, "dt": "TIMESTAMP 9999-12-31 23:59:59", "dur": "00:00:00.000", "yr": "1901",
				"raw": "BLOB 616263", "bits": "UBIGINT 1", "note": "  trail  ", "n": "-1", "_zero_dates": `{"at":"0000-00-00 00:00:00.000000"}`},
		}
		if len(rows) != len(want) {
			t.Fatalf("DuckDB reads %d rows, want %d", len(rows), len(want))
		}
		for i := range want {
			for col, w := range want[i] {
				if got := rows[i][col]; !reflect.DeepEqual(got, w) {
					t.Errorf("DuckDB row %d %s = %#v, want %#v", i, col, got, w)
				}
			}
		}
	})
}

// TestCSVValues checks CSV objects byte for byte, with and without a
// header, and that binlake's reader gets the JSON records back.
func TestCSVValues(t *testing.T) {
	lines := jsonLines(zooRecords())
	rows := `I,0000/0000000001/0000000000000100/0/0000000003/0000000000,2026-11-24 10:00:00.000000,,"s.zoo.18446744073709551615",18446744073709551615,-2147483648,"9999999.999","-0.50","99999999999999999999999999999999999.999999999999999999999999999999",3.40282e+38,1.7976931348623157e+308,"9999-12-31","2038-01-19 03:14:07.999999","0000-00-00 00:00:00","838:59:59.000",2155,"c","{""a"": [1, 2.50, ""é😀""], ""b"": null}","/wAB",31,"ÿ café, ""quoted""
line",
I,0000/0000000001/0000000000000200/1/0000000000/0000000000,2026-11-24 10:00:01.000000,7,"s.zoo.1",1,0,"0.000","-999.99","-0.000000000000000000000000000001",0.1,5e-324,"0000-00-00","1970-01-01 00:00:01.000000","2024-06-01 01:58:02","-00:00:01.000",0,"","null","",0,"1",42
U,0000/0000000001/0000000000000300/1/0000000000/0000000000,2026-11-24 10:00:02.000000,8,"s.zoo.1",1,,,,,,,,,,,,,,,,"",
D,0000/0000000001/0000000000000400/1/0000000000/0000000000,2026-11-24 10:00:03.000000,9,"s.zoo.18446744073709551615",18446744073709551615,2147483647,"-0.001","0.00","10.000000000000000000000000000000",-1e-38,-1e-05,"1000-01-01","0000-00-00 00:00:00.000000","9999-12-31 23:59:59","00:00:00.000",1901,"a","""text""","YWJj",1,"  trail  ",-1
`
	header := "Op,_stream_position,_commit_timestamp,_transaction_id,_partition_key,id,i,d,neg,wide,f,db,day,at,dt,dur,yr,kind,doc,raw,bits,note,n\n"
	for _, tc := range []struct {
		name, config, ext, want string
	}{
		{"header", "delivery: {format: csv, compression: none, csv: {header: true}}", ".csv", header + rows},
		{"no-header", "delivery: {format: csv, compression: none}", ".csv", rows},
		{"gzip", "delivery: {format: csv, csv: {header: true}}", ".csv.gz", header + rows},
		{"zstd", "delivery: {format: csv, compression: zstd}", ".csv.zst", rows},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc := testConfig(t, tc.config+"\n").Delivery
			body, ext, err := encodeTyped(dc, bufKey{table: "s.zoo"}, mustDef(t, zooDef), lines)
			if err != nil || ext != tc.ext {
				t.Fatalf("encodeTyped: %q, %v; want %s", ext, err, tc.ext)
			}
			got := assertSameRecords(t, zooKey(ext), body, lines)
			if got[0].Op != "load" || got[1].Op != "insert" {
				t.Errorf("operations read back: %s, %s; want load, insert", got[0].Op, got[1].Op)
			}
			if dc.Compression == "none" && string(body) != tc.want {
				t.Errorf("CSV:\n%s\nwant\n%s", body, tc.want)
			}
		})
	}
}

// TestTypedFallsBackToJSON: records that do not fit the table definition
// are written as JSON lines, whole, never dropped.
func TestTypedFallsBackToJSON(t *testing.T) {
	recs := zooRecords()
	extra := *recs[1]
	extra.Data = append(append(change.Row{}, extra.Data...), change.Field{Name: "added", Value: int64(1)})
	missing := *recs[1]
	missing.Data = missing.Data[:len(missing.Data)-1]
	notInt := *recs[1]
	notInt.Data = append(append(change.Row{}, notInt.Data[:1]...), change.Field{Name: "i", Value: "x"})
	notInt.Data = append(notInt.Data, recs[1].Data[2:]...)
	clash := strings.Replace(zooDef, `"note"`, `"_op"`, 2)
	for _, tc := range []struct {
		name string
		def  string
		recs []*change.Record
		err  string
	}{
		{"extra column", zooDef, []*change.Record{recs[0], &extra}, `has column "added", which the table definition does not have`},
		{"missing column", zooDef, []*change.Record{&missing}, "has 17 columns, the table definition 18"},
		{"wrong type", zooDef, []*change.Record{&notInt}, `column i (int(11)): "x" is not an integer`},
		{"metadata name", clash, recs, `column "_op" has the name of a metadata column`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, format := range []string{"parquet", "csv"} {
				dc := testConfig(t, "delivery: {format: "+format+"}\n").Delivery
				_, _, err := encodeTyped(dc, bufKey{table: "s.zoo"}, mustDef(t, tc.def), jsonLines(tc.recs))
				if format == "csv" && tc.name == "wrong type" {
					continue // CSV writes any value as its text
				}
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("%s: error %v, want %q", format, err, tc.err)
				}
			}
		})
	}
	// Through a delivery: the buffer becomes a JSON lines object.
	cfg := testConfig(t, "delivery: {format: parquet, buffer: {size: 1MiB, interval: 0s}, prefix: lake/}\n")
	l := memstream.New()
	pub := newPublisher(t, l)
	pub.control(0, change.OpCreateTable, change.Position{File: 1, Offset: 50}, zooDef)
	pub.data(0, &extra)
	mem := objstore.NewMemory()
	drain(t, cfg, l, mem, t.TempDir())
	if got := objectExts(t, mem); !reflect.DeepEqual(got, []string{".json.gz", ".json.gz"}) {
		t.Errorf("objects %v, want the control record and the record that does not fit, as JSON lines", got)
	}
	assertExactlyOnce(t, mem, pub.positions)
}

// publisher publishes s.zoo records on a memstream.
type publisher struct {
	t         *testing.T
	p         *memstream.Producer
	positions []string
}

func newPublisher(t *testing.T, l *memstream.Log) *publisher {
	return &publisher{t: t, p: l.Producer()}
}

func (p *publisher) publish(part int, op change.Op, pos change.Position, data []byte) {
	p.t.Helper()
	m := &stream.Message{Partition: part, Table: "s.zoo", Position: pos.String(), Op: string(op), CommitTime: zooBase, Data: data}
	if err := p.p.Publish(context.Background(), m); err != nil {
		p.t.Fatal(err)
	}
	p.positions = append(p.positions, m.Position)
}

func (p *publisher) control(part int, op change.Op, pos change.Position, def string) {
	pos.B = uint64(part)
	p.publish(part, op, pos, controlLine(op, "zoo", "-- "+string(op), pos, def))
}

func (p *publisher) data(part int, r *change.Record) {
	p.publish(part, r.Op, r.Position, r.AppendJSON(nil))
}

// objectExts lists the extensions of the data objects in key order.
func objectExts(t *testing.T, b objstore.Bucket) []string {
	t.Helper()
	var out []string
	b.List(context.Background(), "", func(key string, size int64) error {
		if !strings.Contains(key, "_binlake/") {
			last := key[strings.LastIndexByte(key, '-')+1:] // <last position digits><ext>
			out = append(out, last[change.PositionLen-5:])
		}
		return nil
	})
	return out
}

// TestTypedObjectsFollowTableDefinitions runs a delivery over a table
// whose definition changes: each control record ends the object before
// it and goes to a JSON lines object, rows after a change of definition
// are written in the new shape, and after a restart the checkpoint knows
// the definition in effect.
func TestTypedObjectsFollowTableDefinitions(t *testing.T) {
	for _, format := range []string{"parquet", "csv"} {
		t.Run(format, func(t *testing.T) {
			cfg := testConfig(t, "delivery: {format: "+format+", buffer: {size: 1MiB, interval: 900s}, prefix: lake/}\n")
			dir := t.TempDir()
			mem := objstore.NewMemory()
			l := memstream.New()
			pub := newPublisher(t, l)
			recs := zooRecords()
			def2 := strings.Replace(zooDef, `"column-order":["id",`, `"column-order":["id","extra",`, 1)
			def2 = strings.Replace(def2, `{"columns":{`, `{"columns":{"extra":{"type":"varchar(3)","data-type":"varchar","nullable":true},`, 1)
			event := func(offset uint64) change.Position {
				return change.Position{File: 1, Offset: offset, Kind: change.KindEvent}
			}
			pub.control(0, change.OpCreateTable, change.Position{File: 1, Offset: 50}, zooDef)
			pub.data(0, recs[0])
			pub.data(0, recs[1])
			pub.control(0, change.OpChangeColumns, event(250), def2)
			withExtra := *recs[2]
			withExtra.Data = append(append(change.Row{}, withExtra.Data...), change.Field{Name: "extra", Value: "new"})
			pub.data(0, &withExtra)
			pub.control(0, change.OpTruncateTable, event(350), "")
			drain(t, cfg, l, mem, dir)

			ext := ".parquet"
			if format == "csv" {
				ext = ".csv.gz"
			}
			want := []string{".json.gz", ext, ".json.gz", ext, ".json.gz"}
			if got := objectExts(t, mem); !reflect.DeepEqual(got, want) {
				t.Errorf("objects %v, want %v", got, want)
			}
			var st State
			body, err := os.ReadFile(filepath.Join(dir, "delivery.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := json.Compact(&got, st.TableDefs["0|s.zoo"]); err != nil || got.String() != def2 {
				t.Errorf("delivery.json table_defs[0|s.zoo] = %s, want the second definition", got.String())
			}

			// After a restart, rows come without a control record first:
			// the checkpoint's definition shapes them.
			withExtra.Position, withExtra.Op = event(450), change.OpInsert
			pub.data(0, &withExtra)
			drain(t, cfg, l, mem, dir)
			want = append(want, ext)
			if got := objectExts(t, mem); !reflect.DeepEqual(got, want) {
				t.Errorf("objects after the restart %v, want %v", got, want)
			}
			assertExactlyOnce(t, mem, pub.positions)
			recsRead, err := lake.Read(context.Background(), mem, "")
			if err != nil {
				t.Fatal(err)
			}
			rp := lake.ReplayRecords(recsRead)
			row := rp.Tables["s.zoo"]["s.zoo.1"]
			if len(rp.Tables["s.zoo"]) != 1 || row["extra"] != "new" || row["id"] != json.Number("1") {
				t.Errorf("replayed s.zoo = %v, want only row 1, with extra = new", rp.Tables["s.zoo"])
			}
		})
	}
}

// TestRowGroups checks that a row group closes when its rows reach
// parquet.row_group_size, measured as their JSON lines.
func TestRowGroups(t *testing.T) {
	var recs []*change.Record
	for i := range 100 {
		r := *zooRecords()[1]
		r.Position.Offset = uint64(1000 + i)
		r.Data = append(change.Row{}, r.Data...)
		r.Data[0].Value = uint64(100 + i) // lines of one length
		recs = append(recs, &r)
	}
	lines := jsonLines(recs)
	cfg := testConfig(t, "delivery: {format: parquet, parquet: {row_group_size: 8KiB}}\n")
	body, _, err := encodeTyped(cfg.Delivery, bufKey{table: "s.zoo"}, mustDef(t, zooDef), lines)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	per := int64((8192 + len(lines)/100 - 1) / (len(lines) / 100)) // rows until the group reaches 8 KiB
	var sizes []int64
	for _, g := range f.RowGroups() {
		sizes = append(sizes, g.NumRows())
	}
	want := []int64{}
	for n := int64(100); n > 0; n -= per {
		want = append(want, min(n, per))
	}
	if !reflect.DeepEqual(sizes, want) {
		t.Errorf("row groups of %v rows, want %v", sizes, want)
	}
}

// TestTypedExactlyOnceAcrossCrashes is TestExactlyOnceAcrossCrashes for
// Parquet: crashes before and after object uploads, then a resumed
// delivery with different batches. Every record is in the lake exactly
// once and every data record in a Parquet object: the table definitions
// in effect survive the crash with the stored positions.
func TestTypedExactlyOnceAcrossCrashes(t *testing.T) {
	const def = `{"columns":{"id":{"type":"bigint(20)","data-type":"bigint","nullable":false},"v":{"type":"text","data-type":"text","nullable":true}},"column-order":["id","v"],"primary-key":["id"]}`
	for _, after := range []bool{false, true} {
		for crashAt := 1; crashAt <= 8; crashAt++ {
			t.Run(fmt.Sprintf("after=%v/put%d", after, crashAt), func(t *testing.T) {
				cfg := testConfig(t, "delivery: {format: parquet, buffer: {size: 1KiB, interval: 0s}, prefix: lake/}\n")
				dir := t.TempDir()
				mem := objstore.NewMemory()
				l := memstream.New()
				var want []string
				for i, table := range []string{"a", "b"} {
					for part := range 2 {
						pos := change.Position{File: 1, Offset: uint64(500 + i), Kind: change.KindEvent, B: uint64(part)}
						m := &stream.Message{Partition: part, Table: "s." + table, Position: pos.String(), Op: string(change.OpCreateTable), CommitTime: zooBase,
							Data: controlLine(change.OpCreateTable, table, "CREATE TABLE "+table, pos, def)}
						if err := l.Producer().Publish(context.Background(), m); err != nil {
							t.Fatal(err)
						}
						want = append(want, m.Position)
					}
				}
				want = append(want, publish(t, l, 0, 40)...)

				ctx, cancel := context.WithCancel(context.Background())
				cb := &crashingBucket{Bucket: mem, n: crashAt, after: after, cancel: cancel}
				d := New(Options{Config: cfg, Consumer: l.Consumer(), Bucket: cb, StateDir: dir, Logger: quiet})
				drainNow := make(chan struct{})
				close(drainNow)
				if err := d.Run(ctx, drainNow); err == nil {
					t.Fatal("delivery did not stop at the simulated crash")
				}
				want = append(want, publish(t, l, 40, 17)...)
				drain(t, cfg, l, mem, dir)
				assertExactlyOnce(t, mem, want)
				recs, err := lake.Read(context.Background(), mem, "")
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if r.Type == "data" && !strings.HasSuffix(r.Object, ".parquet") {
						t.Errorf("data record %s is in %s, not in a Parquet object", r.Position, r.Object)
					}
				}
			})
		}
	}
}
