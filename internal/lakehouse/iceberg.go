package lakehouse

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/hadoop"
	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // s3:// warehouses
	"github.com/apache/iceberg-go/table"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/objstore"
)

// This file keeps the current rows as Apache Iceberg tables
// (delivery.tables: iceberg), in a file catalog ("Hadoop" layout: a
// directory per table with versioned metadata files, committed by an
// atomic rename) under <target>/<prefix root>_binlake/iceberg/. The table
// state that a snapshot's manifest carries (Manifest without its files)
// is kept in the table's properties, binlake.state, and committed in the
// same metadata commit as the rows it describes: a run that stops before
// its commit leaves the table and its state as they were, one that stops
// after it leaves both new. Every commit's snapshot summary also says the
// stream-positions it is exact through (binlake.exact-through,
// binlake.partitions).

// Iceberg table properties and snapshot summary keys.
const (
	IcebergStateProperty  = "binlake.state"
	IcebergExactThrough   = "binlake.exact-through"
	IcebergPartitionsProp = "binlake.partitions"
)

// IcebergWarehouse is the directory of the Iceberg tables of a lake in the
// local directory lakeDir.
func IcebergWarehouse(lakeDir, root string) string {
	return filepath.Join(lakeDir, filepath.FromSlash(root+"_binlake/iceberg"))
}

// IcebergLocation is where a lake's Iceberg tables are: the file catalog's
// warehouse (a directory, or an s3:// URL) and the properties iceberg-go
// reaches it with.
type IcebergLocation struct {
	Warehouse string
	Props     iceberg.Properties
}

// FileIceberg is the location of the Iceberg tables of a lake in the local
// directory lakeDir.
func FileIceberg(lakeDir, root string) IcebergLocation {
	return IcebergLocation{Warehouse: IcebergWarehouse(lakeDir, root)}
}

// IcebergLocationOf is the location of the Iceberg tables of cfg's lake:
// <target>/<prefix root>_binlake/iceberg, on a file:// or an s3:// target.
//
// On S3 the file catalog publishes a version by copying an object where no
// object is (iceberg-go's "unsafe" commits: not atomic against another
// writer). binlake is the only writer of its tables and its runs never
// overlap (a task's delivery makes them, or binlake snapshot while no task
// runs; deliver workers sharing partitions do not), and a copy
// is whole or absent, so a commit is either published or not; a run killed
// between the copy and the removal of its source leaves a claim, which the
// next run removes (recoverKilledCommit).
func IcebergLocationOf(cfg *config.Config) (IcebergLocation, error) {
	root := cfg.Delivery.Root()
	if strings.HasPrefix(cfg.Target, "s3://") {
		bucket, prefix, err := objstore.S3Target(cfg.Target)
		if err != nil {
			return IcebergLocation{}, err
		}
		key := root + "_binlake/iceberg"
		if prefix != "" {
			key = strings.TrimSuffix(prefix, "/") + "/" + key
		}
		s3 := cfg.S3
		props := iceberg.Properties{"allow-unsafe-commits": "true"}
		for k, v := range map[string]string{
			icebergio.S3EndpointURL: s3.Endpoint, icebergio.S3Region: s3.Region,
			icebergio.S3AccessKeyID: s3.AccessKeyID, icebergio.S3SecretAccessKey: s3.SecretAccessKey, icebergio.S3SessionToken: s3.SessionToken,
		} {
			if v != "" {
				props[k] = v
			}
		}
		return IcebergLocation{Warehouse: "s3://" + bucket + "/" + key, Props: props}, nil
	}
	dir, err := objstore.FileTargetDir(cfg.Target)
	if err != nil {
		return IcebergLocation{}, err
	}
	return FileIceberg(dir, root), nil
}

// OpenIcebergCatalog opens the file catalog of the Iceberg tables at loc.
func OpenIcebergCatalog(loc IcebergLocation) (*hadoop.Catalog, error) {
	return hadoop.NewCatalog("binlake", loc.Warehouse, loc.Props)
}

