// Package ddl writes the CREATE TABLE statements that let a query engine
// read the lake as tables (`binlake ddl`): Amazon Athena (Hive DDL, the
// Glue catalog) or Trino (its Hive connector). Each table of the lake gets
// one for its change log, in the format delivery writes (JSON lines,
// Parquet or CSV), and, with snapshot tables, one for its current rows,
// read through the snapshot's symlink manifest so that a query sees one
// whole snapshot.
package ddl

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/keytemplate"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
)

// Engines.
const (
	Athena = "athena"
	Trino  = "trino"
)

// Table is a table of the lake: its newest table definition and, with
// snapshot tables, its snapshot's manifest.
type Table struct {
	Schema, Table string
	Def           *change.TableDef // nil: none in the lake yet
	Snapshot      *lakehouse.Manifest
}

// Discover finds the tables of the task's change log in the lake (those of
// only, "schema.table", when given) and their newest table definitions:
// the snapshot manifest's, else the newest a change-log object carries,
// read from the newest object back.
func Discover(ctx context.Context, cfg *config.Config, b objstore.Bucket, only []string) ([]Table, error) {
	listed, err := lake.ListTask(ctx, b, cfg.Delivery.Root(), cfg.Task, cfg.Delivery.ErrorRoots())
	if err != nil {
		return nil, err
	}
	byTable := map[string][]lake.Listed{}
	for _, l := range listed {
		if !l.Covered && (len(only) == 0 || slices.Contains(only, l.Table)) {
			byTable[l.Table] = append(byTable[l.Table], l)
		}
	}
	var out []Table
	for _, name := range slices.Sorted(maps.Keys(byTable)) {
		schema, table, _ := strings.Cut(name, ".")
		t := Table{Schema: schema, Table: table}
		if t.Snapshot, err = lakehouse.ReadManifest(ctx, b, cfg.Delivery.Root(), schema, table); err != nil {
			return nil, err
		}
		if t.Snapshot != nil && len(t.Snapshot.TableDef) > 0 {
			if t.Def, err = change.ParseTableDef(t.Snapshot.TableDef); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		} else if t.Def, err = newestDef(ctx, b, byTable[name]); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// newestDef reads a table's objects from the newest back until one
// carries a table definition.
func newestDef(ctx context.Context, b objstore.Bucket, objs []lake.Listed) (*change.TableDef, error) {
	slices.SortFunc(objs, func(x, y lake.Listed) int { return cmp.Compare(y.Last, x.Last) })
	for _, o := range objs {
		if strings.HasPrefix(o.Ext, ".csv") {
			continue // CSV objects carry no definition
		}
		body, err := b.Get(ctx, o.Key)
		if err != nil {
			return nil, err
		}
		if o.Ext == ".parquet" {
			raw, err := lake.ParquetTableDef(o.Key, body)
			if err != nil {
				return nil, err
			}
			return change.ParseTableDef(raw)
		}
		recs, err := lake.Decode(o.Key, body)
		if err != nil {
			return nil, err
		}
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].TableDef != nil {
				return change.ParseTableDef(recs[i].TableDef)
			}
		}
	}
	return nil, nil
}

// Options say how to write the statements.
type Options struct {
	Engine string // Athena or Trino
	// Catalog is Trino's catalog of the Hive connector ("hive").
	Catalog string
	// URL is the target as a URL ("s3://bucket/path"): locations are
	// URL + "/" + key.
	URL string
}

