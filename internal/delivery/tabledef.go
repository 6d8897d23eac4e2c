package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/stream"
)

// tableDef is the table definition a control record carries
// (control.table-def, see docs/format.md): the columns with their MySQL
// types, in table order, and the primary key. Parquet and CSV objects are
// written in the shape of the definition in effect for their records.
type tableDef struct {
	*change.TableDef
	raw json.RawMessage // compact JSON, saved in delivery.json and in Parquet metadata
}

// parseTableDef reads a table definition in its JSON form.
func parseTableDef(raw []byte) (*tableDef, error) {
	def, err := change.ParseTableDef(raw)
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, fmt.Errorf("table definition: %w", err)
	}
	return &tableDef{TableDef: def, raw: compact.Bytes()}, nil
}

// controlTableDef returns the table definition of a control record's JSON,
// or nil when the record carries none (or is not a control record).
func controlTableDef(record []byte) (*tableDef, error) {
	if !bytes.Contains(record, []byte(`"table-def"`)) {
		return nil, nil
	}
	var w struct {
		Control *struct {
			TableDef json.RawMessage `json:"table-def"`
		} `json:"control"`
	}
	if err := json.Unmarshal(record, &w); err != nil {
		return nil, fmt.Errorf("control record: %w", err)
	}
	if w.Control == nil || len(w.Control.TableDef) == 0 || string(w.Control.TableDef) == "null" {
		return nil, nil
	}
	return parseTableDef(w.Control.TableDef)
}

// shape is the shape of the object m belongs in: for Parquet and CSV, the
// table definition in effect for a data record, nil (JSON lines) for a
// control record or a table not yet defined; always nil for JSON.
func (d *Delivery) shape(k bufKey, m *stream.Delivered) *tableDef {
	if !typed(d.cfg.Delivery.Format) || change.Op(m.Op).IsControl() {
		return nil
	}
	return d.defs[k]
}

// cutBefore writes b as an object of its own when m does not fit its
// shape (records of one Parquet or CSV object share one schema, and
// control records are not rows), and then returns nil: m starts a new
// buffer.
func (d *Delivery) cutBefore(ctx context.Context, b *buffer, m *stream.Delivered) (*buffer, error) {
	if b == nil || len(b.msgs) == 0 || b.def == d.shape(b.key, m) {
		return b, nil
	}
	if err := d.flush(ctx, b); err != nil {
		return nil, err
	}
	return nil, nil
}

// noteTableDef takes the table definition of a control record just
// buffered as the one in effect for the records that follow it.
func (d *Delivery) noteTableDef(b *buffer, m *stream.Delivered) {
	if !change.Op(m.Op).IsControl() {
		return
	}
	def, err := controlTableDef(m.Data)
	if err != nil {
		// Records that follow are checked against the definition in
		// effect and written as JSON lines if they do not fit it.
		d.log.Warn("a control record's table definition cannot be read; keeping the previous one", "table", b.key.table, "position", m.Position, "err", err)
		return
	}
	if def != nil {
		d.defs[b.key] = def
		b.newDef = def
	}
}

// loadTableDefs takes the definitions in effect at the stored positions
// from the checkpoint.
func (d *Delivery) loadTableDefs() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, raw := range d.state.TableDefs {
		part, table, ok := strings.Cut(k, "|")
		p, err := strconv.Atoi(part)
		if !ok || err != nil {
			continue
		}
		def, err := parseTableDef(raw)
		if err != nil {
			d.log.Warn("a table definition in the delivery checkpoint cannot be read; that table is written as JSON lines until its next definition", "table", table, "err", err)
			continue
		}
		d.defs[bufKey{table: table, partition: p}] = def
	}
}
