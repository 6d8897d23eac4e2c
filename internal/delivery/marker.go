package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/change"
)

// Marker is the completeness marker of a table, rewritten after each flush
// at <prefix root>_binlake/complete/<schema>/<table>.json: what Firehose
// never tells its users, up to where a table is really in the lake.
type Marker struct {
	Task   string `json:"task"`
	Schema string `json:"schema"`
	Table  string `json:"table"`
	// CompleteThroughPosition: every record of the table whose
	// stream-position is at or before this one is in the lake.
	CompleteThroughPosition string `json:"complete_through_position"`
	// CompleteBefore: every change to the table committed at the source
	// before this time (UTC, exclusive) and captured is in the lake.
	CompleteBefore time.Time `json:"complete_before_commit_time"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// MarkerKey is where the marker of schema.table lives.
func (d *Delivery) MarkerKey(schema, table string) string {
	return d.keys.Root() + "_binlake/complete/" + schema + "/" + table + ".json"
}

// marker computes the marker of a table: records not yet in the lake are in
// open buffers or not yet fetched, and the stream hands records over in
// position (and commit) order.
func (d *Delivery) marker(name string) (Marker, bool) {
	if d.fetched == "" {
		return Marker{}, false
	}
	schema, table, _ := strings.Cut(name, ".")
	m := Marker{Task: d.cfg.Task, Schema: schema, Table: table, UpdatedAt: time.Now().UTC()}
	through := d.fetched
	before := d.fetchedAt
	for k, b := range d.buffers {
		if k.table != name || b.first == nil {
			continue
		}
		if p, err := prevPosition(b.first.Position); err == nil && p < through {
			through = p
		}
		if b.oldest.Before(before) {
			before = b.oldest
		}
	}
	m.CompleteThroughPosition, m.CompleteBefore = through, before.UTC()
	return m, true
}

func (d *Delivery) writeMarker(ctx context.Context, name string) error {
	m, ok := d.marker(name)
	if !ok {
		return nil
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return d.put(ctx, d.MarkerKey(m.Schema, m.Table), append(body, '\n'))
}

// prevPosition is the greatest position that sorts before p: the
// fixed-width digits taken as one decimal number, minus one.
func prevPosition(p string) (string, error) {
	digits := []byte(compactPosition(p))
	i := len(digits) - 1
	for ; i >= 0 && digits[i] == '0'; i-- {
		digits[i] = '9'
	}
	if i < 0 {
		return "", fmt.Errorf("no position before %s", p)
	}
	digits[i]--
	return change.WithSeparators(string(digits)), nil
}
