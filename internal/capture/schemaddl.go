package capture

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/charset"
	"github.com/pingcap/tidb/pkg/parser/mysql"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver" // the parser's value expressions
	"github.com/pingcap/tidb/pkg/parser/types"

	"github.com/binlake/binlake/internal/change"
)

// This file applies DDL statements read from the binlog to the schema
// history (schema.go) with the TiDB SQL parser, the MySQL grammar that
// go-mysql itself depends on, after mariaDBDDL has rewritten MariaDB's own
// syntax it can. A statement the parser rejects (system versioning,
// compressed columns) or an ALTER TABLE clause
// whose effect on the columns binlake does not model makes the tables it
// names unknown from there: the history says why, and a table map that
// needs the history then puts the table in "Table error".

// ddlParser parses DDL statements; it is not safe for concurrent use.
type ddlParser struct{ p *parser.Parser }

func newDDLParser() *ddlParser { return &ddlParser{p: parser.New()} }

// applyDDL applies query, a statement of a binlog query event whose
// default database is db, read at position pos, to the history h. It
// returns the tables whose schema became unknown, with the reason.
func (dp *ddlParser) applyDDL(h *SchemaHistory, query, db, pos string) map[TableName]string {
	if pos <= h.Applied {
		return nil // applied before a restart, read again
	}
	h.Applied = pos
	norm, types := mariaDBDDL(query)
	stmts, _, err := dp.p.Parse(norm, "", "")
	if err != nil {
		// Name the table from the statement pattern, if it is table DDL.
		_, t, ok := parseDDL(query, db)
		if !ok {
			return nil
		}
		reason := fmt.Sprintf("the SQL parser cannot read the DDL at %s (%v): %s", pos, firstLine(err.Error()), abbreviateSQL(query))
		h.set(t.String(), TableVersion{From: pos, Error: reason})
		return map[TableName]string{t: reason}
	}
	failed := map[TableName]string{}
	for _, stmt := range stmts {
		a := applier{h: h, db: db, pos: pos, query: query, failed: failed, types: types}
		a.apply(stmt)
	}
	return failed
}

type applier struct {
	h      *SchemaHistory
	db     string
	pos    string
	query  string
	failed map[TableName]string
	// types names the columns the statement gives one of MariaDB's own
	// types, which it was rewritten to parse (mariaDBDDL).
	types map[string]string
}

func (a *applier) name(t *ast.TableName) TableName {
	schema := t.Schema.O
	if schema == "" {
		schema = a.db
	}
	return TableName{Schema: schema, Table: t.Name.O}
}

// current returns the table's newest schema, nil when the table does not
// exist or is unknown, and whether the history tracks the table at all.
func (a *applier) current(t TableName) (*TableSchema, bool) {
	v, ok := a.h.latest(t.String())
	return v.Schema, ok
}

func (a *applier) put(t TableName, s *TableSchema) {
	a.h.set(t.String(), TableVersion{From: a.pos, Schema: s})
}

func (a *applier) fail(t TableName, why string) {
	reason := fmt.Sprintf("the schema history cannot apply the DDL at %s: %s: %s", a.pos, why, abbreviateSQL(a.query))
	a.h.set(t.String(), TableVersion{From: a.pos, Error: reason})
	a.failed[t] = reason
}

func (a *applier) apply(stmt ast.StmtNode) {
	switch s := stmt.(type) {
	case *ast.CreateTableStmt:
		if s.TemporaryKeyword != ast.TemporaryNone {
			return
		}
		key := a.name(s.Table)
		if cur, _ := a.current(key); cur != nil && s.IfNotExists {
			return
		}
		switch {
		case s.ReferTable != nil:
			ref, _ := a.current(a.name(s.ReferTable))
			if ref == nil {
				a.fail(key, "CREATE TABLE ... LIKE a table whose schema is not known")
				return
			}
			a.put(key, ref.clone())
		case s.Select != nil && len(s.Cols) == 0:
			a.fail(key, "CREATE TABLE ... SELECT takes its columns from a query")
		default:
			ts := &TableSchema{Charset: a.tableCharset(s.Options, "")}
			if ts.Charset == "" {
				ts.Charset = a.dbCharset(s.Table)
			}
			for _, cd := range s.Cols {
				c, pk := a.column(cd, ts.Charset)
				ts.Columns = append(ts.Columns, c)
				if pk {
					ts.PrimaryKey = []string{c.Name}
				}
			}
			for _, con := range s.Constraints {
				if con.Tp == ast.ConstraintPrimaryKey {
					ts.PrimaryKey = keyColumns(con)
				}
			}
			markNotNull(ts)
			a.put(key, ts)
		}
	case *ast.DropTableStmt:
		if s.IsView || s.TemporaryKeyword != ast.TemporaryNone {
			return
		}
		for _, t := range s.Tables {
			if _, ok := a.current(a.name(t)); ok {
				a.put(a.name(t), nil)
			}
		}
	case *ast.RenameTableStmt:
		for _, tt := range s.TableToTables {
			a.rename(a.name(tt.OldTable), a.name(tt.NewTable))
		}
	case *ast.AlterTableStmt:
		a.alter(s)
	case *ast.CreateDatabaseStmt:
		if cs := databaseCharset(s.Options); cs != "" {
			a.h.Databases[s.Name.O] = cs
		}
	case *ast.AlterDatabaseStmt:
		if cs := databaseCharset(s.Options); cs != "" {
			name := s.Name.O
			if name == "" {
				name = a.db
			}
			a.h.Databases[name] = cs
		}
	case *ast.DropDatabaseStmt:
		delete(a.h.Databases, s.Name.O)
		for key, vs := range a.h.Tables {
			if strings.HasPrefix(key, s.Name.O+".") && len(vs) > 0 {
				a.h.set(key, TableVersion{From: a.pos})
			}
		}
	}
}

