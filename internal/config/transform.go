package config

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/binlake/binlake/internal/keytemplate"
	"github.com/binlake/binlake/internal/transform/expr"
)

// Transforms change records between the stream and the lake, like DMS
// transformation rules and a Firehose processing Lambda: rules rename,
// remove, add, mask and hash; filters drop records; a processor is an
// external program or HTTP endpoint with Firehose's contract. See
// docs/transforms.md.
type Transforms struct {
	// Rules apply in order, after those of table_mappings.
	Rules []TransformRule `yaml:"rules,omitempty"`
	// Filters keep a data record only if every filter matching its table
	// gives true.
	Filters   []Filter  `yaml:"filters,omitempty"`
	Processor Processor `yaml:"processor"`
}

// TransformsEnabled reports whether any transform is configured (in
// transforms or in table_mappings).
func (c *Config) TransformsEnabled() bool {
	t := c.Transforms
	if len(t.Rules) > 0 || len(t.Filters) > 0 || t.Processor.Enabled() {
		return true
	}
	m := c.mappings()
	return len(m.Rules) > 0 || len(m.Filters) > 0
}

// Transformation rule actions. The first ten are DMS's; mask and hash are
// binlake's, and DigitsMask is DMS's data-masking-digits-mask.
const (
	ActionRename           = "rename"
	ActionRemoveColumn     = "remove-column"
	ActionAddColumn        = "add-column"
	ActionConvertLowercase = "convert-lowercase"
	ActionConvertUppercase = "convert-uppercase"
	ActionAddPrefix        = "add-prefix"
	ActionRemovePrefix     = "remove-prefix"
	ActionReplacePrefix    = "replace-prefix"
	ActionAddSuffix        = "add-suffix"
	ActionRemoveSuffix     = "remove-suffix"
	ActionReplaceSuffix    = "replace-suffix"
	ActionMask             = "mask"
	ActionHash             = "hash"
	ActionDigitsMask       = "data-masking-digits-mask"
)

// Rule targets, as DMS's rule-target.
const (
	TargetSchema = "schema"
	TargetTable  = "table"
	TargetColumn = "column"
)

var (
	nameActions   = []string{ActionRename, ActionConvertLowercase, ActionConvertUppercase, ActionAddPrefix, ActionRemovePrefix, ActionReplacePrefix, ActionAddSuffix, ActionRemoveSuffix, ActionReplaceSuffix}
	columnActions = []string{ActionRemoveColumn, ActionAddColumn, ActionMask, ActionHash, ActionDigitsMask}
)

// TransformRule is one transformation rule. Schema, Table and Column are
// patterns with the DMS wildcards (empty means %), matched against the
// source's names, whatever other rules rename them to.
type TransformRule struct {
	// Action is one of the Action constants.
	Action string `yaml:"action"`
	// Target is schema, table or column for the renaming actions; the
	// column actions need none (or column).
	Target string `yaml:"target"`
	Schema string `yaml:"schema"`
	Table  string `yaml:"table"`
	Column string `yaml:"column"`
	// Value is the new name (rename), the prefix or suffix (add-, remove-,
	// replace-), the new column's name (add-column) or the mask character
	// (mask: default '*'; data-masking-digits-mask: required).
	Value string `yaml:"value"`
	// OldValue is the prefix or suffix replace-prefix/-suffix replaces.
	OldValue string `yaml:"old_value"`
	// Expression computes an add-column value (CEL).
	Expression string `yaml:"expression"`
	// KeepLast is the number of trailing characters mask leaves readable.
	KeepLast int `yaml:"keep_last"`
	// KeyEnv names the environment variable holding hash's HMAC key.
	KeyEnv string `yaml:"key_env"`
}

// Filter keeps the data records of matching tables for which Expression
// (CEL, over operation, schema, table, data, before and metadata) is true.
type Filter struct {
	Schema     string `yaml:"schema"`
	Table      string `yaml:"table"`
	Expression string `yaml:"expression"`
}

// Processor is the external processor, the equivalent of a Firehose
// transformation Lambda: a command run per batch (request on stdin,
// response on stdout) or an HTTP endpoint (POST), exchanging Firehose's
// {records: [{recordId, data}]} and {records: [{recordId, result, data}]}.
type Processor struct {
	Command []string `yaml:"command,omitempty"`
	URL     string   `yaml:"url"`
	// Timeout bounds one call.
	Timeout Duration `yaml:"timeout"`
	// Retries is how many times a failed call is repeated before its
	// records go to the error output.
	Retries int `yaml:"retries"`
	// Backoff is the wait before the first retry; it doubles each time.
	Backoff Duration `yaml:"backoff"`
	// BatchSize is the most records in one call.
	BatchSize int `yaml:"batch_size"`
}

// Enabled reports whether a processor is configured.
func (p Processor) Enabled() bool { return len(p.Command) > 0 || p.URL != "" }