// Write writes the statements for tables: a CREATE DATABASE (Athena) or
// CREATE SCHEMA (Trino) per schema, then per table one for its change log
// and one for its snapshot, if it has one.
func Write(w io.Writer, cfg *config.Config, o Options, tables []Table) error {
	if o.Engine != Athena && o.Engine != Trino {
		return fmt.Errorf("engine %q: write athena or trino", o.Engine)
	}
	if o.Catalog == "" {
		o.Catalog = "hive"
	}
	base := strings.TrimSuffix(o.URL, "/") + "/"
	e := engine{Options: o}
	var b strings.Builder
	schemas := map[string]bool{}
	for _, t := range tables {
		if !schemas[t.Schema] {
			schemas[t.Schema] = true
			if o.Engine == Athena {
				fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS %s;\n\n", e.quote(ident(t.Schema)))
			} else {
				fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s.%s;\n\n", e.quote(o.Catalog), e.quote(ident(t.Schema)))
			}
		}
		if t.Def == nil {
			fmt.Fprintf(&b, "-- %s.%s: no table definition in the lake yet (its first rows carry one)\n\n", t.Schema, t.Table)
			continue
		}
		loc, own := changeLogLocation(cfg, t.Schema, t.Table)
		fmt.Fprintf(&b, "-- %s.%s: the change log, every record (delivery.format: %s)\n", t.Schema, t.Table, cfg.Delivery.Format)
		if !own {
			fmt.Fprintf(&b, "-- delivery.prefix does not put each table in a directory of its own: this location holds other tables' objects too\n")
		}
		e.changeLog(&b, cfg, t, base+loc)
		if t.Snapshot != nil {
			fmt.Fprintf(&b, "-- %s.%s: the current rows (snapshot table)\n", t.Schema, t.Table)
			e.snapshot(&b, cfg, t, base+lakehouse.Dir(cfg.Delivery.Root(), t.Schema, t.Table))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// changeLogLocation is the directory of a table's change-log objects: the
// part of the rendered key template that neither time nor partition
// changes. own is false when that directory is not the table's alone.
func changeLogLocation(cfg *config.Config, schema, table string) (loc string, own bool) {
	t, err := keytemplate.Parse(cfg.Delivery.Prefix, cfg.Delivery.KeyLayout())
	if err != nil {
		return "", false
	}
	dir := func(table string) string {
		a := t.Render(keytemplate.Values{Schema: schema, Table: table, Task: cfg.Task, Partition: 0, Time: time.Date(2001, 2, 3, 4, 5, 0, 0, time.UTC)})
		b := t.Render(keytemplate.Values{Schema: schema, Table: table, Task: cfg.Task, Partition: 9999, Time: time.Date(2099, 11, 28, 22, 59, 0, 0, time.UTC)})
		n := 0
		for n < len(a) && n < len(b) && a[n] == b[n] {
			n++
		}
		return a[:strings.LastIndexByte(a[:n], '/')+1]
	}
	loc = dir(table)
	return loc, loc != dir(table+"_other")
}

// ident makes a name an Athena/Glue database or table name: lower case,
// letters, digits and underscores.
func ident(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

type engine struct{ Options }

func (e engine) athena() bool { return e.Engine == Athena }

// quote quotes an identifier: `x` for Athena (Hive), "x" for Trino.
func (e engine) quote(s string) string {
	if e.athena() {
		return "`" + strings.ReplaceAll(s, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// name is the qualified name of a table.
func (e engine) name(schema, table string) string {
	if e.athena() {
		return e.quote(ident(schema)) + "." + e.quote(ident(table))
	}
	return e.quote(e.Catalog) + "." + e.quote(ident(schema)) + "." + e.quote(ident(table))
}

// sqlType is a column's type in each engine's words, for its kind of
// value: a JSON value, or a ParquetKind.
func (e engine) sqlType(kind string, precision, scale int) string {
	hive := map[string]string{"int64": "bigint", "uint64": "decimal(20,0)", "float": "float", "double": "double",
		"date": "date", "timestamp": "timestamp", "timestamptz": "timestamp", "binary": "binary", "string": "string", "int": "int"}
	trino := map[string]string{"int64": "bigint", "uint64": "decimal(20,0)", "float": "real", "double": "double",
		"date": "date", "timestamp": "timestamp", "timestamptz": "timestamp", "binary": "varbinary", "string": "varchar", "int": "integer"}
	if kind == "decimal" {
		return fmt.Sprintf("decimal(%d,%d)", precision, scale)
	}
	if e.athena() {
		return hive[kind]
	}
	return trino[kind]
}

// column is one column of a statement.
type column struct {
	name, typ string
}

// jsonKind is the type of a column's JSON value (docs/format.md#values):
// integers as numbers (BIGINT UNSIGNED and BIT need 20 digits), FLOAT and
// DOUBLE as numbers, everything else as text.
func jsonKind(c change.ColumnDef) string {
	switch kind, _, _ := delivery.ParquetKind(c); kind {
	case "int64", "uint64", "double":
		return kind
	case "float":
		return "double"
	}
	return "string"
}

// parquetColumns are the columns of binlake's Parquet objects for def:
// the metadata columns, then the table's.
func (e engine) parquetColumns(def *change.TableDef) []column {
	cols := []column{{change.ColumnOp, e.sqlType("string", 0, 0)}, {change.ColumnPosition, e.sqlType("string", 0, 0)},
		{change.ColumnCommitTime, e.sqlType("timestamptz", 0, 0)}, {change.ColumnTxID, e.sqlType("uint64", 0, 0)},
		{change.ColumnKey, e.sqlType("string", 0, 0)}}
	var table []column
	temporal := false
	for _, c := range def.Columns {
		kind, p, s := delivery.ParquetKind(c)
		temporal = temporal || kind == "date" || kind == "timestamp" || kind == "timestamptz"
		table = append(table, column{c.Name, e.sqlType(kind, p, s)})
	}
	if temporal {
		cols = append(cols, column{change.ColumnZeroDates, e.sqlType("string", 0, 0)})
	}
	return append(cols, table...)
}

// columns writes a column list, one a line.
func (e engine) columns(b *strings.Builder, cols []column) {
	for i, c := range cols {
		sep := ","
		if i == len(cols)-1 {
			sep = ""
		}
		fmt.Fprintf(b, "  %s %s%s\n", e.quote(c.name), c.typ, sep)
	}
}

// structType is a struct (Athena) or row (Trino) type of fields.
func (e engine) structType(fields []column) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		if e.athena() {
			parts[i] = e.quote(f.name) + ":" + f.typ
		} else {
			parts[i] = e.quote(f.name) + " " + f.typ
		}
	}
	if e.athena() {
		return "struct<" + strings.Join(parts, ",") + ">"
	}
	return "row(" + strings.Join(parts, ", ") + ")"
}

// metadataFields are the fields of a record's metadata (docs/format.md).
func (e engine) metadataFields() []column {
	s, n := e.sqlType("string", 0, 0), e.sqlType("int64", 0, 0)
	return []column{{"timestamp", s}, {"record-type", s}, {"operation", s}, {"partition-key-type", s}, {"partition-key-value", s},
		{"schema-name", s}, {"table-name", s}, {"transaction-id", n}, {"prev-transaction-id", n}, {"transaction-record-id", n},
		{"prev-transaction-record-id", n}, {"commit-timestamp", s}, {"stream-position", s}, {"format-version", e.sqlType("int", 0, 0)}}
}

func (e engine) changeLog(b *strings.Builder, cfg *config.Config, t Table, loc string) {
	var cols []column
	format := cfg.Delivery.Format
	switch format {
	case config.FormatParquet:
		cols = e.parquetColumns(t.Def)
	case config.FormatCSV:
		s := e.sqlType("string", 0, 0)
		cols = []column{{"op", s}, {change.ColumnPosition, s}, {change.ColumnCommitTime, s}, {change.ColumnTxID, s}, {change.ColumnKey, s}}
		for _, c := range t.Def.Columns {
			cols = append(cols, column{c.Name, s})
		}
	default:
		var data []column
		for _, c := range t.Def.Columns {
			data = append(data, column{c.Name, e.sqlType(jsonKind(c), 0, 0)})
		}
		cols = []column{{"data", e.structType(data)}, {"control", e.structType([]column{{"statement", e.sqlType("string", 0, 0)}})},
			{"metadata", e.structType(e.metadataFields())}}
	}
	external := "EXTERNAL "
	if !e.athena() {
		external = ""
	}
	fmt.Fprintf(b, "CREATE %sTABLE IF NOT EXISTS %s (\n", external, e.name(t.Schema, t.Table+"_changes"))
	e.columns(b, cols)
	if !e.athena() {
		with := []string{"external_location = '" + loc + "'"}
		switch format {
		case config.FormatParquet:
			with = append(with, "format = 'PARQUET'")
		case config.FormatCSV:
			with = append(with, "format = 'CSV'", "csv_separator = ','", "csv_quote = '\"'", "csv_escape = '\"'")
			if cfg.Delivery.CSV.Header {
				with = append(with, "skip_header_line_count = 1")
			}
		default:
			with = append(with, "format = 'JSON'")
		}
		fmt.Fprintf(b, ") WITH (\n  %s\n);\n\n", strings.Join(with, ",\n  "))
		return
	}
	b.WriteString(")\n")
	switch format {
	case config.FormatParquet:
		b.WriteString("STORED AS PARQUET\n")
	case config.FormatCSV:
		b.WriteString("ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'\nWITH SERDEPROPERTIES ('separatorChar' = ',', 'quoteChar' = '\"', 'escapeChar' = '\"')\n")
	default:
		b.WriteString("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n")
	}
	fmt.Fprintf(b, "LOCATION '%s'", loc)
	if format == config.FormatCSV && cfg.Delivery.CSV.Header {
		b.WriteString("\nTBLPROPERTIES ('skip.header.line.count' = '1')")
	}
	b.WriteString(";\n\n")
}

func (e engine) snapshot(b *strings.Builder, cfg *config.Config, t Table, dir string) {
	if !e.athena() {
		fmt.Fprintf(b, "-- Trino reads a snapshot table as a Hive table whose input format is SymlinkTextInputFormat, which\n"+
			"-- Trino's CREATE TABLE cannot declare: create it in the metastore (or Glue) with `binlake ddl --engine athena`.\n"+
			"-- Its symlink manifest: %ssymlink/manifest\n\n", dir)
		return
	}
	fmt.Fprintf(b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n", e.name(t.Schema, t.Table))
	e.columns(b, e.parquetColumns(t.Def))
	fmt.Fprintf(b, ")\nROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'\n"+
		"STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'\n"+
		"OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n"+
		"LOCATION '%ssymlink/';\n\n", dir)
}
