// Package transform owns what happens to a record between the stream and
// the lake, the job of DMS transformation rules and of a Firehose
// processing Lambda: a Pipeline built from the config renames schemas,
// tables and columns, removes, adds, masks and hashes columns, drops the
// records a filter rejects, and hands batches to an external processor
// with Firehose's contract. Each record comes out Ok (with its new JSON and
// table), Dropped, or Failed (with the line to write to the error output);
// nothing is lost and nothing blocks the records after it.
//
// Rules and filters see the record as it is at the source: patterns match
// source names and expressions read source column names, whatever other
// rules rename them to. docs/transforms.md describes every rule.
package transform

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/transform/expr"
)

// Result is what became of a record.
type Result int

const (
	// Ok: write Output.Data.
	Ok Result = iota
	// Dropped: a filter or the processor dropped the record; write
	// nothing, but acknowledge it with the records around it.
	Dropped
	// Failed: write Output.Data, an error output line, under the error
	// prefix of Output.Kind.
	Failed
)

func (r Result) String() string {
	switch r {
	case Ok:
		return "Ok"
	case Dropped:
		return "Dropped"
	}
	return "Failed"
}

// Input is one record from the stream.
type Input struct {
	Data       []byte // the record's DMS JSON
	Table      string // "schema.table" as the stream message names it
	Position   string // its stream-position
	CommitTime time.Time
}

// Output is what the pipeline made of an Input.
type Output struct {
	Result Result
	// Table is "schema.table" after the renaming rules: the table the
	// record, or its failure, is delivered with.
	Table string
	// Data is the record to write (Ok) or the error output line (Failed),
	// without a newline.
	Data []byte
	// Kind is the error output of a Failed record:
	// config.ErrorProcessingFailed or config.ErrorFormatConversionFailed.
	Kind string
}

// Pipeline applies the transforms of a config. A nil *Pipeline leaves
// every record as it is.
type Pipeline struct {
	rules   []*rule
	filters []*filter
	proc    *processor
	log     *slog.Logger

	mu    sync.Mutex
	plans map[string]*plan // by source "schema\x00table"
}

var lookupEnv = os.Getenv

// New builds the pipeline of cfg, or returns nil when cfg has no
// transforms. cfg must be valid (config.Load validates it); New reads the
// hash keys from the environment.
func New(cfg *config.Config, log *slog.Logger) (*Pipeline, error) {
	if !cfg.TransformsEnabled() {
		return nil, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{log: log, plans: map[string]*plan{}}
	m := cfg.Mappings()
	for _, r := range m.Rules {
		c, err := compileRule(r.TransformRule, "table_mappings rule-id "+r.RuleID)
		if err != nil {
			return nil, err
		}
		p.rules = append(p.rules, c)
	}
	for i, r := range cfg.Transforms.Rules {
		c, err := compileRule(r, fmt.Sprintf("transforms.rules[%d]", i))
		if err != nil {
			return nil, err
		}
		p.rules = append(p.rules, c)
	}
	for i := range m.Filters {
		f := &m.Filters[i]
		p.filters = append(p.filters, &filter{
			where:  "table_mappings rule-id " + f.RuleID + " filters",
			schema: config.MustCompileNamePattern(f.Schema),
			table:  config.MustCompileNamePattern(f.Table),
			source: f,
		})
	}
	for i, f := range cfg.Transforms.Filters {
		where := fmt.Sprintf("transforms.filters[%d]", i)
		prg, err := expr.Compile(f.Expression, expr.Bool)
		if err != nil {
			return nil, fmt.Errorf("%s.expression: %w", where, err)
		}
		schema, err1 := config.CompileNamePattern(f.Schema)
		table, err2 := config.CompileNamePattern(f.Table)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: invalid pattern", where)
		}
		p.filters = append(p.filters, &filter{where: where, schema: schema, table: table, prg: prg})
	}
	if pc := cfg.Transforms.Processor; pc.Enabled() {
		p.proc = newProcessor(pc, cfg.Task, log)
	}
	return p, nil
}

