package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseDocument parses data as exactly one YAML document holding a mapping
// and returns that mapping.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FieldError{Msg: "config is empty (it needs at least task, source, tables and target; see docs/config.md)"}
		}
		return nil, syntaxError(err, data)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &FieldError{Msg: fmt.Sprintf("line %d: a second YAML document starts here; a config holds exactly one (remove the '---' separator and what follows)", secondDocLine(data, &doc, &next))}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(err, data)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, &FieldError{Msg: "config is empty (it needs at least task, source, tables and target; see docs/config.md)"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &FieldError{Msg: fmt.Sprintf("line %d: the config must be a mapping of keys (task: ..., source: ...), got %s", root.Line, kindName(root))}
	}
	return root, nil
}

// secondDocLine finds the '---' that starts the document after first,
// falling back to where yaml.v3 says second starts.
func secondDocLine(data []byte, first, second *yaml.Node) int {
	after := first.Line
	if len(first.Content) > 0 {
		after = first.Content[0].Line
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if i+1 > after && bytes.HasPrefix(line, []byte("---")) && (len(line) == 3 || strings.ContainsRune(" \t\r", rune(line[3]))) {
			return i + 1
		}
	}
	if len(second.Content) > 0 {
		return second.Content[0].Line
	}
	return second.Line
}

func syntaxError(err error, data []byte) error {
	msg := "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimLeft(line, " "), []byte("\t")) {
			msg += " (indent with spaces; YAML does not allow tabs)"
			break
		}
	}
	return &FieldError{Msg: msg}
}

// decoder decodes a YAML node tree into the Config structs, strictly: every
// mapping key must name a field. Unlike yaml.v3's KnownFields it knows each
// value's key path, suggests the key that was probably meant, expands
// environment variables in values, and keeps going after an error so all
// problems are reported together.
type decoder struct {
	lookupEnv  func(string) (string, bool)
	errs       []*FieldError
	failedKeys []string
	merging    map[*yaml.Node]bool // mappings being merged, to stop cycles
	merges     int                 // merges done, to stop exponential aliases
	// literal holds the paths of strings written as they are, without
	// ${...}: secrets among them are warned about.
	literal map[string]bool
}

// maxMerges bounds the merges in one config: aliases to mappings that
// merge aliases can otherwise multiply work exponentially.
const maxMerges = 1000

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) errorf(path string, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	d.failedKeys = append(d.failedKeys, path)
}

// failed reports whether path, a key containing it or a key inside it
// failed to decode.
func (d *decoder) failed(path string) bool {
	for _, p := range d.failedKeys {
		if p == "" {
			continue // a problem with the whole file hides nothing
		}
		if path == p || within(path, p) || within(p, path) {
			return true
		}
	}
	return false
}

// within reports whether path is a key inside parent.
func within(path, parent string) bool {
	return strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}

// decode decodes n into the value out points to. A null node leaves the
// value as it is, so defaults set beforehand survive "key:" with no value.
func (d *decoder) decode(n *yaml.Node, out any, path string) {
	d.decodeValue(n, reflect.ValueOf(out).Elem(), path)
}

func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode {
		x, expanded, ok := d.expand(n, path)
		switch {
		case !ok:
			return
		case expanded && x.Value == "":
			return // as if the key had no value
		case expanded && v.Kind() == reflect.String:
			v.SetString(x.Value) // even "null" or "~": it is the variable's text
			return
		case !expanded && n.ShortTag() == "!!null":
			return
		case !expanded && v.Kind() == reflect.String && n.Value != "":
			if d.literal == nil {
				d.literal = map[string]bool{}
			}
			d.literal[path] = true
		}
		n = x
	}
	if v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.errorf(path, "line %d: %v", n.Line, err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer: // an optional value: nil when the key is absent or null
		p := reflect.New(v.Type().Elem())
		d.decodeValue(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(path, "line %d: expected a list (lines starting with '- '), got %s", n.Line, kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decodeValue(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(path, "line %d: expected a mapping of keys (%s), got %s", n.Line, strings.Join(yamlKeys(v.Type()), ", "), kindName(n))
		return
	}
	// Merge keys (<<: *anchor) first, so the mapping's own keys win.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.decodeMerge(n.Content[i+1], v, path)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		keyPath := joinPath(path, key)
		if k.Kind != yaml.ScalarNode {
			d.errorf(path, "line %d: keys must be plain names, got %s", k.Line, kindName(k))
			continue
		}
		if key == "<<" && k.ShortTag() == "!!merge" {
			continue
		}
		if line, dup := seen[key]; dup {
			d.errorf(keyPath, "line %d: key '%s' is already set at line %d; remove one of them", k.Line, key, line)
			continue
		}
		seen[key] = k.Line
		f, ok := fieldByKey(v.Type(), key)
		if !ok {
			hint, meant := suggestKey(v.Type(), path, key)
			d.errorf(keyPath, "unknown key '%s' at line %d%s", key, k.Line, hint)
			// The key meant was probably given, so do not report it missing.
			d.failedKeys = append(d.failedKeys, meant...)
			continue
		}
		d.decodeValue(val, v.FieldByIndex(f.Index), keyPath)
	}
}

// decodeMerge decodes the value of a merge key: a mapping, or a list of
// mappings of which earlier ones win.
func (d *decoder) decodeMerge(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for i := len(n.Content) - 1; i >= 0; i-- {
			d.decodeMerge(n.Content[i], v, path)
		}
		return
	}
	if d.merges++; d.merges > maxMerges {
		if d.merges == maxMerges+1 {
			d.errorf(path, "line %d: more than %d merges (<<); the aliases nest too deeply", n.Line, maxMerges)
		}
		return
	}
	if d.merging[n] {
		d.errorf(path, "line %d: merge key (<<) refers to a mapping that contains it", n.Line)
		return
	}
	if d.merging == nil {
		d.merging = map[*yaml.Node]bool{}
	}
	d.merging[n] = true
	defer delete(d.merging, n)
	d.decodeStruct(n, v, path)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	var want string
	switch v.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int64:
		want = "an integer"
	case reflect.Uint32:
		want = "an integer from 0 to 4294967295"
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), path))
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(path, "line %d: expected %s, got %s", n.Line, want, kindName(n))
		return
	}
	p := reflect.New(v.Type())
	if err := n.Decode(p.Interface()); err != nil {
		hint := ""
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			hint = " (remove the quotes)"
		}
		d.errorf(path, "line %d: expected %s, got %q%s", n.Line, want, n.Value, hint)
		return
	}
	v.Set(p.Elem())
}

