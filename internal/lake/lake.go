// Package lake reads a delivered change log back: it lists a table's
// objects, decodes their records and replays them per key in
// stream-position order to reconstruct each table as it is at the source.
// Validation and the tests use it to prove the lake equals the source.
package lake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/objectkey"
	"github.com/binlake/binlake/internal/objstore"
)

// Record is a decoded change record. Data values are as encoding/json
// decodes them with UseNumber: json.Number, string, nil, ...
type Record struct {
	Data     map[string]any
	Op       string
	Type     string // data | control
	Schema   string
	Table    string
	Key      string // partition-key-value
	Position string
	Object   string // the object it was read from
	// CommitTime is the record's commit-timestamp; TransactionID its
	// transaction-id, nil when it has none (load records).
	CommitTime    time.Time
	TransactionID *uint64
	// Statement is a control record's statement (control.statement).
	Statement string
	// TableDef is the table definition a control record carries, as JSON
	// (control.table-def); nil when it carries none.
	TableDef json.RawMessage
}

type wire struct {
	Data    map[string]any `json:"data"`
	Control struct {
		Statement string          `json:"statement"`
		TableDef  json.RawMessage `json:"table-def"`
	} `json:"control"`
	Metadata struct {
		RecordType string  `json:"record-type"`
		Operation  string  `json:"operation"`
		Schema     string  `json:"schema-name"`
		Table      string  `json:"table-name"`
		Key        string  `json:"partition-key-value"`
		Position   string  `json:"stream-position"`
		Commit     string  `json:"commit-timestamp"`
		TxID       *uint64 `json:"transaction-id"`
	} `json:"metadata"`
}

