package lakehouse

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/format"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	"github.com/pingcap/tidb/pkg/parser/test_driver"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/change"
)

// This file turns a DDL statement of a change-columns control record into
// what it does to rows written before it. The change log does not rewrite
// those rows (docs/format.md#known-limits): a row untouched since an ALTER
// TABLE keeps its old columns in its last record. The server, though,
// renamed, dropped and added the columns of every row, filling added ones
// with their default. The snapshot does the same, so that its rows equal the
// source's; where the value the server gave cannot be known from the
// statement (a default that is a function, AUTO_INCREMENT, a type change
// that changes values), the column is NULL in those rows and the manifest
// says so (Manifest.Inexact).

// colOp is one change a DDL makes to the values of rows written before it.
type colOp struct {
	Op     string `json:"op"` // opAdd, opDrop, opRename, opRetype
	Column string `json:"column"`
	To     string `json:"to,omitempty"` // opRename: the new name
	// Value is the JSON value an added column has in rows written before
	// (opAdd).
	Value json.RawMessage `json:"value,omitempty"`
	// Unknown says why the value of rows written before is not known
	// (opAdd, opRetype): they get NULL.
	Unknown string `json:"unknown,omitempty"`
}

const (
	opAdd    = "add"
	opDrop   = "drop"
	opRename = "rename"
	opRetype = "retype"
)

// evolve applies a DDL statement read at pos to the definition before it:
// it returns the definition after it and what it does to older rows. An
// error means the statement could not be modelled; the definition stays
// and the next table definition on the change log reshapes the rows.
func evolve(before *change.TableDef, schema, table, stmt, pos string) (*change.TableDef, []colOp, error) {
	after, err := capture.AlterTableDef(*before, schema, table, stmt, pos)
	if err != nil {
		return before, nil, err
	}
	stmts, _, err := parser.New().Parse(stmt, "", "")
	if err != nil {
		return before, nil, err // AlterTableDef parsed it; not reached
	}
	var ops []colOp
	for _, s := range stmts {
		alter, ok := s.(*ast.AlterTableStmt)
		if !ok {
			continue
		}
		for _, sp := range alter.Specs {
			ops = append(ops, specOps(sp, before, &after)...)
		}
	}
	return &after, ops, nil
}

// specOps is what one ALTER TABLE clause does to older rows.
func specOps(sp *ast.AlterTableSpec, before, after *change.TableDef) []colOp {
	switch sp.Tp {
	case ast.AlterTableAddColumns:
		var ops []colOp
		for _, cd := range sp.NewColumns {
			col, ok := column(after, cd.Name.Name.O)
			if !ok {
				continue // ADD COLUMN IF NOT EXISTS of a column that exists
			}
			if _, existed := column(before, cd.Name.Name.O); existed {
				continue
			}
			value, unknown := addedValue(cd, col)
			ops = append(ops, colOp{Op: opAdd, Column: col.Name, Value: value, Unknown: unknown})
		}
		return ops
	case ast.AlterTableDropColumn:
		return []colOp{{Op: opDrop, Column: sp.OldColumnName.Name.O}}
	case ast.AlterTableRenameColumn:
		return []colOp{{Op: opRename, Column: sp.OldColumnName.Name.O, To: sp.NewColumnName.Name.O}}
	case ast.AlterTableChangeColumn, ast.AlterTableModifyColumn:
		old := sp.NewColumns[0].Name.Name.O
		if sp.Tp == ast.AlterTableChangeColumn {
			old = sp.OldColumnName.Name.O
		}
		nw := sp.NewColumns[0].Name.Name.O
		var ops []colOp
		if old != nw {
			ops = append(ops, colOp{Op: opRename, Column: old, To: nw})
		}
		oc, ok1 := column(before, old)
		nc, ok2 := column(after, nw)
		if ok1 && ok2 && !sameValues(oc, nc) {
			ops = append(ops, colOp{Op: opRetype, Column: nw,
				Unknown: fmt.Sprintf("its type changed from %s to %s, which changes values binlake cannot recompute", oc.Type, nc.Type)})
		}
		return ops
	}
	return nil
}

