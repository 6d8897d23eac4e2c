// Package keytemplate renders the directory part of object keys from
// delivery.prefix: placeholders {schema}, {table}, {yyyy}, {MM}, {dd}, {HH},
// {mm}, {task}, {partition}, and Firehose's !{timestamp:<pattern>} form.
package keytemplate

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Values fill a template.
type Values struct {
	Schema, Table, Task string
	Partition           int
	Time                time.Time // rendered in UTC
}

// Template is a parsed key template.
type Template struct {
	parts []part
	root  string // the literal text before the first placeholder
}

type part struct {
	lit  string
	kind string // "" for a literal
	pat  string // timestamp pattern
}

var names = map[string]bool{"schema": true, "table": true, "yyyy": true, "MM": true, "dd": true, "HH": true, "mm": true, "task": true, "partition": true}

// Layouts a prefix without placeholders is completed with.
const (
	TimeLayout = "{schema}/{table}/{yyyy}/{MM}/{dd}/{HH}/"
	HiveLayout = "{schema}/{table}/year={yyyy}/month={MM}/day={dd}/hour={HH}/"
)

// Parse parses s. A template without any placeholder is a plain prefix and
// gets layout appended (TimeLayout or HiveLayout).
func Parse(s, layout string) (*Template, error) {
	if !strings.Contains(s, "{") {
		s += layout
	}
	t := &Template{}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{!")
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if rest[i] == '!' && !strings.HasPrefix(rest[i:], "!{") {
			t.parts = append(t.parts, part{lit: rest[:i+1]})
			rest = rest[i+1:]
			continue
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		rest = rest[i:]
		if strings.HasPrefix(rest, "!{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("%q: unclosed !{ placeholder", s)
			}
			inner := rest[2:end]
			pat, ok := strings.CutPrefix(inner, "timestamp:")
			if !ok {
				return nil, fmt.Errorf("%q: unknown placeholder !{%s} (supported: !{timestamp:yyyy/MM/dd} with yyyy, MM, dd, HH, mm)", s, inner)
			}
			if err := checkPattern(pat); err != nil {
				return nil, fmt.Errorf("%q: %w", s, err)
			}
			t.parts = append(t.parts, part{kind: "timestamp", pat: pat})
			rest = rest[end+1:]
			continue
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("%q: unclosed { placeholder", s)
		}
		name := rest[1:end]
		if !names[name] {
			return nil, fmt.Errorf("%q: unknown placeholder {%s} (supported: {schema} {table} {yyyy} {MM} {dd} {HH} {mm} {task} {partition})", s, name)
		}
		t.parts = append(t.parts, part{kind: name})
		rest = rest[end+1:]
	}
	for _, p := range t.parts {
		if p.kind != "" {
			break
		}
		t.root += p.lit
	}
	if strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("%q: must not start with '/'", s)
	}
	return t, nil
}

// checkPattern accepts the DateTimeFormatter subset Firehose users write.
func checkPattern(p string) error {
	rest := p
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "yyyy"):
			rest = rest[4:]
		case strings.HasPrefix(rest, "MM"), strings.HasPrefix(rest, "dd"), strings.HasPrefix(rest, "HH"), strings.HasPrefix(rest, "mm"):
			rest = rest[2:]
		case strings.ContainsRune("/-_=.", rune(rest[0])):
			rest = rest[1:]
		default:
			return fmt.Errorf("timestamp pattern %q: only yyyy, MM, dd, HH, mm and / - _ = . are supported", p)
		}
	}
	return nil
}

// Root is the literal text before the first placeholder: every key the
// template renders starts with it.
func (t *Template) Root() string { return t.root }

// Render renders the template.
func (t *Template) Render(v Values) string {
	var b strings.Builder
	tm := v.Time.UTC()
	for _, p := range t.parts {
		switch p.kind {
		case "":
			b.WriteString(p.lit)
		case "schema":
			b.WriteString(v.Schema)
		case "table":
			b.WriteString(v.Table)
		case "task":
			b.WriteString(v.Task)
		case "partition":
			fmt.Fprintf(&b, "%04d", v.Partition)
		case "timestamp":
			b.WriteString(formatPattern(p.pat, tm))
		default:
			b.WriteString(formatPattern(p.kind, tm))
		}
	}
	return b.String()
}

func formatPattern(p string, tm time.Time) string {
	var b strings.Builder
	rest := p
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "yyyy"):
			b.WriteString(pad(tm.Year(), 4))
			rest = rest[4:]
		case strings.HasPrefix(rest, "MM"):
			b.WriteString(pad(int(tm.Month()), 2))
			rest = rest[2:]
		case strings.HasPrefix(rest, "dd"):
			b.WriteString(pad(tm.Day(), 2))
			rest = rest[2:]
		case strings.HasPrefix(rest, "HH"):
			b.WriteString(pad(tm.Hour(), 2))
			rest = rest[2:]
		case strings.HasPrefix(rest, "mm"):
			b.WriteString(pad(tm.Minute(), 2))
			rest = rest[2:]
		default:
			b.WriteByte(rest[0])
			rest = rest[1:]
		}
	}
	return b.String()
}

func pad(n, width int) string {
	s := strconv.Itoa(n)
	for len(s) < width {
		s = "0" + s
	}
	return s
}
