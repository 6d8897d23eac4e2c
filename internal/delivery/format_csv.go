package delivery

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/binlake/binlake/internal/change"
)

// csvOps are the Op column's letters, as DMS writes them; a full-load row
// is "I", as DMS writes it with includeOpForFullLoad (its stream-position,
// of kind 0, still tells it from an insert).
var csvOps = map[change.Op]string{change.OpLoad: "I", change.OpInsert: "I", change.OpUpdate: "U", change.OpDelete: "D"}

// csvOpColumn is the name of the first column in the header.
const csvOpColumn = "Op"

// encodeCSV writes rows of one table definition as CSV, DMS S3-target
// style (see docs/format.md#csv): Op, then the metadata columns, then the
// table's columns in table order, one row per line ending in "\n",
// RFC 4180 quoting. Text is always quoted and numbers never are, so NULL
// (an empty unquoted field) and the empty string ("") differ, and a reader
// can tell 1 from "1".
func encodeCSV(def *tableDef, rows []tableRow, header bool) ([]byte, error) {
	var b []byte
	if header {
		names := []string{csvOpColumn, change.ColumnPosition, change.ColumnCommitTime, change.ColumnTxID, change.ColumnKey}
		for _, c := range def.Columns {
			names = append(names, c.Name)
		}
		for i, name := range names {
			if i > 0 {
				b = append(b, ',')
			}
			if strings.ContainsAny(name, ",\"\r\n") {
				b = appendCSVQuoted(b, name)
			} else {
				b = append(b, name...)
			}
		}
		b = append(b, '\n')
	}
	for _, r := range rows {
		op, ok := csvOps[r.op]
		if !ok {
			return nil, fmt.Errorf("record %s: operation %q has no CSV letter", r.position, r.op)
		}
		b = append(b, op...)
		b = append(b, ',')
		b = append(b, r.position...)
		b = append(b, ',')
		b = append(b, r.commitTime.UTC().Format("2006-01-02 15:04:05.000000")...)
		b = append(b, ',')
		if r.hasTxID {
			b = strconv.AppendUint(b, r.txID, 10)
		}
		b = append(b, ',')
		b = appendCSVQuoted(b, r.key)
		for i, v := range r.values {
			b = append(b, ',')
			switch {
			case isNull(v):
			case v[0] == '"':
				s, err := jsonString(v)
				if err != nil {
					return nil, fmt.Errorf("record %s column %s: %w", r.position, def.Columns[i].Name, err)
				}
				b = appendCSVQuoted(b, s)
			case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
				b = append(b, v...)
			default:
				return nil, fmt.Errorf("record %s column %s: %s is not a column value", r.position, def.Columns[i].Name, v)
			}
		}
		b = append(b, '\n')
	}
	return b, nil
}

// appendCSVQuoted appends s as a quoted CSV field: quotes doubled.
func appendCSVQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		b = append(b, s[:i+1]...)
		b = append(b, '"')
		s = s[i+1:]
	}
	b = append(b, s...)
	return append(b, '"')
}