// icebergSink writes the current rows of tables into Iceberg tables.
type icebergSink struct {
	cat        *hadoop.Catalog
	loc        IcebergLocation
	deleteMode string
}

func ident(schema, tbl string) table.Identifier { return table.Identifier{schema, tbl} }

// icebergTable brings one table's Iceberg table up to the change log.
func (s *Snapshotter) icebergTable(ctx context.Context, name string, parts map[int][]object) TableResult {
	schema, tbl, _ := strings.Cut(name, ".")
	res := TableResult{Schema: schema, Table: tbl}
	fail := func(err error) TableResult { res.Err = err; return res }
	if err := s.ice.recoverKilledCommit(ctx, schema, tbl, s.log); err != nil {
		return fail(err)
	}
	t, m, err := s.ice.load(ctx, schema, tbl)
	if err != nil {
		return fail(err)
	}
	if m == nil {
		m = &Manifest{FormatVersion: ManifestFormatVersion, Task: s.cfg.Task, Schema: schema, Table: tbl, Partitions: map[int]string{}}
	}
	res.Generation, res.Rows, res.ExactThrough = m.Generation, m.Rows, m.ExactThrough
	st, covered, err := s.advance(ctx, m, parts)
	if err != nil || st == nil {
		return fail(err)
	}
	res.Records = st.records
	if st.def != nil && len(st.def.PrimaryKey) == 0 {
		res.Skipped = noKey
		return res
	}
	if st.def == nil {
		return res // control records before any table definition: nothing to write yet
	}
	next := s.nextState(m, st, covered, s.now().UTC())
	rows, written, err := s.ice.commit(ctx, t, m, st, &next)
	if err != nil {
		return fail(err)
	}
	res.Generation, res.Rows, res.Written, res.ExactThrough = next.Generation, rows, written, next.ExactThrough
	return res
}

// load returns a table and the state its properties keep; nil, nil when
// the table does not exist yet.
func (ic *icebergSink) load(ctx context.Context, schema, tbl string) (*table.Table, *Manifest, error) {
	t, err := ic.cat.LoadTable(ctx, ident(schema, tbl))
	if errors.Is(err, catalog.ErrNoSuchTable) || errors.Is(err, catalog.ErrNoSuchNamespace) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loading the Iceberg table %s.%s: %w", schema, tbl, err)
	}
	raw, ok := t.Properties()[IcebergStateProperty]
	if !ok {
		return t, nil, nil
	}
	var m Manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, nil, fmt.Errorf("the Iceberg table %s.%s: %s: %w", schema, tbl, IcebergStateProperty, err)
	}
	if m.FormatVersion != ManifestFormatVersion {
		return nil, nil, fmt.Errorf("the Iceberg table %s.%s: %s has format version %d, this binlake reads %d", schema, tbl, IcebergStateProperty, m.FormatVersion, ManifestFormatVersion)
	}
	m.Rows = liveRows(t.CurrentSnapshot())
	return t, &m, nil
}

