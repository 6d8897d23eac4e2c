package capture

import (
	"regexp"
	"strings"

	"github.com/binlake/binlake/internal/change"
)

// ident matches a possibly backquoted identifier.
const ident = "(?:`(?:[^`]|``)+`|[A-Za-z0-9_$\u0080-\uffff]+)"

var ddlRe = regexp.MustCompile(`(?is)^\s*` +
	`(CREATE|ALTER|DROP|RENAME|TRUNCATE)\s+` +
	`(?:OR\s+REPLACE\s+)?(?:ONLINE\s+|IGNORE\s+)*(?:TEMPORARY\s+)?(TABLE\s+|TABLES\s+)?` +
	`(?:IF\s+(?:NOT\s+)?EXISTS\s+)?` +
	`(` + ident + `(?:\s*\.\s*` + ident + `)?)`)

// dmlRe recognises a data change written as a statement (binlog_format
// STATEMENT or MIXED) and the table it changes first.
var dmlRe = regexp.MustCompile(`(?is)^\s*(?:` +
	`(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?` +
	`|UPDATE\s+(?:(?:LOW_PRIORITY|IGNORE)\s+)*` +
	`|DELETE\s+(?:(?:LOW_PRIORITY|QUICK|IGNORE)\s+)*FROM\s+` +
	`|LOAD\s+DATA\s+.*?\s+INTO\s+TABLE\s+` +
	`)(` + ident + `(?:\s*\.\s*` + ident + `)?)`)

// parseDML recognises a data change written as a statement and returns the
// table it changes (the first one named, for a multi-table statement).
func parseDML(query, schema string) (TableName, bool) {
	m := dmlRe.FindStringSubmatch(normalizeDDL(query))
	if m == nil {
		return TableName{}, false
	}
	return qualified(m[1], schema), true
}

// qualified reads a table name, "t" or "db.t", quoted or not.
func qualified(name, schema string) TableName {
	t := TableName{Schema: schema}
	if i := splitQualified(name); i >= 0 {
		t.Schema = unquote(strings.TrimSpace(name[:i]))
		t.Table = unquote(strings.TrimSpace(name[i+1:]))
	} else {
		t.Table = unquote(name)
	}
	return t
}

// parseDDL recognises table DDL and returns its control operation and the
// (first) table it names, qualified with the event's default schema.
func parseDDL(query, schema string) (change.Op, TableName, bool) {
	m := ddlRe.FindStringSubmatch(normalizeDDL(query))
	if m == nil {
		return "", TableName{}, false
	}
	verb := strings.ToUpper(m[1])
	isTable := strings.TrimSpace(m[2]) != ""
	if !isTable && verb != "TRUNCATE" {
		return "", TableName{}, false
	}
	var op change.Op
	switch verb {
	case "CREATE":
		op = change.OpCreateTable
	case "ALTER":
		op = change.OpChangeColumns
	case "DROP":
		op = change.OpDropTable
	case "RENAME":
		op = change.OpRenameTable
	case "TRUNCATE":
		op = change.OpTruncateTable
	}
	return op, qualified(m[3], schema), true
}

// splitQualified returns the index of the dot separating schema and table,
// outside backquotes, or -1.
func splitQualified(s string) int {
	in := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '`':
			in = !in
		case '.':
			if !in {
				return i
			}
		}
	}
	return -1
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}

// normalizeDDL prepares a statement for ddlRe, as the server reads it:
// comments become a space (`/*! ... */` and MariaDB's `/*M! ... */`, which
// the server executes, become their content), and a backquoted name gets a
// space before it, so that "TRUNCATE TABLE`t`" reads like "TRUNCATE TABLE
// `t`". Quoted strings and names are kept as they are. Only the head of a
// statement names its table, so the first 4 KiB are enough.
func normalizeDDL(q string) string {
	if len(q) > 4096 {
		q = q[:4096]
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				if q[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if c == '`' {
				b.WriteByte(' ')
			}
			end := min(j+1, len(q))
			b.WriteString(q[i:end])
			i = end
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			body := ""
			if end < 0 {
				body, i = q[i+2:], len(q)
			} else {
				body, i = q[i+2:i+2+end], i+2+end+2
			}
			if rest, ok := strings.CutPrefix(body, "M!"); ok {
				body = "!" + rest
			}
			if rest, ok := strings.CutPrefix(body, "!"); ok {
				b.WriteByte(' ')
				b.WriteString(normalizeDDL(strings.TrimLeft(rest, "0123456789")))
			}
			b.WriteByte(' ')
		case c == '#' || c == '-' && strings.HasPrefix(q[i:], "--") && (i+2 == len(q) || q[i+2] <= ' '):
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				i = len(q)
			} else {
				i += end + 1
			}
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}
