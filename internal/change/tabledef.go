package change

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Metadata columns of the typed lake formats (Parquet, CSV): the fields of
// a record's metadata that each row carries beside the table's columns
// (see docs/format.md#parquet-and-csv). CSV objects start with "Op" before
// them, as DMS writes it, and have no ColumnZeroDates.
const (
	ColumnOp         = "_op"
	ColumnPosition   = "_stream_position"
	ColumnCommitTime = "_commit_timestamp"
	ColumnTxID       = "_transaction_id"
	ColumnKey        = "_partition_key"
	// ColumnZeroDates holds, as a JSON object, the text of the dates a
	// Parquet date or timestamp column cannot hold (0000-00-00, …).
	ColumnZeroDates = "_zero_dates"
)

// Key-value metadata of binlake's Parquet objects.
const (
	ParquetTableDef = "binlake.table-def" // the table definition, as control records carry it
	ParquetSchema   = "binlake.schema-name"
	ParquetTable    = "binlake.table-name"
)

// MetadataColumns are the names a table column cannot have in a typed
// object.
var MetadataColumns = []string{ColumnOp, ColumnPosition, ColumnCommitTime, ColumnTxID, ColumnKey, ColumnZeroDates}

// ParseTableDef reads a table definition in the JSON form control records
// carry (control.table-def) and checks that it is whole: every column of
// column-order described, none listed twice.
func ParseTableDef(b []byte) (*TableDef, error) {
	var w struct {
		Columns map[string]struct {
			Type     string `json:"type"`
			DataType string `json:"data-type"`
			Nullable bool   `json:"nullable"`
		} `json:"columns"`
		Order      []string `json:"column-order"`
		PrimaryKey []string `json:"primary-key"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("table definition: %w", err)
	}
	if len(w.Order) == 0 || len(w.Order) != len(w.Columns) {
		return nil, fmt.Errorf("table definition: %d columns in column-order, %d described", len(w.Order), len(w.Columns))
	}
	d := &TableDef{PrimaryKey: w.PrimaryKey}
	seen := map[string]bool{}
	for _, name := range w.Order {
		c, ok := w.Columns[name]
		if !ok || seen[name] {
			return nil, fmt.Errorf("table definition: column %q is listed twice or not described", name)
		}
		seen[name] = true
		d.Columns = append(d.Columns, ColumnDef{Name: name, Type: c.Type, DataType: c.DataType, Nullable: c.Nullable})
	}
	return d, nil
}

var labelRe = regexp.MustCompile(`'((?:[^']|'')*)'`)

// TypeLabels returns the labels of an ENUM or SET column type, as
// information_schema's COLUMN_TYPE writes it ("enum('a','it”s')"), in
// order.
func TypeLabels(columnType string) []string {
	var out []string
	for _, m := range labelRe.FindAllStringSubmatch(columnType, -1) {
		out = append(out, strings.ReplaceAll(m[1], "''", "'"))
	}
	return out
}