// commit writes the rows that changed, and the schema changes, in one
// Iceberg commit with the state next. A rewrite of every row happens only
// when older rows' values change: a truncate or drop, or a schema change
// that gives older rows a value (an added column with a non-NULL default,
// a type change); renamed, dropped and NULL-added columns are Iceberg
// schema evolution alone. It returns the rows the table holds and the
// data files written.
func (ic *icebergSink) commit(ctx context.Context, t *table.Table, m *Manifest, st *tableState, next *Manifest) (int64, int, error) {
	// A commit runs to its end once begun (it is a table's worth of
	// rows): iceberg-go 0.7 panics in a goroutine of a position delete
	// whose context is cancelled, and a stop (SIGTERM's drain) cancels it.
	ctx = context.WithoutCancel(ctx)
	id := ident(st.schema, st.table)
	if t == nil {
		if err := ic.cat.CreateNamespace(ctx, table.Identifier{st.schema}, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			return 0, 0, fmt.Errorf("creating the Iceberg namespace %s: %w", st.schema, err)
		}
		var err error
		t, err = ic.cat.CreateTable(ctx, id, icebergSchema(st.def), catalog.WithProperties(iceberg.Properties{
			table.WriteDeleteModeKey: ic.deleteMode,
			"format-version":         "2",
		}))
		if err != nil {
			return 0, 0, fmt.Errorf("creating the Iceberg table %s.%s: %w", st.schema, st.table, err)
		}
	}
	rewrite := st.truncated || st.dropped || valuesChange(st)
	// The rows before the commit, for a rewrite: read with the current
	// schema, as the rows of the previous snapshot (their shape is
	// m.ShapePosition).
	tx := t.NewTransaction()
	evolved, err := evolveSchema(tx, t.Schema(), st)
	if err != nil {
		return 0, 0, fmt.Errorf("evolving the Iceberg schema of %s.%s: %w", st.schema, st.table, err)
	}
	rewrite = rewrite || !evolved
	var old []*row
	if rewrite && t.CurrentSnapshot() != nil {
		prev, err := change.ParseTableDef(m.TableDef)
		if err != nil {
			return 0, 0, fmt.Errorf("the Iceberg table's previous definition: %w", err)
		}
		if old, err = scanRows(ctx, t, prev, m.ShapePosition); err != nil {
			return 0, 0, err
		}
	}
	if !evolved {
		// A type Iceberg cannot promote to: the table is created anew
		// with the rows, all rewritten (valuesChange). A crash in between
		// leaves no table, and the next run builds it from the change log.
		if err := ic.cat.DropTable(ctx, id); err != nil {
			return 0, 0, fmt.Errorf("dropping the Iceberg table %s.%s to change a column's type: %w", st.schema, st.table, err)
		}
		if t, err = ic.cat.CreateTable(ctx, id, icebergSchema(st.def), catalog.WithProperties(t.Properties())); err != nil {
			return 0, 0, fmt.Errorf("creating the Iceberg table %s.%s anew: %w", st.schema, st.table, err)
		}
		tx = t.NewTransaction()
	}
	staged, err := tx.StagedTable()
	if err != nil {
		return 0, 0, err
	}
	state, err := json.Marshal(next)
	if err != nil {
		return 0, 0, err
	}
	parts, _ := json.Marshal(next.Partitions)
	props := iceberg.Properties{IcebergExactThrough: next.ExactThrough, IcebergPartitionsProp: string(parts)}

	var rows []*row
	written := 0
	if rewrite {
		byKey := map[string]*row{}
		for _, r := range old {
			byKey[r.key] = r
		}
		maps.Copy(byKey, st.delta)
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			r := byKey[k]
			if r.op == string(change.OpDelete) || r.pos <= st.truncatedAt || st.dropped {
				continue
			}
			st.materialize(r)
			rows = append(rows, r)
		}
		rdr, err := recordReader(staged.Schema(), st.def, rows)
		if err != nil {
			return 0, 0, err
		}
		defer rdr.Release()
		if err := tx.Overwrite(ctx, rdr, props); err != nil {
			return 0, 0, fmt.Errorf("overwriting the Iceberg table %s.%s: %w", st.schema, st.table, err)
		}
		written++
	} else {
		keys := slices.Sorted(maps.Keys(st.delta))
		if len(keys) > 0 && t.CurrentSnapshot() != nil {
			if err := tx.Delete(ctx, iceberg.IsIn(iceberg.Reference(change.ColumnKey), keys...), props); err != nil {
				return 0, 0, fmt.Errorf("deleting changed rows from the Iceberg table %s.%s: %w", st.schema, st.table, err)
			}
		}
		for _, k := range keys {
			r := st.delta[k]
			if r.op == string(change.OpDelete) {
				continue
			}
			st.materialize(r)
			rows = append(rows, r)
		}
		if len(rows) > 0 {
			rdr, err := recordReader(staged.Schema(), st.def, rows)
			if err != nil {
				return 0, 0, err
			}
			defer rdr.Release()
			if err := tx.Append(ctx, rdr, props); err != nil {
				return 0, 0, fmt.Errorf("appending to the Iceberg table %s.%s: %w", st.schema, st.table, err)
			}
			written++
		}
	}
	if err := tx.SetProperties(iceberg.Properties{IcebergStateProperty: string(state)}); err != nil {
		return 0, 0, err
	}
	committed, err := tx.Commit(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("committing the Iceberg table %s.%s: %w", st.schema, st.table, err)
	}
	count := liveRows(committed.CurrentSnapshot())
	return count, written, nil
}