// expand returns n with ${NAME}, ${NAME:-default} and ${NAME-default}
// replaced from the environment and $$ replaced by $, and whether that
// changed anything. It never modifies n, which an alias may share. The
// expanded text is never parsed as YAML, so a value may hold any
// characters; an expanded scalar, quoted or not, is resolved again by the
// type of its key, so both "port: ${PORT}" and "{port: "${PORT}"}" give an
// integer.
func (d *decoder) expand(n *yaml.Node, path string) (*yaml.Node, bool, bool) {
	if !strings.Contains(n.Value, "$") {
		return n, false, true
	}
	s, err := expandEnv(n.Value, d.lookupEnv)
	if err != nil {
		d.errorf(path, "line %d: %v", n.Line, err)
		return n, false, false
	}
	if s == n.Value {
		return n, false, true
	}
	c := *n
	c.Value, c.Tag, c.Style = s, "", 0
	return &c, true, true
}

// expandEnv expands s; see decoder.expand.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 || i == len(s)-1 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			s = s[i+2:]
			continue
		case '{':
		default:
			b.WriteByte('$')
			s = s[i+1:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated %q: close it with '}' (write $$ for a literal $)", s[i:])
		}
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef, emptyUsesDef := expr, "", false, false
		if j := strings.IndexByte(expr, '-'); j >= 0 {
			name, def, hasDef = expr[:j], expr[j+1:], true
			if strings.HasSuffix(name, ":") {
				name, emptyUsesDef = name[:len(name)-1], true
			}
		}
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid environment reference ${%s}: a name is letters, digits and _, not starting with a digit (write $$ for a literal $)", expr)
		}
		val, ok := lookup(name)
		switch {
		case ok && (val != "" || !emptyUsesDef):
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("environment variable %s is not set (export it or write ${%s:-default})", name, name)
		}
	}
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && yamlKey(f) != "" {
			keys = append(keys, yamlKey(f))
		}
	}
	return keys
}

// suggestKey says which key was probably meant instead of the unknown key:
// the key of t closest to it within edit distance 2, or the same key
// elsewhere in the config (a mis-indented line), or else lists the keys t
// has. It also returns the paths of the keys it suggests.
func suggestKey(t reflect.Type, path, key string) (hint string, meant []string) {
	best, bestDist := "", 3
	for _, k := range yamlKeys(t) {
		// Short keys need a closer match: "tls" is not a typo of "task".
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist && 2*dist < len(k) {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(", did you mean '%s'?", best), []string{joinPath(path, best)}
	}
	for _, p := range allKeyPaths(reflect.TypeFor[Config](), "") {
		if p == key || strings.HasSuffix(p, "."+key) {
			meant = append(meant, p)
		}
	}
	if len(meant) > 0 {
		return fmt.Sprintf("; '%s' belongs at %s (check the indentation)", key, strings.Join(meant, " or ")), meant
	}
	where := "here"
	if path != "" {
		where = "under " + path
	}
	return fmt.Sprintf(" (valid keys %s: %s)", where, strings.Join(yamlKeys(t), ", ")), nil
}

// allKeyPaths lists the path of every key in t, e.g. "delivery.buffer.size".
func allKeyPaths(t reflect.Type, path string) []string {
	var paths []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := yamlKey(f)
		if !f.IsExported() || key == "" {
			continue
		}
		p := joinPath(path, key)
		paths = append(paths, p)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft, p = ft.Elem(), p+"[]"
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType) {
			paths = append(paths, allKeyPaths(ft, p)...)
		}
	}
	sort.Strings(paths)
	return paths
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and adjacent transpositions.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
