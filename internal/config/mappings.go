package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Mappings is what a DMS table-mapping file (table_mappings) contributes:
// its selection rules (which take the place of tables), its
// transformation rules (applied before transforms.rules), the column
// filters of its selection rules, and warnings about the rules that have no
// effect in binlake.
type Mappings struct {
	Selection []TableRule
	Rules     []MappedRule
	Filters   []SourceFilter
	// Warnings name each rule binlake ignores, by rule-id, and why.
	Warnings []string

	path     string
	problems []string // reported as table_mappings errors
}

// MappedRule is a transformation rule read from table_mappings.
type MappedRule struct {
	TransformRule
	RuleID string
}

// SourceFilter is one column filter of a selection rule (DMS filters with
// filter-type source): a data record of a table the rule selects is kept
// only if the column's value meets at least one of the conditions.
type SourceFilter struct {
	RuleID        string
	Schema, Table string // single-name patterns of the selection rule
	Column        string
	Conditions    []FilterCondition
}

// FilterCondition is one DMS filter-condition.
type FilterCondition struct {
	// Operator is eq, noteq, ste (≤), gte (≥), between, notbetween, null
	// or notnull.
	Operator   string
	Value      string // eq, noteq, ste, gte
	Start, End string // between, notbetween (inclusive)
}

var filterOperators = []string{"eq", "noteq", "ste", "gte", "between", "notbetween", "null", "notnull"}

// Mappings returns what table_mappings contributes (nothing when it is not
// set). Validate reports the file's problems; here they are left out.
func (c *Config) Mappings() *Mappings { return c.mappings() }

// Warnings lists the parts of the config that binlake accepts but ignores,
// such as DMS table-mapping rules that make no sense for a lake, and the
// secrets written in the file itself. Callers log them at start.
func (c *Config) Warnings() []string {
	return append(slices.Clone(c.secretWarnings), c.mappings().Warnings...)
}

func (c *Config) mappings() *Mappings {
	if c.TableMappings == "" {
		return &Mappings{}
	}
	if c.mapped == nil || c.mapped.path != c.TableMappings {
		c.mapped = readMappings(c.TableMappings)
	}
	return c.mapped
}

// selectionRules are the rules Selected applies: those of table_mappings
// if it has any, else tables.
func (c *Config) selectionRules() []TableRule {
	if m := c.mappings(); len(m.Selection) > 0 {
		return m.Selection
	}
	return c.Tables
}

// validateMappings reports the problems of table_mappings and how its
// selection rules combine with tables.
func (c *Config) validateMappings(ps *problems) {
	if c.TableMappings == "" {
		return
	}
	m := c.mappings()
	for _, p := range m.problems {
		ps.add("table_mappings", "%s", p)
	}
	for _, r := range m.Rules {
		validateRule(r.TransformRule, func(field, format string, args ...any) {
			ps.add("table_mappings", "rule-id %s (rule-action %s): %s%s", r.RuleID, r.Action, dmsField(field), fmt.Sprintf(format, args...))
		})
	}
	if len(m.Selection) > 0 && !slices.ContainsFunc(m.Selection, func(r TableRule) bool { return r.Include != "" }) {
		ps.add("table_mappings", "has selection rules but no include rule, so no table is selected; add a selection rule with rule-action include")
	}
	if len(m.Selection) > 0 && len(c.Tables) > 0 {
		ps.add("tables", "is set, and table_mappings %s has selection rules too; select tables in one place: remove tables, or the selection rules from the file", c.TableMappings)
	}
}

// dmsField names a TransformRule key as the table-mapping file does.
func dmsField(field string) string {
	switch field {
	case "":
		return ""
	case "action":
		return "rule-action "
	case "target":
		return "rule-target "
	case "schema", "table", "column":
		return "object-locator." + field + "-name "
	case "old_value":
		return "old-value "
	}
	return field + " "
}