// liveRows is the number of rows a snapshot holds, deletes applied, from
// its summary.
func liveRows(snap *table.Snapshot) int64 {
	if snap == nil || snap.Summary == nil {
		return 0
	}
	get := func(k string) int64 {
		n, _ := strconv.ParseInt(snap.Summary.Properties[k], 10, 64)
		return n
	}
	return get("total-records") - get("total-position-deletes") - get("total-equality-deletes")
}

// valuesChange reports whether a schema change of this run gives rows
// written before it values Iceberg schema evolution cannot: an added
// column with a value other than NULL, a type change.
func valuesChange(st *tableState) bool {
	for _, s := range st.steps[len(st.steps)-st.newSteps:] {
		for _, op := range s.Ops {
			if op.Op == opRetype || op.Op == opAdd && (op.Unknown != "" || string(op.Value) != "null") {
				return true
			}
		}
	}
	return false
}

// evolveSchema brings the table's schema to the current definition, in
// one schema update: the renames of this run's DDL (a renamed column
// keeps its Iceberg field), columns the definition no longer has
// deleted, new ones added, widened decimals promoted. It returns false
// when a column's type changed in a way Iceberg cannot promote: the
// table must then be created anew.
func evolveSchema(tx *table.Transaction, current *iceberg.Schema, st *tableState) (bool, error) {
	if st.newSteps == 0 {
		return true, nil
	}
	u := tx.UpdateSchema(false, true)
	changed := false
	// name is a current field's name after this run's renames.
	name := map[string]string{}
	for _, f := range current.Fields() {
		name[f.Name] = f.Name
	}
	for _, s := range st.steps[len(st.steps)-st.newSteps:] {
		for _, op := range s.Ops {
			if op.Op != opRename {
				continue
			}
			for orig, now := range name {
				if strings.EqualFold(now, op.Column) {
					u.RenameColumn([]string{orig}, op.To)
					name[orig] = op.To
					changed = true
				}
			}
		}
	}
	want := icebergSchema(st.def)
	present := map[string]bool{}
	for _, f := range current.Fields() {
		w, ok := want.FindFieldByNameCaseInsensitive(name[f.Name])
		switch {
		case !ok:
			u.DeleteColumn([]string{f.Name})
			changed = true
			continue
		case !f.Type.Equals(w.Type):
			fd, ok1 := f.Type.(iceberg.DecimalType)
			wd, ok2 := w.Type.(iceberg.DecimalType)
			if !ok1 || !ok2 || fd.Scale() != wd.Scale() || wd.Precision() < fd.Precision() {
				return false, nil
			}
			u.UpdateColumn([]string{f.Name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Valid: true, Val: w.Type}})
			changed = true
		}
		present[strings.ToLower(name[f.Name])] = true
	}
	for _, f := range want.Fields() {
		if !present[strings.ToLower(f.Name)] {
			u.AddColumn([]string{f.Name}, f.Type, "", false, nil)
			changed = true
		}
	}
	if !changed {
		return true, nil
	}
	return true, u.Commit()
}

// icebergType is the Iceberg type of a column: the Parquet typing of the
// change log (delivery.ParquetKind), with BIGINT UNSIGNED and BIT as
// decimal(20,0), since Iceberg has no unsigned integers.
func icebergType(c change.ColumnDef) iceberg.Type {
	kind, p, s := delivery.ParquetKind(c)
	return kindType(kind, p, s)
}

