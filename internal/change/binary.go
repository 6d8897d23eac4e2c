package change

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The binary form of a Record is what capture writes to a large
// transaction's spill file: a few times faster to write and read back than
// gob, with the value types of Field spelled out. It is private to one
// binlake process (spill files do not outlive it), not a storage format.

// Value tags.
const (
	tagNil byte = iota
	tagInt
	tagUint
	tagFloat64
	tagFloat32
	tagString
	tagDecimal
	tagBytes
)

// AppendBinary appends rec's binary form.
func (r *Record) AppendBinary(b []byte) []byte {
	b = appendStr(b, string(r.Op))
	b = appendStr(b, r.Schema)
	b = appendStr(b, r.Table)
	b = appendRowBinary(b, r.Data)
	if r.Before == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendRowBinary(b, r.Before)
	}
	b = appendStr(b, r.Statement)
	if r.TableDef == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		def := r.TableDef.appendJSON(nil)
		b = binary.AppendUvarint(b, uint64(len(def)))
		b = append(b, def...)
	}
	b = binary.AppendUvarint(b, r.TransactionID)
	if r.CommitTime.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, r.CommitTime.UnixNano())
	}
	p := r.Position
	b = binary.AppendUvarint(b, uint64(p.Epoch))
	b = binary.AppendUvarint(b, p.File)
	b = binary.AppendUvarint(b, p.Offset)
	b = append(b, byte(p.Kind))
	b = binary.AppendUvarint(b, p.A)
	b = binary.AppendUvarint(b, p.B)
	b = appendStr(b, r.PartitionKey)
	if r.PartitionKeyPK {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(r.TransactionSeq))
	if r.Prev == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendUvarint(b, r.Prev.ID)
		b = binary.AppendUvarint(b, uint64(r.Prev.Seq))
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendRowBinary(b []byte, row Row) []byte {
	if row == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(row))+1)
	for _, f := range row {
		b = appendStr(b, f.Name)
		switch v := f.Value.(type) {
		case nil:
			b = append(b, tagNil)
		case int64:
			b = append(b, tagInt)
			b = binary.AppendVarint(b, v)
		case uint64:
			b = append(b, tagUint)
			b = binary.AppendUvarint(b, v)
		case float64:
			b = append(b, tagFloat64)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		case float32:
			b = append(b, tagFloat32)
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		case string:
			b = append(b, tagString)
			b = appendStr(b, v)
		case Decimal:
			b = append(b, tagDecimal)
			b = appendStr(b, string(v))
		case []byte:
			b = append(b, tagBytes)
			b = appendStr(b, string(v))
		default:
			panic(fmt.Sprintf("change: unsupported value type %T", v))
		}
	}
	return b
}

// BinaryDecoder reads records in their binary form. It keeps the column
// names it has seen, so that the rows of a transaction share them.
type BinaryDecoder struct {
	names map[string]string
}

var errBinary = errors.New("change: malformed binary record")

// Decode reads one record from data, which must hold exactly one.
func (d *BinaryDecoder) Decode(data []byte, r *Record) error {
	if d.names == nil {
		d.names = map[string]string{}
	}
	rd := binReader{data: data, names: d.names}
	r.Op = Op(rd.str(false))
	r.Schema = rd.str(true)
	r.Table = rd.str(true)
	r.Data = rd.row()
	if rd.byte() == 1 {
		r.Before = rd.row()
	}
	r.Statement = rd.str(false)
	if rd.byte() == 1 {
		def, err := ParseTableDef(rd.bytes())
		if err != nil && rd.err == nil {
			rd.err = err
		}
		r.TableDef = def
	}
	r.TransactionID = rd.uvarint()
	r.CommitTime = time.Time{}
	if rd.byte() == 1 {
		r.CommitTime = time.Unix(0, rd.varint()).UTC()
	}
	r.Position.Epoch = uint32(rd.uvarint())
	r.Position.File = rd.uvarint()
	r.Position.Offset = rd.uvarint()
	r.Position.Kind = Kind(rd.byte())
	r.Position.A = rd.uvarint()
	r.Position.B = rd.uvarint()
	r.PartitionKey = rd.str(false)
	r.PartitionKeyPK = rd.byte() == 1
	r.TransactionSeq = uint32(rd.uvarint())
	if rd.byte() == 1 {
		r.Prev = &TransactionRef{ID: rd.uvarint(), Seq: uint32(rd.uvarint())}
	}
	if rd.err == nil && len(rd.data) != 0 {
		rd.err = fmt.Errorf("%w: %d bytes after the record", errBinary, len(rd.data))
	}
	return rd.err
}

type binReader struct {
	data  []byte
	err   error
	names map[string]string
}

func (rd *binReader) fail() {
	if rd.err == nil {
		rd.err = errBinary
	}
	rd.data = nil
}

func (rd *binReader) byte() byte {
	if len(rd.data) < 1 {
		rd.fail()
		return 0
	}
	c := rd.data[0]
	rd.data = rd.data[1:]
	return c
}

func (rd *binReader) uvarint() uint64 {
	v, n := binary.Uvarint(rd.data)
	if n <= 0 {
		rd.fail()
		return 0
	}
	rd.data = rd.data[n:]
	return v
}

func (rd *binReader) varint() int64 {
	v, n := binary.Varint(rd.data)
	if n <= 0 {
		rd.fail()
		return 0
	}
	rd.data = rd.data[n:]
	return v
}

func (rd *binReader) bytes() []byte {
	n := rd.uvarint()
	if n > uint64(len(rd.data)) {
		rd.fail()
		return nil
	}
	b := rd.data[:n:n]
	rd.data = rd.data[n:]
	return b
}

// str reads a string; interned ones (names) are shared.
func (rd *binReader) str(intern bool) string {
	b := rd.bytes()
	if !intern {
		return string(b)
	}
	if s, ok := rd.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(rd.names) < 1<<16 {
		rd.names[s] = s
	}
	return s
}

func (rd *binReader) fixed(n int) []byte {
	if len(rd.data) < n {
		rd.fail()
		return make([]byte, n)
	}
	b := rd.data[:n]
	rd.data = rd.data[n:]
	return b
}

func (rd *binReader) row() Row {
	n := rd.uvarint()
	if n == 0 {
		return nil
	}
	n--
	if n > uint64(len(rd.data)) {
		rd.fail()
		return nil
	}
	row := make(Row, n)
	for i := range row {
		row[i].Name = rd.str(true)
		switch rd.byte() {
		case tagNil:
		case tagInt:
			row[i].Value = rd.varint()
		case tagUint:
			row[i].Value = rd.uvarint()
		case tagFloat64:
			row[i].Value = math.Float64frombits(binary.LittleEndian.Uint64(rd.fixed(8)))
		case tagFloat32:
			row[i].Value = math.Float32frombits(binary.LittleEndian.Uint32(rd.fixed(4)))
		case tagString:
			row[i].Value = rd.str(false)
		case tagDecimal:
			row[i].Value = Decimal(rd.str(false))
		case tagBytes:
			row[i].Value = append([]byte{}, rd.bytes()...)
		default:
			rd.fail()
		}
		if rd.err != nil {
			return nil
		}
	}
	return row
}
