package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const transformBase = "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"wordpress.%\"}]\ntarget: file:///lake\n"

// TestTransformRules checks transforms: every rule action and each
// problem validation reports, with the key path and rule index.
func TestTransformRules(t *testing.T) {
	t.Setenv("BINLAKE_HASH_KEY", "k3y")
	t.Setenv("EMPTY_KEY", "")
	tests := []struct {
		yml  string
		errs []string // each must appear, in order
	}{
		{yml: `transforms:
  rules:
    - {action: rename, target: schema, schema: wordpress, value: blog}
    - {action: rename, target: table, table: wp_posts, value: posts}
    - {action: rename, target: column, table: wp_users, column: user_login, value: login}
    - {action: remove-column, table: wp_users, column: user_pass}
    - {action: add-column, value: src, expression: "schema + '.' + table"}
    - {action: convert-lowercase, target: column}
    - {action: convert-uppercase, target: table, table: "wp[_]%"}
    - {action: add-prefix, target: table, value: "raw_"}
    - {action: remove-prefix, target: table, value: "wp_"}
    - {action: replace-prefix, target: column, old_value: "post_", value: "p_"}
    - {action: add-suffix, target: schema, value: "_v2"}
    - {action: remove-suffix, target: column, value: "_gmt"}
    - {action: replace-suffix, target: table, old_value: "_meta", value: "_m"}
    - {action: mask, target: column, table: wp_users, column: user_login, keep_last: 4}
    - {action: mask, column: user_url, value: "#"}
    - {action: hash, table: wp_users, column: user_email, key_env: BINLAKE_HASH_KEY}
    - {action: data-masking-digits-mask, column: phone, value: "#"}
  filters:
    - {table: wp_posts, expression: "operation != 'delete' && data.post_status == 'publish'"}
  processor:
    command: [./enrich, --fast]
    timeout: 5s
    retries: 0
    batch_size: 100
delivery:
  error_prefix: "errors/{kind}/!{timestamp:yyyy/MM/dd}/"
`},
		{yml: "transforms: {processor: {url: http://127.0.0.1:9000/process}}\ndelivery: {error_prefix: \"bad/!{firehose:error-output-type}/\"}"},
		{yml: `transforms:
  rules:
    - {action: rename}
    - {action: frobnicate, target: table}
    - {target: table}
    - {action: rename, target: row, value: x}
    - {action: remove-column, target: table}
    - {action: rename, target: table, column: c, value: x}
    - {action: add-prefix, target: table}
    - {action: replace-prefix, target: column, value: x}
    - {action: convert-lowercase, target: table, value: x, old_value: y}
    - {action: add-column, value: n}
    - {action: add-column, value: n, expression: "data.x +"}
    - {action: add-column, value: n, expression: "[1, 2]", column: c}
    - {action: mask, column: c, keep_last: -1, value: "**"}
    - {action: hash, column: c}
    - {action: hash, column: c, key_env: NOT_SET_ANYWHERE}
    - {action: hash, column: c, key_env: EMPTY_KEY}
    - {action: hash, column: c, key_env: "1BAD"}
    - {action: data-masking-digits-mask, column: c, value: " "}
    - {action: rename, target: table, table: "wp[", value: x}
    - {action: rename, target: schema, value: "a.b"}
    - {action: mask, column: c, key_env: BINLAKE_HASH_KEY, expression: "1"}
  filters:
    - {table: wp_posts}
    - {expression: "data.post_status"}
    - {expression: "1 + 1"}
    - {expression: "data.x ==", schema: "x]"}
  processor:
    command: [x]
    url: ftp://nowhere
    timeout: 0s
    retries: -1
    backoff: -1s
    batch_size: 0
delivery:
  error_prefix: "/errors/"
`, errs: []string{
			"transforms.rules[0].target: must be set for rename: schema, table or column",
			`transforms.rules[1].action: unknown action "frobnicate" (one of rename,`,
			"transforms.rules[2].action: must be set (one of rename,",
			`transforms.rules[3].target: must be schema, table or column; got "row"`,
			`transforms.rules[4].target: remove-column works on columns; leave target out or write column, not "table"`,
			"transforms.rules[5].column: applies only to rules with target column; a table rule names schemas and tables",
			"transforms.rules[6].value: must be set: the prefix",
			"transforms.rules[7].old_value: must be set: the prefix to replace",
			"transforms.rules[8].value: is not used by convert-lowercase; remove it",
			"transforms.rules[8].old_value: is not used by convert-lowercase; remove it",
			"transforms.rules[9].expression: must be set: a CEL expression for the new column's value",
			"transforms.rules[10].expression: at 1:9: Syntax error",
			"transforms.rules[11].column: is not used by add-column; the new column's name is value",
			"transforms.rules[11].expression: expression gives list(int); a column value must be null",
			`transforms.rules[12].value: is the mask character: one character (default '*'); got "**"`,
			"transforms.rules[12].keep_last: must not be negative, got -1",
			"transforms.rules[13].key_env: must be set: the environment variable holding the HMAC-SHA256 key",
			"transforms.rules[14].key_env: environment variable NOT_SET_ANYWHERE is not set or empty",
			"transforms.rules[15].key_env: environment variable EMPTY_KEY is not set or empty",
			`transforms.rules[16].key_env: "1BAD" is not an environment variable name`,
			`transforms.rules[17].value: must be one printable ASCII character, not a space, to put in place of each digit; got " "`,
			`transforms.rules[18].table: "wp[" has a '[' without a closing ']'`,
			`transforms.rules[19].value: "a.b": a schema name here must not contain '.'`,
			"transforms.rules[20].expression: is not used by mask; remove it",
			"transforms.rules[20].key_env: is not used by mask; remove it",
			`transforms.filters[0].expression: must be set (a CEL expression giving true for the records to keep`,
			"transforms.filters[2].expression: expression gives int, not a bool (true keeps the record)",
			`transforms.filters[3].schema: "x]" has a ']' without an opening '['`,
			"transforms.filters[3].expression: at 1:10: Syntax error",
			"transforms.processor: sets both command and url; a processor is one or the other",
			"transforms.processor.timeout: must be greater than 0 and at most 15m, got 0s",
			"transforms.processor.retries: must be between 0 and 100, got -1",
			"transforms.processor.backoff: must not be negative, got -1s",
			"transforms.processor.batch_size: must be between 1 and 10000, got 0",
			`delivery.error_prefix: "/errors/" must not start with '/'`,
		}},
		{yml: "delivery: {error_prefix: \"errors/\"}", errs: []string{
			`delivery.error_prefix: "errors/" must contain {kind} (or !{firehose:error-output-type}) so that processing-failed and format-conversion-failed records go to different places, e.g. "errors/{kind}/"`,
		}},
		{yml: "delivery: {error_prefix: \"errors/{kind}/{nope}/\"}", errs: []string{
			`delivery.error_prefix: "errors/processing-failed/{nope}/": unknown placeholder {nope}`,
		}},
		{yml: "transforms: {processor: {url: \"not a url\"}}", errs: []string{
			`transforms.processor.url: "not a url" is not an http:// or https:// URL`,
		}},
		{yml: "transforms: {processor: {command: [\"\"]}}", errs: []string{
			"transforms.processor.command[0]: must name the program to run",
		}},
	}
	for _, tt := range tests {
		name, _, _ := strings.Cut(tt.yml, "\n")
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(transformBase + tt.yml + "\n"))
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q", tt.errs)
			}
			got := fieldErrors(t, err)
			if len(got) != len(tt.errs) {
				t.Errorf("got %d errors, want %d:\n%v", len(got), len(tt.errs), err)
			}
			for i, want := range tt.errs {
				if i < len(got) && !strings.Contains(got[i].Error(), want) {
					t.Errorf("error %d:\n got %q\nwant it to contain %q", i, got[i], want)
				}
			}
		})
	}
}