// plan is what the rules do to one source table, worked out once.
type plan struct {
	schema, table string // new names
	filters       []*filter
	columns       []*rule // rules with target column that match the table, in order
	adds          []*rule
	cols          map[string]*colPlan // by source column name
}

type colPlan struct {
	name    string
	removed bool
	values  []*rule
}

func (p *Pipeline) plan(schema, table string) *plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := schema + "\x00" + table
	if pl := p.plans[key]; pl != nil {
		return pl
	}
	pl := &plan{schema: schema, table: table, cols: map[string]*colPlan{}}
	for _, r := range p.rules {
		if !r.matchesTable(schema, table) {
			continue
		}
		switch {
		case r.target == config.TargetSchema:
			pl.schema = r.rename(pl.schema)
		case r.target == config.TargetTable:
			pl.table = r.rename(pl.table)
		case r.Action == config.ActionAddColumn:
			pl.adds = append(pl.adds, r)
		default:
			pl.columns = append(pl.columns, r)
		}
	}
	for _, f := range p.filters {
		if f.schema.Match(schema) && f.table.Match(table) {
			pl.filters = append(pl.filters, f)
		}
	}
	p.plans[key] = pl
	return pl
}

// column works out what the rules do to one column; p.mu protects the
// cache.
func (p *Pipeline) column(pl *plan, name string) *colPlan {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := pl.cols[name]; c != nil {
		return c
	}
	c := &colPlan{name: name}
	for _, r := range pl.columns {
		if !r.column.Match(name) {
			continue
		}
		switch {
		case r.Action == config.ActionRemoveColumn:
			c.removed = true
		case r.isValueRule():
			c.values = append(c.values, r)
		default:
			c.name = r.rename(c.name)
		}
	}
	pl.cols[name] = c
	return c
}

// splitTable splits "schema.table" at the first '.'.
func splitTable(t string) (string, string) {
	s, tb, _ := strings.Cut(t, ".")
	return s, tb
}

// Route returns the table a record of the source table "schema.table" is
// delivered with.
func (p *Pipeline) Route(table string) string {
	if p == nil {
		return table
	}
	pl := p.plan(splitTable(table))
	return pl.schema + "." + pl.table
}

// Apply transforms a batch of records, keeping their order. It returns an
// error only when ctx ends; every other problem makes a Failed record.
func (p *Pipeline) Apply(ctx context.Context, in []Input) ([]Output, error) {
	out := make([]Output, len(in))
	if p == nil {
		for i, r := range in {
			out[i] = Output{Result: Ok, Table: r.Table, Data: r.Data}
		}
		return out, nil
	}
	var toProc []int
	sent := make([]*record, len(in))
	for i := range in {
		rec := p.applyRules(&in[i], &out[i])
		if out[i].Result == Ok && p.proc != nil {
			toProc = append(toProc, i)
			sent[i] = rec
		}
	}
	if len(toProc) > 0 {
		if err := p.process(ctx, in, out, toProc, sent); err != nil {
			return nil, err
		}
	}
	p.logFailures(in, out)
	return out, nil
}

