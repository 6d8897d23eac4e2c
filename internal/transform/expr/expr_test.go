package expr

import (
	"strings"
	"testing"
)

func vars(t *testing.T, data string) *Vars {
	t.Helper()
	d, err := FromJSON([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return &Vars{Operation: "update", Schema: "wordpress", Table: "wp_posts", Data: d.(map[string]any),
		Metadata: map[string]any{"commit-timestamp": "2026-11-24T10:50:50.000000Z"}}
}

const row = `{"ID":18446744073709551615,"n":7,"f":1.5,"price":"12.340","post_status":"publish","note":null}`

func TestBool(t *testing.T) {
	tests := []struct {
		src  string
		want bool
		err  string
	}{
		{src: "operation != 'delete' && data.post_status == 'publish'", want: true},
		{src: "data.ID == 18446744073709551615u && data.ID > 5 && data.n < 7.5", want: true},
		{src: "double(data.price) > 9.99 && data.price == '12.340'", want: true},
		{src: "before == null && data.note == null", want: true},
		{src: "data.?missing.orValue('x') == 'x' && !has(data.missing)", want: true},
		{src: "data.post_status.upperAscii() == 'PUBLISH' && metadata['commit-timestamp'].startsWith('2026-')", want: true},
		{src: "data.missing == 1", err: "no such key: missing"},
		{src: "data.f", err: "not a bool"},
	}
	for _, tt := range tests {
		p, err := Compile(tt.src, Bool)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		got, err := p.Bool(vars(t, row))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.src, got, err, tt.want)
		}
	}
}

func TestJSON(t *testing.T) {
	tests := []struct{ src, want, output string }{
		{"data.ID", "18446744073709551615", "dyn"},
		{"schema + '.' + table", `"wordpress.wp_posts"`, "string"},
		{"1 + 2", "3", "int"},
		{"2u", "2", "uint"},
		{"0.5 * 3.0", "1.5", "double"},
		{"null", "null", "null"},
		{"true", "true", "bool"},
		{"b'hi'", `"aGk="`, "bytes"},
		{"timestamp('2026-11-24T10:50:50Z')", `"2026-11-24T10:50:50Z"`, "timestamp"},
		{"data.price", `"12.340"`, "dyn"},
	}
	for _, tt := range tests {
		p, err := Compile(tt.src, Scalar)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		got, err := p.JSON(vars(t, row))
		if err != nil || string(got) != tt.want || p.Output() != tt.output {
			t.Errorf("%s = %s (%s), %v; want %s (%s)", tt.src, got, p.Output(), err, tt.want, tt.output)
		}
	}
	p, err := Compile("dyn(data)", Scalar)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.JSON(vars(t, row)); err == nil {
		t.Error("a map became a column value")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		src  string
		kind Kind
		want string
	}{
		{"", Bool, "expression is empty"},
		{"dta.x == 1", Bool, "at 1:1: undeclared reference to 'dta'"},
		{"data.x +", Scalar, "at 1:9: Syntax error"},
		{"'a'", Bool, "expression gives string, not a bool"},
		{"[1, 2]", Scalar, "expression gives list(int); a column value must be null"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.src, tt.kind)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line containing %q", tt.src, err, tt.want)
		}
	}
}

func TestNumber(t *testing.T) {
	for s, want := range map[string]any{"7": int64(7), "-7": int64(-7), "18446744073709551615": uint64(18446744073709551615), "18446744073709551616": 18446744073709551616.0, "1.5": 1.5} {
		if got := Number(s); got != want {
			t.Errorf("Number(%s) = %#v, want %#v", s, Number(s), want)
		}
	}
}
