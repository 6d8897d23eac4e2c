package config

import "fmt"

// Selected reports whether the table schema.table is selected by the
// Tables rules (or by the selection rules of table_mappings, when it has
// some). Rules apply in order and the last rule whose pattern
// matches decides: an include selects the table, an exclude drops it; a
// table no rule matches is not selected. So
//
//	tables:
//	  - include: "shop.%"
//	  - exclude: "shop.tmp[_]%"
//
// selects every table of schema shop except those starting with tmp_.
// Matching is case-sensitive and uses the DMS wildcards: % is any run of
// characters, _ is one character, [_] is a literal underscore, [ab] is a or
// b and [a-d] is a range. A rule with an invalid pattern (see Validate)
// matches nothing.
//
// Selected compiles the patterns on each call; callers deciding per event
// should cache the answer per table.
func (c *Config) Selected(schema, table string) bool {
	selected := false
	for _, r := range c.selectionRules() {
		p, include := r.Include, true
		if p == "" {
			p, include = r.Exclude, false
		}
		pat, err := compilePattern(p)
		if err != nil {
			continue
		}
		if pat.match(schema, table) {
			selected = include
		}
	}
	return selected
}

// pattern is a compiled "schema.table" selection pattern.
type pattern struct {
	schema, table []token
}

type tokenKind uint8

const (
	tokLiteral tokenKind = iota // one given rune
	tokOne                      // _: any one rune
	tokAny                      // %: any run of runes
	tokClass                    // [...]: one rune from a set
)

type token struct {
	kind   tokenKind
	r      rune
	ranges [][2]rune // tokClass: inclusive ranges
}

func (t token) matches(r rune) bool {
	switch t.kind {
	case tokLiteral:
		return t.r == r
	case tokOne:
		return true
	case tokClass:
		for _, rg := range t.ranges {
			if rg[0] <= r && r <= rg[1] {
				return true
			}
		}
	}
	return false
}

// compilePattern parses a "schema.table" pattern. It splits at the first '.'
// outside brackets, so "db.[.]x" is table "[.]x" of schema "db".
func compilePattern(p string) (*pattern, error) {
	if p == "" {
		return nil, fmt.Errorf("pattern is empty; write \"schema.table\", e.g. \"mydb.%%\"")
	}
	rs := []rune(p)
	dot, inClass := -1, false
	for i, r := range rs {
		switch {
		case r == '[':
			inClass = true
		case r == ']':
			inClass = false
		case r == '.' && !inClass && dot < 0:
			dot = i
		}
	}
	if dot < 0 {
		return nil, fmt.Errorf("%q has no '.'; write \"schema.table\", e.g. \"%s.%%\" for every table of schema %s", p, p, p)
	}
	schema, table := rs[:dot], rs[dot+1:]
	if len(schema) == 0 {
		return nil, fmt.Errorf("%q has an empty schema name; write \"schema.table\", or \"%%.%s\" for any schema", p, string(table))
	}
	if len(table) == 0 {
		return nil, fmt.Errorf("%q has an empty table name; write \"%s.%%\" for every table", p, string(schema))
	}
	var err error
	pat := &pattern{}
	if pat.schema, err = compileTokens(schema, p); err != nil {
		return nil, err
	}
	if pat.table, err = compileTokens(table, p); err != nil {
		return nil, err
	}
	return pat, nil
}

func compileTokens(rs []rune, p string) ([]token, error) {
	var toks []token
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '%':
			if len(toks) == 0 || toks[len(toks)-1].kind != tokAny {
				toks = append(toks, token{kind: tokAny})
			}
		case '_':
			toks = append(toks, token{kind: tokOne})
		case '[':
			end := -1
			for j := i + 1; j < len(rs); j++ {
				if rs[j] == ']' {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, fmt.Errorf("%q has a '[' without a closing ']' ([_] is a literal underscore, [ab] is a or b)", p)
			}
			set := rs[i+1 : end]
			if len(set) == 0 {
				return nil, fmt.Errorf("%q has an empty []; put the characters to match inside, e.g. [_]", p)
			}
			t := token{kind: tokClass}
			for k := 0; k < len(set); k++ {
				if k+2 < len(set) && set[k+1] == '-' {
					lo, hi := set[k], set[k+2]
					if lo > hi {
						return nil, fmt.Errorf("%q has the range [%c-%c], which is backwards; write [%c-%c]", p, lo, hi, hi, lo)
					}
					t.ranges = append(t.ranges, [2]rune{lo, hi})
					k += 2
					continue
				}
				t.ranges = append(t.ranges, [2]rune{set[k], set[k]})
			}
			toks = append(toks, t)
			i = end
		case ']':
			return nil, fmt.Errorf("%q has a ']' without an opening '['", p)
		default:
			toks = append(toks, token{kind: tokLiteral, r: rs[i]})
		}
	}
	return toks, nil
}

func (p *pattern) match(schema, table string) bool {
	return matchTokens(p.schema, []rune(schema)) && matchTokens(p.table, []rune(table))
}

// matchTokens matches s against toks. Every token but % consumes exactly one
// rune, so backtracking to the last % seen is enough.
func matchTokens(toks []token, s []rune) bool {
	ti, si := 0, 0
	star, starS := -1, 0
	for si < len(s) {
		switch {
		case ti < len(toks) && toks[ti].kind == tokAny:
			star, starS = ti, si
			ti++
		case ti < len(toks) && toks[ti].matches(s[si]):
			ti++
			si++
		case star >= 0:
			starS++
			ti, si = star+1, starS
		default:
			return false
		}
	}
	for ti < len(toks) && toks[ti].kind == tokAny {
		ti++
	}
	return ti == len(toks)
}