// logFailures says once per batch how many records failed, with the first
// failure's error (each one is at debug level, and all are in the error
// output).
func (p *Pipeline) logFailures(in []Input, out []Output) {
	n, first := 0, -1
	for i := range out {
		if out[i].Result == Failed {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n == 0 {
		return
	}
	var e struct {
		Code string `json:"errorCode"`
		Msg  string `json:"errorMessage"`
	}
	json.Unmarshal(out[first].Data, &e)
	p.log.Warn("records failed in the transforms and go to the error output", "records", n, "of", len(out),
		"first_table", in[first].Table, "first_position", in[first].Position, "first_code", e.Code, "first_error", e.Msg)
}

// applyRules runs the filters and rules on one record.
func (p *Pipeline) applyRules(in *Input, out *Output) *record {
	srcSchema, srcTable := splitTable(in.Table)
	route := p.plan(srcSchema, srcTable)
	out.Table = route.schema + "." + route.table
	rec, err := decodeRecord(in.Data)
	if err != nil {
		*out = p.failure(in, out.Table, config.ErrorFormatConversionFailed, 1, "Record.InvalidJSON",
			"the record on the stream is not a DMS JSON record: "+err.Error(), in.Data, srcSchema, srcTable)
		return nil
	}
	schema, table := rec.meta.str("schema-name"), rec.meta.str("table-name")
	if schema == "" && table == "" {
		schema, table = srcSchema, srcTable
	}
	pl := route
	if schema != srcSchema || table != srcTable {
		pl = p.plan(schema, table)
	}
	isData := rec.meta.str("record-type") != "control"

	var vars *expr.Vars
	getVars := func() *expr.Vars {
		if vars == nil {
			vars = makeVars(rec, schema, table)
		}
		return vars
	}
	var failCode, failMsg string
	fail := func(code, msg string) {
		if failCode == "" {
			failCode, failMsg = code, msg
		}
	}

	if isData {
		for _, f := range pl.filters {
			var keep bool
			if f.source != nil {
				keep = rec.data != nil && f.keepSource(rec.data)
			} else {
				var err error
				if keep, err = f.prg.Bool(getVars()); err != nil {
					fail("Filter.EvaluationFailed", f.where+": "+err.Error())
					break
				}
			}
			if !keep {
				*out = Output{Result: Dropped, Table: out.Table}
				return nil
			}
		}
		for _, o := range []*object{rec.data, rec.before} {
			if o == nil {
				continue
			}
			for i := range o.fields {
				f := &o.fields[i]
				c := p.column(pl, f.srcName)
				f.name, f.removed = c.name, c.removed
				for _, r := range c.values {
					f.raw = r.value(f.raw)
				}
			}
		}
		if rec.data != nil {
			for _, r := range pl.adds {
				raw, err := r.prg.JSON(getVars())
				if err != nil {
					fail("Transform.AddColumnFailed", r.where+": "+err.Error())
					continue
				}
				rec.data.fields = append(rec.data.fields, field{name: r.Value, srcName: r.Value, raw: raw, added: true})
			}
		}
		for _, o := range []*object{rec.data, rec.before} {
			if name, dup := duplicate(o); dup {
				fail("Transform.DuplicateColumn", fmt.Sprintf("the rules give two columns the name %q", name))
			}
		}
	}
	if !isData && rec.control != nil && (len(pl.columns) > 0 || len(pl.adds) > 0) {
		if raw, ok := rec.control.get("table-def"); ok && string(raw) != "null" {
			def, err := p.tableDef(pl, raw)
			if err != nil {
				p.log.Warn("a control record's table definition cannot be read; it is written as captured", "table", in.Table, "position", in.Position, "err", err)
			} else {
				rec.control.set("table-def", def)
			}
		}
	}
	if failCode != "" {
		*out = p.failure(in, out.Table, config.ErrorProcessingFailed, 1, failCode, failMsg, rec.encode(true), schema, table)
		return nil
	}
	if pl.schema != schema {
		rec.meta.set("schema-name", appendString(nil, pl.schema))
	}
	if pl.table != table {
		rec.meta.set("table-name", appendString(nil, pl.table))
	}
	out.Result, out.Data = Ok, rec.encode(false)
	return rec
}

func duplicate(o *object) (string, bool) {
	if o == nil {
		return "", false
	}
	seen := make(map[string]bool, len(o.fields))
	for _, f := range o.fields {
		if f.removed {
			continue
		}
		if seen[f.name] {
			return f.name, true
		}
		seen[f.name] = true
	}
	return "", false
}

// makeVars builds what expressions see of a record: its source names and
// values.
func makeVars(rec *record, schema, table string) *expr.Vars {
	v := &expr.Vars{
		Operation: rec.meta.str("operation"),
		Schema:    schema,
		Table:     table,
		Data:      objectVars(rec.data),
		Metadata:  objectVars(rec.meta),
	}
	if rec.before != nil {
		v.Before = objectVars(rec.before)
	}
	return v
}

func objectVars(o *object) map[string]any {
	m := map[string]any{}
	if o == nil {
		return m
	}
	for _, f := range o.fields {
		v, err := expr.FromJSON(f.src)
		if err != nil {
			continue
		}
		m[f.srcName] = v
	}
	return m
}

// failure makes the Failed output of a record: the error output line
// {attemptsMade, errorCode, errorMessage, rawData, stream-position,
// schema, table}, with Firehose's field names.
func (p *Pipeline) failure(in *Input, route, kind string, attempts int, code, msg string, raw []byte, schema, table string) Output {
	p.log.Debug("a record failed and goes to the error output", "kind", kind, "code", code, "error", msg, "position", in.Position, "table", in.Table)
	return Output{Result: Failed, Table: route, Kind: kind, Data: ErrorLine(attempts, code, msg, raw, in.Position, schema, table)}
}

// ErrorLine is one line of the error output.
func ErrorLine(attempts int, code, msg string, raw []byte, position, schema, table string) []byte {
	b := []byte(`{"attemptsMade":`)
	b = strconv.AppendInt(b, int64(attempts), 10)
	b = append(b, `,"errorCode":`...)
	b = appendString(b, code)
	b = append(b, `,"errorMessage":`...)
	b = appendString(b, msg)
	b = append(b, `,"rawData":"`...)
	b = base64.StdEncoding.AppendEncode(b, raw)
	b = append(b, `","stream-position":`...)
	b = appendString(b, position)
	b = append(b, `,"schema":`...)
	b = appendString(b, schema)
	b = append(b, `,"table":`...)
	b = appendString(b, table)
	return append(b, '}')
}

// tableDef applies the column rules to the table definition a control
// record carries (control.table-def: columns, column-order, primary-key),
// so that Parquet and CSV objects get the columns the records have:
// renamed, removed, masked or hashed columns (now text) and added ones
// (typed from their expression when it has one type, else json).
func (p *Pipeline) tableDef(pl *plan, raw []byte) ([]byte, error) {
	def, err := decodeObjectBytes(raw)
	if err != nil {
		return nil, err
	}
	for i := range def.fields {
		f := &def.fields[i]
		switch f.name {
		case "columns":
			cols, err := decodeObjectBytes(f.raw)
			if err != nil {
				return nil, fmt.Errorf("columns: %w", err)
			}
			for j := range cols.fields {
				c := &cols.fields[j]
				cp := p.column(pl, c.srcName)
				c.name, c.removed = cp.name, cp.removed
				if len(cp.values) > 0 {
					var col struct {
						Nullable bool `json:"nullable"`
					}
					json.Unmarshal(c.raw, &col)
					c.raw = columnDef("text", "text", col.Nullable)
				}
			}
			for _, r := range pl.adds {
				t, dt := "json", "json"
				switch r.prg.Output() {
				case "int":
					t, dt = "bigint", "bigint"
				case "uint":
					t, dt = "bigint unsigned", "bigint"
				case "double":
					t, dt = "double", "double"
				case "string":
					t, dt = "text", "text"
				}
				cols.fields = append(cols.fields, field{name: r.Value, raw: columnDef(t, dt, true)})
			}
			f.raw = encodeObject(nil, cols)
		case "column-order", "primary-key":
			var names []string
			if err := json.Unmarshal(f.raw, &names); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			out := []byte{'['}
			n := 0
			add := func(name string) {
				if n > 0 {
					out = append(out, ',')
				}
				n++
				out = appendString(out, name)
			}
			for _, name := range names {
				if cp := p.column(pl, name); !cp.removed {
					add(cp.name)
				}
			}
			if f.name == "column-order" {
				for _, r := range pl.adds {
					add(r.Value)
				}
			}
			f.raw = append(out, ']')
		}
	}
	return encodeObject(nil, def), nil
}

func columnDef(typ, dataType string, nullable bool) []byte {
	b := []byte(`{"type":`)
	b = appendString(b, typ)
	b = append(b, `,"data-type":`...)
	b = appendString(b, dataType)
	b = append(b, `,"nullable":`...)
	b = strconv.AppendBool(b, nullable)
	return append(b, '}')
}