func kindType(kind string, p, s int) iceberg.Type {
	switch kind {
	case "int64":
		return iceberg.PrimitiveTypes.Int64
	case "uint64":
		return iceberg.DecimalTypeOf(20, 0)
	case "float":
		return iceberg.PrimitiveTypes.Float32
	case "double":
		return iceberg.PrimitiveTypes.Float64
	case "decimal":
		return iceberg.DecimalTypeOf(p, s)
	case "date":
		return iceberg.PrimitiveTypes.Date
	case "timestamp":
		return iceberg.PrimitiveTypes.Timestamp
	case "timestamptz":
		return iceberg.PrimitiveTypes.TimestampTz
	case "binary":
		return iceberg.PrimitiveTypes.Binary
	}
	return iceberg.PrimitiveTypes.String
}

// icebergSchema is the schema of a table definition: the metadata columns
// of the snapshot files, then the table's columns, all optional but
// _partition_key, the identifier field.
func icebergSchema(def *change.TableDef) *iceberg.Schema {
	fields := []iceberg.NestedField{
		{ID: 1, Name: change.ColumnOp, Type: iceberg.PrimitiveTypes.String},
		{ID: 2, Name: change.ColumnPosition, Type: iceberg.PrimitiveTypes.String},
		{ID: 3, Name: change.ColumnCommitTime, Type: iceberg.PrimitiveTypes.TimestampTz},
		{ID: 4, Name: change.ColumnTxID, Type: iceberg.DecimalTypeOf(20, 0)},
		{ID: 5, Name: change.ColumnKey, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 6, Name: change.ColumnZeroDates, Type: iceberg.PrimitiveTypes.String},
	}
	for i, c := range def.Columns {
		fields = append(fields, iceberg.NestedField{ID: 7 + i, Name: c.Name, Type: icebergType(c)})
	}
	return iceberg.NewSchemaWithIdentifiers(0, []int{5}, fields...)
}

// recordReader reads rows as one Arrow record of the Iceberg schema sc.
func recordReader(sc *iceberg.Schema, def *change.TableDef, rows []*row) (array.RecordReader, error) {
	rec, err := arrowRecord(sc, def, rows)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	return array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
}

// arrowRecord builds the rows, in the table definition's shape, as an
// Arrow record of the Iceberg schema sc.
func arrowRecord(sc *iceberg.Schema, def *change.TableDef, rows []*row) (arrow.RecordBatch, error) {
	asc, err := table.SchemaToArrowSchema(sc, nil, true, false)
	if err != nil {
		return nil, err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, asc)
	defer b.Release()
	cols := map[string]change.ColumnDef{}
	for _, c := range def.Columns {
		cols[strings.ToLower(c.Name)] = c
	}
	for _, r := range rows {
		zero := map[string]string{}
		for i, f := range asc.Fields() {
			fb := b.Field(i)
			var err error
			switch f.Name {
			case change.ColumnOp:
				fb.(*array.StringBuilder).Append(r.op)
			case change.ColumnPosition:
				fb.(*array.StringBuilder).Append(r.pos)
			case change.ColumnCommitTime:
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(r.commit.UnixMicro()))
			case change.ColumnTxID:
				if r.txID == nil {
					fb.AppendNull()
				} else {
					fb.(*array.Decimal128Builder).Append(decimal128.FromU64(*r.txID))
				}
			case change.ColumnKey:
				fb.(*array.StringBuilder).Append(r.key)
			case change.ColumnZeroDates:
				continue // after the table's columns
			default:
				c, ok := cols[strings.ToLower(f.Name)]
				if !ok {
					fb.AppendNull()
					continue
				}
				err = appendValue(fb, c, r.data[c.Name], zero)
			}
			if err != nil {
				return nil, fmt.Errorf("row %s: %w", r.key, err)
			}
		}
		if i := asc.FieldIndices(change.ColumnZeroDates); len(i) > 0 {
			if len(zero) == 0 {
				b.Field(i[0]).AppendNull()
			} else {
				z, _ := json.Marshal(zero)
				b.Field(i[0]).(*array.StringBuilder).Append(string(z))
			}
		}
	}
	return b.NewRecordBatch(), nil
}