// rename moves a table's schema (or its unknown state) to a new name.
func (a *applier) rename(from, to TableName) {
	v, ok := a.h.latest(from.String())
	if !ok {
		return // a table capture never knew: its new name stays unknown too
	}
	if v.Schema != nil {
		a.put(to, v.Schema.clone())
	} else if v.Error != "" {
		a.h.set(to.String(), TableVersion{From: a.pos, Error: v.Error})
		a.failed[to] = v.Error
	}
	a.put(from, nil)
}

func (a *applier) alter(s *ast.AlterTableStmt) {
	key := a.name(s.Table)
	v, ok := a.h.latest(key.String())
	if !ok || (v.Schema == nil && v.Error == "") {
		return // not a table capture knows
	}
	if v.Schema == nil {
		return // unknown already
	}
	ts := v.Schema.clone()
	newName := key
	for _, sp := range s.Specs {
		if err := a.alterSpec(ts, sp, &newName); err != "" {
			a.fail(key, err)
			return
		}
	}
	markNotNull(ts)
	if newName != key {
		a.put(key, nil)
		a.put(newName, ts)
		return
	}
	a.put(key, ts)
}

// alterSpec applies one clause of an ALTER TABLE to ts; it returns why it
// cannot, or "".
func (a *applier) alterSpec(ts *TableSchema, sp *ast.AlterTableSpec, newName *TableName) string {
	switch sp.Tp {
	case ast.AlterTableOption:
		for _, o := range sp.Options {
			if o.Tp != ast.TableOptionCharset && o.Tp != ast.TableOptionCollate {
				continue
			}
			cs := optionCharset(o)
			if cs == "" {
				continue
			}
			ts.Charset = cs
			if o.UintValue == ast.TableOptionCharsetWithConvertTo {
				for i := range ts.Columns {
					if c := &ts.Columns[i]; c.Charset != "" && c.Charset != "binary" {
						c.Charset = cs
					}
				}
			}
		}
	case ast.AlterTableAddColumns:
		if len(sp.NewColumns) != 1 && sp.Position != nil && sp.Position.Tp != ast.ColumnPositionNone {
			return "ADD COLUMN of several columns with a position"
		}
		for _, cd := range sp.NewColumns {
			if ts.column(cd.Name.Name.O) >= 0 {
				if sp.IfNotExists {
					continue
				}
				return "ADD COLUMN " + cd.Name.Name.O + ": the column exists"
			}
			c, pk := a.column(cd, ts.Charset)
			if err := insertColumn(ts, c, sp.Position); err != "" {
				return err
			}
			if pk {
				ts.PrimaryKey = []string{c.Name}
			}
		}
	case ast.AlterTableDropColumn:
		name := sp.OldColumnName.Name.O
		i := ts.column(name)
		if i < 0 {
			if sp.IfExists {
				return ""
			}
			return "DROP COLUMN " + name + ": no such column"
		}
		ts.Columns = slices.Delete(ts.Columns, i, i+1)
		ts.PrimaryKey = slices.DeleteFunc(ts.PrimaryKey, func(k string) bool { return strings.EqualFold(k, name) })
	case ast.AlterTableModifyColumn, ast.AlterTableChangeColumn:
		old := sp.NewColumns[0].Name.Name.O
		if sp.Tp == ast.AlterTableChangeColumn {
			old = sp.OldColumnName.Name.O
		}
		i := ts.column(old)
		if i < 0 {
			if sp.IfExists {
				return ""
			}
			return "MODIFY/CHANGE COLUMN " + old + ": no such column"
		}
		c, pk := a.column(sp.NewColumns[0], ts.Charset)
		ts.Columns = slices.Delete(ts.Columns, i, i+1)
		pos := sp.Position
		if pos == nil || pos.Tp == ast.ColumnPositionNone {
			// In place.
			ts.Columns = slices.Insert(ts.Columns, i, c)
		} else if err := insertColumn(ts, c, pos); err != "" {
			return err
		}
		renameKey(ts, old, c.Name)
		if pk {
			ts.PrimaryKey = []string{c.Name}
		}
	case ast.AlterTableRenameColumn:
		old, nw := sp.OldColumnName.Name.O, sp.NewColumnName.Name.O
		i := ts.column(old)
		if i < 0 {
			return "RENAME COLUMN " + old + ": no such column"
		}
		ts.Columns[i].Name = nw
		renameKey(ts, old, nw)
	case ast.AlterTableRenameTable:
		*newName = a.name(sp.NewTable)
	case ast.AlterTableAddConstraint:
		if sp.Constraint != nil && sp.Constraint.Tp == ast.ConstraintPrimaryKey {
			ts.PrimaryKey = keyColumns(sp.Constraint)
		}
	case ast.AlterTableDropPrimaryKey:
		ts.PrimaryKey = nil
	case ast.AlterTableDropIndex, ast.AlterTableDropForeignKey, ast.AlterTableRenameIndex, ast.AlterTableAlterColumn,
		ast.AlterTableLock, ast.AlterTableAlgorithm, ast.AlterTableForce, ast.AlterTableEnableKeys, ast.AlterTableDisableKeys,
		ast.AlterTableAlterCheck, ast.AlterTableDropCheck, ast.AlterTableIndexInvisible, ast.AlterTableOrderByColumns,
		ast.AlterTableWithValidation, ast.AlterTableWithoutValidation,
		ast.AlterTableAddPartitions, ast.AlterTableCoalescePartitions, ast.AlterTableDropPartition, ast.AlterTableTruncatePartition,
		ast.AlterTablePartition, ast.AlterTableRemovePartitioning, ast.AlterTableRebuildPartition, ast.AlterTableReorganizePartition,
		ast.AlterTableCheckPartitions, ast.AlterTableExchangePartition, ast.AlterTableOptimizePartition, ast.AlterTableRepairPartition:
		// Indexes, constraints, defaults, partitions, options: the
		// columns and their order stay.
	default:
		return fmt.Sprintf("an ALTER TABLE clause (type %d) whose effect on the columns binlake does not model", sp.Tp)
	}
	return ""
}

