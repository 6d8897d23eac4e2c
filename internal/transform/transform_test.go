package transform

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/config"
)

const base = "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"wordpress.%\"}]\ntarget: file:///lake\n"

// newPipeline builds the pipeline of a config made of base and yml.
func newPipeline(t *testing.T, yml string) *Pipeline {
	t.Helper()
	cfg, err := config.Parse([]byte(base + yml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// meta is the metadata object of a test record.
func meta(op, schema, table string) string {
	return `{"timestamp":"2026-11-24T10:50:50.142473Z","record-type":"data","operation":"` + op + `","partition-key-type":"primary-key","partition-key-value":"wordpress.wp_users.18446744073709551615","schema-name":"` + schema + `","table-name":"` + table + `","transaction-id":526,"transaction-record-id":1,"commit-timestamp":"2026-11-24T10:50:50.000000Z","stream-position":"0000/0000000001/0000000074993186/1/0000000001/0000000000","format-version":1}`
}

const (
	userData   = `{"ID":18446744073709551615,"user_login":"alice","user_pass":"$P$Bhash","user_email":"alice@example.com","price":"12.340","score":1.5e+300,"phone":"+1 555-0100","note":null}`
	userBefore = `{"ID":18446744073709551615,"user_email":"old@example.com"}`
	// HMAC-SHA256 with the key "k3y" of alice@example.com and old@example.com.
	aliceHash = "b299497d6ef24967fa74e4207bfeb6d180bf89051529c9d616bfd6bf4d401fc6"
	oldHash   = "57d5b79fbdded8893f10e4502e675ff99eb584b790a1057d5e2dd7384ce57be0"
	position  = "0000/0000000001/0000000074993186/1/0000000001/0000000000"
)

var userUpdate = `{"data":` + userData + `,"before-image":` + userBefore + `,"metadata":` + meta("update", "wordpress", "wp_users") + `}`

func dmsRecord(data, before, m string) string {
	s := `{"data":` + data
	if before != "" {
		s += `,"before-image":` + before
	}
	return s + `,"metadata":` + m + `}`
}

func apply(t *testing.T, p *Pipeline, table string, recs ...string) []Output {
	t.Helper()
	in := make([]Input, len(recs))
	for i, r := range recs {
		in[i] = Input{Data: []byte(r), Table: table, Position: position, CommitTime: time.Unix(1_790_000_000, 0)}
	}
	out, err := p.Apply(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRules checks every rule action on one wp_users update: the exact
// JSON written, with column order kept and untouched values byte for
// byte (18446744073709551615, "12.340", 1.5e+300).
func TestRules(t *testing.T) {
	t.Setenv("BINLAKE_HASH_KEY", "k3y")
	tests := []struct {
		name, rules string
		table       string // Output.Table
		want        string
	}{
		{
			name:  "no rule for this table",
			rules: `{action: remove-column, table: wp_posts, column: "%"}`,
			table: "wordpress.wp_users",
			want:  userUpdate,
		},
		{
			name:  "rename schema",
			rules: `{action: rename, target: schema, schema: wordpress, value: blog}`,
			table: "blog.wp_users",
			want:  dmsRecord(userData, userBefore, meta("update", "blog", "wp_users")),
		},
		{
			name:  "rename table",
			rules: `{action: rename, target: table, table: wp_users, value: users}`,
			table: "wordpress.users",
			want:  dmsRecord(userData, userBefore, meta("update", "wordpress", "users")),
		},
		{
			name:  "rename column in data and before-image",
			rules: `{action: rename, target: column, table: wp_users, column: user_email, value: email}`,
			table: "wordpress.wp_users",
			want: dmsRecord(strings.Replace(userData, `"user_email"`, `"email"`, 1),
				`{"ID":18446744073709551615,"email":"old@example.com"}`, meta("update", "wordpress", "wp_users")),
		},
		{
			name:  "remove-column",
			rules: `{action: remove-column, table: wp_users, column: user_pass}`,
			table: "wordpress.wp_users",
			want:  dmsRecord(strings.Replace(userData, `"user_pass":"$P$Bhash",`, "", 1), userBefore, meta("update", "wordpress", "wp_users")),
		},
		{
			name:  "remove-column with a wildcard",
			rules: `{action: remove-column, column: "user[_]%"}`,
			table: "wordpress.wp_users",
			want: dmsRecord(`{"ID":18446744073709551615,"price":"12.340","score":1.5e+300,"phone":"+1 555-0100","note":null}`,
				`{"ID":18446744073709551615}`, meta("update", "wordpress", "wp_users")),
		},
		{
			name: "add-column",
			rules: `{action: add-column, value: src, expression: "schema + '.' + table"}
    - {action: add-column, value: was, expression: "before.user_email"}
    - {action: add-column, value: big, expression: "data.ID"}`,
			table: "wordpress.wp_users",
			want: dmsRecord(strings.TrimSuffix(userData, "}")+`,"src":"wordpress.wp_users","was":"old@example.com","big":18446744073709551615}`,
				userBefore, meta("update", "wordpress", "wp_users")),
		},
		{
			name:  "convert-lowercase columns",
			rules: `{action: convert-lowercase, target: column, column: "I%"}`,
			table: "wordpress.wp_users",
			want: dmsRecord(strings.Replace(userData, `"ID"`, `"id"`, 1), `{"id":18446744073709551615,"user_email":"old@example.com"}`,
				meta("update", "wordpress", "wp_users")),
		},
		{
			name:  "convert-uppercase table and schema",
			rules: "{action: convert-uppercase, target: table}\n    - {action: convert-uppercase, target: schema}",
			table: "WORDPRESS.WP_USERS",
			want:  dmsRecord(userData, userBefore, meta("update", "WORDPRESS", "WP_USERS")),
		},
		{
			name:  "add-prefix and add-suffix",
			rules: "{action: add-prefix, target: table, value: raw_}\n    - {action: add-suffix, target: schema, value: _v2}",
			table: "wordpress_v2.raw_wp_users",
			want:  dmsRecord(userData, userBefore, meta("update", "wordpress_v2", "raw_wp_users")),
		},
		{
			name:  "remove-prefix table",
			rules: "{action: remove-prefix, target: table, value: wp_}",
			table: "wordpress.users",
			want:  dmsRecord(userData, userBefore, meta("update", "wordpress", "users")),
		},
		{
			name:  "replace-prefix and remove-suffix columns",
			rules: "{action: replace-prefix, target: column, old_value: user_, value: u_}\n    - {action: remove-suffix, target: column, value: _email}",
			table: "wordpress.wp_users",
			// remove-suffix matches the source name user_email, after
			// replace-prefix made it u_email: the rules compose.
			want: dmsRecord(`{"ID":18446744073709551615,"u_login":"alice","u_pass":"$P$Bhash","u":"alice@example.com","price":"12.340","score":1.5e+300,"phone":"+1 555-0100","note":null}`,
				`{"ID":18446744073709551615,"u":"old@example.com"}`, meta("update", "wordpress", "wp_users")),
		},
		{
			name:  "replace-suffix table, no match leaves the name",
			rules: "{action: replace-suffix, target: table, old_value: _users, value: _people}\n    - {action: replace-suffix, target: schema, old_value: _nope, value: _x}",
			table: "wordpress.wp_people",
			want:  dmsRecord(userData, userBefore, meta("update", "wordpress", "wp_people")),
		},
		{
			name:  "mask keeps the last characters",
			rules: "{action: mask, table: wp_users, column: user_login, keep_last: 2}\n    - {action: mask, column: ID, keep_last: 4, value: \"#\"}\n    - {action: mask, column: note}",
			table: "wordpress.wp_users",
			want: dmsRecord(`{"ID":"################1615","user_login":"***ce","user_pass":"$P$Bhash","user_email":"alice@example.com","price":"12.340","score":1.5e+300,"phone":"+1 555-0100","note":null}`,
				`{"ID":"################1615","user_email":"old@example.com"}`, meta("update", "wordpress", "wp_users")),
		},
		{
			name:  "hash with HMAC-SHA256",
			rules: "{action: hash, table: wp_users, column: user_email, key_env: BINLAKE_HASH_KEY}",
			table: "wordpress.wp_users",
			want: dmsRecord(strings.Replace(userData, `"alice@example.com"`, `"`+aliceHash+`"`, 1),
				`{"ID":18446744073709551615,"user_email":"`+oldHash+`"}`, meta("update", "wordpress", "wp_users")),
		},
		{
			name:  "data-masking-digits-mask",
			rules: `{action: data-masking-digits-mask, column: phone, value: "#"}`,
			table: "wordpress.wp_users",
			want:  dmsRecord(strings.Replace(userData, `"+1 555-0100"`, `"+# ###-####"`, 1), userBefore, meta("update", "wordpress", "wp_users")),
		},
		{
			name: "rules match source names, whatever renames come first",
			rules: `{action: rename, target: table, table: wp_users, value: users}
    - {action: rename, target: column, table: wp_users, column: user_login, value: login}
    - {action: hash, table: wp_users, column: user_email, key_env: BINLAKE_HASH_KEY}
    - {action: rename, target: column, table: wp_users, column: user_email, value: email_hash}
    - {action: remove-column, table: wp_users, column: user_pass}`,
			table: "wordpress.users",
			want: dmsRecord(`{"ID":18446744073709551615,"login":"alice","email_hash":"`+aliceHash+`","price":"12.340","score":1.5e+300,"phone":"+1 555-0100","note":null}`,
				`{"ID":18446744073709551615,"email_hash":"`+oldHash+`"}`, meta("update", "wordpress", "users")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t, "transforms:\n  rules:\n    - "+tt.rules+"\n")
			out := apply(t, p, "wordpress.wp_users", userUpdate)[0]
			if out.Result != Ok || out.Table != tt.table || string(out.Data) != tt.want {
				t.Errorf("got %s %s\n%s\nwant Ok %s\n%s", out.Result, out.Table, out.Data, tt.table, tt.want)
			}
			if !json.Valid(out.Data) {
				t.Errorf("output is not JSON: %s", out.Data)
			}
		})
	}
}

// TestControlRecords: a DDL record follows its table's renames, and no
// filter or column rule touches it.
func TestControlRecords(t *testing.T) {
	p := newPipeline(t, `transforms:
  rules:
    - {action: rename, target: table, table: wp_posts, value: posts}
    - {action: remove-column, column: "%"}
  filters:
    - {expression: "false"}
`)
	m := strings.Replace(meta("create-table", "wordpress", "wp_posts"), `"record-type":"data"`, `"record-type":"control"`, 1)
	in := `{"control":{"statement":"ALTER TABLE wp_posts ADD COLUMN x INT"},"metadata":` + m + `}`
	out := apply(t, p, "wordpress.wp_posts", in)[0]
	want := strings.Replace(in, `"table-name":"wp_posts"`, `"table-name":"posts"`, 1)
	if out.Result != Ok || out.Table != "wordpress.posts" || string(out.Data) != want {
		t.Errorf("got %s %s %s\nwant Ok wordpress.posts %s", out.Result, out.Table, out.Data, want)
	}
}

// TestFilter checks a CEL row filter over operation and data.
func TestFilter(t *testing.T) {
	p := newPipeline(t, `transforms:
  filters:
    - {table: wp_posts, expression: "operation != 'delete' && data.post_status == 'publish'"}
    - {table: "wp[_]%", expression: "before == null || before.ID == data.ID"}
`)
	post := func(op, status string) string {
		return dmsRecord(`{"ID":7,"post_status":"`+status+`","post_title":"Hi"}`, "", meta(op, "wordpress", "wp_posts"))
	}
	recs := []string{post("insert", "publish"), post("insert", "draft"), post("delete", "publish"), post("update", "publish"),
		dmsRecord(`{"ID":7,"post_status":"publish"}`, `{"ID":8}`, meta("update", "wordpress", "wp_posts"))}
	want := []Result{Ok, Dropped, Dropped, Ok, Dropped}
	out := apply(t, p, "wordpress.wp_posts", recs...)
	for i, o := range out {
		if o.Result != want[i] {
			t.Errorf("record %d: %s, want %s", i, o.Result, want[i])
		}
		if o.Table != "wordpress.wp_posts" {
			t.Errorf("record %d: table %s", i, o.Table)
		}
		if o.Result == Ok && string(o.Data) != recs[i] {
			t.Errorf("record %d changed: %s", i, o.Data)
		}
	}
	// Other tables pass the wp_posts filter.
	if o := apply(t, p, "wordpress.wp_users", userUpdate)[0]; o.Result != Ok {
		t.Errorf("wp_users update: %s", o.Result)
	}
}

// errorLine decodes an error output line.
type errorLine struct {
	AttemptsMade   int    `json:"attemptsMade"`
	ErrorCode      string `json:"errorCode"`
	ErrorMessage   string `json:"errorMessage"`
	RawData        []byte `json:"rawData"`
	StreamPosition string `json:"stream-position"`
	Schema         string `json:"schema"`
	Table          string `json:"table"`
}

func decodeErrorLine(t *testing.T, b []byte) errorLine {
	t.Helper()
	var e errorLine
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error line %s: %v", b, err)
	}
	return e
}

// TestFailures: records the rules cannot handle go to the error output
// with Firehose's fields, and rawData never shows what a rule hides.
func TestFailures(t *testing.T) {
	t.Setenv("BINLAKE_HASH_KEY", "k3y")
	p := newPipeline(t, `transforms:
  rules:
    - {action: hash, table: wp_users, column: user_email, key_env: BINLAKE_HASH_KEY}
    - {action: remove-column, table: wp_users, column: user_pass}
    - {action: rename, target: table, table: wp_users, value: users}
    - {action: add-column, table: wp_options, value: n, expression: "data.option_value + 1"}
    - {action: rename, target: column, table: wp_terms, column: "%", value: same}
  filters:
    - {table: wp_users, expression: "data.nope == 1"}
`)
	out := apply(t, p, "wordpress.wp_users", userUpdate, `{"data":{"ID":1}`)
	for _, o := range out {
		if o.Result != Failed || o.Table != "wordpress.users" {
			t.Fatalf("got %s %s %s, want Failed wordpress.users", o.Result, o.Table, o.Data)
		}
	}
	if out[0].Kind != config.ErrorProcessingFailed || out[1].Kind != config.ErrorFormatConversionFailed {
		t.Errorf("kinds %s, %s", out[0].Kind, out[1].Kind)
	}
	e := decodeErrorLine(t, out[0].Data)
	wantRaw := dmsRecord(`{"ID":18446744073709551615,"user_login":"alice","user_email":"`+aliceHash+`","price":"12.340","score":1.5e+300,"phone":"+1 555-0100","note":null}`,
		`{"ID":18446744073709551615,"user_email":"`+oldHash+`"}`, meta("update", "wordpress", "wp_users"))
	if e.AttemptsMade != 1 || e.ErrorCode != "Filter.EvaluationFailed" || !strings.Contains(e.ErrorMessage, "transforms.filters[0]: no such key: nope") ||
		string(e.RawData) != wantRaw || e.StreamPosition != position || e.Schema != "wordpress" || e.Table != "wp_users" {
		t.Errorf("error line %+v\nrawData %s\nwant    %s", e, e.RawData, wantRaw)
	}
	e = decodeErrorLine(t, out[1].Data)
	if e.ErrorCode != "Record.InvalidJSON" || string(e.RawData) != `{"data":{"ID":1}` || e.Schema != "wordpress" || e.Table != "wp_users" {
		t.Errorf("error line %+v", e)
	}

	opt := dmsRecord(`{"option_id":1,"option_value":"x"}`, "", meta("insert", "wordpress", "wp_options"))
	e = decodeErrorLine(t, apply(t, p, "wordpress.wp_options", opt)[0].Data)
	if e.ErrorCode != "Transform.AddColumnFailed" || !strings.Contains(e.ErrorMessage, "transforms.rules[3]: no such overload") || string(e.RawData) != opt {
		t.Errorf("error line %+v %s", e, e.RawData)
	}
	term := dmsRecord(`{"term_id":1,"name":"x"}`, "", meta("insert", "wordpress", "wp_terms"))
	e = decodeErrorLine(t, apply(t, p, "wordpress.wp_terms", term)[0].Data)
	if e.ErrorCode != "Transform.DuplicateColumn" || e.ErrorMessage != `the rules give two columns the name "same"` {
		t.Errorf("error line %+v", e)
	}
}

func TestErrorLine(t *testing.T) {
	got := string(ErrorLine(3, "Processor.FunctionError", "exit status 1: \"boom\"", []byte(`{"data":{}}`), position, "wordpress", "wp_users"))
	want := `{"attemptsMade":3,"errorCode":"Processor.FunctionError","errorMessage":"exit status 1: \"boom\"","rawData":"` +
		base64.StdEncoding.EncodeToString([]byte(`{"data":{}}`)) + `","stream-position":"` + position + `","schema":"wordpress","table":"wp_users"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestNilPipeline: no transforms, no pipeline, records unchanged.
func TestNilPipeline(t *testing.T) {
	p := newPipeline(t, "")
	if p != nil {
		t.Fatal("a config without transforms gave a pipeline")
	}
	out := apply(t, p, "wordpress.wp_users", userUpdate)
	if out[0].Result != Ok || string(out[0].Data) != userUpdate || out[0].Table != "wordpress.wp_users" {
		t.Errorf("got %+v", out[0])
	}
	if got := p.Route("a.b"); got != "a.b" {
		t.Errorf("Route = %s", got)
	}
}

// TestRecordRoundTrip: decoding and encoding without rules gives the
// record back byte for byte, whatever its values.
func TestRecordRoundTrip(t *testing.T) {
	for _, s := range []string{
		userUpdate,
		`{"data":{"a":"é\u2028\"x\"","b":[1,2.50,{"c":null}],"c":-0.0,"d":1E+2,"e":true},"metadata":{"schema-name":"s"}}`,
		`{"data":{},"before-image":null,"metadata":{}}`,
	} {
		r, err := decodeRecord([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := string(r.encode(false)); got != s {
			t.Errorf("got  %s\nwant %s", got, s)
		}
	}
	for _, bad := range []string{``, `[]`, `{"data":{}}`, `{"data":{},"metadata":{}} x`, `{"data":{"a":}`, `{"metadata":{}`} {
		if _, err := decodeRecord([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestAppendString(t *testing.T) {
	got := string(appendString(nil, "a\"b\\c\n\t\x01\xff\u2029é"))
	want := `"a\"b\\c\n\t\u0001\ufffd\u2029é"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestTableDef: the table definition of a control record follows the
// column rules, so that Parquet and CSV objects have the records' columns.
func TestTableDef(t *testing.T) {
	t.Setenv("BINLAKE_HASH_KEY", "k3y")
	p := newPipeline(t, `transforms:
  rules:
    - {action: convert-lowercase, target: column, table: wp_users, column: ID}
    - {action: remove-column, table: wp_users, column: user_pass}
    - {action: hash, table: wp_users, column: user_email, key_env: BINLAKE_HASH_KEY}
    - {action: add-column, table: wp_users, value: src, expression: "schema + '.' + table"}
    - {action: add-column, table: wp_users, value: n, expression: "data.ID"}
`)
	col := func(typ, dt string, null bool) string {
		return `{"type":"` + typ + `","data-type":"` + dt + `","nullable":` + map[bool]string{true: "true", false: "false"}[null] + `}`
	}
	def := `{"columns":{"ID":` + col("bigint(20) unsigned", "bigint", false) + `,"user_login":` + col("varchar(60)", "varchar", false) +
		`,"user_pass":` + col("varchar(255)", "varchar", false) + `,"user_email":` + col("varchar(100)", "varchar", true) +
		`},"column-order":["ID","user_login","user_pass","user_email"],"primary-key":["ID"]}`
	m := strings.Replace(meta("create-table", "wordpress", "wp_users"), `"record-type":"data"`, `"record-type":"control"`, 1)
	in := `{"control":{"statement":"CREATE TABLE wp_users (...)","table-def":` + def + `},"metadata":` + m + `}`
	wantDef := `{"columns":{"id":` + col("bigint(20) unsigned", "bigint", false) + `,"user_login":` + col("varchar(60)", "varchar", false) +
		`,"user_email":` + col("text", "text", true) + `,"src":` + col("text", "text", true) + `,"n":` + col("json", "json", true) +
		`},"column-order":["id","user_login","user_email","src","n"],"primary-key":["id"]}`
	want := `{"control":{"statement":"CREATE TABLE wp_users (...)","table-def":` + wantDef + `},"metadata":` + m + `}`
	out := apply(t, p, "wordpress.wp_users", in)[0]
	if out.Result != Ok || string(out.Data) != want {
		t.Errorf("got  %s\nwant %s", out.Data, want)
	}
}
