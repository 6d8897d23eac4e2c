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
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"

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
}

type wire struct {
	Data     map[string]any `json:"data"`
	Metadata struct {
		RecordType string `json:"record-type"`
		Operation  string `json:"operation"`
		Schema     string `json:"schema-name"`
		Table      string `json:"table-name"`
		Key        string `json:"partition-key-value"`
		Position   string `json:"stream-position"`
	} `json:"metadata"`
}

// Read returns every record stored under prefix, in object order.
func Read(ctx context.Context, b objstore.Bucket, prefix string) ([]Record, error) {
	var keys []string
	err := b.List(ctx, prefix, func(key string, size int64) error {
		if strings.Contains(key, "_binlake/") {
			return nil // markers and other binlake metadata
		}
		for _, ext := range []string{".json", ".json.gz", ".json.zst", ".json.snappy"} {
			if strings.HasSuffix(key, ext) {
				keys = append(keys, key)
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, key := range keys {
		body, err := b.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		recs, err := Decode(key, body)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// Decode decodes one object, decompressed by its extension (.gz, .zst,
// .snappy).
func Decode(key string, body []byte) ([]Record, error) {
	var r io.Reader = bytes.NewReader(body)
	switch {
	case strings.HasSuffix(key, ".gz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(key, ".zst"):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(key, ".snappy"):
		r = snappy.NewReader(r)
	}
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
		out = append(out, Record{
			Data: w.Data, Op: w.Metadata.Operation, Type: w.Metadata.RecordType,
			Schema: w.Metadata.Schema, Table: w.Metadata.Table, Key: w.Metadata.Key,
			Position: w.Metadata.Position, Object: key,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return out, nil
}

// Table is a replayed table: rows by partition key.
type Table map[string]map[string]any

// Replay is the result of replaying records.
type Replay struct {
	Tables     map[string]Table // by "schema.table"
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
		name := r.Schema + "." + r.Table
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
