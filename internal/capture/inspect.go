package capture

import (
	"context"

	"github.com/binlake/binlake/internal/config"
)

// SelectedTables lists the source's base tables that cfg's rules select.
func SelectedTables(ctx context.Context, cfg *config.Config) ([]TableName, error) {
	src, err := openSource(ctx, cfg.Source.MySQL)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return src.listTables(ctx, cfg.Selected)
}

// PrimaryKey returns the primary-key columns of a table (none when it has
// no primary key).
func PrimaryKey(ctx context.Context, c config.MySQL, schema, table string) ([]string, error) {
	src, err := openSource(ctx, c)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	info, err := readTableInfo(ctx, src.db, TableName{Schema: schema, Table: table})
	if err != nil {
		return nil, err
	}
	return info.pk, nil
}