// appendValue appends a JSON value (docs/format.md#values) of column c.
// A date or time a date or timestamp cannot hold exactly (a zero date) is
// NULL, its text kept in zero.
func appendValue(fb array.Builder, c change.ColumnDef, v any, zero map[string]string) error {
	if v == nil {
		fb.AppendNull()
		return nil
	}
	text := fmt.Sprint(v)
	bad := func() error { return fmt.Errorf("column %s (%s): %q does not fit", c.Name, c.Type, text) }
	switch b := fb.(type) {
	case *array.Int64Builder:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return bad()
		}
		b.Append(n)
	case *array.Float32Builder:
		f, err := strconv.ParseFloat(text, 32)
		if err != nil {
			return bad()
		}
		b.Append(float32(f))
	case *array.Float64Builder:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return bad()
		}
		b.Append(f)
	case *array.Decimal128Builder:
		scale := int(b.Type().(*arrow.Decimal128Type).Scale)
		u, ok := unscaled(text, scale)
		if !ok {
			return bad()
		}
		b.Append(decimal128.FromBigInt(u))
	case *array.Date32Builder:
		t, err := time.Parse(time.DateOnly, text)
		if err != nil || t.Format(time.DateOnly) != text {
			zero[c.Name] = text
			b.AppendNull()
			return nil
		}
		b.Append(arrow.Date32FromTime(t))
	case *array.TimestampBuilder:
		fsp, _ := typeArgs(strings.ToLower(c.Type))
		t, err := time.Parse("2006-01-02 15:04:05.999999", text)
		if err != nil || change.FormatDatetime(t, fsp) != text {
			zero[c.Name] = text
			b.AppendNull()
			return nil
		}
		b.Append(arrow.Timestamp(t.UnixMicro()))
	case *array.BinaryBuilder:
		raw, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return bad()
		}
		b.Append(raw)
	case *array.StringBuilder:
		b.Append(text)
	default:
		return fmt.Errorf("column %s: an Arrow %s column", c.Name, fb.Type())
	}
	return nil
}

// unscaled reads a decimal's text as its unscaled integer at scale.
func unscaled(text string, scale int) (*big.Int, bool) {
	neg := strings.HasPrefix(text, "-")
	ip, frac, _ := strings.Cut(strings.TrimPrefix(text, "-"), ".")
	if len(frac) > scale {
		return nil, false
	}
	u, ok := new(big.Int).SetString(ip+frac+strings.Repeat("0", scale-len(frac)), 10)
	if ok && neg {
		u.Neg(u)
	}
	return u, ok
}

// scanRows reads every row of an Iceberg table, deletes applied, back into
// the JSON values of the change log, for the columns of def; shape is the
// position whose table shape they are in.
func scanRows(ctx context.Context, t *table.Table, def *change.TableDef, shape string) ([]*row, error) {
	_, batches, err := t.Scan().ToArrowRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the Iceberg table: %w", err)
	}
	cols := map[string]change.ColumnDef{}
	for _, c := range def.Columns {
		cols[strings.ToLower(c.Name)] = c
	}
	var out []*row
	for rec, err := range batches {
		if err != nil {
			return nil, fmt.Errorf("reading the Iceberg table: %w", err)
		}
		sc := rec.Schema()
		for i := 0; i < int(rec.NumRows()); i++ {
			r := &row{shape: shape, data: map[string]any{}}
			var zero map[string]string
			if idx := sc.FieldIndices(change.ColumnZeroDates); len(idx) > 0 && rec.Column(idx[0]).IsValid(i) {
				if err := json.Unmarshal([]byte(rec.Column(idx[0]).(*array.String).Value(i)), &zero); err != nil {
					return nil, err
				}
			}
			for j, f := range sc.Fields() {
				col := rec.Column(j)
				switch f.Name {
				case change.ColumnOp:
					r.op = col.(*array.String).Value(i)
				case change.ColumnPosition:
					r.pos = col.(*array.String).Value(i)
				case change.ColumnKey:
					r.key = col.(*array.String).Value(i)
				case change.ColumnCommitTime:
					r.commit = time.UnixMicro(int64(col.(*array.Timestamp).Value(i))).UTC()
				case change.ColumnTxID:
					if col.IsValid(i) {
						id := col.(*array.Decimal128).Value(i).LowBits()
						r.txID = &id
					}
				case change.ColumnZeroDates:
				default:
					c, ok := cols[strings.ToLower(f.Name)]
					if !ok {
						continue
					}
					v, err := jsonValue(col, i, c)
					if err != nil {
						return nil, err
					}
					if text, ok := zero[c.Name]; ok && v == nil {
						v = text
					}
					r.data[c.Name] = v
				}
			}
			out = append(out, r)
		}
		rec.Release()
	}
	return out, nil
}

