package capture

import (
	"strings"
)

// MariaDB writes DDL the SQL parser (TiDB's, MySQL's dialect) does not
// read. mariaDBDDL rewrites the parts of it that change nothing the schema
// history keeps, or that it can keep another way, into MySQL's dialect:
//
//   - CREATE OR REPLACE TABLE t: CREATE TABLE t, which the history applies
//     as a replacement anyway;
//   - ALTER ONLINE TABLE: ALTER TABLE;
//   - the column attribute INVISIBLE (the column is in every row event all
//     the same);
//   - the types INET6, INET4 and UUID: BINARY(16), BINARY(4), BINARY(16),
//     with the column's name in types so that its values are formatted as
//     the type's (the binlog carries them as those binary strings);
//   - the spatial types (GEOMETRY, POINT, ..., MySQL's and MariaDB's
//     alike), which the parser does not know: LONGBLOB, with the type in
//     types (the binlog carries them as GEOMETRY, a blob), their SRID n or
//     REF_SYSTEM_ID=n dropped, and SPATIAL INDEX/KEY made a plain index.
//
// It works on tokens: text in quotes, quoted identifiers and comments are
// never changed. A type is recognised only right after a column name in a
// column definition (CREATE TABLE's list, ADD, MODIFY, CHANGE). What it
// leaves alone still fails to parse, and the table goes to "Table error":
// system-versioned tables (their row_start and row_end columns are in the
// row events) and compressed columns (their own binlog types).
func mariaDBDDL(q string) (string, map[string]string) {
	toks := sqlTokens(q)
	var types map[string]string
	word := func(i int) string {
		if i < 0 || i >= len(toks) || toks[i].kind != tokWord {
			return ""
		}
		return strings.ToUpper(toks[i].text)
	}
	drop := func(i int) { toks[i].text, toks[i].kind = "", tokSpace }
	// next returns the index of the first token after i that is not space.
	next := func(i int) int {
		for i++; i < len(toks) && toks[i].kind == tokSpace; i++ {
		}
		return i
	}
	// name reports whether token i is an identifier: a word that is not
	// one of the keywords a column definition puts where a name goes, or
	// a quoted identifier.
	name := func(i int) bool {
		if i >= len(toks) {
			return false
		}
		if toks[i].kind == tokQuotedIdent {
			return true
		}
		switch word(i) {
		case "", "COLUMN", "IF", "NOT", "EXISTS", "ADD", "MODIFY", "CHANGE", "CONSTRAINT", "PRIMARY", "UNIQUE", "KEY", "INDEX", "FOREIGN", "CHECK", "FULLTEXT", "SPATIAL", "PERIOD":
			return false
		}
		return true
	}
	// dropSRID drops a spatial column's reference system from the rest of
	// its definition (the type at i up to the next "," or ")" outside
	// parentheses): MySQL's SRID n, MariaDB's REF_SYSTEM_ID=n. It says
	// nothing about the values' binlog form.
	dropSRID := func(i int) {
		depth := 0
		for j := next(i); j < len(toks); j = next(j) {
			switch toks[j].text {
			case "(":
				depth++
				continue
			case ")", ",":
				if depth == 0 {
					return
				}
				if toks[j].text == ")" {
					depth--
				}
				continue
			}
			switch word(j) {
			case "SRID":
				if k := next(j); k < len(toks) && isNumber(toks[k]) {
					drop(j)
					drop(k)
				}
			case "REF_SYSTEM_ID":
				k := next(j)
				if k < len(toks) && toks[k].text == "=" {
					k = next(k)
				}
				if k < len(toks) && isNumber(toks[k]) {
					for ; j <= k; j++ {
						drop(j)
					}
					j = k
				}
			}
		}
	}
	// typeAt rewrites the type at i when it is one binlake reads another
	// way (MariaDB's own, the spatial ones), for the column named by token
	// col.
	typeAt := func(i, col int) {
		var bin, typ string
		switch w := word(i); w {
		case "INET6", "UUID":
			bin = "BINARY(16)"
		case "INET4":
			bin = "BINARY(4)"
		case "GEOMETRY", "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON", "GEOMETRYCOLLECTION", "GEOMCOLLECTION":
			bin, typ = "LONGBLOB", "geometrycollection"
			if w != "GEOMCOLLECTION" {
				typ = strings.ToLower(w)
			}
			dropSRID(i)
		default:
			return
		}
		if typ == "" {
			typ = strings.ToLower(word(i))
		}
		if types == nil {
			types = map[string]string{}
		}
		types[strings.ToLower(unquoteIdent(toks[col].text))] = typ
		toks[i].text = bin
	}
	// afterName skips IF [NOT] EXISTS and [COLUMN] after ADD, MODIFY or
	// CHANGE, returning the index of the first name.
	afterName := func(i int) int {
		j := next(i)
		if word(j) == "COLUMN" {
			j = next(j)
		}
		if word(j) == "IF" {
			j = next(j)
			if word(j) == "NOT" {
				j = next(j)
			}
			if word(j) == "EXISTS" {
				j = next(j)
			}
		}
		return j
	}
	depth := 0
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.kind {
		case tokPunct:
			switch t.text {
			case "(":
				depth++
				if depth == 1 {
					// CREATE TABLE's list: a column definition starts here.
					if j := next(i); name(j) {
						typeAt(next(j), j)
					}
				}
			case ")":
				depth--
			case ",":
				if depth == 1 {
					if j := next(i); name(j) {
						typeAt(next(j), j)
					}
				}
			}
			continue
		case tokWord:
		default:
			continue
		}
		switch w := strings.ToUpper(t.text); w {
		case "OR":
			// CREATE OR REPLACE
			if j := next(i); word(j) == "REPLACE" && i > 0 && word(prevWord(toks, i)) == "CREATE" {
				drop(i)
				drop(j)
			}
		case "ONLINE":
			if j := next(i); word(j) == "TABLE" && word(prevWord(toks, i)) == "ALTER" {
				drop(i)
			}
		case "SPATIAL":
			// SPATIAL INDEX/KEY: an index, which changes no column.
			if w := word(next(i)); w == "INDEX" || w == "KEY" {
				drop(i)
			}
		case "INVISIBLE":
			if p := prevToken(toks, i); p < 0 || toks[p].text != "=" {
				drop(i)
			}
		case "ADD", "MODIFY":
			if depth == 0 {
				if j := afterName(i); name(j) {
					typeAt(next(j), j)
				}
			}
		case "CHANGE":
			if depth == 0 {
				if j := afterName(i); name(j) {
					if k := next(j); name(k) {
						typeAt(next(k), k)
					}
				}
			}
		}
	}
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(t.text)
	}
	return b.String(), types
}