// insertColumn inserts c at pos (nil or none: last).
func insertColumn(ts *TableSchema, c SchemaColumn, pos *ast.ColumnPosition) string {
	switch {
	case pos == nil || pos.Tp == ast.ColumnPositionNone:
		ts.Columns = append(ts.Columns, c)
	case pos.Tp == ast.ColumnPositionFirst:
		ts.Columns = slices.Insert(ts.Columns, 0, c)
	default:
		j := ts.column(pos.RelativeColumn.Name.O)
		if j < 0 {
			return "AFTER " + pos.RelativeColumn.Name.O + ": no such column"
		}
		ts.Columns = slices.Insert(ts.Columns, j+1, c)
	}
	return ""
}

func renameKey(ts *TableSchema, old, nw string) {
	for i, k := range ts.PrimaryKey {
		if strings.EqualFold(k, old) {
			ts.PrimaryKey[i] = nw
		}
	}
}

// markNotNull marks the primary-key columns NOT NULL, as the server does.
func markNotNull(ts *TableSchema) {
	for _, i := range ts.pkIndexes() {
		ts.Columns[i].Nullable = false
	}
}

func keyColumns(c *ast.Constraint) []string {
	var out []string
	for _, k := range c.Keys {
		if k.Column != nil {
			out = append(out, k.Column.Name.O)
		}
	}
	return out
}

