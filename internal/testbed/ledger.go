package testbed

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/lake"
)

// LedgerTable is the table a Ledger writes, in its schema.
const LedgerTable = "ledger"

// Ledger writes a table whose rows only ever count up: every change of a
// row adds one to its seq. Comparing the final tables proves the lake ends
// where the source does; the ledger proves more: a change lost anywhere
// between the binlog and the lake shows as a gap in the sequence of seq
// values the lake holds for a row, and one stored twice as a repeat.
type Ledger struct {
	db      *sql.DB
	schema  string
	rows    int
	rng     *rand.Rand
	changes atomic.Int64
}

// NewLedger creates schema.ledger with rows rows at seq 0.
func NewLedger(ctx context.Context, db *sql.DB, schema string, rows int, seed uint64) (*Ledger, error) {
	l := &Ledger{db: db, schema: schema, rows: rows, rng: rand.New(rand.NewPCG(seed, 1))}
	if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, seq bigint NOT NULL, note varchar(64) NOT NULL)", l.name())); err != nil {
		return nil, fmt.Errorf("creating the ledger: %w", err)
	}
	var values []string
	for id := 1; id <= rows; id++ {
		values = append(values, fmt.Sprintf("(%d, 0, 'row %d')", id, id))
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO "+l.name()+" VALUES "+strings.Join(values, ",")); err != nil {
		return nil, fmt.Errorf("filling the ledger: %w", err)
	}
	return l, nil
}

func (l *Ledger) name() string { return fmt.Sprintf("`%s`.`%s`", l.schema, LedgerTable) }

// Changes is how many row changes the ledger has committed.
func (l *Ledger) Changes() int64 { return l.changes.Load() }

// Step commits one transaction: one to three rows counted up one by one,
// or a run of adjacent rows counted up by one multi-row UPDATE, and now and
// then a new row.
func (l *Ledger) Step(ctx context.Context) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	n := int64(0)
	switch k := l.rng.IntN(10); {
	case k == 0:
		l.rows++
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+l.name()+" VALUES (?, 0, ?)", l.rows, fmt.Sprintf("row %d", l.rows)); err != nil {
			return fmt.Errorf("ledger insert: %w", err)
		}
		n++
	case k < 3:
		from := 1 + l.rng.IntN(l.rows)
		res, err := tx.ExecContext(ctx, "UPDATE "+l.name()+" SET seq = seq + 1 WHERE id BETWEEN ? AND ?", from, from+4)
		if err != nil {
			return fmt.Errorf("ledger update: %w", err)
		}
		m, _ := res.RowsAffected()
		n += m
	default:
		for range 1 + l.rng.IntN(3) {
			if _, err := tx.ExecContext(ctx, "UPDATE "+l.name()+" SET seq = seq + 1 WHERE id = ?", 1+l.rng.IntN(l.rows)); err != nil {
				return fmt.Errorf("ledger update: %w", err)
			}
			n++
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger commit: %w", err)
	}
	l.changes.Add(n)
	return nil
}

// Run calls Step about rate times a second until ctx ends (returning nil)
// or a step fails.
func (l *Ledger) Run(ctx context.Context, rate int) error {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		// The step runs to its end even if ctx ends meanwhile: a commit
		// cut off by the cancelled context may still happen on the server,
		// unknown to the ledger, after Run returned.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		err := l.Step(sctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// Check reads the ledger's records among recs in stream-position order and
// returns every place where a row's sequence breaks: an update that does
// not add exactly one to the value before it (a lost or repeated change), or
// a full-load row whose value differs from what the changes before its
// snapshot left (a chunk published at the wrong place). It also returns how
// many records it checked.
func (l *Ledger) Check(recs []lake.Record) (problems []string, checked int) {
	var mine []lake.Record
	for _, r := range recs {
		if r.Schema == l.schema && r.Table == LedgerTable && r.Type != "control" {
			mine = append(mine, r)
		}
	}
	sort.SliceStable(mine, func(i, j int) bool { return mine[i].Position < mine[j].Position })
	prev := map[string]int64{}
	for _, r := range mine {
		n, ok := r.Data["seq"].(json.Number)
		v, err := n.Int64()
		if !ok || err != nil {
			problems = append(problems, fmt.Sprintf("%s at %s: seq = %v, not an integer", r.Key, r.Position, r.Data["seq"]))
			continue
		}
		p, seen := prev[r.Key]
		switch {
		case !seen:
		case r.Op == "update" && v != p+1:
			problems = append(problems, fmt.Sprintf("%s at %s: update to seq %d after seq %d (%s)", r.Key, r.Position, v, p, gapOrRepeat(v-p-1)))
		case (r.Op == "load" || r.Op == "insert") && v != p:
			problems = append(problems, fmt.Sprintf("%s at %s: %s of seq %d after the lake's changes left seq %d", r.Key, r.Position, r.Op, v, p))
		}
		prev[r.Key] = v
		checked++
	}
	return problems, checked
}

// Verify fails t for every break Check finds in recs (the first ten are
// shown), and when the lake holds fewer ledger records than the ledger
// made changes.
func (l *Ledger) Verify(t testing.TB, recs []lake.Record) {
	t.Helper()
	problems, checked := l.Check(recs)
	t.Logf("ledger: %d changes at the source, %d records in the lake", l.Changes(), checked)
	for i, p := range problems {
		if i == 10 {
			t.Errorf("ledger: … %d breaks in all", len(problems))
			break
		}
		t.Errorf("ledger: %s", p)
	}
	if int64(checked) < l.Changes() {
		t.Errorf("ledger: the lake holds %d records for %d changes", checked, l.Changes())
	}
}

func gapOrRepeat(missing int64) string {
	if missing > 0 {
		return fmt.Sprintf("%d change(s) missing", missing)
	}
	return "a change repeated or out of order"
}
