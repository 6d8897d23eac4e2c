package lake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/change"
)

// csvObjectName finds the partition and first position in the name of a
// CSV object: ...-<schema>.<table>-pNNNN-<first>-<last>.csv[.gz|.zst|.snappy].
var csvObjectName = regexp.MustCompile(`-p(\d{4})-(\d{51})-\d{51}\.csv(?:\.gz|\.zst|\.snappy)?$`)

// isCSV reports whether a key names a CSV object.
func isCSV(key string) bool { return csvObjectName.MatchString(key) }

// csvDefinition is what a CSV object needs from the lake's control
// records: its table and, without a header, its column names.
type csvDefinition struct {
	schema, table string
	position      string
	def           *change.TableDef
}

// csvTable finds the table of a CSV object and the definition in effect
// for its rows: the newest control record with a table definition on the
// object's partition, before its first row, of a table whose name the
// object name carries (the longest, should two names fit).
func csvTable(key string, defs []csvDefinition) (*csvDefinition, error) {
	base := key[strings.LastIndexByte(key, '/')+1:]
	m := csvObjectName.FindStringSubmatchIndex(base)
	if m == nil {
		return nil, fmt.Errorf("%s: not the name of a CSV object", key)
	}
	part, _ := strconv.Atoi(base[m[2]:m[3]])
	first := base[m[4]:m[5]]
	head := base[:m[0]]
	var best *csvDefinition
	for i := range defs {
		d := &defs[i]
		p, err := change.ParsePosition(d.position)
		if err != nil || int(p.B) != part || strings.ReplaceAll(d.position, "/", "") >= first {
			continue
		}
		if !strings.HasSuffix(head, "-"+d.schema+"."+d.table) {
			continue
		}
		if best == nil || len(d.schema+d.table) > len(best.schema+best.table) ||
			(d.schema == best.schema && d.table == best.table && d.position > best.position) {
			best = d
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%s: no control record with the table definition of this CSV object on its partition", key)
	}
	return best, nil
}

// decodeCSV reads a CSV object binlake wrote (see docs/format.md#csv):
// quoted fields are text, unquoted ones numbers, empty unquoted ones NULL.
func decodeCSV(key string, text []byte, d *csvDefinition) ([]Record, error) {
	var out []Record
	var names []string
	for _, c := range d.def.Columns {
		names = append(names, c.Name)
	}
	line := 0
	for len(text) > 0 {
		line++
		fields, rest, err := csvLine(text)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", key, line, err)
		}
		text = rest
		if line == 1 && !fields[0].quoted && fields[0].text == "Op" {
			names = nil
			for _, f := range fields[5:] {
				names = append(names, f.text)
			}
			continue
		}
		if len(fields) != 5+len(names) {
			return nil, fmt.Errorf("%s line %d: %d fields, want %d", key, line, len(fields), 5+len(names))
		}
		rec := Record{Type: "data", Schema: d.schema, Table: d.table, Object: key,
			Position: fields[1].text, Key: fields[4].text, Data: make(map[string]any, len(names))}
		p, err := change.ParsePosition(rec.Position)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", key, line, err)
		}
		if rec.CommitTime, err = time.Parse("2006-01-02 15:04:05.999999", fields[2].text); err != nil {
			return nil, fmt.Errorf("%s line %d: _commit_timestamp: %w", key, line, err)
		}
		if fields[3].text != "" {
			id, err := strconv.ParseUint(fields[3].text, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: _transaction_id: %w", key, line, err)
			}
			rec.TransactionID = &id
		}
		switch fields[0].text {
		case "I":
			rec.Op = "insert"
			if p.Kind == change.KindLoad {
				rec.Op = "load"
			}
		case "U":
			rec.Op = "update"
		case "D":
			rec.Op = "delete"
		default:
			return nil, fmt.Errorf("%s line %d: Op %q is not I, U or D", key, line, fields[0].text)
		}
		for i, f := range fields[5:] {
			switch {
			case f.quoted:
				rec.Data[names[i]] = f.text
			case f.text == "":
				rec.Data[names[i]] = nil
			default:
				rec.Data[names[i]] = json.Number(f.text)
			}
		}
		out = append(out, rec)
	}
	return out, nil
}

type csvField struct {
	text   string
	quoted bool
}

// csvLine splits one RFC 4180 record, which ends at "\n" or "\r\n"
// outside quotes, and returns the rest of the text.
func csvLine(text []byte) ([]csvField, []byte, error) {
	var fields []csvField
	for {
		var f csvField
		if len(text) > 0 && text[0] == '"' {
			f.quoted = true
			var b strings.Builder
			text = text[1:]
			for {
				i := bytes.IndexByte(text, '"')
				if i < 0 {
					return nil, nil, fmt.Errorf("a quoted field does not end")
				}
				b.Write(text[:i])
				text = text[i+1:]
				if len(text) > 0 && text[0] == '"' {
					b.WriteByte('"')
					text = text[1:]
					continue
				}
				break
			}
			f.text = b.String()
		} else {
			i := bytes.IndexAny(text, ",\n\"")
			if i < 0 {
				i = len(text)
			}
			if i < len(text) && text[i] == '"' {
				return nil, nil, fmt.Errorf("a quote inside an unquoted field")
			}
			f.text = strings.TrimSuffix(string(text[:i]), "\r")
			text = text[i:]
		}
		fields = append(fields, f)
		switch {
		case len(text) == 0:
			return fields, nil, nil
		case text[0] == ',':
			text = text[1:]
		case text[0] == '\n':
			return fields, text[1:], nil
		case text[0] == '\r' && len(text) > 1 && text[1] == '\n':
			return fields, text[2:], nil
		default:
			return nil, nil, fmt.Errorf("unexpected %q after a quoted field", text[0])
		}
	}
}

// CSVCommitTimes returns the commit times of a CSV object's rows, which,
// unlike their values, need no table definition to be read.
func CSVCommitTimes(key string, body []byte) ([]time.Time, error) {
	text, err := decompress(key, body)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for line := 1; len(text) > 0; line++ {
		fields, rest, err := csvLine(text)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", key, line, err)
		}
		text = rest
		if line == 1 && !fields[0].quoted && fields[0].text == "Op" {
			continue
		}
		if len(fields) < 5 {
			return nil, fmt.Errorf("%s line %d: %d fields", key, line, len(fields))
		}
		t, err := time.Parse("2006-01-02 15:04:05.999999", fields[2].text)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: _commit_timestamp: %w", key, line, err)
		}
		out = append(out, t)
	}
	return out, nil
}