// jsonValue is the JSON value of row i of an Arrow column of column c:
// what the change log holds for it.
func jsonValue(col arrow.Array, i int, c change.ColumnDef) (any, error) {
	if !col.IsValid(i) {
		return nil, nil
	}
	switch a := col.(type) {
	case *array.Int64:
		return json.Number(strconv.FormatInt(a.Value(i), 10)), nil
	case *array.Float32:
		return json.Number(strconv.FormatFloat(float64(a.Value(i)), 'g', -1, 32)), nil
	case *array.Float64:
		return json.Number(strconv.FormatFloat(a.Value(i), 'g', -1, 64)), nil
	case *array.Decimal128:
		scale := int(a.DataType().(*arrow.Decimal128Type).Scale)
		text := change.FormatDecimal(a.Value(i).BigInt(), scale)
		if kind, _, _ := delivery.ParquetKind(c); kind == "uint64" {
			return json.Number(text), nil
		}
		return text, nil
	case *array.Date32:
		return a.Value(i).ToTime().Format(time.DateOnly), nil
	case *array.Timestamp:
		fsp, _ := typeArgs(strings.ToLower(c.Type))
		return change.FormatDatetime(time.UnixMicro(int64(a.Value(i))).UTC(), fsp), nil
	case *array.Binary:
		return base64.StdEncoding.EncodeToString(a.Value(i)), nil
	case *array.String:
		return a.Value(i), nil
	case *array.LargeString:
		return a.Value(i), nil
	}
	return nil, fmt.Errorf("column %s: an Arrow %s column", c.Name, col.DataType())
}

// ReadIcebergTable reads the current rows of schema.table's Iceberg table
// in the lake in lakeDir, deletes applied, as the change log's JSON values
// by partition-key-value, with the state it is exact through. For tests
// and tools; query engines read the table directly.
func ReadIcebergTable(ctx context.Context, loc IcebergLocation, schema, tbl string) (map[string]map[string]any, *Manifest, error) {
	var out map[string]map[string]any
	var state *Manifest
	err := withIcebergTable(ctx, loc, schema, tbl, func(t *table.Table, m *Manifest) error {
		state = m
		if t == nil || m == nil {
			return nil
		}
		def, err := change.ParseTableDef(m.TableDef)
		if err != nil {
			return err
		}
		rows, err := scanRows(ctx, t, def, m.ShapePosition)
		if err != nil {
			return err
		}
		out = map[string]map[string]any{}
		for _, r := range rows {
			if _, dup := out[r.key]; dup {
				return fmt.Errorf("table %s.%s: two current rows of key %s", schema, tbl, r.key)
			}
			out[r.key] = r.data
		}
		return nil
	})
	if err != nil {
		return nil, state, err
	}
	return out, state, nil
}

// icebergHeld is the state's positions of schema.table's Iceberg table in
// the lake in lakeDir (see Held).
func icebergHeld(ctx context.Context, loc IcebergLocation, schema, tbl string) (map[int]string, error) {
	var held map[int]string
	err := withIcebergTable(ctx, loc, schema, tbl, func(_ *table.Table, m *Manifest) error {
		if m != nil {
			held = m.Partitions
		}
		return nil
	})
	return held, err
}