// column finds a column by name; MySQL column names are not case
// sensitive.
func column(def *change.TableDef, name string) (change.ColumnDef, bool) {
	for _, c := range def.Columns {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return change.ColumnDef{}, false
}

// intBits is the width of the integer types.
var intBits = map[string]int{"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64}

// textChars is about how many characters a text column holds (utf8mb4).
var textChars = map[string]int{"tinytext": 63, "text": 16383, "mediumtext": 4194303, "longtext": 1 << 30}

var typeLength = regexp.MustCompile(`\((\d+)(?:,(\d+))?\)`)

// typeArgs returns the numbers in a column type's parentheses.
func typeArgs(columnType string) (int, int) {
	m := typeLength.FindStringSubmatch(columnType)
	if m == nil {
		return 0, 0
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return a, b
}

// sameValues reports whether a column's type change leaves every value's
// JSON form as it was: the same type, a wider integer, a longer text, a
// decimal with more integer digits and the same scale, a longer varbinary.
func sameValues(old, nw change.ColumnDef) bool {
	ot, nt := strings.ToLower(old.Type), strings.ToLower(nw.Type)
	if ot == nt {
		return true
	}
	od, nd := strings.ToLower(old.DataType), strings.ToLower(nw.DataType)
	if ob, ok := intBits[od]; ok {
		nb, ok := intBits[nd]
		ou, nu := strings.Contains(ot, "unsigned"), strings.Contains(nt, "unsigned")
		switch {
		case !ok:
			return false
		case ou && nu, !ou && !nu:
			return nb >= ob
		case ou:
			return nb > ob // unsigned into a wider signed integer
		}
		return false // signed into unsigned
	}
	chars := func(dataType, columnType string) (int, bool) {
		switch dataType {
		case "char", "varchar":
			n, _ := typeArgs(columnType)
			return n, true
		}
		n, ok := textChars[dataType]
		return n, ok
	}
	if oc, ok := chars(od, ot); ok {
		// CHAR values are read without their trailing spaces, so only
		// CHAR is not a safe target.
		nc, ok := chars(nd, nt)
		return ok && nd != "char" && nc >= oc
	}
	switch {
	case od == "decimal" && nd == "decimal":
		op, os := typeArgs(ot)
		np, ns := typeArgs(nt)
		return os == ns && np-ns >= op-os
	case od == "varbinary" && nd == "varbinary":
		on, _ := typeArgs(ot)
		nn, _ := typeArgs(nt)
		return nn >= on
	}
	return false
}

// addedValue is the value an added column has in the rows that existed:
// its default, or the type's implicit default for NOT NULL, or NULL. When
// that cannot be known, unknown says why.
func addedValue(cd *ast.ColumnDef, col change.ColumnDef) (json.RawMessage, string) {
	nullable := true
	var def ast.ExprNode
	for _, o := range cd.Options {
		switch o.Tp {
		case ast.ColumnOptionNotNull, ast.ColumnOptionPrimaryKey:
			nullable = false
		case ast.ColumnOptionNull:
			nullable = true
		case ast.ColumnOptionDefaultValue:
			def = o.Expr
		case ast.ColumnOptionAutoIncrement:
			return nil, "AUTO_INCREMENT numbered the existing rows"
		case ast.ColumnOptionGenerated:
			return nil, "it is a generated column, computed by the server"
		}
	}
	if def == nil {
		if nullable {
			return json.RawMessage("null"), ""
		}
		return implicitDefault(col)
	}
	l, ok := literal(def)
	if !ok {
		var b strings.Builder
		_ = def.Restore(format.NewRestoreCtx(format.DefaultRestoreFlags, &b))
		return nil, fmt.Sprintf("its default %s is not a constant", b.String())
	}
	if l.null {
		return json.RawMessage("null"), ""
	}
	v, err := formatDefault(col, l)
	if err != nil {
		return nil, fmt.Sprintf("its default: %v", err)
	}
	return v, ""
}

// lit is a constant of a DDL statement.
type lit struct {
	null   bool
	text   string // the number's digits, or the string
	number bool
	bytes  bool // a hex or bit literal: text holds the bytes
}

// literal reads a constant expression: a value or a negated number.
func literal(e ast.ExprNode) (lit, bool) {
	switch x := e.(type) {
	case *test_driver.ValueExpr:
		switch x.Kind() {
		case test_driver.KindNull:
			return lit{null: true}, true
		case test_driver.KindInt64:
			return lit{text: strconv.FormatInt(x.GetInt64(), 10), number: true}, true
		case test_driver.KindUint64:
			return lit{text: strconv.FormatUint(x.GetUint64(), 10), number: true}, true
		case test_driver.KindFloat64:
			return lit{text: strconv.FormatFloat(x.GetFloat64(), 'g', -1, 64), number: true}, true
		case test_driver.KindMysqlDecimal:
			return lit{text: x.GetMysqlDecimal().String(), number: true}, true
		case test_driver.KindString, test_driver.KindBytes:
			return lit{text: x.GetString()}, true
		case test_driver.KindBinaryLiteral:
			return lit{text: string(x.GetBinaryLiteral()), bytes: true}, true
		}
	case *ast.UnaryOperationExpr:
		if x.Op != opcode.Minus {
			return lit{}, false
		}
		l, ok := literal(x.V)
		if !ok || !l.number || strings.HasPrefix(l.text, "-") {
			return lit{}, false
		}
		l.text = "-" + l.text
		return l, true
	}
	return lit{}, false
}

var (
	timeText  = regexp.MustCompile(`^(-?)(\d{1,3}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$`)
	zeroStamp = regexp.MustCompile(`^0000-00-00 00:00:00(?:\.0{1,6})?$`)
)

// formatDefault gives a constant the JSON form a value of col has in the
// lake (docs/format.md#values), or says why it cannot.
func formatDefault(col change.ColumnDef, l lit) (json.RawMessage, error) {
	dt := strings.ToLower(col.DataType)
	typ := strings.ToLower(col.Type)
	str := func(s string) (json.RawMessage, error) { return change.AppendString(nil, s), nil }
	switch dt {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		n, ok := new(big.Int).SetString(strings.TrimSpace(l.text), 10)
		if !ok || l.bytes {
			return nil, fmt.Errorf("%q is not an integer", l.text)
		}
		return json.RawMessage(n.String()), nil
	case "year":
		n, err := strconv.Atoi(l.text)
		if err != nil || (n != 0 && (n < 1901 || n > 2155)) || len(l.text) != 4 && n != 0 {
			return nil, fmt.Errorf("%q is not a four-digit year", l.text)
		}
		return json.RawMessage(strconv.Itoa(n)), nil
	case "bit":
		if l.bytes {
			return json.RawMessage(new(big.Int).SetBytes([]byte(l.text)).String()), nil
		}
		n, ok := new(big.Int).SetString(l.text, 10)
		if !ok || n.Sign() < 0 {
			return nil, fmt.Errorf("%q is not a BIT value", l.text)
		}
		return json.RawMessage(n.String()), nil
	case "decimal", "numeric":
		_, scale := typeArgs(typ)
		text := strings.TrimSpace(l.text)
		neg := strings.HasPrefix(text, "-")
		intPart, frac, _ := strings.Cut(strings.TrimPrefix(text, "-"), ".")
		if len(frac) > scale || l.bytes {
			return nil, fmt.Errorf("%q has more than %d decimals", l.text, scale)
		}
		u, ok := new(big.Int).SetString(intPart+frac+strings.Repeat("0", scale-len(frac)), 10)
		if !ok {
			return nil, fmt.Errorf("%q is not a decimal", l.text)
		}
		if neg {
			u.Neg(u)
		}
		return change.AppendString(nil, change.FormatDecimal(u, scale)), nil
	case "float", "double", "real":
		bits := 64
		if dt == "float" {
			bits = 32
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(l.text), bits)
		if err != nil || l.bytes {
			return nil, fmt.Errorf("%q is not a number", l.text)
		}
		if bits == 32 {
			return change.AppendValue(nil, float32(f)), nil
		}
		return change.AppendValue(nil, f), nil
	case "char":
		return str(strings.TrimRight(l.text, " "))
	case "varchar", "tinytext", "text", "mediumtext", "longtext":
		if l.bytes {
			return nil, fmt.Errorf("a binary literal in a text column")
		}
		return str(l.text)
	case "enum":
		for _, label := range change.TypeLabels(col.Type) {
			if strings.EqualFold(label, l.text) && !l.number {
				return str(label)
			}
		}
		return nil, fmt.Errorf("%q is not one of the labels", l.text)
	case "set":
		labels := change.TypeLabels(col.Type)
		chosen := map[string]bool{}
		if l.text != "" {
			for part := range strings.SplitSeq(l.text, ",") {
				found := false
				for _, label := range labels {
					if strings.EqualFold(label, part) {
						chosen[label], found = true, true
					}
				}
				if !found || l.number {
					return nil, fmt.Errorf("%q is not a set of the labels", l.text)
				}
			}
		}
		var out []string
		for _, label := range labels {
			if chosen[label] {
				out = append(out, label)
			}
		}
		return str(strings.Join(out, ","))
	case "date":
		if l.text == "0000-00-00" {
			return str(l.text)
		}
		t, err := time.Parse(time.DateOnly, l.text)
		if err != nil || t.Format(time.DateOnly) != l.text {
			return nil, fmt.Errorf("%q is not written YYYY-MM-DD", l.text)
		}
		return str(l.text)
	case "datetime", "timestamp":
		fsp, _ := typeArgs(typ)
		if zeroStamp.MatchString(l.text) {
			return str(zeroDatetime(fsp))
		}
		if dt == "timestamp" {
			return nil, fmt.Errorf("a TIMESTAMP default is read in the time zone of the session that ran the DDL, which the binlog does not carry")
		}
		t, err := time.Parse("2006-01-02 15:04:05.999999", l.text)
		if err != nil || fraction(l.text) > fsp || change.FormatDatetime(t, fraction(l.text)) != l.text {
			return nil, fmt.Errorf("%q is not written YYYY-MM-DD HH:MM:SS with at most %d fraction digits", l.text, fsp)
		}
		return str(change.FormatDatetime(t, fsp))
	case "time":
		fsp, _ := typeArgs(typ)
		m := timeText.FindStringSubmatch(l.text)
		if m == nil || len(m[5]) > fsp {
			return nil, fmt.Errorf("%q is not written [-]HH:MM:SS with at most %d fraction digits", l.text, fsp)
		}
		hours, _ := strconv.Atoi(m[2])
		out := fmt.Sprintf("%s%02d:%s:%s", m[1], hours, m[3], m[4])
		if fsp > 0 {
			out += "." + m[5] + strings.Repeat("0", fsp-len(m[5]))
		}
		return str(out)
	case "binary":
		n, _ := typeArgs(typ)
		b := []byte(l.text)
		if len(b) > n {
			return nil, fmt.Errorf("%q is longer than BINARY(%d)", l.text, n)
		}
		return str(base64.StdEncoding.EncodeToString(append(b, make([]byte, n-len(b))...)))
	case "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return str(base64.StdEncoding.EncodeToString([]byte(l.text)))
	}
	return nil, fmt.Errorf("binlake does not compute defaults of %s columns", col.Type)
}

// fraction is the number of fraction digits of a time's text.
func fraction(text string) int {
	if _, f, ok := strings.Cut(text, "."); ok {
		return len(f)
	}
	return 0
}

// zeroDatetime is the zero DATETIME with fsp fraction digits.
func zeroDatetime(fsp int) string {
	if fsp == 0 {
		return "0000-00-00 00:00:00"
	}
	return "0000-00-00 00:00:00." + strings.Repeat("0", fsp)
}

// implicitDefault is the value a NOT NULL column without a DEFAULT gets
// in the rows that existed when it was added: the type's zero.
func implicitDefault(col change.ColumnDef) (json.RawMessage, string) {
	dt := strings.ToLower(col.DataType)
	fsp, scale := typeArgs(strings.ToLower(col.Type))
	str := func(s string) (json.RawMessage, string) { return change.AppendString(nil, s), "" }
	switch dt {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "bit", "float", "double", "real":
		return json.RawMessage("0"), ""
	case "decimal", "numeric":
		return str(change.FormatDecimal(new(big.Int), scale))
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "set",
		"varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return str("")
	case "enum":
		if labels := change.TypeLabels(col.Type); len(labels) > 0 {
			return str(labels[0])
		}
	case "date":
		return str("0000-00-00")
	case "datetime":
		return str(zeroDatetime(fsp))
	case "time":
		if fsp == 0 {
			return str("00:00:00")
		}
		return str("00:00:00." + strings.Repeat("0", fsp))
	case "binary":
		return str(base64.StdEncoding.EncodeToString(make([]byte, fsp)))
	}
	return nil, fmt.Sprintf("the implicit default of a NOT NULL %s column depends on server settings", col.Type)
}