func TestErrorKeyTemplate(t *testing.T) {
	tests := []struct {
		prefix, errorPrefix, kind, want string
	}{
		{"wordpress-db/", "", ErrorProcessingFailed, "wordpress-db/errors/processing-failed/{yyyy}/{MM}/{dd}/{HH}/"},
		{"raw/{schema}/{table}/", "", ErrorFormatConversionFailed, "raw/errors/format-conversion-failed/{yyyy}/{MM}/{dd}/{HH}/"},
		{"", "", ErrorProcessingFailed, "errors/processing-failed/{yyyy}/{MM}/{dd}/{HH}/"},
		{"lake/", "failed/!{firehose:error-output-type}/!{timestamp:yyyy/MM}/", ErrorProcessingFailed, "failed/processing-failed/!{timestamp:yyyy/MM}/"},
		{"lake/", "failed/{kind}/", ErrorFormatConversionFailed, "failed/format-conversion-failed/"},
	}
	for _, tt := range tests {
		d := Delivery{Prefix: tt.prefix, ErrorPrefix: tt.errorPrefix, Partitioning: "time"}
		if got := d.ErrorKeyTemplate(tt.kind); got != tt.want {
			t.Errorf("prefix %q, error_prefix %q: got %q, want %q", tt.prefix, tt.errorPrefix, got, tt.want)
		}
	}
}

