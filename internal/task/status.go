package task

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
)

// Status is the JSON document of GET /api/v1/status.
type Status struct {
	Task              string        `json:"task"`
	Status            string        `json:"status"`
	Detail            string        `json:"detail,omitempty"` // "Load running", "Load complete, replication ongoing", "Replication ongoing"
	Reason            string        `json:"reason,omitempty"`
	Migration         string        `json:"migration"`
	StartedAt         time.Time     `json:"started_at"`
	FullLoadPercent   float64       `json:"full_load_progress_percent"`
	LagSeconds        *float64      `json:"replication_lag_seconds,omitempty"`
	SourcePosition    string        `json:"source_position,omitempty"` // binlog file:pos captured up to
	BufferedBytes     int           `json:"buffered_bytes"`
	DuplicatesDropped uint64        `json:"duplicates_dropped"`
	Tables            []TableStatus `json:"tables"`
}

// TableStatus is one table's line of the status, DMS table statistics plus
// what DMS does not show.
type TableStatus struct {
	Schema         string     `json:"schema"`
	Table          string     `json:"table"`
	State          string     `json:"state"`
	FullLoadRows   uint64     `json:"full_load_rows"`
	Inserts        uint64     `json:"inserts"`
	Updates        uint64     `json:"updates"`
	Deletes        uint64     `json:"deletes"`
	DDLs           uint64     `json:"ddls"`
	FullLoadStart  *time.Time `json:"full_load_start,omitempty"`
	FullLoadEnd    *time.Time `json:"full_load_end,omitempty"`
	LastUpdateTime *time.Time `json:"last_update_time,omitempty"`
	Objects        uint64     `json:"objects"`
	Bytes          uint64     `json:"bytes"`
	LastObject     string     `json:"last_object,omitempty"`
	Error          string     `json:"error,omitempty"`
}

// Status returns the task's current status.
func (t *Task) Status() Status {
	t.mu.Lock()
	s := Status{Task: t.cfg.Task, Status: t.status, Reason: t.reason, Migration: t.cfg.Migration, StartedAt: t.started}
	cp, dl := t.capture, t.delivery
	t.mu.Unlock()
	if cp == nil || dl == nil {
		s.Tables = []TableStatus{}
		return s
	}
	progress := cp.Tables()
	stats := dl.Stats()
	names := map[string]bool{}
	for k := range progress {
		names[k] = true
	}
	for k := range stats {
		names[k] = true
	}
	loading, loaded := 0, 0
	for name := range names {
		schema, table, _ := strings.Cut(name, ".")
		ts := TableStatus{Schema: schema, Table: table, State: capture.StateBeforeLoad}
		if p, ok := progress[name]; ok {
			ts.State, ts.FullLoadStart, ts.FullLoadEnd, ts.Error = p.State, p.LoadStart, p.LoadEnd, p.Error
			if p.State == capture.StateCompleted {
				loaded++
			}
			loading++
		}
		if st, ok := stats[name]; ok {
			ts.FullLoadRows, ts.Inserts, ts.Updates, ts.Deletes, ts.DDLs = st.FullLoadRows, st.Inserts, st.Updates, st.Deletes, st.DDLs
			ts.Objects, ts.Bytes, ts.LastObject = st.Objects, st.Bytes, st.LastObject
			if !st.LastUpdateTime.IsZero() {
				lu := st.LastUpdateTime
				ts.LastUpdateTime = &lu
			}
		}
		s.Tables = append(s.Tables, ts)
	}
	sort.Slice(s.Tables, func(i, j int) bool {
		if s.Tables[i].Schema != s.Tables[j].Schema {
			return s.Tables[i].Schema < s.Tables[j].Schema
		}
		return s.Tables[i].Table < s.Tables[j].Table
	})
	if s.Tables == nil {
		s.Tables = []TableStatus{}
	}
	if loading > 0 {
		s.FullLoadPercent = float64(100*loaded) / float64(loading)
	} else if cp.Phase() != capture.PhaseStarting {
		s.FullLoadPercent = 100
	}
	if file, pos := cp.Position(); file != "" {
		s.SourcePosition = fmt.Sprintf("%s:%d", file, pos)
	}
	s.BufferedBytes = dl.BufferedBytes()
	s.DuplicatesDropped = dl.Duplicates()
	if s.Status == StatusRunning {
		switch cp.Phase() {
		case capture.PhaseLoading:
			s.Detail = "Load running"
		case capture.PhaseStreaming:
			if t.cfg.Migration == config.MigrationCDC {
				s.Detail = "Replication ongoing"
			} else {
				s.Detail = "Load complete, replication ongoing"
			}
			if last := cp.LastCommit(); !last.IsZero() {
				lag := time.Since(last).Seconds()
				s.LagSeconds = &lag
			}
		case capture.PhaseDone:
			s.Detail = "Load complete"
		}
	}
	return s
}

// WriteTable prints the status as a table for terminals.
func (s Status) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "task %s: %s", s.Task, s.Status)
	if s.Detail != "" {
		fmt.Fprintf(w, " (%s)", s.Detail)
	}
	if s.LagSeconds != nil {
		fmt.Fprintf(w, ", lag %.1fs", *s.LagSeconds)
	}
	if s.Reason != "" {
		fmt.Fprintf(w, ": %s", s.Reason)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TABLE\tSTATE\tLOAD ROWS\tINSERTS\tUPDATES\tDELETES\tDDLS\tOBJECTS\t")
	for _, t := range s.Tables {
		fmt.Fprintf(tw, "%s.%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", t.Schema, t.Table, t.State, t.FullLoadRows, t.Inserts, t.Updates, t.Deletes, t.DDLs, t.Objects)
	}
	tw.Flush()
}
