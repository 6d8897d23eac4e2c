package capture

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
)

// ReadTable reads the current rows of a table with the full load's value
// rules, keyed by their partition-key-value, so that they can be compared
// with a replayed lake.
func ReadTable(ctx context.Context, c config.MySQL, schema, table string) (map[string]change.Row, error) {
	src, err := openSource(ctx, c)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	t := TableName{Schema: schema, Table: table}
	info, err := readTableInfo(ctx, src.db, t)
	if err != nil {
		return nil, err
	}
	rows, err := src.db.QueryContext(ctx, info.selectAll())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", t, err)
	}
	defer rows.Close()
	pkIdx := info.pkIndexes()
	out := map[string]change.Row{}
	raw, dest := info.scanDest()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row, err := info.row(raw)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", t, err)
		}
		rec := &change.Record{Schema: schema, Table: table}
		partitionKey(rec, row, pkIdx)
		out[rec.PartitionKey] = row
	}
	return out, rows.Err()
}

// selectAll is the full-load SELECT of the table.
func (ti *tableInfo) selectAll() string {
	exprs := make([]string, len(ti.columns))
	for i := range ti.columns {
		exprs[i] = ti.columns[i].selectExpr()
	}
	return "SELECT " + strings.Join(exprs, ", ") + " FROM " + quoteIdent(ti.name.Schema) + "." + quoteIdent(ti.name.Table)
}

// pkIndexes returns the column indexes of the primary key.
func (ti *tableInfo) pkIndexes() []int {
	idx := make([]int, 0, len(ti.pk))
	for _, name := range ti.pk {
		for i, col := range ti.columns {
			if col.name == name {
				idx = append(idx, i)
			}
		}
	}
	return idx
}

// scanDest returns buffers to Scan a row of selectAll into.
func (ti *tableInfo) scanDest() ([]sql.RawBytes, []any) {
	raw := make([]sql.RawBytes, len(ti.columns))
	dest := make([]any, len(raw))
	for i := range raw {
		dest[i] = &raw[i]
	}
	return raw, dest
}

// row converts a scanned row with the value rules.
func (ti *tableInfo) row(raw []sql.RawBytes) (change.Row, error) {
	row := make(change.Row, len(ti.columns))
	for i := range ti.columns {
		v, err := ti.columns[i].value(raw[i])
		if err != nil {
			return nil, err
		}
		row[i] = change.Field{Name: ti.columns[i].name, Value: v}
	}
	return row, nil
}
