package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/binlake/binlake/internal/change"
	"io"
)

// record is a DMS JSON record decoded just enough to change it: the
// top-level members in their order, and the members of data, before-image
// and metadata as ordered lists of names and raw values. Values that no
// rule changes are written back byte for byte, so numbers keep their text
// (18446744073709551615 stays an integer, "12.340" keeps its zero).
type record struct {
	members []member
	data    *object
	before  *object
	meta    *object
	control *object
}

type member struct {
	key string
	raw []byte  // the value, unless obj is set
	obj *object // data, before-image and metadata
}

type object struct {
	fields []field
}

type field struct {
	name    string
	srcName string // the name at the source, before rules
	raw     []byte
	src     []byte // the value at the source, before rules
	added   bool   // added by an add-column rule
	removed bool
}

func (o *object) get(name string) ([]byte, bool) {
	if o == nil {
		return nil, false
	}
	for _, f := range o.fields {
		if f.srcName == name {
			return f.src, true
		}
	}
	return nil, false
}

// str returns the value of a string member (metadata fields) at the
// source.
func (o *object) str(name string) string {
	raw, ok := o.get(name)
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// current returns the value of a string member as the rules left it.
func (o *object) current(name string) string {
	for _, f := range o.fields {
		if f.srcName == name {
			var s string
			if json.Unmarshal(f.raw, &s) != nil {
				return ""
			}
			return s
		}
	}
	return ""
}

func (o *object) set(name string, raw []byte) {
	for i := range o.fields {
		if o.fields[i].srcName == name {
			o.fields[i].raw = raw
			return
		}
	}
}

// decodeObjectBytes decodes one JSON object as an ordered list of fields.
func decodeObjectBytes(b []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	o, _, err := decodeObject(dec)
	if err != nil {
		return nil, err
	}
	if o == nil {
		return nil, errors.New("not an object")
	}
	return o, nil
}

// encodeObject writes an object's fields that are not removed.
func encodeObject(b []byte, o *object) []byte {
	b = append(b, '{')
	n := 0
	for _, f := range o.fields {
		if f.removed {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = appendString(b, f.name)
		b = append(b, ':')
		b = append(b, f.raw...)
	}
	return append(b, '}')
}

// decodeRecord decodes one DMS JSON record.
func decodeRecord(b []byte) (*record, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	r := &record{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := t.(string)
		m := member{key: key}
		switch key {
		case "data", "before-image", "metadata", "control":
			o, raw, err := decodeObject(dec)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			m.obj, m.raw = o, raw
			switch {
			case o == nil:
			case key == "data":
				r.data = o
			case key == "before-image":
				r.before = o
			case key == "control":
				r.control = o
			default:
				r.meta = o
			}
		default:
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			m.raw = raw
		}
		r.members = append(r.members, m)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the record's closing brace")
	}
	if r.meta == nil {
		return nil, errors.New("the record has no metadata object")
	}
	return r, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("expected %q, got %v", d, t)
	}
	return nil
}

// decodeObject reads an object as an ordered list of fields; a value that
// is not an object (null) comes back raw.
func decodeObject(dec *json.Decoder) (*object, []byte, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, nil, err
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, raw, nil
	}
	inner := json.NewDecoder(bytes.NewReader(raw))
	inner.UseNumber()
	if err := expectDelim(inner, '{'); err != nil {
		return nil, nil, err
	}
	o := &object{}
	for inner.More() {
		t, err := inner.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := inner.Decode(&v); err != nil {
			return nil, nil, err
		}
		name := t.(string)
		o.fields = append(o.fields, field{name: name, srcName: name, raw: v, src: v})
	}
	return o, nil, nil
}

// encode writes the record. With source set, it writes the names as they
// were at the source and leaves out added columns: the form of the error
// output, in which only the values rules hide stay hidden.
func (r *record) encode(source bool) []byte {
	var b []byte
	b = append(b, '{')
	for i, m := range r.members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, m.key)
		b = append(b, ':')
		if m.obj == nil {
			b = append(b, m.raw...)
			continue
		}
		b = append(b, '{')
		n := 0
		for _, f := range m.obj.fields {
			if f.removed || (source && f.added) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			name, raw := f.name, f.raw
			if source {
				name = f.srcName
				if m.obj == r.meta || m.obj == r.control {
					raw = f.src
				}
			}
			b = appendString(b, name)
			b = append(b, ':')
			b = append(b, raw...)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendString appends s as a JSON string, escaped as change.Record's
// encoder does: invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte { return change.AppendString(b, s) }
