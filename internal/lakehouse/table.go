package lakehouse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/lake"
)

// row is a row of the snapshot: the last record of its key.
type row struct {
	key    string
	op     string // load, insert, update; delete marks a row removed
	pos    string
	shape  string // the position whose table shape data is in
	commit time.Time
	txID   *uint64
	data   map[string]any // JSON values as package lake decodes them
}

// step is a schema change on the change log: a DDL statement
// (change-columns), a table definition record, or both.
type step struct {
	Position  string          `json:"position"`
	Statement string          `json:"statement,omitempty"`
	Ops       []colOp         `json:"ops,omitempty"`
	Define    bool            `json:"define,omitempty"` // a table definition record: rows are reshaped to it
	TableDef  json.RawMessage `json:"table_def"`        // the definition after the change

	def *change.TableDef
}

// eventKey names the binlog event of a position: control records are sent
// to every partition, each copy with its own last field (B).
func eventKey(pos string) string { return pos[:len(pos)-len("0000000000")] }

// eventEnd is the greatest position a copy of pos's event can have on
// partitions partitions.
func eventEnd(pos string, partitions int) string {
	return eventKey(pos) + fmt.Sprintf("%010d", max(partitions-1, 0))
}

// record is a change-log record and the partition it was delivered on.
type record struct {
	lake.Record
	part int
}

// tableState is a table as the snapshot rebuilds it: its definition, the
// schema changes rows may still need, and the rows that changed since the
// last snapshot (delta), keyed by partition-key-value.
type tableState struct {
	schema, table string
	def           *change.TableDef
	truncatedAt   string
	truncated     bool // truncatedAt moved in this run
	dropped       bool
	steps         []step // oldest first
	newSteps      int
	seen          map[string]bool // event keys of the steps
	inexact       []Inexact
	partDefs      map[int]json.RawMessage
	delta         map[string]*row
	records       int
}

func newTableState(m *Manifest) (*tableState, error) {
	t := &tableState{schema: m.Schema, table: m.Table, truncatedAt: m.TruncatedAt, dropped: m.Dropped,
		seen: map[string]bool{}, inexact: slices.Clone(m.Inexact), partDefs: map[int]json.RawMessage{}, delta: map[string]*row{}}
	for p, d := range m.PartitionDefs {
		t.partDefs[p] = d
	}
	if len(m.TableDef) > 0 {
		def, err := change.ParseTableDef(m.TableDef)
		if err != nil {
			return nil, fmt.Errorf("the manifest's table definition: %w", err)
		}
		t.def = def
	}
	for _, s := range m.Steps {
		def, err := change.ParseTableDef(s.TableDef)
		if err != nil {
			return nil, fmt.Errorf("the manifest's schema change at %s: %w", s.Position, err)
		}
		s.def = def
		t.steps = append(t.steps, s)
		t.seen[eventKey(s.Position)] = true
	}
	return t, nil
}

// apply applies one record; records come in stream-position order.
func (t *tableState) apply(r record) error {
	t.records++
	if r.Type == "data" {
		if r.Position <= t.truncatedAt {
			return nil // truncated by a later record seen already
		}
		if r.Key == "" {
			return fmt.Errorf("record %s has no partition-key-value", r.Position)
		}
		t.dropped = false
		t.delta[r.Key] = &row{key: r.Key, op: r.Op, pos: r.Position, shape: r.Position, commit: r.CommitTime, txID: r.TransactionID, data: r.Data}
		return nil
	}
	switch change.Op(r.Op) {
	case change.OpTruncateTable, change.OpDropTable:
		if r.Position > t.truncatedAt {
			t.truncatedAt, t.truncated = r.Position, true
			clear(t.delta) // every record applied so far is older
			t.dropped = r.Op == string(change.OpDropTable)
		}
		return nil
	}
	if r.TableDef != nil {
		t.partDefs[r.part] = r.TableDef
		if r.Position > t.truncatedAt {
			t.dropped = false // created again
		}
	}
	if t.seen[eventKey(r.Position)] || (r.TableDef == nil && r.Op != string(change.OpChangeColumns)) {
		return nil // another partition's copy, or a DDL that changes no columns (rename-table, create-table)
	}
	st := step{Position: r.Position}
	if r.Op == string(change.OpChangeColumns) && t.def != nil {
		after, ops, err := evolve(t.def, t.schema, t.table, r.Statement, r.Position)
		if err != nil {
			t.note(Inexact{Position: r.Position, Statement: r.Statement,
				Reason: fmt.Sprintf("binlake cannot model this DDL (%v); rows not written since take their columns from the next table definition, a column they lack is NULL", err)})
		}
		st.Statement, st.Ops, st.def = r.Statement, ops, after
		for _, op := range ops {
			if op.Unknown != "" {
				t.note(Inexact{Position: r.Position, Statement: r.Statement, Column: op.Column,
					Reason: "in rows not written since, " + op.Column + " is NULL: " + op.Unknown})
			}
		}
	}
	if r.TableDef != nil {
		def, err := change.ParseTableDef(r.TableDef)
		if err != nil {
			return fmt.Errorf("the table definition at %s: %w", r.Position, err)
		}
		st.def, st.Define = def, true
	}
	if st.def == nil {
		t.note(Inexact{Position: r.Position, Statement: r.Statement, Reason: "a DDL before any table definition; rows take their columns from the next one"})
		return nil
	}
	raw, _ := st.def.MarshalJSON()
	t.seen[eventKey(r.Position)] = true
	if st.Statement == "" && t.def != nil {
		if cur, _ := t.def.MarshalJSON(); bytes.Equal(cur, raw) {
			return nil // the definition again (capture sends it after any DDL): rows keep their shape
		}
	}
	st.TableDef = raw
	t.steps = append(t.steps, st)
	t.newSteps++
	t.def = st.def
	return nil
}