// column converts a column definition; tableCharset is the character set
// of character columns that name none. It reports whether the column is
// declared PRIMARY KEY.
func (a *applier) column(cd *ast.ColumnDef, tableCharset string) (SchemaColumn, bool) {
	ft := cd.Tp
	tp := ft.GetType()
	cs := ft.GetCharset()
	if cs == "" && ft.GetCollate() != "" {
		if coll, err := charset.GetCollationByName(ft.GetCollate()); err == nil {
			cs = coll.CharsetName
		}
	}
	nullable, pk := true, false
	for _, o := range cd.Options {
		switch o.Tp {
		case ast.ColumnOptionNotNull:
			nullable = false
		case ast.ColumnOptionNull:
			nullable = true
		case ast.ColumnOptionPrimaryKey:
			pk, nullable = true, false
		case ast.ColumnOptionCollate:
			if coll, err := charset.GetCollationByName(o.StrValue); err == nil && cs == "" {
				cs = coll.CharsetName
			}
		}
	}
	c := SchemaColumn{Name: cd.Name.Name.O, Nullable: nullable}
	c.DataType = types.TypeToStr(tp, cs)
	c.Type = ft.InfoSchemaStr()
	if tp == mysql.TypeYear {
		c.Type = "year(4)"
	}
	switch {
	case cs == charset.CharsetBin && tp != mysql.TypeJSON:
		c.Charset = "binary"
	case isStringType(tp):
		if cs == "" {
			cs = tableCharset
		}
		c.Charset = cs
	}
	if tp == mysql.TypeEnum || tp == mysql.TypeSet {
		c.Labels = slices.Clone(ft.GetElems())
	}
	if t, ok := a.types[strings.ToLower(c.Name)]; ok {
		// As information_schema shows it: DATA_TYPE and COLUMN_TYPE inet6.
		c.DataType, c.Type, c.Charset = t, t, ""
	}
	return c, pk
}

// tableCharset returns the character set table options name, or def.
func (a *applier) tableCharset(opts []*ast.TableOption, def string) string {
	for _, o := range opts {
		if o.Tp == ast.TableOptionCharset || o.Tp == ast.TableOptionCollate {
			if cs := optionCharset(o); cs != "" {
				return cs
			}
		}
	}
	return def
}

// dbCharset is the default character set of a new table's database.
func (a *applier) dbCharset(t *ast.TableName) string {
	db := t.Schema.O
	if db == "" {
		db = a.db
	}
	if cs := a.h.Databases[db]; cs != "" {
		return cs
	}
	return a.h.ServerCharset
}

func optionCharset(o *ast.TableOption) string {
	if o.Tp == ast.TableOptionCollate {
		if coll, err := charset.GetCollationByName(o.StrValue); err == nil {
			return coll.CharsetName
		}
		return ""
	}
	return strings.ToLower(o.StrValue)
}

func databaseCharset(opts []*ast.DatabaseOption) string {
	for _, o := range opts {
		switch o.Tp {
		case ast.DatabaseOptionCharset:
			return strings.ToLower(o.Value)
		case ast.DatabaseOptionCollate:
			if coll, err := charset.GetCollationByName(o.Value); err == nil {
				return coll.CharsetName
			}
		}
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// abbreviateSQL shortens a statement for a status message.
func abbreviateSQL(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if r := []rune(q); len(r) > 160 {
		return string(r[:160]) + "…"
	}
	return q
}

// isStringType reports the column types that have a character set.
func isStringType(tp byte) bool {
	switch tp {
	case mysql.TypeString, mysql.TypeVarchar, mysql.TypeVarString, mysql.TypeTinyBlob, mysql.TypeBlob,
		mysql.TypeMediumBlob, mysql.TypeLongBlob, mysql.TypeEnum, mysql.TypeSet:
		return true
	}
	return false
}

// AlterTableDef applies stmt, a DDL statement on schema.table read at
// stream-position pos (the statement of a change-columns control record),
// to the table definition def as the schema history applies DDL, and
// returns the definition after it: def itself for a statement that leaves
// the columns as they are. An error says why the statement cannot be
// applied (unreadable, a clause binlake does not model, a dropped or
// renamed table). Readers of the lake use it to know a table's columns
// after a DDL that no row has been written with yet.
func AlterTableDef(def change.TableDef, schema, table, stmt, pos string) (change.TableDef, error) {
	t := TableName{Schema: schema, Table: table}
	ts := &TableSchema{PrimaryKey: slices.Clone(def.PrimaryKey)}
	for _, c := range def.Columns {
		ts.Columns = append(ts.Columns, SchemaColumn{Name: c.Name, DataType: c.DataType, Type: c.Type, Nullable: c.Nullable})
	}
	h := &SchemaHistory{Databases: map[string]string{}, Tables: map[string][]TableVersion{t.String(): {{Schema: ts}}}}
	if reason, failed := newDDLParser().applyDDL(h, stmt, schema, pos)[t]; failed {
		return def, errors.New(reason)
	}
	v, _ := h.latest(t.String())
	if v.Schema == nil {
		return def, fmt.Errorf("the DDL at %s drops or renames %s: %s", pos, t, abbreviateSQL(stmt))
	}
	return v.Schema.def(), nil
}
