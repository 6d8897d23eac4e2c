package transform

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/transform/expr"
)

// rule is a compiled transformation rule.
type rule struct {
	config.TransformRule
	where                 string // "transforms.rules[2]" or "table_mappings rule-id 5"
	target                string
	schema, table, column config.NamePattern
	prg                   *expr.Program // add-column
	key                   []byte        // hash
	mask                  rune          // mask, data-masking-digits-mask
}

func compileRule(r config.TransformRule, where string) (*rule, error) {
	c := &rule{TransformRule: r, where: where, target: r.Target}
	if c.target == "" {
		c.target = config.TargetColumn
	}
	var err error
	if c.schema, err = config.CompileNamePattern(r.Schema); err != nil {
		return nil, fmt.Errorf("%s.schema: %w", where, err)
	}
	if c.table, err = config.CompileNamePattern(r.Table); err != nil {
		return nil, fmt.Errorf("%s.table: %w", where, err)
	}
	if c.column, err = config.CompileNamePattern(r.Column); err != nil {
		return nil, fmt.Errorf("%s.column: %w", where, err)
	}
	switch r.Action {
	case config.ActionAddColumn:
		if c.prg, err = expr.Compile(r.Expression, expr.Scalar); err != nil {
			return nil, fmt.Errorf("%s.expression: %w", where, err)
		}
	case config.ActionHash:
		k := lookupEnv(r.KeyEnv)
		if k == "" {
			return nil, fmt.Errorf("%s.key_env: environment variable %s is not set or empty", where, r.KeyEnv)
		}
		c.key = []byte(k)
	case config.ActionMask:
		c.mask = '*'
		if r.Value != "" {
			c.mask, _ = utf8.DecodeRuneInString(r.Value)
		}
	case config.ActionDigitsMask:
		c.mask = rune(r.Value[0])
	}
	return c, nil
}

// matchesTable reports whether the rule concerns a table.
func (r *rule) matchesTable(schema, table string) bool {
	return r.schema.Match(schema) && r.table.Match(table)
}

// rename applies a renaming action to a name.
func (r *rule) rename(name string) string {
	switch r.Action {
	case config.ActionRename:
		return r.Value
	case config.ActionConvertLowercase:
		return strings.ToLower(name)
	case config.ActionConvertUppercase:
		return strings.ToUpper(name)
	case config.ActionAddPrefix:
		return r.Value + name
	case config.ActionRemovePrefix:
		return strings.TrimPrefix(name, r.Value)
	case config.ActionReplacePrefix:
		if rest, ok := strings.CutPrefix(name, r.OldValue); ok {
			return r.Value + rest
		}
	case config.ActionAddSuffix:
		return name + r.Value
	case config.ActionRemoveSuffix:
		return strings.TrimSuffix(name, r.Value)
	case config.ActionReplaceSuffix:
		if rest, ok := strings.CutSuffix(name, r.OldValue); ok {
			return rest + r.Value
		}
	}
	return name
}

// isValueRule reports whether the rule changes column values.
func (r *rule) isValueRule() bool {
	switch r.Action {
	case config.ActionMask, config.ActionHash, config.ActionDigitsMask:
		return true
	}
	return false
}

// value applies a value rule to one raw JSON value. null stays null;
// other values are taken as their text (a string's content, a number's
// digits) and come back as a string.
func (r *rule) value(raw []byte) []byte {
	if string(raw) == "null" {
		return raw
	}
	text := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			text = s
		}
	}
	switch r.Action {
	case config.ActionMask:
		rs := []rune(text)
		for i := 0; i < len(rs)-r.KeepLast; i++ {
			rs[i] = r.mask
		}
		text = string(rs)
	case config.ActionHash:
		h := hmac.New(sha256.New, r.key)
		h.Write([]byte(text))
		text = hex.EncodeToString(h.Sum(nil))
	case config.ActionDigitsMask:
		text = strings.Map(func(c rune) rune {
			if c >= '0' && c <= '9' {
				return r.mask
			}
			return c
		}, text)
	}
	return appendString(nil, text)
}

// filter is a compiled row filter: a CEL expression, or the column filter
// of a DMS selection rule.
type filter struct {
	where         string
	schema, table config.NamePattern
	prg           *expr.Program
	source        *config.SourceFilter
}

// keep evaluates a DMS column filter: the column must meet one of the
// conditions. Numbers (and strings holding decimal numbers, such as
// DECIMAL columns) compare as numbers when the condition's value is a
// number too; everything else compares as text, which orders dates and
// times as they are written ("2024-06-01 01:58:02").
func (f *filter) keepSource(data *object) bool {
	raw, ok := data.get(f.source.Column)
	if !ok {
		return false
	}
	isNull := string(raw) == "null"
	text := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			text = s
		}
	}
	for _, c := range f.source.Conditions {
		var ok bool
		switch c.Operator {
		case "null":
			ok = isNull
		case "notnull":
			ok = !isNull
		case "eq":
			ok = !isNull && compare(text, c.Value) == 0
		case "noteq":
			ok = !isNull && compare(text, c.Value) != 0
		case "ste":
			ok = !isNull && compare(text, c.Value) <= 0
		case "gte":
			ok = !isNull && compare(text, c.Value) >= 0
		case "between":
			ok = !isNull && compare(text, c.Start) >= 0 && compare(text, c.End) <= 0
		case "notbetween":
			ok = !isNull && (compare(text, c.Start) < 0 || compare(text, c.End) > 0)
		}
		if ok {
			return true
		}
	}
	return false
}

func compare(a, b string) int {
	x, okA := new(big.Rat).SetString(a)
	y, okB := new(big.Rat).SetString(b)
	if okA && okB && isDecimal(a) && isDecimal(b) {
		return x.Cmp(y)
	}
	return strings.Compare(a, b)
}

// isDecimal reports whether s is a plain decimal number (big.Rat also
// reads fractions such as "1/2", which are text here).
func isDecimal(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/ ") && strings.Trim(s, "+-0123456789.eE") == ""
}
