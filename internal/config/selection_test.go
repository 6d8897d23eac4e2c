package config

import (
	"regexp"
	"strings"
	"testing"
)

func TestSelected(t *testing.T) {
	type table struct {
		schema, table string
		want          bool
	}
	tests := []struct {
		name   string
		rules  []TableRule
		tables []table
	}{
		{
			name:  "schema wildcard with exclude",
			rules: []TableRule{{Include: "wordpress-db.%"}, {Exclude: "wordpress-db.wp_sessions"}},
			tables: []table{
				{"wordpress-db", "wp_posts", true},
				{"wordpress-db", "wp_users", true},
				{"wordpress-db", "wp_sessions", false},
				{"wordpress-db", "wpXsessions", false}, // _ is any one character
				{"wordpress-db", "wp_sessions2", true},
				{"wordpress_db", "wp_posts", false}, // '-' is literal
				{"other", "wp_posts", false},        // no rule matches
				{"wordpress-db", "", true},          // % matches the empty name
			},
		},
		{
			name:  "underscore wildcard and literal",
			rules: []TableRule{{Include: "db.a_c"}, {Include: "db.x[_]y"}},
			tables: []table{
				{"db", "abc", true},
				{"db", "a_c", true},
				{"db", "ac", false},
				{"db", "abbc", false},
				{"db", "x_y", true},
				{"db", "xzy", false},
				{"db", "x__y", false},
			},
		},
		{
			name:  "classes and ranges",
			rules: []TableRule{{Include: "db.t[a-c]"}, {Include: "db.u[xz]"}, {Include: "db.v[0-9a-f-]"}},
			tables: []table{
				{"db", "ta", true},
				{"db", "tb", true},
				{"db", "tc", true},
				{"db", "td", false},
				{"db", "tA", false},
				{"db", "t", false},
				{"db", "tab", false},
				{"db", "ux", true},
				{"db", "uz", true},
				{"db", "uy", false},
				{"db", "v7", true},
				{"db", "ve", true},
				{"db", "v-", true}, // a trailing - in a class is literal
				{"db", "vg", false},
			},
		},
		{
			name:  "case-sensitive",
			rules: []TableRule{{Include: "Shop.Orders"}},
			tables: []table{
				{"Shop", "Orders", true},
				{"shop", "Orders", false},
				{"Shop", "orders", false},
			},
		},
		{
			name:  "last matching rule wins",
			rules: []TableRule{{Include: "db.%"}, {Exclude: "db.tmp%"}, {Include: "db.tmp_keep"}},
			tables: []table{
				{"db", "users", true},
				{"db", "tmp1", false},
				{"db", "tmp_keep", true},
			},
		},
		{
			name:  "an exclude before the include it targets has no effect",
			rules: []TableRule{{Exclude: "db.secret"}, {Include: "db.%"}},
			tables: []table{
				{"db", "secret", true},
				{"db", "public", true},
			},
		},
		{
			name:  "wildcard schema, dots and percent",
			rules: []TableRule{{Include: "%.%"}, {Exclude: "%.%[_]old"}, {Exclude: "mysql.%"}},
			tables: []table{
				{"a", "b", true},
				{"a", "users_old", false},
				{"a", "usersXold", true},
				{"mysql", "user", false},
				{"my.db", "t", true}, // names are matched whole, so a '.' in one is fine
			},
		},
		{
			name:  "dot inside brackets does not split",
			rules: []TableRule{{Include: "a[.]b.c"}},
			tables: []table{
				{"a.b", "c", true},
				{"axb", "c", false},
			},
		},
		{
			name:  "no rules, invalid rules",
			rules: []TableRule{{Include: "nodot"}, {Include: "db.[abc"}},
			tables: []table{
				{"db", "a", false},
				{"nodot", "", false},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Tables: tc.rules}
			for _, tb := range tc.tables {
				if got := c.Selected(tb.schema, tb.table); got != tb.want {
					t.Errorf("Selected(%q, %q) = %v, want %v", tb.schema, tb.table, got, tb.want)
				}
			}
		})
	}
}

func TestCompilePatternErrors(t *testing.T) {
	tests := map[string]string{
		"":          "pattern is empty",
		"wordpress": `"wordpress" has no '.'`,
		"[a.b]":     `has no '.'`,
		".t":        "empty schema name",
		"db.":       "empty table name",
		"db.[ab":    "'[' without a closing ']'",
		"db.a]":     "']' without an opening '['",
		"db.[]":     "empty []",
		"db.[c-a]":  "backwards; write [a-c]",
	}
	for p, want := range tests {
		_, err := compilePattern(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("compilePattern(%q) = %v, want %q", p, err, want)
		}
	}
	for _, p := range []string{"db.%", "%.%", "a.b.c", "db.[.]", "db.[%]", "db.[a-]", "db.[-a]", "ünï.cödé%"} {
		if _, err := compilePattern(p); err != nil {
			t.Errorf("compilePattern(%q): %v", p, err)
		}
	}
}

// FuzzMatch checks the matcher against the same pattern as a regexp.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"%", ""}, {"a%b%c", "aXbYc"}, {"%a%a%", "banana"}, {"_%_", "ab"},
		{"[a-c]%[_]", "b_"}, {"%%x", "xx"}, {"a_c", "a_c"}, {"ü%", "üb"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		toks, err := compileTokens([]rune(p), p)
		if err != nil {
			return
		}
		re := regexp.MustCompile("^" + tokensRegexp(toks) + "$")
		if got, want := matchTokens(toks, []rune(s)), re.MatchString(s); got != want {
			t.Errorf("pattern %q on %q: matchTokens = %v, regexp = %v", p, s, got, want)
		}
	})
}

func tokensRegexp(toks []token) string {
	var b strings.Builder
	b.WriteString("(?s)")
	for _, tk := range toks {
		switch tk.kind {
		case tokLiteral:
			b.WriteString(regexp.QuoteMeta(string(tk.r)))
		case tokOne:
			b.WriteString(".")
		case tokAny:
			b.WriteString(".*")
		case tokClass:
			b.WriteString("[")
			for _, rg := range tk.ranges {
				b.WriteString(regexp.QuoteMeta(string(rg[0])) + "-" + regexp.QuoteMeta(string(rg[1])))
			}
			b.WriteString("]")
		}
	}
	return b.String()
}