// readMappings reads a DMS table-mapping file. Problems that keep a rule
// from being applied as DMS would are errors; rules that make no sense
// for a lake are warnings.
func readMappings(path string) *Mappings {
	m := &Mappings{path: path}
	data, err := os.ReadFile(path)
	if err != nil {
		m.problems = append(m.problems, fmt.Sprintf("reading the DMS table-mapping file: %v", err))
		return m
	}
	var top map[string]json.RawMessage
	if err := strictJSON(data, &top); err != nil {
		m.problems = append(m.problems, fmt.Sprintf("%s: %s", path, jsonError(data, err)))
		return m
	}
	root := &jobj{m: top, used: map[string]bool{}}
	rules, ok, err := root.arr("rules")
	switch {
	case err != nil:
		m.problems = append(m.problems, fmt.Sprintf("%s: %v", path, err))
		return m
	case !ok || len(rules) == 0:
		m.problems = append(m.problems, fmt.Sprintf("%s has no rules; a DMS table mapping is {\"rules\": [...]}", path))
		return m
	}
	for _, k := range root.unknown() {
		m.Warnings = append(m.Warnings, fmt.Sprintf("table_mappings: key %q is not part of a DMS table mapping; ignored", k))
	}
	ids := map[string]int{}
	for i, raw := range rules {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(raw, &o); err != nil {
			m.problems = append(m.problems, fmt.Sprintf("rules[%d]: must be an object", i))
			continue
		}
		r := &jobj{m: o, used: map[string]bool{}}
		id, _, err := r.str("rule-id")
		name := fmt.Sprintf("rule-id %s", id)
		switch {
		case err != nil:
			m.problems = append(m.problems, fmt.Sprintf("rules[%d]: %v", i, err))
			continue
		case id == "":
			m.problems = append(m.problems, fmt.Sprintf("rules[%d]: rule-id is missing; every rule needs a unique rule-id", i))
			continue
		}
		if j, dup := ids[id]; dup {
			m.problems = append(m.problems, fmt.Sprintf("rules[%d]: rule-id %s is also the rule-id of rules[%d]; rule-ids must be unique", i, id, j))
			continue
		}
		ids[id] = i
		r.used["rule-name"] = true
		r.used["description"] = true
		typ, _, err := r.str("rule-type")
		if err != nil {
			m.problems = append(m.problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		var problem, warning string
		switch typ {
		case "selection":
			problem, warning = m.selection(id, r)
		case "transformation":
			problem, warning = m.transformation(id, r)
		case "table-settings":
			for k := range r.m {
				r.used[k] = true
			}
			warning = "table-settings rules tune how DMS loads a table (parallel-load, lob-settings, ...); binlake reads tables in primary-key chunks and writes LOBs whole, so the rule is ignored"
		case "post-processing":
			for k := range r.m {
				r.used[k] = true
			}
			warning = "post-processing rules tag DMS's S3 objects; binlake does not tag objects, so the rule is ignored"
		case "":
			problem = "rule-type is missing (selection, transformation, table-settings or post-processing)"
		default:
			problem = fmt.Sprintf("unknown rule-type %q (selection, transformation, table-settings or post-processing)", typ)
		}
		if problem != "" {
			m.problems = append(m.problems, name+": "+problem)
			continue
		}
		if warning != "" {
			m.Warnings = append(m.Warnings, "table_mappings "+name+": "+warning)
		}
		for _, k := range r.unknown() {
			m.Warnings = append(m.Warnings, fmt.Sprintf("table_mappings %s: key %q is not a table-mapping key binlake knows; ignored", name, k))
		}
	}
	return m
}

// selection converts a selection rule.
func (m *Mappings) selection(id string, r *jobj) (problem, warning string) {
	action, _, err := r.str("rule-action")
	if err != nil {
		return err.Error(), ""
	}
	loc, ok, err := r.obj("object-locator")
	switch {
	case err != nil:
		return err.Error(), ""
	case !ok:
		return "object-locator is missing (schema-name and table-name)", ""
	}
	schema, _, err1 := loc.str("schema-name")
	table, _, err2 := loc.str("table-name")
	if err := errors.Join(err1, err2); err != nil {
		return err.Error(), ""
	}
	if schema == "" || table == "" {
		return "object-locator needs schema-name and table-name (use % for any)", ""
	}
	if tt, _, _ := loc.str("table-type"); tt != "" && tt != "table" {
		warning = fmt.Sprintf("object-locator.table-type is %q; binlake captures tables only, not views", tt)
	}
	for _, k := range loc.unknown() {
		return fmt.Sprintf("object-locator.%s is not supported in selection rules (schema-name, table-name, table-type)", k), ""
	}
	if _, ok := r.m["load-order"]; ok {
		r.used["load-order"] = true
		if warning != "" {
			warning += "; "
		}
		warning += "load-order is ignored; binlake loads the selected tables one after another in name order"
	}
	switch action {
	case "include":
	case "explicit":
		schema, table = escapePattern(schema), escapePattern(table)
	case "exclude":
		if _, ok := r.m["filters"]; ok {
			return "filters belong to include rules; an exclude rule drops the whole table", ""
		}
	case "":
		return "rule-action is missing (include, exclude or explicit)", ""
	default:
		return fmt.Sprintf("rule-action %q is not a selection action (include, exclude or explicit)", action), ""
	}
	pattern := strings.ReplaceAll(schema, ".", "[.]") + "." + table
	if _, err := compilePattern(pattern); err != nil {
		return err.Error(), ""
	}
	if action == "exclude" {
		m.Selection = append(m.Selection, TableRule{Exclude: pattern})
	} else {
		m.Selection = append(m.Selection, TableRule{Include: pattern})
	}
	filters, _, err := r.arr("filters")
	if err != nil {
		return err.Error(), ""
	}
	for i, raw := range filters {
		f, err := sourceFilter(raw)
		if err != nil {
			return fmt.Sprintf("filters[%d]: %v", i, err), ""
		}
		f.RuleID, f.Schema, f.Table = id, schema, table
		m.Filters = append(m.Filters, f)
	}
	return "", warning
}

func sourceFilter(raw json.RawMessage) (SourceFilter, error) {
	var f SourceFilter
	var o map[string]json.RawMessage
	if err := json.Unmarshal(raw, &o); err != nil {
		return f, errors.New("must be an object")
	}
	r := &jobj{m: o, used: map[string]bool{}}
	typ, _, err := r.str("filter-type")
	if err != nil {
		return f, err
	}
	if typ != "source" {
		return f, fmt.Errorf("filter-type %q is not supported (source)", typ)
	}
	f.Column, _, err = r.str("column-name")
	if err != nil {
		return f, err
	}
	if f.Column == "" {
		return f, errors.New("column-name is missing")
	}
	conds, _, err := r.arr("filter-conditions")
	if err != nil {
		return f, err
	}
	if len(conds) == 0 {
		return f, errors.New("filter-conditions is missing or empty")
	}
	for i, raw := range conds {
		var co map[string]json.RawMessage
		if err := json.Unmarshal(raw, &co); err != nil {
			return f, fmt.Errorf("filter-conditions[%d]: must be an object", i)
		}
		c := &jobj{m: co, used: map[string]bool{}}
		var fc FilterCondition
		var errs [4]error
		fc.Operator, _, errs[0] = c.str("filter-operator")
		fc.Value, _, errs[1] = c.str("value")
		fc.Start, _, errs[2] = c.str("start-value")
		fc.End, _, errs[3] = c.str("end-value")
		if err := errors.Join(errs[:]...); err != nil {
			return f, fmt.Errorf("filter-conditions[%d]: %v", i, err)
		}
		_, hasValue := co["value"]
		switch fc.Operator {
		case "eq", "noteq", "ste", "gte":
			if !hasValue {
				return f, fmt.Errorf("filter-conditions[%d]: %s needs value", i, fc.Operator)
			}
		case "between", "notbetween":
			if _, ok := co["start-value"]; !ok {
				return f, fmt.Errorf("filter-conditions[%d]: %s needs start-value and end-value", i, fc.Operator)
			}
			if _, ok := co["end-value"]; !ok {
				return f, fmt.Errorf("filter-conditions[%d]: %s needs start-value and end-value", i, fc.Operator)
			}
		case "null", "notnull":
		default:
			return f, fmt.Errorf("filter-conditions[%d]: filter-operator %q is not one of %s", i, fc.Operator, strings.Join(filterOperators, ", "))
		}
		if u := c.unknown(); len(u) > 0 {
			return f, fmt.Errorf("filter-conditions[%d]: unknown key %q", i, u[0])
		}
		f.Conditions = append(f.Conditions, fc)
	}
	if u := r.unknown(); len(u) > 0 {
		return f, fmt.Errorf("unknown key %q", u[0])
	}
	return f, nil
}

// escapePattern makes a literal name into a pattern matching only it.
func escapePattern(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '%', '_', '[':
			b.WriteByte('[')
			b.WriteRune(r)
			b.WriteByte(']')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// transformation converts a transformation rule.
func (m *Mappings) transformation(id string, r *jobj) (problem, warning string) {
	var errs [5]error
	var action, target, value, oldValue, expression string
	action, _, errs[0] = r.str("rule-action")
	target, _, errs[1] = r.str("rule-target")
	value, _, errs[2] = r.str("value")
	oldValue, _, errs[3] = r.str("old-value")
	expression, _, errs[4] = r.str("expression")
	if err := errors.Join(errs[:]...); err != nil {
		return err.Error(), ""
	}
	loc, ok, err := r.obj("object-locator")
	switch {
	case err != nil:
		return err.Error(), ""
	case !ok:
		return "object-locator is missing", ""
	}
	var lerrs [3]error
	var schema, table, column string
	schema, _, lerrs[0] = loc.str("schema-name")
	table, _, lerrs[1] = loc.str("table-name")
	column, _, lerrs[2] = loc.str("column-name")
	if err := errors.Join(lerrs[:]...); err != nil {
		return err.Error(), ""
	}
	if _, ok := loc.m["data-type"]; ok {
		return "object-locator.data-type (choosing columns by type) is not supported; name the columns with column-name", ""
	}
	switch target {
	case "table-tablespace", "index-tablespace":
		for k := range r.m {
			r.used[k] = true
		}
		for k := range loc.m {
			loc.used[k] = true
		}
		return "", fmt.Sprintf("rule-target %s: a lake has no tablespaces, so the rule is ignored", target)
	}
	for _, k := range loc.unknown() {
		return fmt.Sprintf("object-locator.%s is not supported in transformation rules (schema-name, table-name, column-name)", k), ""
	}
	rule := TransformRule{Action: action, Target: target, Schema: schema, Table: table, Column: column, Value: value, OldValue: oldValue}
	switch action {
	case ActionRename, ActionRemoveColumn, ActionConvertLowercase, ActionConvertUppercase,
		ActionAddPrefix, ActionRemovePrefix, ActionReplacePrefix, ActionAddSuffix, ActionRemoveSuffix, ActionReplaceSuffix,
		ActionDigitsMask:
		if expression != "" {
			return fmt.Sprintf("expression is only for add-column, not %s", action), ""
		}
	case ActionAddColumn:
		r.used["data-type"] = true // JSON records carry no column types
		if expression == "" {
			rule.Expression = "null"
		} else if rule.Expression, err = sqliteToCEL(expression); err != nil {
			return err.Error(), ""
		}
	case "define-primary-key":
		r.used["primary-key-def"] = true
		return "", "define-primary-key is ignored: records keep the source's primary key in partition-key-value, and a lake has no indexes"
	case "change-data-type":
		return "change-data-type is not supported: binlake writes each value in the JSON form of its source type (docs/format.md); remove the rule, or compute a converted column with an add-column rule under transforms.rules", ""
	case "add-before-image-columns":
		return "add-before-image-columns is not supported; set before_image: all (or pk-only) in the config for a before-image object on update and delete records", ""
	case "data-masking-hash-mask":
		return "data-masking-hash-mask is not supported; hash the column with a transforms.rules rule {action: hash, key_env: ...} (HMAC-SHA256 with a secret key, so values cannot be found by hashing guesses)", ""
	case "data-masking-digits-randomize":
		return "data-masking-digits-randomize is not supported: random digits would differ each time a record is written again; use data-masking-digits-mask or a transforms.rules mask or hash rule", ""
	case "":
		return "rule-action is missing", ""
	default:
		return fmt.Sprintf("rule-action %q is not supported", action), ""
	}
	if target == "" {
		return "rule-target is missing (schema, table or column)", ""
	}
	if slices.Contains(columnActions, action) && target != TargetColumn {
		return fmt.Sprintf("%s needs rule-target column, not %q", action, target), ""
	}
	if target == TargetColumn && slices.Contains(columnActions, action) && action != ActionAddColumn && column == "" {
		return "object-locator.column-name is missing (use % for every column)", ""
	}
	if slices.Contains(columnActions, action) {
		rule.Target = ""
	}
	if action == ActionAddColumn {
		rule.Column = ""
	}
	m.Rules = append(m.Rules, MappedRule{TransformRule: rule, RuleID: id})
	return "", warning
}

// sqliteToCEL translates the part of DMS's SQLite expressions that has a
// meaning here: string and number literals, $column references, DMS's
// $AR_M_SOURCE_SCHEMA, $AR_M_SOURCE_TABLE_NAME, $AR_H_COMMIT_TIMESTAMP,
// $AR_H_TIMESTAMP and $AR_H_OPERATION headers, and || concatenation (null
// if any operand is null, as in SQLite).
func sqliteToCEL(src string) (string, error) {
	unsupported := func(why string) error {
		return fmt.Errorf("expression %q: %s; binlake translates only literals, $column references, DMS's $AR_M_SOURCE_SCHEMA, $AR_M_SOURCE_TABLE_NAME, $AR_H_COMMIT_TIMESTAMP, $AR_H_TIMESTAMP, $AR_H_OPERATION and || from DMS's SQLite expressions: write this rule under transforms.rules with a CEL expression instead", src, why)
	}
	var terms []string
	var nullable []string
	s := strings.TrimSpace(src)
	for {
		var term string
		switch {
		case s == "":
			return "", unsupported("an operand is missing")
		case s[0] == '\'':
			var lit strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						lit.WriteByte('\'')
						i++
						continue
					}
					break
				}
				lit.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", unsupported("a string is not closed")
			}
			term = strconv.Quote(lit.String())
			s = s[i+1:]
		case s[0] == '$':
			i := 1
			for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
				i++
			}
			name := s[1:i]
			if name == "" {
				return "", unsupported("'$' names no column")
			}
			switch name {
			case "AR_M_SOURCE_SCHEMA":
				term = "schema"
			case "AR_M_SOURCE_TABLE_NAME":
				term = "table"
			case "AR_H_COMMIT_TIMESTAMP":
				term = `metadata["commit-timestamp"]`
			case "AR_H_TIMESTAMP":
				term = `metadata["timestamp"]`
			case "AR_H_OPERATION":
				term = "operation.upperAscii()"
			default:
				if strings.HasPrefix(name, "AR_") {
					return "", unsupported("$" + name + " is not one of the headers binlake knows")
				}
				term = "data[" + strconv.Quote(name) + "]"
				nullable = append(nullable, term)
			}
			s = s[i:]
		case s[0] == '-' || s[0] >= '0' && s[0] <= '9':
			i := 1
			for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
				i++
			}
			num := s[:i]
			if _, err := strconv.ParseFloat(num, 64); err != nil {
				return "", unsupported(fmt.Sprintf("%q is not a number", num))
			}
			term = num
			s = s[i:]
		default:
			return "", unsupported(fmt.Sprintf("%q is not a literal or a $column", strings.Fields(s)[0]))
		}
		terms = append(terms, term)
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		if !strings.HasPrefix(s, "||") {
			return "", unsupported(fmt.Sprintf("%q is not ||", strings.Fields(s)[0]))
		}
		s = strings.TrimSpace(s[2:])
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	for i, t := range terms {
		terms[i] = "string(" + t + ")"
	}
	cel := strings.Join(terms, " + ")
	if len(nullable) > 0 {
		checks := make([]string, len(nullable))
		for i, n := range nullable {
			checks[i] = n + " == null"
		}
		cel = "(" + strings.Join(checks, " || ") + ") ? null : dyn(" + cel + ")"
	}
	return cel, nil
}