// Read returns every record stored under prefix, in object order. Objects
// a compacted object covers are left out (see objectkey.Covered).
func Read(ctx context.Context, b objstore.Bucket, prefix string) ([]Record, error) {
	var keys []string
	err := b.List(ctx, prefix, func(key string, size int64) error {
		if strings.Contains(key, "_binlake/") || !IsObject(key) {
			return nil // markers, snapshots and other binlake metadata
		}
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var names []objectkey.Name
	for _, k := range keys {
		if n, ok := objectkey.Parse(k); ok {
			names = append(names, n)
		}
	}
	covered := objectkey.Covered(names)
	var objs []Object
	for _, k := range keys {
		if covered[k] {
			continue
		}
		body, err := b.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		objs = append(objs, Object{Key: k, Body: body})
	}
	return DecodeObjects(objs)
}

// Listed is a change-log object of a task.
type Listed struct {
	objectkey.Name
	Table string // "schema.table"
	Size  int64
	// Covered: a compacted object holds its records; readers skip it.
	Covered bool
}

// ListTask lists the change-log objects of task under root, in key order:
// not binlake's own objects (under _binlake/), nor those under the
// exclude prefixes (the error output, config.Delivery.ErrorRoots).
func ListTask(ctx context.Context, b objstore.Bucket, root, task string, exclude []string) ([]Listed, error) {
	var out []Listed
	err := b.List(ctx, root, func(key string, size int64) error {
		if strings.Contains(key, "_binlake/") || !IsObject(key) {
			return nil
		}
		for _, p := range exclude {
			if strings.HasPrefix(key, p) {
				return nil
			}
		}
		n, ok := objectkey.Parse(key)
		if !ok {
			return nil
		}
		table, ok := n.Table(task)
		if !ok {
			return nil
		}
		out = append(out, Listed{Name: n, Table: table, Size: size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the change log: %w", err)
	}
	names := make([]objectkey.Name, len(out))
	for i := range out {
		names[i] = out[i].Name
	}
	covered := objectkey.Covered(names)
	for i := range out {
		out[i].Covered = covered[out[i].Key]
	}
	return out, nil
}

// Object is a stored object: its key and its body.
type Object struct {
	Key  string
	Body []byte
}

// IsObject reports whether key names an object of records: JSON lines,
// Parquet or CSV, by its extension.
func IsObject(key string) bool {
	for _, ext := range []string{".json", ".json.gz", ".json.zst", ".json.snappy", ".parquet", ".csv", ".csv.gz", ".csv.zst", ".csv.snappy"} {
		if strings.HasSuffix(key, ext) {
			return true
		}
	}
	return false
}

// DecodeObjects decodes the objects of a lake, or of one table, in order.
// JSON lines and Parquet objects describe themselves. A CSV object takes
// its table, and without a header its column names, from the table
// definition in effect on its partition before its first row, which a
// control record in a JSON lines object carries: objs must hold those
// objects too.
func DecodeObjects(objs []Object) ([]Record, error) {
	decoded := make([][]Record, len(objs))
	var defs []csvDefinition
	for i, o := range objs {
		if isCSV(o.Key) {
			continue
		}
		recs, err := Decode(o.Key, o.Body)
		if err != nil {
			return nil, err
		}
		decoded[i] = recs
		for _, r := range recs {
			if r.TableDef == nil {
				continue
			}
			def, err := change.ParseTableDef(r.TableDef)
			if err != nil {
				return nil, fmt.Errorf("%s: table definition at %s: %w", o.Key, r.Position, err)
			}
			defs = append(defs, csvDefinition{schema: r.Schema, table: r.Table, position: r.Position, def: def})
		}
	}
	var out []Record
	for i, o := range objs {
		if isCSV(o.Key) {
			d, err := csvTable(o.Key, defs)
			if err != nil {
				return nil, err
			}
			text, err := decompress(o.Key, o.Body)
			if err != nil {
				return nil, err
			}
			if decoded[i], err = decodeCSV(o.Key, text, d); err != nil {
				return nil, err
			}
		}
		out = append(out, decoded[i]...)
	}
	return out, nil
}

// Decompress undoes the compression an object's extension names (.gz,
// .zst, .snappy; none otherwise).
func Decompress(key string, body []byte) ([]byte, error) { return decompress(key, body) }

// decompress undoes the compression an object's extension names.
func decompress(key string, body []byte) ([]byte, error) {
	r, closer, err := decompressor(key, body)
	if err != nil {
		return nil, err
	}
	defer closer()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return b, nil
}

func decompressor(key string, body []byte) (io.Reader, func(), error) {
	var r io.Reader = bytes.NewReader(body)
	switch {
	case strings.HasSuffix(key, ".gz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", key, err)
		}
		return zr, func() { zr.Close() }, nil
	case strings.HasSuffix(key, ".zst"):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", key, err)
		}
		return zr, zr.Close, nil
	case strings.HasSuffix(key, ".snappy"):
		return snappy.NewReader(r), func() {}, nil
	}
	return r, func() {}, nil
}

// Decode decodes one JSON lines object, decompressed by its extension
// (.gz, .zst, .snappy), or one Parquet object. A CSV object needs the
// table definitions of other objects: use DecodeObjects.
func Decode(key string, body []byte) ([]Record, error) {
	switch {
	case strings.HasSuffix(key, ".parquet"):
		return decodeParquet(key, body)
	case isCSV(key):
		return DecodeObjects([]Object{{Key: key, Body: body}})
	}
	r, closer, err := decompressor(key, body)
	if err != nil {
		return nil, err
	}
	defer closer()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	var out []Record
	line := 0
	for sc.Scan() {
		line++
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var w wire
		if err := dec.Decode(&w); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", key, line, err)
		}
		var commit time.Time
		if w.Metadata.Commit != "" {
			if commit, err = time.Parse(time.RFC3339Nano, w.Metadata.Commit); err != nil {
				return nil, fmt.Errorf("%s line %d: commit-timestamp: %w", key, line, err)
			}
		}
		out = append(out, Record{
			Data: w.Data, Op: w.Metadata.Operation, Type: w.Metadata.RecordType,
			Schema: w.Metadata.Schema, Table: w.Metadata.Table, Key: w.Metadata.Key,
			Position: w.Metadata.Position, Object: key,
			CommitTime: commit, TransactionID: w.Metadata.TxID, Statement: w.Control.Statement,
		})
		if len(w.Control.TableDef) > 0 && string(w.Control.TableDef) != "null" {
			out[len(out)-1].TableDef = w.Control.TableDef
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return out, nil
}

// Table is a replayed table: rows by partition key.
type Table map[string]map[string]any

// TableName names a table in a Replay: "schema.table", with a part that
// holds a '.' (or a '`') backquoted as in SQL, so that table "b.c" of schema
// "a" (a.`b.c`) and table "c" of schema "a.b" (`a.b`.c) stay apart.
func TableName(schema, table string) string {
	return quotePart(schema) + "." + quotePart(table)
}

func quotePart(s string) string {
	if !strings.ContainsAny(s, ".`") {
		return s
	}
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// Replay is the result of replaying records.
type Replay struct {
	Tables     map[string]Table // by TableName(schema, table)
	Duplicates []string         // positions seen more than once
}

// Replay sorts each table's records by stream-position and applies them:
// load/insert/update set the row of the key, delete removes it,
// truncate-table empties the table. Control records broadcast to several
// partitions carry distinct positions, so only true re-sends count as
// duplicates.
func ReplayRecords(recs []Record) Replay {
	by := map[string][]Record{}
	for _, r := range recs {
		name := TableName(r.Schema, r.Table)
		by[name] = append(by[name], r)
	}
	out := Replay{Tables: map[string]Table{}}
	for name, rs := range by {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Position < rs[j].Position })
		t := Table{}
		for i, r := range rs {
			if i > 0 && rs[i-1].Position == r.Position {
				out.Duplicates = append(out.Duplicates, r.Position)
				continue
			}
			switch r.Op {
			case "load", "insert", "update":
				t[r.Key] = r.Data
			case "delete":
				delete(t, r.Key)
			case "truncate-table", "drop-table":
				t = Table{}
			}
		}
		out.Tables[name] = t
	}
	return out
}

// AppendDataRecord appends the DMS JSON line of a decoded data record (and
// a newline) with the given columns in order: the fields typed objects
// hold (docs/format.md#parquet-and-csv), which is what binlake writes
// such a record back as.
func AppendDataRecord(b []byte, r Record, columns []string) ([]byte, error) {
	b = append(b, `{"data":{`...)
	for i, c := range columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = change.AppendString(b, c)
		b = append(b, ':')
		switch v := r.Data[c].(type) {
		case nil:
			b = append(b, "null"...)
		case json.Number:
			b = append(b, v...)
		case string:
			b = change.AppendString(b, v)
		default:
			return nil, fmt.Errorf("record %s column %s: a %T value", r.Position, c, v)
		}
	}
	b = append(b, `},"metadata":{"record-type":"data","operation":`...)
	b = change.AppendString(b, r.Op)
	b = append(b, `,"partition-key-value":`...)
	b = change.AppendString(b, r.Key)
	if r.TransactionID != nil {
		b = append(b, `,"transaction-id":`...)
		b = strconv.AppendUint(b, *r.TransactionID, 10)
	}
	b = append(b, `,"commit-timestamp":"`...)
	b = r.CommitTime.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, `","stream-position":"`...)
	b = append(b, r.Position...)
	return append(b, "\"}}\n"...), nil
}