// note adds an Inexact entry once.
func (t *tableState) note(n Inexact) {
	if !slices.Contains(t.inexact, n) {
		t.inexact = append(t.inexact, n)
	}
}

// shapePosition is the position of the newest schema change: rows shaped
// by materialize are in its shape.
func (t *tableState) shapePosition(previous string) string {
	if n := len(t.steps); n > 0 && t.steps[n-1].Position > previous {
		return t.steps[n-1].Position
	}
	return previous
}

// pendingSteps are the schema changes a record still on its way can
// predate: those whose copies are not all at or before exactThrough.
func (t *tableState) pendingSteps(exactThrough string, partitions int) []step {
	var out []step
	for _, s := range t.steps {
		if exactThrough == "" || eventEnd(s.Position, partitions) > exactThrough {
			out = append(out, s)
		}
	}
	return out
}

// materialize brings r into the current table shape: each schema change
// after the record that wrote it is applied, as the server applied it to
// the row.
func (t *tableState) materialize(r *row) {
	for _, s := range t.steps {
		if s.Position <= r.shape {
			continue
		}
		for _, op := range s.Ops {
			applyOp(r.data, op)
		}
		if s.Define {
			t.reshape(r, s.def, s.Position)
		}
	}
	last := t.shapePosition("")
	t.reshape(r, t.def, last)
	if last > r.shape {
		r.shape = last
	}
}

// applyOp applies a DDL's change to a row's values.
func applyOp(data map[string]any, op colOp) {
	switch op.Op {
	case opDrop:
		if k, ok := lookup(data, op.Column); ok {
			delete(data, k)
		}
	case opRename:
		if k, ok := lookup(data, op.Column); ok {
			v := data[k]
			delete(data, k)
			data[op.To] = v
		}
	case opAdd:
		var v any
		if op.Unknown == "" {
			dec := json.NewDecoder(bytes.NewReader(op.Value))
			dec.UseNumber()
			_ = dec.Decode(&v) // written by formatDefault
		}
		data[op.Column] = v
	case opRetype:
		if k, ok := lookup(data, op.Column); ok {
			data[k] = nil
		}
	}
}

// reshape gives a row exactly def's columns, under def's names: values of
// columns def does not have are dropped (their DROP was not modelled), a
// column the row lacks is NULL and noted.
func (t *tableState) reshape(r *row, def *change.TableDef, at string) {
	out := make(map[string]any, len(def.Columns))
	for _, c := range def.Columns {
		k, ok := lookup(r.data, c.Name)
		if !ok {
			t.note(Inexact{Position: at, Column: c.Name,
				Reason: "rows written before this position lack " + c.Name + " and no DDL said what it holds in them: it is NULL there"})
		}
		out[c.Name] = r.data[k]
	}
	r.data = out
}

// lookup finds a column in a row, by name or, as MySQL does, without case.
func lookup(data map[string]any, name string) (string, bool) {
	if _, ok := data[name]; ok {
		return name, true
	}
	for k := range data {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// jsonLine encodes a row as a DMS data record, the input of
// delivery.EncodeParquet, with def's columns in order.
func jsonLine(b []byte, r *row, def *change.TableDef) ([]byte, error) {
	names := make([]string, len(def.Columns))
	for i, c := range def.Columns {
		names[i] = c.Name
	}
	return lake.AppendDataRecord(b, lake.Record{Op: r.op, Key: r.key, Position: r.pos, CommitTime: r.commit, TransactionID: r.txID, Data: r.data}, names)
}