// jobj reads the keys of a JSON object, remembering which were read.
type jobj struct {
	m    map[string]json.RawMessage
	used map[string]bool
}

// str reads a string (or a number, as its text).
func (o *jobj) str(key string) (string, bool, error) {
	raw, ok := o.m[key]
	o.used[key] = true
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), true, nil
	}
	return "", false, fmt.Errorf("%s must be a string, got %s", key, raw)
}

func (o *jobj) obj(key string) (*jobj, bool, error) {
	raw, ok := o.m[key]
	o.used[key] = true
	if !ok {
		return nil, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, false, fmt.Errorf("%s must be an object", key)
	}
	return &jobj{m: m, used: map[string]bool{}}, true, nil
}

func (o *jobj) arr(key string) ([]json.RawMessage, bool, error) {
	raw, ok := o.m[key]
	o.used[key] = true
	if !ok {
		return nil, false, nil
	}
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, false, fmt.Errorf("%s must be a list", key)
	}
	return a, true, nil
}

// unknown lists the keys not read, sorted.
func (o *jobj) unknown() []string {
	var out []string
	for k := range o.m {
		if !o.used[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// strictJSON decodes one JSON value and nothing after it.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return nil
}

// jsonError says where a JSON syntax error is, by line and column.
func jsonError(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := min(int(se.Offset), len(data))
		line := 1 + bytes.Count(data[:off], []byte("\n"))
		col := off - bytes.LastIndexByte(data[:off], '\n')
		msg := se.Error()
		if msg == "" {
			msg = "unexpected data after the top-level value"
		}
		return fmt.Sprintf("line %d, column %d: invalid JSON: %s", line, col, msg)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "a DMS table mapping is a JSON object {\"rules\": [...]}"
	}
	return "invalid JSON: " + err.Error()
}
