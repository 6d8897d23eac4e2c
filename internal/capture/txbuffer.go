package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/binlake/binlake/internal/change"
)

// A transaction's records are published only when its commit is read, so
// the binlog reader holds them until then. txBuffer holds them in memory up
// to a byte limit (source.mysql.transaction_memory) and writes the rest to a
// temporary file in the state directory, so that a transaction of millions
// of rows passes in bounded memory. Nothing of it reaches the stream before
// the commit; a transaction that never commits (XA ROLLBACK) is discarded
// with its file.

// spillPattern names spill files in the state directory: removed when their
// transaction is published or discarded, and at start (a crash leaves
// them).
const spillPattern = "txn-*.spill"

type txBuffer struct {
	dir   string // where spill files go
	limit int64  // bytes held in memory before spilling

	mem      []*change.Record
	memBytes int64
	n        int

	f   *os.File // nil until the transaction outgrows limit
	w   *bufio.Writer
	buf []byte // a record's binary form (change.Record.AppendBinary)
}

// write appends rec to the spill file: its length, then its binary form.
func (b *txBuffer) write(rec *change.Record) error {
	b.buf = rec.AppendBinary(b.buf[:0])
	var n [binary.MaxVarintLen64]byte
	if _, err := b.w.Write(n[:binary.PutUvarint(n[:], uint64(len(b.buf)))]); err != nil {
		return fmt.Errorf("writing a transaction's records to %s: %w", b.f.Name(), err)
	}
	if _, err := b.w.Write(b.buf); err != nil {
		return fmt.Errorf("writing a transaction's records to %s: %w", b.f.Name(), err)
	}
	return nil
}

// add appends a record.
func (b *txBuffer) add(rec *change.Record) error {
	b.n++
	if b.f == nil {
		b.mem = append(b.mem, rec)
		b.memBytes += recordSize(rec)
		if b.memBytes <= b.limit {
			return nil
		}
		return b.spill()
	}
	return b.write(rec)
}

// spill moves the records held in memory to a new spill file, which takes
// every later record too.
func (b *txBuffer) spill() error {
	f, err := os.CreateTemp(b.dir, spillPattern)
	if err != nil {
		return fmt.Errorf("spilling a large transaction to disk (source.mysql.transaction_memory): %w", err)
	}
	b.f, b.w = f, bufio.NewWriterSize(f, 256<<10)
	for _, rec := range b.mem {
		if err := b.write(rec); err != nil {
			return err
		}
	}
	b.mem, b.memBytes = nil, 0
	return nil
}

// spilled reports whether the records are (also) in a file.
func (b *txBuffer) spilled() bool { return b.f != nil }

// len is the number of records added.
func (b *txBuffer) len() int { return b.n }

// each calls fn with every record in the order added, reading spilled ones
// back one at a time.
func (b *txBuffer) each(fn func(i int, rec *change.Record) error) error {
	if b.f == nil {
		for i, rec := range b.mem {
			if err := fn(i, rec); err != nil {
				return err
			}
		}
		return nil
	}
	if err := b.w.Flush(); err != nil {
		return fmt.Errorf("writing a transaction's records to %s: %w", b.f.Name(), err)
	}
	if _, err := b.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading back %s: %w", b.f.Name(), err)
	}
	rd := bufio.NewReaderSize(b.f, 256<<10)
	var dec change.BinaryDecoder
	for i := 0; i < b.n; i++ {
		var rec change.Record
		n, err := binary.ReadUvarint(rd)
		if err == nil {
			b.buf = slices.Grow(b.buf[:0], int(n))[:n]
			_, err = io.ReadFull(rd, b.buf)
		}
		if err == nil {
			err = dec.Decode(b.buf, &rec)
		}
		if err != nil {
			return fmt.Errorf("reading back record %d of %d from %s: %w", i+1, b.n, b.f.Name(), err)
		}
		if err := fn(i, &rec); err != nil {
			return err
		}
	}
	return nil
}

// discard drops the records and removes the spill file.
func (b *txBuffer) discard() error {
	b.mem, b.memBytes, b.n = nil, 0, 0
	if b.f == nil {
		return nil
	}
	name := b.f.Name()
	err := errors.Join(b.f.Close(), os.Remove(name))
	b.f, b.w = nil, nil
	if err != nil {
		return fmt.Errorf("removing the spill file %s: %w", name, err)
	}
	return nil
}

// removeSpillFiles removes the spill files a crashed run left in dir.
func removeSpillFiles(dir string) error {
	if dir == "" {
		return nil // spill files go to the system temporary directory
	}
	names, err := filepath.Glob(filepath.Join(dir, spillPattern))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing an old spill file: %w", err)
		}
	}
	return nil
}

// recordSize estimates the memory a record holds: its values and names plus
// a fixed overhead for the structs around them.
func recordSize(rec *change.Record) int64 {
	n := int64(256 + len(rec.Statement) + len(rec.PartitionKey))
	for _, row := range []change.Row{rec.Data, rec.Before} {
		for _, f := range row {
			n += 40 + int64(len(f.Name))
			switch v := f.Value.(type) {
			case string:
				n += int64(len(v))
			case []byte:
				n += int64(len(v))
			case change.Decimal:
				n += int64(len(v))
			default:
				n += 8
			}
		}
	}
	if rec.TableDef != nil {
		n += int64(len(rec.TableDef.Columns)) * 96
	}
	return n
}