// TestTableMappings reads a DMS table-mapping file with selection rules
// (one with column filters), transformation rules and rules binlake
// ignores with a warning.
func TestTableMappings(t *testing.T) {
	c, err := Parse([]byte("task: t\nsource: {mysql: {host: h, user: u}}\ntarget: file:///lake\ntable_mappings: testdata/dms-mappings.good.json\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		schema, table string
		want          bool
	}{
		{"wordpress", "wp_posts", true},
		{"wordpress", "wp_users", true},
		{"wordpress", "wp_sessions", false},
		{"wordpress", "wpXusers", false},
		{"wordpress", "wpXposts", true}, // rule-id 3 includes wp_posts, and _ is a wildcard
		{"other", "wp_posts", false},
	} {
		if got := c.Selected(tc.schema, tc.table); got != tc.want {
			t.Errorf("Selected(%s, %s) = %v, want %v", tc.schema, tc.table, got, tc.want)
		}
	}
	m := c.Mappings()
	wantRules := []MappedRule{
		{TransformRule{Action: ActionConvertUppercase, Target: TargetSchema, Schema: "wordpress"}, "10"},
		{TransformRule{Action: ActionRemovePrefix, Target: TargetTable, Schema: "wordpress", Table: "wp[_]%", Value: "wp_"}, "11"},
		{TransformRule{Action: ActionRemoveColumn, Schema: "wordpress", Table: "wp_users", Column: "user_pass"}, "12"},
		{TransformRule{Action: ActionRename, Target: TargetColumn, Schema: "wordpress", Table: "wp_users", Column: "user_login", Value: "login"}, "13"},
		{TransformRule{Action: ActionReplacePrefix, Target: TargetColumn, Schema: "wordpress", Table: "wp_posts", Column: "post[_]%", Value: "p_", OldValue: "post_"}, "14"},
		{TransformRule{Action: ActionAddColumn, Schema: "wordpress", Table: "%", Value: "src", Expression: `string(schema) + string(".") + string(table)`}, "15"},
		{TransformRule{Action: ActionDigitsMask, Schema: "wordpress", Table: "wp_users", Column: "phone", Value: "#"}, "16"},
	}
	if !reflect.DeepEqual(m.Rules, wantRules) {
		t.Errorf("rules:\n got %+v\nwant %+v", m.Rules, wantRules)
	}
	wantFilters := []SourceFilter{
		{RuleID: "3", Schema: "wordpress", Table: "wp_posts", Column: "post_status", Conditions: []FilterCondition{{Operator: "eq", Value: "publish"}}},
		{RuleID: "3", Schema: "wordpress", Table: "wp_posts", Column: "ID", Conditions: []FilterCondition{{Operator: "between", Start: "1", End: "1000000"}}},
	}
	if !reflect.DeepEqual(m.Filters, wantFilters) {
		t.Errorf("filters:\n got %+v\nwant %+v", m.Filters, wantFilters)
	}
	wantWarnings := []string{
		"table_mappings rule-id 20: table-settings rules tune how DMS loads a table (parallel-load, lob-settings, ...); binlake reads tables in primary-key chunks and writes LOBs whole, so the rule is ignored",
		"table_mappings rule-id 21: define-primary-key is ignored: records keep the source's primary key in partition-key-value, and a lake has no indexes",
	}
	if got := c.Warnings(); !reflect.DeepEqual(got, wantWarnings) {
		t.Errorf("warnings:\n got %q\nwant %q", got, wantWarnings)
	}
	if !c.TransformsEnabled() {
		t.Error("TransformsEnabled is false with transformation rules in table_mappings")
	}
}

func TestTableMappingsErrors(t *testing.T) {
	_, err := Parse([]byte(transformBase + "table_mappings: testdata/dms-mappings.bad.json\n"))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"table_mappings: rule-id 2: change-data-type is not supported: binlake writes each value in the JSON form of its source type",
		"table_mappings: rule-id 3: add-before-image-columns is not supported; set before_image: all (or pk-only)",
		"table_mappings: rule-id 4: data-masking-hash-mask is not supported; hash the column with a transforms.rules rule {action: hash, key_env: ...}",
		`table_mappings: rule-id 6: expression "upper($name)": "upper($name)" is not a literal or a $column; binlake translates only literals`,
		"table_mappings: rules[6]: rule-id 6 is also the rule-id of rules[5]; rule-ids must be unique",
		`table_mappings: rule-id 8: filters[0]: filter-conditions[0]: filter-operator "like" is not one of eq, noteq, ste, gte, between, notbetween, null, notnull`,
		`table_mappings: rule-id 9: unknown rule-type "magic" (selection, transformation, table-settings or post-processing)`,
		"table_mappings: rule-id 5 (rule-action rename): value must be set: the new name",
		`table_mappings: rule-id 7 (rule-action convert-lowercase): object-locator.table-name "x[" has a '[' without a closing ']'`,
		"tables: is set, and table_mappings testdata/dms-mappings.bad.json has selection rules too; select tables in one place",
	}
	got := fieldErrors(t, err)
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if i < len(got) && !strings.Contains(got[i].Error(), w) {
			t.Errorf("error %d:\n got %q\nwant it to contain %q", i, got[i], w)
		}
	}
}

func TestTableMappingsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, body, want string
	}{
		{"missing.json", "", "table_mappings: reading the DMS table-mapping file: open"},
		{"syntax.json", "{\n  \"rules\": [\n    {\"rule-id\": 1,}\n  ]\n}", "line 3, column 20: invalid JSON"},
		{"empty.json", `{"rules": []}`, "has no rules; a DMS table mapping is {\"rules\": [...]}"},
		{"array.json", `[]`, "a DMS table mapping is a JSON object"},
		{"no-include.json", `{"rules": [{"rule-type": "selection", "rule-id": "1", "object-locator": {"schema-name": "a", "table-name": "%"}, "rule-action": "exclude"}]}`, "table_mappings: has selection rules but no include rule, so no table is selected"},
		{"sqlite.json", `{"rules": [{"rule-type": "transformation", "rule-id": "1", "rule-target": "column", "object-locator": {"schema-name": "a", "table-name": "t"}, "rule-action": "add-column", "value": "c", "expression": "$a || 'x"}]}`, "a string is not closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if tt.body != "" {
				p = write(tt.name, tt.body)
			}
			tables := ""
			if tt.name != "no-include.json" {
				tables = "tables: [{include: \"a.%\"}]\n"
			}
			_, err := Parse([]byte("task: t\nsource: {mysql: {host: h, user: u}}\ntarget: file:///lake\n" + tables + "table_mappings: " + p + "\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSQLiteToCEL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"'x'", `"x"`},
		{"'it''s'", `"it's"`},
		{"42", "42"},
		{"$name", `data["name"]`},
		{"$first || ' ' || $last", `(data["first"] == null || data["last"] == null) ? null : dyn(string(data["first"]) + string(" ") + string(data["last"]))`},
		{"$AR_H_OPERATION", "operation.upperAscii()"},
		{"$AR_H_COMMIT_TIMESTAMP", `metadata["commit-timestamp"]`},
	}
	for _, tt := range tests {
		got, err := sqliteToCEL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("sqliteToCEL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "$a ||", "upper($a)", "$a + 1", "$AR_V_SOMETHING", "'x"} {
		if got, err := sqliteToCEL(bad); err == nil {
			t.Errorf("sqliteToCEL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestNamePattern(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "anything", true},
		{"%", "", true},
		{"wp[_]%", "wp_posts", true},
		{"wp[_]%", "wpXposts", false},
		{"user_email", "userXemail", true},
		{"user[_]email", "user_email", true},
		{"User_email", "user_email", false},
		{"[a-c]%", "beta", true},
	}
	for _, tt := range tests {
		p, err := CompileNamePattern(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(tt.name); got != tt.want {
			t.Errorf("%q matches %q: %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}
