package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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
	// The rows keep pieces of lines: split them in place.
	for rest := lines; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var data, before, control, meta []byte
		err := eachMember(line, func(k, v []byte) error {
			switch string(k) {
			case "data":
				data = v
			case "before-image":
				before = v
			case "control":
				control = v
			case "metadata":
				meta = v
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("decoding a buffered record: %w", err)
		}
		var m struct {
			recordType, operation, key, commit, position []byte
			txID                                         []byte
			prevTxID                                     bool
		}
		if meta != nil {
			err = eachMember(meta, func(k, v []byte) error {
				var err error
				switch string(k) {
				case "record-type":
					m.recordType, err = unquote(v)
				case "operation":
					m.operation, err = unquote(v)
				case "partition-key-value":
					m.key, err = unquote(v)
				case "commit-timestamp":
					m.commit, err = unquote(v)
				case "stream-position":
					m.position, err = unquote(v)
				case "transaction-id":
					m.txID = v
				case "prev-transaction-id":
					m.prevTxID = !isNull(v)
				}
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("decoding a buffered record: %w", err)
			}
		}
		switch {
		case control != nil || string(m.recordType) != "data" || change.Op(m.operation).IsControl():
			return nil, fmt.Errorf("record %s is a control record", m.position)
		case before != nil && !isNull(before):
			return nil, fmt.Errorf("record %s has a before-image, which typed formats do not hold", m.position)
		case m.prevTxID:
			return nil, fmt.Errorf("record %s has transaction details, which typed formats do not hold", m.position)
		}
		commit, err := time.Parse("2006-01-02T15:04:05.999999Z", string(m.commit))
		if err != nil {
			return nil, fmt.Errorf("record %s: commit-timestamp: %w", m.position, err)
		}
		r := tableRow{op: change.Op(m.operation), position: string(m.position), commitTime: commit, key: string(m.key),
			values: make([]json.RawMessage, len(def.Columns)), size: len(line) + 1}
		if m.txID != nil && !isNull(m.txID) {
			if r.txID, err = strconv.ParseUint(string(m.txID), 10, 64); err != nil {
				return nil, fmt.Errorf("record %s: transaction-id %s: %w", m.position, m.txID, err)
			}
			r.hasTxID = true
		}
		n := 0
		if data == nil || isNull(data) {
			return nil, fmt.Errorf("record %s has no data", m.position)
		}
		err = eachMember(data, func(name, v []byte) error {
			i, ok := index[string(name)]
			if !ok {
				return fmt.Errorf("record %s has column %q, which the table definition does not have", m.position, name)
			}
			if r.values[i] == nil {
				n++
			}
			r.values[i] = v
			return nil
		})
		if err != nil {
			return nil, err
		}
		if n != len(def.Columns) {
			return nil, fmt.Errorf("record %s has %d columns, the table definition %d", m.position, n, len(def.Columns))
		}
		rows = append(rows, r)
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
	s, err := unquote(v)
	return string(s), err
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
