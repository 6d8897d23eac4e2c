package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/change"
)

// txRecord is record i of a test transaction, with a value of every type a
// row holds.
func txRecord(i int) *change.Record {
	if i%1000 == 999 {
		return &change.Record{Op: change.OpChangeColumns, Schema: "s", Table: "t", Statement: "ALTER TABLE t ADD c INT",
			TableDef:     &change.TableDef{Columns: []change.ColumnDef{{Name: "id", Type: "int", DataType: "int"}}, PrimaryKey: []string{"id"}},
			Position:     change.Position{File: 3, Offset: uint64(i), Kind: change.KindEvent},
			PartitionKey: "s.t"}
	}
	row := change.Row{
		{Name: "id", Value: int64(i)},
		{Name: "u", Value: uint64(18446744073709551615)},
		{Name: "f", Value: float32(1.5)},
		{Name: "d", Value: float64(-0.25)},
		{Name: "s", Value: fmt.Sprintf("row %d ünï", i)},
		{Name: "dec", Value: change.Decimal("12.340")},
		{Name: "b", Value: []byte{0, 1, 2, byte(i)}},
		{Name: "n", Value: nil},
	}
	rec := &change.Record{Op: change.OpUpdate, Schema: "s", Table: "t", Data: row, Before: row[:1],
		Position:     change.Position{File: 3, Offset: uint64(i / 10), Kind: change.KindEvent, A: uint64(i % 10)},
		PartitionKey: fmt.Sprintf("s.t.%d", i), PartitionKeyPK: true, CommitTime: time.Unix(int64(i), 0).UTC()}
	if i%7 == 0 {
		rec.Op, rec.Before = change.OpInsert, nil
	}
	return rec
}

// TestTxBufferSpills adds a transaction many times the memory limit: the
// records come back exactly and in order from the spill file, which is
// removed by discard; a small transaction stays in memory.
func TestTxBufferSpills(t *testing.T) {
	dir := t.TempDir()
	spills := func() []string {
		names, err := filepath.Glob(filepath.Join(dir, spillPattern))
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	t.Run("large", func(t *testing.T) {
		b := txBuffer{dir: dir, limit: 16 << 10}
		const n = 5000
		for i := range n {
			if err := b.add(txRecord(i)); err != nil {
				t.Fatal(err)
			}
		}
		if !b.spilled() || len(spills()) != 1 {
			t.Fatalf("spilled %v, spill files %v; want one", b.spilled(), spills())
		}
		if len(b.mem) != 0 {
			t.Errorf("%d records still in memory after the spill", len(b.mem))
		}
		for range 2 { // each may be called again (an XA COMMIT after a restart is not, but nothing forbids it)
			got := 0
			err := b.each(func(i int, rec *change.Record) error {
				if i != got {
					t.Fatalf("record %d passed as %d", got, i)
				}
				if want := txRecord(i); !reflect.DeepEqual(rec, want) {
					t.Fatalf("record %d:\n got %+v\nwant %+v", i, rec, want)
				}
				got++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != n {
				t.Fatalf("%d records read back, want %d", got, n)
			}
		}
		if err := b.discard(); err != nil {
			t.Fatal(err)
		}
		if s := spills(); len(s) != 0 {
			t.Errorf("spill files left after discard: %v", s)
		}
	})
	t.Run("small", func(t *testing.T) {
		b := txBuffer{dir: dir, limit: 1 << 20}
		for i := range 10 {
			if err := b.add(txRecord(i)); err != nil {
				t.Fatal(err)
			}
		}
		if b.spilled() || len(spills()) != 0 {
			t.Fatalf("a 10-record transaction spilled")
		}
		var ids []any
		if err := b.each(func(i int, rec *change.Record) error { ids = append(ids, rec.Data[0].Value); return nil }); err != nil {
			t.Fatal(err)
		}
		if want := []any{int64(0), int64(1), int64(2), int64(3), int64(4), int64(5), int64(6), int64(7), int64(8), int64(9)}; !reflect.DeepEqual(ids, want) {
			t.Errorf("ids %v, want %v", ids, want)
		}
	})
	t.Run("leftovers removed at start", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "txn-123.spill"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := removeSpillFiles(dir); err != nil {
			t.Fatal(err)
		}
		if s := spills(); len(s) != 0 {
			t.Errorf("left: %v", s)
		}
	})
}