// Kinds of error output, as Firehose's !{firehose:error-output-type}.
const (
	ErrorProcessingFailed       = "processing-failed"
	ErrorFormatConversionFailed = "format-conversion-failed"
)

// ErrorKinds lists the kinds of error output.
var ErrorKinds = []string{ErrorProcessingFailed, ErrorFormatConversionFailed}

// DefaultErrorLayout follows the root of delivery.prefix when
// delivery.error_prefix is empty.
const DefaultErrorLayout = "errors/{kind}/{yyyy}/{MM}/{dd}/{HH}/"

// ErrorKeyTemplate is the key template of the error output of kind:
// delivery.error_prefix, or the root of delivery.prefix followed by
// DefaultErrorLayout, with {kind} (or !{firehose:error-output-type})
// replaced by kind. Parse it with keytemplate.Parse(t, "").
func (d Delivery) ErrorKeyTemplate(kind string) string {
	p := d.ErrorPrefix
	if p == "" {
		p = d.Root() + DefaultErrorLayout
	}
	p = strings.ReplaceAll(p, "!{firehose:error-output-type}", kind)
	return strings.ReplaceAll(p, "{kind}", kind)
}

// ErrorRoots are the roots of the error output's key templates that are
// not the root of delivery.prefix: the error objects under them are named
// like change-log objects but hold Firehose error records, so readers of
// the change log leave them out.
func (d Delivery) ErrorRoots() []string {
	root := d.Root()
	var out []string
	for _, kind := range ErrorKinds {
		t, err := keytemplate.Parse(d.ErrorKeyTemplate(kind), "")
		if err != nil {
			continue
		}
		if r := t.Root(); r != "" && r != root {
			out = append(out, r)
		}
	}
	return out
}

// Ranges checked by validateTransforms.
const (
	maxProcessorTimeout = Duration(15 * time.Minute)
	maxProcessorRetries = 100
	maxProcessorBatch   = 10000
)

func (c *Config) validateTransforms(ps *problems) {
	for i, r := range c.Transforms.Rules {
		path := fmt.Sprintf("transforms.rules[%d]", i)
		validateRule(r, func(field, format string, args ...any) {
			ps.add(joinPath(path, field), format, args...)
		})
	}
	for i, f := range c.Transforms.Filters {
		path := fmt.Sprintf("transforms.filters[%d]", i)
		for _, p := range []struct{ key, v string }{{"schema", f.Schema}, {"table", f.Table}} {
			if _, err := CompileNamePattern(p.v); err != nil {
				ps.add(path+"."+p.key, "%v", err)
			}
		}
		if f.Expression == "" {
			ps.add(path+".expression", "must be set (a CEL expression giving true for the records to keep, e.g. \"operation != 'delete' && data.post_status == 'publish'\")")
		} else if _, err := expr.Compile(f.Expression, expr.Bool); err != nil {
			ps.add(path+".expression", "%v", err)
		}
	}
	p := c.Transforms.Processor
	const pp = "transforms.processor"
	switch {
	case len(p.Command) > 0 && p.URL != "":
		ps.add(pp, "sets both command and url; a processor is one or the other")
	case len(p.Command) > 0 && p.Command[0] == "":
		ps.add(pp+".command[0]", "must name the program to run")
	case p.URL != "":
		if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add(pp+".url", "%q is not an http:// or https:// URL", p.URL)
		}
	}
	if p.Timeout <= 0 || p.Timeout > maxProcessorTimeout {
		ps.add(pp+".timeout", "must be greater than 0 and at most %s, got %s", maxProcessorTimeout, p.Timeout)
	}
	if p.Retries < 0 || p.Retries > maxProcessorRetries {
		ps.add(pp+".retries", "must be between 0 and %d, got %d", maxProcessorRetries, p.Retries)
	}
	if p.Backoff < 0 {
		ps.add(pp+".backoff", "must not be negative, got %s", p.Backoff)
	}
	if p.BatchSize < 1 || p.BatchSize > maxProcessorBatch {
		ps.add(pp+".batch_size", "must be between 1 and %d, got %d", maxProcessorBatch, p.BatchSize)
	}

	if e := c.Delivery.ErrorPrefix; e != "" {
		const ep = "delivery.error_prefix"
		switch {
		case strings.HasPrefix(e, "/"):
			ps.add(ep, "%q must not start with '/'; object keys are relative to the target", e)
		case !strings.Contains(e, "{kind}") && !strings.Contains(e, "!{firehose:error-output-type}"):
			ps.add(ep, "%q must contain {kind} (or !{firehose:error-output-type}) so that processing-failed and format-conversion-failed records go to different places, e.g. %q", e, strings.TrimSuffix(e, "/")+"/{kind}/")
		default:
			for _, k := range ErrorKinds {
				if _, err := keytemplate.Parse(c.Delivery.ErrorKeyTemplate(k), ""); err != nil {
					ps.add(ep, "%v", err)
					break
				}
			}
		}
	}
}

