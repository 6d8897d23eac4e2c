// Package expr owns the CEL expressions of transforms (cel.dev/cel-go): the
// variables a record offers to an expression, how the record's JSON values
// become CEL values, and how a computed value becomes JSON again. The config
// package compiles every expression with it at load time, and the transform
// package evaluates them per record.
package expr

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
)

// The variables every expression may use.
const (
	VarOperation = "operation" // string: load, insert, update, delete (or a control operation)
	VarSchema    = "schema"    // string: the source schema
	VarTable     = "table"     // string: the source table
	VarData      = "data"      // map: the record's data, by source column name
	VarBefore    = "before"    // map, or null: the before-image
	VarMetadata  = "metadata"  // map: the record's metadata
)

// Kind is what an expression must give.
type Kind int

const (
	// Bool is a filter: the expression must give true or false.
	Bool Kind = iota
	// Scalar is a column value: null, a bool, a number, a string, bytes
	// (written as base64) or a timestamp (written as RFC 3339 text).
	Scalar
)

var env = mustEnv()

func mustEnv() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable(VarOperation, cel.StringType),
		cel.Variable(VarSchema, cel.StringType),
		cel.Variable(VarTable, cel.StringType),
		cel.Variable(VarData, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(VarBefore, cel.DynType),
		cel.Variable(VarMetadata, cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
		ext.Strings(),
		ext.Encoders(),
		ext.Math(),
	)
	if err != nil {
		panic(fmt.Sprintf("expr: building the CEL environment: %v", err))
	}
	return e
}

// Program is a compiled expression.
type Program struct {
	src  string
	kind Kind
	prg  cel.Program
	out  types.Kind
}

// Compile parses and type-checks src. The error explains what is wrong
// and where, on one line.
func Compile(src string, kind Kind) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("expression is empty")
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, errors.New(oneLine(iss.Err().Error()))
	}
	out := ast.OutputType()
	switch kind {
	case Bool:
		if k := out.Kind(); k != types.BoolKind && k != types.DynKind && k != types.AnyKind {
			return nil, fmt.Errorf("expression gives %s, not a bool (true keeps the record)", out)
		}
	case Scalar:
		switch out.Kind() {
		case types.ListKind, types.MapKind, types.StructKind, types.TypeKind, types.OpaqueKind:
			return nil, fmt.Errorf("expression gives %s; a column value must be null, a bool, a number, a string, bytes or a timestamp", out)
		}
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, errors.New(oneLine(err.Error()))
	}
	return &Program{src: src, kind: kind, prg: prg, out: out.Kind()}, nil
}

// Output names the type the expression gives, when the checker knows it:
// "int", "uint", "double", "string", "bool", "bytes", "timestamp",
// "duration", "null", or "dyn" (decided per record).
func (p *Program) Output() string {
	switch p.out {
	case types.IntKind:
		return "int"
	case types.UintKind:
		return "uint"
	case types.DoubleKind:
		return "double"
	case types.StringKind:
		return "string"
	case types.BoolKind:
		return "bool"
	case types.BytesKind:
		return "bytes"
	case types.TimestampKind:
		return "timestamp"
	case types.DurationKind:
		return "duration"
	case types.NullTypeKind:
		return "null"
	}
	return "dyn"
}

// String is the expression's source text.
func (p *Program) String() string { return p.src }

// oneLine folds CEL's multi-line messages (the error, the source line, a
// caret) into one line.
func oneLine(s string) string {
	s = strings.TrimPrefix(s, "ERROR: <input>:")
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.Trim(l, "|.^ ") == "" || strings.HasPrefix(l, "|") {
			continue
		}
		parts = append(parts, strings.TrimPrefix(l, "ERROR: <input>:"))
	}
	return "at " + strings.Join(parts, "; ")
}

// Vars are the variables of one record.
type Vars struct {
	Operation, Schema, Table string
	Data                     map[string]any
	Before                   map[string]any // nil when the record has none
	Metadata                 map[string]any
}

func (v *Vars) activation() map[string]any {
	a := map[string]any{
		VarOperation: v.Operation,
		VarSchema:    v.Schema,
		VarTable:     v.Table,
		VarData:      v.Data,
		VarMetadata:  v.Metadata,
		VarBefore:    types.NullValue,
	}
	if a[VarData] == nil {
		a[VarData] = map[string]any{}
	}
	if a[VarMetadata] == nil {
		a[VarMetadata] = map[string]any{}
	}
	if v.Before != nil {
		a[VarBefore] = v.Before
	}
	return a
}

// Bool evaluates a filter.
func (p *Program) Bool(v *Vars) (bool, error) {
	out, _, err := p.prg.Eval(v.activation())
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("expression gave %s %v, not a bool", out.Type().TypeName(), out.Value())
	}
	return b, nil
}

// JSON evaluates a value expression and returns the value's JSON text.
func (p *Program) JSON(v *Vars) ([]byte, error) {
	out, _, err := p.prg.Eval(v.activation())
	if err != nil {
		return nil, err
	}
	return valueJSON(out)
}

func valueJSON(v ref.Val) ([]byte, error) {
	switch x := v.Value().(type) {
	case nil:
		return []byte("null"), nil
	case bool:
		return strconv.AppendBool(nil, x), nil
	case int64:
		return strconv.AppendInt(nil, x, 10), nil
	case uint64:
		return strconv.AppendUint(nil, x, 10), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("expression gave %v, which JSON cannot hold", x)
		}
		return strconv.AppendFloat(nil, x, 'g', -1, 64), nil
	case string:
		return json.Marshal(x)
	case []byte:
		return json.Marshal(base64.StdEncoding.EncodeToString(x))
	case time.Time:
		return json.Marshal(x.UTC().Format(time.RFC3339Nano))
	case time.Duration:
		return json.Marshal(x.String())
	}
	if v == types.NullValue || v.Type() == types.NullType {
		return []byte("null"), nil
	}
	return nil, fmt.Errorf("expression gave a %s; a column value must be null, a bool, a number, a string, bytes or a timestamp", v.Type().TypeName())
}

// FromJSON turns one JSON value into what expressions see: null, bool,
// int64 (or uint64 above the int64 range, float64 beyond that), float64 for
// numbers with a fraction or exponent, string, and lists and maps of those.
// DECIMAL columns are strings in the record and stay strings.
func FromJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return convert(v), nil
}

func convert(v any) any {
	switch x := v.(type) {
	case nil:
		return types.NullValue
	case json.Number:
		return Number(string(x))
	case map[string]any:
		for k, e := range x {
			x[k] = convert(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = convert(e)
		}
		return x
	}
	return v
}

// Number converts JSON number text to int64, uint64 or float64.
func Number(s string) any {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return u
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