// withIcebergTable opens the file catalog of the lake in lakeDir and calls
// fn with schema.table's Iceberg table and the state its properties keep
// (nil, nil when it does not exist), closing the catalog after fn.
func withIcebergTable(ctx context.Context, loc IcebergLocation, schema, tbl string, fn func(*table.Table, *Manifest) error) error {
	cat, err := OpenIcebergCatalog(loc)
	if err != nil {
		return err
	}
	defer cat.Close()
	t, m, err := (&icebergSink{cat: cat}).load(ctx, schema, tbl)
	if err != nil {
		return err
	}
	return fn(t, m)
}

// IcebergSnapshot is one snapshot of a table's Iceberg history: the
// stream-positions its summary says it holds the change log through, and
// the rows it holds (deletes applied) by key.
type IcebergSnapshot struct {
	ID           int64
	Operation    string
	ExactThrough string         // binlake.exact-through
	Partitions   map[int]string // binlake.partitions
	// Positions maps each key (partition-key-value) to the stream-position
	// of its row; Duplicates are the keys of which it holds several rows.
	Positions  map[string]string
	Duplicates []string
}

// IcebergHistory reads every snapshot of schema.table's Iceberg table in
// the lake in lakeDir, from the first to the current one (parent by
// parent), each scanned with iceberg-go as of that snapshot. nil when the
// table does not exist. For tests and tools that check a table holds each
// commit's range of the change log exactly once.
func IcebergHistory(ctx context.Context, loc IcebergLocation, schema, tbl string) ([]IcebergSnapshot, error) {
	var out []IcebergSnapshot
	err := withIcebergTable(ctx, loc, schema, tbl, func(t *table.Table, _ *Manifest) error {
		if t == nil {
			return nil
		}
		var err error
		out, err = icebergHistory(ctx, t, schema, tbl)
		return err
	})
	return out, err
}

func icebergHistory(ctx context.Context, t *table.Table, schema, tbl string) ([]IcebergSnapshot, error) {
	var chain []table.Snapshot
	for s := t.CurrentSnapshot(); s != nil; {
		chain = append(chain, *s)
		if s.ParentSnapshotID == nil {
			break
		}
		if s = t.Metadata().SnapshotByID(*s.ParentSnapshotID); s == nil {
			return nil, fmt.Errorf("table %s.%s: snapshot %d names a parent the metadata does not have", schema, tbl, chain[len(chain)-1].SnapshotID)
		}
	}
	slices.Reverse(chain)
	out := make([]IcebergSnapshot, 0, len(chain))
	for _, s := range chain {
		is := IcebergSnapshot{ID: s.SnapshotID, Positions: map[string]string{}}
		if s.Summary != nil {
			is.Operation = string(s.Summary.Operation)
			is.ExactThrough = s.Summary.Properties[IcebergExactThrough]
			if raw := s.Summary.Properties[IcebergPartitionsProp]; raw != "" {
				if err := json.Unmarshal([]byte(raw), &is.Partitions); err != nil {
					return nil, fmt.Errorf("table %s.%s: snapshot %d: %s: %w", schema, tbl, s.SnapshotID, IcebergPartitionsProp, err)
				}
			}
		}
		_, batches, err := t.Scan(table.WithSnapshotID(s.SnapshotID), table.WithSelectedFields(change.ColumnKey, change.ColumnPosition)).ToArrowRecords(ctx)
		if err != nil {
			return nil, fmt.Errorf("table %s.%s: reading snapshot %d: %w", schema, tbl, s.SnapshotID, err)
		}
		for rec, err := range batches {
			if err != nil {
				return nil, fmt.Errorf("table %s.%s: reading snapshot %d: %w", schema, tbl, s.SnapshotID, err)
			}
			keys := rec.Column(rec.Schema().FieldIndices(change.ColumnKey)[0]).(*array.String)
			poss := rec.Column(rec.Schema().FieldIndices(change.ColumnPosition)[0]).(*array.String)
			for i := range int(rec.NumRows()) {
				k := keys.Value(i)
				if _, dup := is.Positions[k]; dup {
					is.Duplicates = append(is.Duplicates, k)
				}
				is.Positions[k] = poss.Value(i)
			}
			rec.Release()
		}
		out = append(out, is)
	}
	return out, nil
}
