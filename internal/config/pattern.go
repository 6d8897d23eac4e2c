package config

import "fmt"

// NamePattern matches one name (a schema, table or column name) with the
// DMS wildcards of selection rules: % is any run of characters, _ is one
// character, [_] is a literal underscore, [ab] is a or b, [a-d] a range.
// Matching is case-sensitive. The zero NamePattern matches every name.
type NamePattern struct {
	toks []token
	set  bool
}

// CompileNamePattern parses a single-name pattern; "" means "%".
func CompileNamePattern(p string) (NamePattern, error) {
	if p == "" || p == "%" {
		return NamePattern{}, nil
	}
	toks, err := compileTokens([]rune(p), p)
	if err != nil {
		return NamePattern{}, err
	}
	return NamePattern{toks: toks, set: true}, nil
}

// MustCompileNamePattern is CompileNamePattern for validated patterns; it
// panics on an invalid one.
func MustCompileNamePattern(p string) NamePattern {
	np, err := CompileNamePattern(p)
	if err != nil {
		panic(fmt.Sprintf("config: unvalidated pattern: %v", err))
	}
	return np
}

// Match reports whether name matches.
func (p NamePattern) Match(name string) bool {
	return !p.set || matchTokens(p.toks, []rune(name))
}