// validateRule checks one rule, reporting each problem with the field it
// concerns (a YAML key of TransformRule, or "" for the whole rule).
func validateRule(r TransformRule, report func(field, format string, args ...any)) {
	isName := slices.Contains(nameActions, r.Action)
	isColumn := slices.Contains(columnActions, r.Action)
	if !isName && !isColumn {
		if r.Action == "" {
			report("action", "must be set (one of %s)", strings.Join(append(slices.Clone(nameActions), columnActions...), ", "))
		} else {
			report("action", "unknown action %q (one of %s)", r.Action, strings.Join(append(slices.Clone(nameActions), columnActions...), ", "))
		}
		return
	}
	target := r.Target
	switch {
	case isName && target == "":
		report("target", "must be set for %s: schema, table or column", r.Action)
		return
	case isName && target != TargetSchema && target != TargetTable && target != TargetColumn:
		report("target", "must be schema, table or column; got %q", target)
		return
	case isColumn && target != "" && target != TargetColumn:
		report("target", "%s works on columns; leave target out or write column, not %q", r.Action, target)
		return
	case isColumn:
		target = TargetColumn
	}
	for _, p := range []struct{ key, v string }{{"schema", r.Schema}, {"table", r.Table}, {"column", r.Column}} {
		if _, err := CompileNamePattern(p.v); err != nil {
			report(p.key, "%v", err)
		}
	}
	if r.Column != "" && target != TargetColumn {
		report("column", "applies only to rules with target column; a %s rule names schemas and tables", target)
	}
	if r.Action == ActionAddColumn && r.Column != "" {
		report("column", "is not used by add-column; the new column's name is value")
	}

	needs := func(key, v string, need bool, what string) {
		switch {
		case need && v == "":
			report(key, "must be set: %s", what)
		case !need && v != "":
			report(key, "is not used by %s; remove it", r.Action)
		}
	}
	switch r.Action {
	case ActionRename:
		needs("value", r.Value, true, "the new name")
	case ActionAddPrefix, ActionRemovePrefix:
		needs("value", r.Value, true, "the prefix")
	case ActionAddSuffix, ActionRemoveSuffix:
		needs("value", r.Value, true, "the suffix")
	case ActionReplacePrefix, ActionReplaceSuffix:
		needs("old_value", r.OldValue, true, "the "+strings.TrimPrefix(r.Action, "replace-")+" to replace")
	case ActionAddColumn:
		needs("value", r.Value, true, "the new column's name")
	case ActionMask:
		if r.Value != "" && utf8.RuneCountInString(r.Value) != 1 {
			report("value", "is the mask character: one character (default '*'); got %q", r.Value)
		}
	case ActionDigitsMask:
		if len(r.Value) != 1 || r.Value[0] <= ' ' || r.Value[0] > '~' {
			report("value", "must be one printable ASCII character, not a space, to put in place of each digit; got %q", r.Value)
		}
	default:
		needs("value", r.Value, false, "")
	}
	if r.Action != ActionReplacePrefix && r.Action != ActionReplaceSuffix {
		needs("old_value", r.OldValue, false, "")
	}
	if target == TargetSchema && r.Action == ActionRename && strings.Contains(r.Value, ".") {
		report("value", "%q: a schema name here must not contain '.'", r.Value)
	}

	if r.Action == ActionAddColumn {
		if r.Expression == "" {
			report("expression", "must be set: a CEL expression for the new column's value, e.g. \"schema + '.' + table\"")
		} else if _, err := expr.Compile(r.Expression, expr.Scalar); err != nil {
			report("expression", "%v", err)
		}
	} else {
		needs("expression", r.Expression, false, "")
	}

	if r.Action == ActionMask {
		if r.KeepLast < 0 {
			report("keep_last", "must not be negative, got %d", r.KeepLast)
		}
	} else if r.KeepLast != 0 {
		report("keep_last", "is not used by %s; remove it", r.Action)
	}

	if r.Action == ActionHash {
		switch v, ok := os.LookupEnv(r.KeyEnv); {
		case r.KeyEnv == "":
			report("key_env", "must be set: the environment variable holding the HMAC-SHA256 key, e.g. BINLAKE_HASH_KEY")
		case !validEnvName(r.KeyEnv):
			report("key_env", "%q is not an environment variable name (letters, digits and _, not starting with a digit)", r.KeyEnv)
		case !ok || v == "":
			report("key_env", "environment variable %s is not set or empty; export the HMAC key in it (e.g. export %s=$(openssl rand -hex 32))", r.KeyEnv, r.KeyEnv)
		}
	} else if r.KeyEnv != "" {
		report("key_env", "is not used by %s; remove it", r.Action)
	}
}