const (
	tokSpace = iota // white space and comments
	tokWord
	tokQuotedIdent // `name`
	tokString      // 'text' or "text"
	tokPunct
)

type sqlToken struct {
	kind int
	text string
}

// sqlTokens splits q into tokens whose texts join back into q.
func sqlTokens(q string) []sqlToken {
	var out []sqlToken
	for i := 0; i < len(q); {
		c := q[i]
		start := i
		kind := tokPunct
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			for i < len(q) && strings.IndexByte(" \t\n\r", q[i]) >= 0 {
				i++
			}
			kind = tokSpace
		case c == '#' || (c == '-' && strings.HasPrefix(q[i:], "-- ")):
			for i < len(q) && q[i] != '\n' {
				i++
			}
			kind = tokSpace
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			if end := strings.Index(q[i+2:], "*/"); end >= 0 {
				i += end + 4
			} else {
				i = len(q)
			}
			kind = tokSpace
		case c == '`' || c == '\'' || c == '"':
			i++
			for i < len(q) {
				if q[i] == '\\' && c != '`' {
					i += 2
					continue
				}
				if q[i] == c {
					if i+1 < len(q) && q[i+1] == c { // a doubled quote
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
			i = min(i, len(q))
			kind = tokString
			if c == '`' {
				kind = tokQuotedIdent
			}
		case c == '_' || c == '$' || c >= 0x80 || ('a' <= c|0x20 && c|0x20 <= 'z') || ('0' <= c && c <= '9'):
			for i < len(q) {
				d := q[i]
				if d == '_' || d == '$' || d >= 0x80 || ('a' <= d|0x20 && d|0x20 <= 'z') || ('0' <= d && d <= '9') {
					i++
					continue
				}
				break
			}
			kind = tokWord
		default:
			i++
		}
		out = append(out, sqlToken{kind: kind, text: q[start:i]})
	}
	return out
}

// prevToken is the index of the last token before i that is not space.
func prevToken(toks []sqlToken, i int) int {
	for i--; i >= 0 && toks[i].kind == tokSpace; i-- {
	}
	return i
}

// prevWord is prevToken, for use with word lookups (-1 when none).
func prevWord(toks []sqlToken, i int) int { return prevToken(toks, i) }

// isNumber tells whether t is an unsigned integer.
func isNumber(t sqlToken) bool {
	if t.kind != tokWord || t.text == "" {
		return false
	}
	for _, c := range t.text {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// unquoteIdent removes an identifier's backticks.
func unquoteIdent(s string) string {
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}
