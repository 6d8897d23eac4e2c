package delivery

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
)

// typed reports whether the configured format writes typed objects (one
// schema per object) rather than JSON lines.
func typed(format string) bool { return format == config.FormatParquet || format == config.FormatCSV }

// tableRow is a data record decoded for a typed format.
type tableRow struct {
	op         change.Op
	position   string
	commitTime time.Time
	txID       uint64
	hasTxID    bool              // false for load records
	key        string            // partition-key-value
	values     []json.RawMessage // in the definition's column order; JSON null for NULL
	size       int               // bytes of the JSON line
}

// decodeRows decodes the JSON lines of a buffer of data records into rows
// in the shape of def. Anything the shape cannot hold is an error, never
// dropped: a control record, a column the definition does not have (or one
// it has that the record lacks), a before-image, transaction details.
func decodeRows(def *tableDef, lines []byte) ([]tableRow, error) {
	index := make(map[string]int, len(def.Columns))
	for i, c := range def.Columns {
		if slices.Contains(change.MetadataColumns, c.Name) {
			return nil, fmt.Errorf("column %q has the name of a metadata column", c.Name)
		}
		index[c.Name] = i
	}
	var rows []tableRow
	sc := bufio.NewScanner(bytes.NewReader(lines))
	sc.Buffer(nil, len(lines)+1)
	for sc.Scan() {
		var w struct {
			Data     map[string]json.RawMessage `json:"data"`
			Before   json.RawMessage            `json:"before-image"`
			Control  json.RawMessage            `json:"control"`
			Metadata struct {
				RecordType string  `json:"record-type"`
				Operation  string  `json:"operation"`
				Key        string  `json:"partition-key-value"`
				TxID       *uint64 `json:"transaction-id"`
				PrevTxID   *uint64 `json:"prev-transaction-id"`
				Commit     string  `json:"commit-timestamp"`
				Position   string  `json:"stream-position"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			return nil, fmt.Errorf("decoding a buffered record: %w", err)
		}
		m := &w.Metadata
		switch {
		case w.Control != nil || m.RecordType != "data" || change.Op(m.Operation).IsControl():
			return nil, fmt.Errorf("record %s is a control record", m.Position)
		case w.Before != nil:
			return nil, fmt.Errorf("record %s has a before-image, which typed formats do not hold", m.Position)
		case m.PrevTxID != nil:
			return nil, fmt.Errorf("record %s has transaction details, which typed formats do not hold", m.Position)
		}
		commit, err := time.Parse("2006-01-02T15:04:05.999999Z", m.Commit)
		if err != nil {
			return nil, fmt.Errorf("record %s: commit-timestamp: %w", m.Position, err)
		}
		r := tableRow{op: change.Op(m.Operation), position: m.Position, commitTime: commit, key: m.Key,
			values: make([]json.RawMessage, len(def.Columns)), size: len(sc.Bytes()) + 1}
		if m.TxID != nil {
			r.txID, r.hasTxID = *m.TxID, true
		}
		for name, v := range w.Data {
			i, ok := index[name]
			if !ok {
				return nil, fmt.Errorf("record %s has column %q, which the table definition does not have", m.Position, name)
			}
			r.values[i] = v
		}
		if len(w.Data) != len(def.Columns) {
			return nil, fmt.Errorf("record %s has %d columns, the table definition %d", m.Position, len(w.Data), len(def.Columns))
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading buffered records: %w", err)
	}
	return rows, nil
}

// isNull reports whether a raw JSON value is null.
func isNull(v json.RawMessage) bool { return string(v) == "null" }

// jsonString decodes a raw JSON value that must be a string.
func jsonString(v json.RawMessage) (string, error) {
	if len(v) == 0 || v[0] != '"' {
		return "", fmt.Errorf("%s is not a string", v)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s, nil
}

// encodeObject encodes a buffer in the configured format. A buffer of data
// records with a table definition becomes a Parquet or CSV object; JSON,
// buffers of control records and buffers without a definition become JSON
// lines. When a typed encoding fails (a record does not fit the table
// definition), the buffer is written as JSON lines and a warning says why:
// nothing is dropped and nothing blocks.
func (d *Delivery) encodeObject(b *buffer) ([]byte, string, error) {
	dc := d.cfg.Delivery
	if !typed(dc.Format) || b.def == nil {
		return encode(dc.Compression, b.data.Bytes())
	}
	body, ext, err := encodeTyped(dc, b.key, b.def, b.data.Bytes())
	if err == nil {
		return body, ext, nil
	}
	d.log.Warn("records do not fit the table definition; this object is written as JSON lines", "table", b.key.table, "partition", b.key.partition, "format", dc.Format, "err", err)
	return encode(dc.Compression, b.data.Bytes())
}

// encodeTyped encodes JSON lines of data records as a Parquet or CSV object.
func encodeTyped(dc config.Delivery, k bufKey, def *tableDef, lines []byte) ([]byte, string, error) {
	rows, err := decodeRows(def, lines)
	if err != nil {
		return nil, "", err
	}
	if dc.Format == config.FormatParquet {
		body, err := encodeParquet(k.table, def, rows, dc.Parquet)
		return body, ".parquet", err
	}
	text, err := encodeCSV(def, rows, dc.CSV.Header)
	if err != nil {
		return nil, "", err
	}
	body, ext, err := compress(dc.Compression, text)
	return body, ".csv" + ext, err
}

// EncodeParquet encodes JSON lines of data records (DMS records as the lake
// holds them) of one table, table being "schema.table", as a Parquet object
// in the shape delivery.format: parquet writes (docs/format.md#parquet):
// the metadata columns, then the columns of def, a table definition in the
// JSON form control records carry. A record that does not fit def is an
// error.
func EncodeParquet(table string, def json.RawMessage, lines []byte, opts config.Parquet) ([]byte, error) {
	d, err := parseTableDef(def)
	if err != nil {
		return nil, err
	}
	rows, err := decodeRows(d, lines)
	if err != nil {
		return nil, err
	}
	return encodeParquet(table, d, rows, opts)
}
