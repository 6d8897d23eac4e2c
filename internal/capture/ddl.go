package capture

import (
	"regexp"
	"strings"

	"github.com/binlake/binlake/internal/change"
)

// ident matches a possibly backquoted identifier.
const ident = "(?:`(?:[^`]|``)+`|[A-Za-z0-9_$\u0080-\uffff]+)"

var ddlRe = regexp.MustCompile(`(?is)^\s*(?:/\*.*?\*/\s*)*` +
	`(CREATE|ALTER|DROP|RENAME|TRUNCATE)\s+` +
	`(?:OR\s+REPLACE\s+)?(?:ONLINE\s+|IGNORE\s+)*(?:TEMPORARY\s+)?(TABLE\s+|TABLES\s+)?` +
	`(?:IF\s+(?:NOT\s+)?EXISTS\s+)?` +
	`(` + ident + `(?:\s*\.\s*` + ident + `)?)`)

// parseDDL recognises table DDL and returns its control operation and the
// (first) table it names, qualified with the event's default schema.
func parseDDL(query, schema string) (change.Op, TableName, bool) {
	m := ddlRe.FindStringSubmatch(query)
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
	name := m[3]
	t := TableName{Schema: schema}
	if i := splitQualified(name); i >= 0 {
		t.Schema = unquote(strings.TrimSpace(name[:i]))
		t.Table = unquote(strings.TrimSpace(name[i+1:]))
	} else {
		t.Table = unquote(name)
	}
	return op, t, true
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
