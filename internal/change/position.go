// Package change owns the record model that flows from capture through the
// stream to delivery: Record, Op, the stream-position contract and the DMS
// JSON encoding. It does no I/O.
package change

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind tells what produced a record at a binlog offset. Full-load rows read
// at watermark W sort after every event before W and before the event that
// starts at W, so KindLoad < KindEvent.
type Kind uint8

const (
	KindLoad  Kind = 0 // a row read by the full load at a snapshot watermark
	KindEvent Kind = 1 // a row (or DDL) from a binlog event
)

// Position is the parsed form of metadata.stream-position:
//
//	<epoch>/<file>/<offset>/<kind>/<a>/<b>
//
// with fixed-width decimal fields, so that comparing the strings byte by byte
// gives the order in which the changes happened. Epoch is bumped whenever
// binlog coordinates would go backwards (failover, RESET MASTER). File is the
// binlog file number (mysql-bin.000010 → 10). For binlog events Offset is the
// event's start offset, A the row index in the event and B the sub-record (a
// primary-key change is a delete, B=0, and an insert, B=1). For full-load rows
// Offset is the snapshot watermark, A the chunk number and B the row number.
type Position struct {
	Epoch  uint32
	File   uint64
	Offset uint64
	Kind   Kind
	A      uint64
	B      uint64
}

// Widths of the fixed-width fields of the textual form.
const (
	epochWidth  = 4
	fileWidth   = 10
	offsetWidth = 16
	aWidth      = 10
	bWidth      = 10
	// PositionLen is the length of every formatted position.
	PositionLen = epochWidth + fileWidth + offsetWidth + 1 + aWidth + bWidth + 5
)

// String formats p in its fixed-width textual form.
func (p Position) String() string {
	return string(p.Append(make([]byte, 0, PositionLen)))
}

// Append appends p's textual form to b.
func (p Position) Append(b []byte) []byte {
	b = appendPadded(b, uint64(p.Epoch), epochWidth)
	b = append(b, '/')
	b = appendPadded(b, p.File, fileWidth)
	b = append(b, '/')
	b = appendPadded(b, p.Offset, offsetWidth)
	b = append(b, '/')
	b = append(b, '0'+byte(p.Kind))
	b = append(b, '/')
	b = appendPadded(b, p.A, aWidth)
	b = append(b, '/')
	return appendPadded(b, p.B, bWidth)
}

func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// ParsePosition parses the textual form produced by Position.String.
func ParsePosition(s string) (Position, error) {
	parts := strings.Split(s, "/")
	widths := []int{epochWidth, fileWidth, offsetWidth, 1, aWidth, bWidth}
	if len(parts) != len(widths) {
		return Position{}, fmt.Errorf("stream-position %q: want 6 fields separated by '/'", s)
	}
	var v [6]uint64
	for i, part := range parts {
		if len(part) != widths[i] {
			return Position{}, fmt.Errorf("stream-position %q: field %d has %d digits, want %d", s, i+1, len(part), widths[i])
		}
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil {
			return Position{}, fmt.Errorf("stream-position %q: field %d: %w", s, i+1, err)
		}
		v[i] = n
	}
	if v[0] > 9999 || v[3] > 1 {
		return Position{}, fmt.Errorf("stream-position %q: epoch or kind out of range", s)
	}
	return Position{Epoch: uint32(v[0]), File: v[1], Offset: v[2], Kind: Kind(v[3]), A: v[4], B: v[5]}, nil
}

// BinlogFileNumber parses the numeric suffix of a binlog file name
// (mysql-bin.000010 → 10). Names are never compared as text.
func BinlogFileNumber(name string) (uint64, error) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return 0, fmt.Errorf("binlog file name %q has no numeric suffix", name)
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("binlog file name %q: %w", name, err)
	}
	return n, nil
}

// CompactPosition drops the separators of a stream-position, as object
// names carry it: the fields are fixed-width, so the digits sort the same
// way.
func CompactPosition(p string) string { return strings.ReplaceAll(p, "/", "") }

// ExpandPosition is the inverse of CompactPosition; the digits must make a
// valid position.
func ExpandPosition(digits string) (string, error) {
	if len(digits) != PositionLen-5 {
		return "", fmt.Errorf("position digits %q: want %d digits", digits, PositionLen-5)
	}
	p, err := ParsePosition(WithSeparators(digits))
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// WithSeparators puts the field separators back into PositionLen-5 digits,
// without checking that they make a valid position.
func WithSeparators(digits string) string {
	var b strings.Builder
	for i, w := range []int{epochWidth, fileWidth, offsetWidth, 1, aWidth, bWidth} {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(digits[:w])
		digits = digits[w:]
	}
	return b.String()
}
