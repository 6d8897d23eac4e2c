// Package validate proves the lake equals the source: each selected table
// is read at the source and replayed from the lake per key in
// stream-position order, and the two are compared row by row through
// hashes, with the first mismatches listed by key and column. Keys that
// differ are checked again after a wait, so changes still on their way
// through the pipeline are reported as pending, not as mismatches.
package validate

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/keytemplate"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/objstore"
)

// Validation states, in DMS's words.
const (
	StateValidated  = "Validated"
	StateMismatched = "Mismatched records"
	StatePending    = "Pending records"
	StateNoPK       = "No primary key"
	StateError      = "Table error"
)

// Options configure a validation.
type Options struct {
	Config *config.Config
	Bucket objstore.Bucket
	Tables []string // "schema.table"; empty means every selected table
	// Rounds is how many times differing keys are checked again (default 3),
	// Wait the pause before each new round (default 5s).
	Rounds int
	Wait   time.Duration
	// MaxMismatches listed per table (default 10).
	MaxMismatches int
}

// Result is one table's outcome.
type Result struct {
	Schema     string          `json:"schema"`
	Table      string          `json:"table"`
	State      string          `json:"state"`
	SourceRows int             `json:"source_rows"`
	LakeRows   int             `json:"lake_rows"`
	Differing  int             `json:"differing_rows"`
	Mismatches []lake.Mismatch `json:"mismatches,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// OK reports whether every table validated.
func OK(results []Result) bool {
	for _, r := range results {
		if r.State != StateValidated {
			return false
		}
	}
	return len(results) > 0
}

// Run validates the tables.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	if o.MaxMismatches <= 0 {
		o.MaxMismatches = 10
	}
	names := o.Tables
	if len(names) == 0 {
		tables, err := capture.SelectedTables(ctx, o.Config)
		if err != nil {
			return nil, err
		}
		for _, t := range tables {
			names = append(names, t.String())
		}
	}
	keys, err := keytemplate.Parse(o.Config.Delivery.Prefix, o.Config.Delivery.KeyLayout())
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, name := range names {
		schema, table, ok := strings.Cut(name, ".")
		if !ok {
			return nil, fmt.Errorf("table %q: write schema.table", name)
		}
		out = append(out, o.table(ctx, keys.Root(), schema, table))
	}
	return out, nil
}

func (o Options) table(ctx context.Context, root, schema, table string) Result {
	r := Result{Schema: schema, Table: table}
	fail := func(err error) Result {
		r.State, r.Error = StateError, err.Error()
		return r
	}
	pk, err := capture.PrimaryKey(ctx, o.Config.Source.MySQL, schema, table)
	if err != nil {
		return fail(err)
	}
	if len(pk) == 0 {
		r.State = StateNoPK
		return r
	}
	var previous map[string]diff
	for round := 0; round < o.Rounds; round++ {
		if round > 0 {
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(o.Wait):
			}
		}
		src, err := capture.ReadTable(ctx, o.Config.Source.MySQL, schema, table)
		if err != nil {
			return fail(err)
		}
		replayed, err := o.replay(ctx, root, schema, table)
		if err != nil {
			return fail(err)
		}
		r.SourceRows, r.LakeRows = len(src), len(replayed)
		now := diffKeys(src, replayed)
		if len(now) == 0 {
			r.State, r.Differing, r.Mismatches = StateValidated, 0, nil
			return r
		}
		// A key whose source row and lake row both stayed the same since
		// the last round, and still differ, is not merely in flight: a
		// change on its way would have moved one of them.
		if previous != nil {
			for k, d := range now {
				if p, ok := previous[k]; !ok || p != d {
					delete(now, k)
				}
			}
		}
		previous = now
		r.Differing = len(now)
		r.Mismatches = mismatches(src, replayed, now, o.MaxMismatches)
		if len(now) == 0 {
			break
		}
	}
	r.State = StateMismatched
	if r.Differing == 0 {
		r.State = StatePending
	}
	return r
}

// mismatches lists the differences of the given keys, at most max.
func mismatches(src map[string]change.Row, replayed lake.Table, keys map[string]diff, max int) []lake.Mismatch {
	s := map[string]change.Row{}
	l := lake.Table{}
	for k := range keys {
		if row, ok := src[k]; ok {
			s[k] = row
		}
		if row, ok := replayed[k]; ok {
			l[k] = row
		}
	}
	mm := lake.Compare(l, s)
	if len(mm) > max {
		mm = mm[:max]
	}
	return mm
}

// replay reads the table's objects (named "<task>-<schema>.<table>-p…",
// those a compacted object covers left out) and replays them.
func (o Options) replay(ctx context.Context, root, schema, table string) (lake.Table, error) {
	listed, err := lake.ListTask(ctx, o.Bucket, root, o.Config.Task, o.Config.Delivery.ErrorRoots())
	if err != nil {
		return nil, fmt.Errorf("reading the lake: %w", err)
	}
	var objs []lake.Object
	for _, l := range listed {
		if l.Covered || l.Table != schema+"."+table {
			continue
		}
		body, err := o.Bucket.Get(ctx, l.Key)
		if err != nil {
			return nil, fmt.Errorf("reading the lake: %w", err)
		}
		objs = append(objs, lake.Object{Key: l.Key, Body: body})
	}
	recs, err := lake.DecodeObjects(objs)
	if err != nil {
		return nil, fmt.Errorf("reading the lake: %w", err)
	}
	return lake.ReplayRecords(recs).Tables[lake.TableName(schema, table)], nil
}

// diffKeys returns the keys whose rows differ, compared through hashes of
// their canonical JSON form.
func diffKeys(src map[string]change.Row, replayed lake.Table) map[string]diff {
	out := map[string]diff{}
	for k, row := range src {
		d := diff{source: hashSource(row)}
		got, ok := replayed[k]
		if ok {
			d.lake = lake.HashRow(got)
		}
		if !ok || d.source != d.lake {
			out[k] = d
		}
	}
	for k, got := range replayed {
		if _, ok := src[k]; !ok {
			out[k] = diff{lake: lake.HashRow(got)}
		}
	}
	return out
}

// diff is a differing key's row hashes at the source and in the lake (zero
// where the row is missing).
type diff struct{ source, lake [32]byte }

func hashSource(row change.Row) [32]byte {
	return lake.HashRow(lake.SourceRow(row))
}

// Print writes the results as a table and the first mismatches.
func Print(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tVALIDATION\tSOURCE ROWS\tLAKE ROWS\tDIFFERING")
	for _, r := range results {
		fmt.Fprintf(tw, "%s.%s\t%s\t%d\t%d\t%d\n", r.Schema, r.Table, r.State, r.SourceRows, r.LakeRows, r.Differing)
	}
	tw.Flush()
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(w, "%s.%s: %s\n", r.Schema, r.Table, r.Error)
		}
		for _, m := range r.Mismatches {
			fmt.Fprintf(w, "%s.%s: %s\n", r.Schema, r.Table, m)
		}
	}
}
