package task

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/delivery"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/natsjs"
	"github.com/binlake/binlake/internal/validate"
)

// Status is the JSON document of GET /api/v1/status.
type Status struct {
	Task      string    `json:"task"`
	Status    string    `json:"status"`
	Detail    string    `json:"detail,omitempty"` // "Load running", "Load complete, replication ongoing", "Replication ongoing"
	Reason    string    `json:"reason,omitempty"`
	Migration string    `json:"migration"`
	StartedAt time.Time `json:"started_at"`
	// FullLoadPercent is the share of the full load done, by rows against
	// each table's estimate (tables without one count by state).
	FullLoadPercent float64 `json:"full_load_progress_percent"`
	// LagSeconds is capture's lag: now minus the source commit time of the
	// newest transaction captured.
	LagSeconds *float64 `json:"replication_lag_seconds,omitempty"`
	// DeliveryLagSeconds is now minus the source commit time of the oldest
	// record delivery holds that is not yet in the lake (0: none).
	DeliveryLagSeconds *float64 `json:"delivery_lag_seconds,omitempty"`
	SourcePosition     string   `json:"source_position,omitempty"` // binlog file:pos captured up to
	// CapturedRecords is how many records capture published on the stream
	// since the process started (the delivered ones are the tables' counts).
	// DeliverPartitions are the stream partitions this deliver worker
	// holds the leases of, and DeliverWorkers the workers sharing them
	// (role deliver on a NATS stream).
	DeliverPartitions []int `json:"deliver_partitions,omitempty"`
	DeliverWorkers    int   `json:"deliver_workers,omitempty"`

	// StreamLagSeconds is how far delivery's reading is behind the newest
	// record of the stream, as Kinesis tells (MillisBehindLatest of the
	// slowest shard); StreamBacklog is how many stored messages delivery
	// has not read yet, as NATS and Kafka tell (a batch counts once).
	StreamLagSeconds *float64 `json:"stream_lag_seconds,omitempty"`
	StreamBacklog    *uint64  `json:"stream_backlog_messages,omitempty"`
	// StreamBytes is what an embedded or NATS stream holds: the records
	// delivery has not stored yet, and stored ones younger than max_age.
	StreamBytes *uint64 `json:"stream_bytes,omitempty"`

	CapturedRecords   uint64        `json:"captured_records"`
	BufferedBytes     int           `json:"buffered_bytes"`
	DuplicatesDropped uint64        `json:"duplicates_dropped"`
	Warnings          []Warning     `json:"warnings"`
	Tables            []TableStatus `json:"tables"`
}

// TableStatus is one table's line of the status, DMS table statistics plus
// what DMS does not show.
type TableStatus struct {
	Schema       string `json:"schema"`
	Table        string `json:"table"`
	State        string `json:"state"`
	FullLoadRows uint64 `json:"full_load_rows"`
	// EstimatedRows is the table's row count estimate when its load started.
	EstimatedRows uint64 `json:"estimated_rows,omitempty"`
	// LoadRowsRead is how many of the table's rows its full load has read
	// from the source and published so far (FullLoadRows are those stored
	// in the lake).
	LoadRowsRead uint64 `json:"full_load_rows_read,omitempty"`
	// FullLoadPercent is the table's load progress: 100 once completed,
	// rows loaded against the estimate while loading (at most 99).
	FullLoadPercent *float64   `json:"full_load_progress_percent,omitempty"`
	Inserts         uint64     `json:"inserts"`
	Updates         uint64     `json:"updates"`
	Deletes         uint64     `json:"deletes"`
	DDLs            uint64     `json:"ddls"`
	FullLoadStart   *time.Time `json:"full_load_start,omitempty"`
	FullLoadEnd     *time.Time `json:"full_load_end,omitempty"`
	LastUpdateTime  *time.Time `json:"last_update_time,omitempty"`
	// LagSeconds is how far the lake's copy of the table is behind the
	// source: now minus the commit time of its oldest record not yet in the
	// lake, or capture's lag when none is waiting.
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	Objects    uint64   `json:"objects"`
	Bytes      uint64   `json:"bytes"`
	LastObject string   `json:"last_object,omitempty"`
	Error      string   `json:"error,omitempty"`
	// ValidationState is DMS's (Validated, Mismatched records, Pending
	// records, No primary key, Table error) from continuous validation;
	// "Not enabled" without it.
	ValidationState   string     `json:"validation_state,omitempty"`
	ValidationDiffers int        `json:"validation_differing_rows,omitempty"`
	ValidatedAt       *time.Time `json:"validated_at,omitempty"`
}

// Status returns the task's current status.
func (t *Task) Status() Status {
	s, _ := t.observe(time.Now())
	return s
}

// observation is what the status is made of, with what only the metrics
// and warnings need.
type observation struct {
	retention capture.Retention
	behind    time.Duration // how far capture is behind the source (0: unknown)
	// binlogFile and binlogPos are the coordinate capture has published
	// everything up to ("" before it has one).
	binlogFile string
	binlogPos  uint32
	// delivered is each table's newest source commit time stored in the
	// lake (absent until one is).
	delivered map[string]time.Time
}

// observe reads the task's state at now.
func (t *Task) observe(now time.Time) (Status, observation) {
	var ob observation
	t.mu.Lock()
	s := Status{Task: t.cfg.Task, Status: t.status, Reason: t.reason, Migration: t.cfg.Migration, StartedAt: t.started}
	cp, dl, coord, cons, roomOf := t.capture, t.delivery, t.coord, t.cons, t.room
	t.mu.Unlock()
	var room natsjs.Room
	if roomOf != nil {
		room = roomOf()
		b := uint64(room.Stored)
		s.StreamBytes = &b
	}
	if l, ok := stream.As[stream.Lagger](cons); ok {
		lag := seconds(l.Lag())
		s.StreamLagSeconds = &lag
	}
	if b, ok := stream.As[stream.Backlogger](cons); ok {
		n := b.Backlog()
		s.StreamBacklog = &n
	}
	if coord != nil {
		s.DeliverPartitions, s.DeliverWorkers = coord.Owned(), coord.Workers()
	}
	s.Warnings = []Warning{}
	if cp == nil && dl == nil {
		s.Tables = []TableStatus{}
		return s, ob
	}
	// A process runs capture, delivery or both (config.Role): what the
	// other stage would tell stays empty.
	var progress map[string]capture.TableProgress
	var stats map[string]delivery.TableStats
	var oldest map[string]time.Time
	phase := capture.PhaseStarting
	if cp != nil {
		progress = cp.Tables()
		phase = cp.Phase()
		ob.retention = cp.BinlogRetention()
	}
	if dl != nil {
		stats = dl.Stats()
		oldest = dl.OldestBuffered()
	}
	running := s.Status == StatusRunning || s.Status == StatusStopping

	var captureLag *float64
	// The binlog reader runs during the full load too (it merges the
	// chunks), so capture's lag is the age of the last commit it published
	// in both phases.
	if phase == capture.PhaseStreaming || phase == capture.PhaseLoading {
		if last := cp.LastCommit(); !last.IsZero() {
			lag := seconds(now.Sub(last))
			captureLag = &lag
			ob.behind = now.Sub(last)
		}
	}

	names := map[string]bool{}
	for k := range progress {
		names[k] = true
	}
	for k := range stats {
		names[k] = true
	}
	var weighted, weights float64
	loading := 0
	for name := range names {
		schema, table, _ := strings.Cut(name, ".")
		ts := TableStatus{Schema: schema, Table: table, State: capture.StateBeforeLoad, ValidationState: "Not enabled"}
		if t.cfg.Validation.Enabled {
			ts.ValidationState = validate.StatePending
			t.mu.Lock()
			if v, ok := t.validation[name]; ok {
				at := v.At
				ts.ValidationState, ts.ValidationDiffers, ts.ValidatedAt = v.State, v.Differing, &at
			}
			t.mu.Unlock()
		}
		st, delivered := stats[name]
		if delivered {
			ts.FullLoadRows, ts.Inserts, ts.Updates, ts.Deletes, ts.DDLs = st.FullLoadRows, st.Inserts, st.Updates, st.Deletes, st.DDLs
			ts.Objects, ts.Bytes, ts.LastObject = st.Objects, st.Bytes, st.LastObject
			if !st.LastUpdateTime.IsZero() {
				lu := st.LastUpdateTime
				ts.LastUpdateTime = &lu
			}
		}
		if p, ok := progress[name]; ok {
			ts.State, ts.FullLoadStart, ts.FullLoadEnd, ts.Error = p.State, p.LoadStart, p.LoadEnd, p.Error
			ts.EstimatedRows = p.EstimatedRows
			ts.LoadRowsRead = p.LoadRows
			pct, weight := loadProgress(p.State, max(p.LoadRows, ts.FullLoadRows), p.EstimatedRows)
			ts.FullLoadPercent = &pct
			weighted += pct * weight
			weights += weight
			loading++
		}
		if running {
			if o, ok := oldest[name]; ok {
				lag := seconds(now.Sub(o))
				ts.LagSeconds = &lag
			} else if captureLag != nil {
				lag := *captureLag
				ts.LagSeconds = &lag
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
		s.FullLoadPercent = round2(weighted / weights)
	} else if phase != capture.PhaseStarting {
		s.FullLoadPercent = 100
	}
	if cp != nil {
		if file, pos := cp.Position(); file != "" {
			s.SourcePosition = fmt.Sprintf("%s:%d", file, pos)
			ob.binlogFile, ob.binlogPos = file, pos
		}
	}
	ob.delivered = map[string]time.Time{}
	for name, st := range stats {
		if !st.LastCommitTime.IsZero() {
			ob.delivered[name] = st.LastCommitTime
		}
	}
	s.CapturedRecords = t.stream.Captured()
	if dl != nil {
		s.BufferedBytes = dl.BufferedBytes()
		s.DuplicatesDropped = dl.Duplicates()
	}
	var deliveryBehind time.Duration
	for _, o := range oldest {
		deliveryBehind = max(deliveryBehind, now.Sub(o))
	}
	if running {
		lag := seconds(deliveryBehind)
		s.DeliveryLagSeconds = &lag
	}
	if s.Status == StatusRunning && cp == nil {
		s.Detail = "Delivering from the stream"
	} else if s.Status == StatusRunning {
		switch phase {
		case capture.PhaseLoading:
			s.Detail = "Load running"
		case capture.PhaseStreaming:
			if t.cfg.Migration == config.MigrationCDC {
				s.Detail = "Replication ongoing"
			} else {
				s.Detail = "Load complete, replication ongoing"
			}
			s.LagSeconds = captureLag
		case capture.PhaseDone:
			s.Detail = "Load complete"
		}
	}
	if running {
		var downSince time.Time
		var downErr string
		if cp != nil {
			downSince, downErr = cp.SourceDown()
		}
		s.Warnings = health{
			sourceDown:    downSince,
			sourceErr:     downErr,
			cdc:           t.cfg.Migration != config.MigrationFullLoad,
			captureBehind: ob.behind,
			retention:     ob.retention,
			streamRoom:    room,
			streamMaxKey:  t.streamMaxBytesKey(),
			tables:        s.Tables,
			refusal:       t.target.Refusing(),
			streamWaiting: t.stream.Waiting(time.Now()),
			streamType:    t.cfg.Stream.Type,
		}.warnings()
	}
	return s, ob
}

// streamMaxBytesKey is the config key of the stream's size limit; empty
// for Kinesis and Kafka, whose retention is the stream's own (a retention
// period, retention.ms) and not binlake's.
func (t *Task) streamMaxBytesKey() string {
	switch t.cfg.Stream.Type {
	case config.StreamEmbedded:
		return "stream.embedded.max_bytes"
	case config.StreamNATS:
		return "stream.nats.max_bytes"
	}
	return ""
}

// loadProgress is a table's full-load progress in percent and its weight in
// the task's progress: its rows (the estimate until it is loaded), at least
// one, so that tables without an estimate count too.
func loadProgress(state string, rows, estimated uint64) (pct, weight float64) {
	switch state {
	case capture.StateCompleted:
		return 100, float64(max(rows, 1))
	case capture.StateBeforeLoad:
		return 0, float64(max(estimated, 1))
	}
	if estimated == 0 {
		return 0, 1
	}
	// The estimate is a statistic: never report a running load as done.
	return round2(min(99, 100*float64(rows)/float64(estimated))), float64(max(estimated, rows, 1))
}

func seconds(d time.Duration) float64 { return max(d.Seconds(), 0) }

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// WriteTable prints the status for terminals: the task line, its warnings
// and the table statistics.
func (s Status) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "task %s: %s", s.Task, s.Status)
	if s.Detail != "" {
		fmt.Fprintf(w, " (%s)", s.Detail)
	}
	if s.FullLoadPercent < 100 && s.Status == StatusRunning {
		fmt.Fprintf(w, ", full load %s%%", formatFloat(s.FullLoadPercent))
	}
	if s.LagSeconds != nil {
		fmt.Fprintf(w, ", lag %.1fs", *s.LagSeconds)
	}
	if s.DeliveryLagSeconds != nil && *s.DeliveryLagSeconds > 0 {
		fmt.Fprintf(w, ", delivery lag %.1fs", *s.DeliveryLagSeconds)
	}
	if s.Reason != "" {
		fmt.Fprintf(w, ": %s", s.Reason)
	}
	fmt.Fprintln(w)
	for _, wn := range s.Warnings {
		fmt.Fprintf(w, "WARNING %s: %s\n", wn.Code, wn.Message)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TABLE\tSTATE\tLOAD ROWS\tINSERTS\tUPDATES\tDELETES\tDDLS\tOBJECTS\t")
	for _, t := range s.Tables {
		fmt.Fprintf(tw, "%s.%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", t.Schema, t.Table, t.State, t.FullLoadRows, t.Inserts, t.Updates, t.Deletes, t.DDLs, t.Objects)
	}
	tw.Flush()
}

// WriteTables prints table statistics for terminals, wider than the status
// table: load progress, lag, bytes and the last object.
func WriteTables(w io.Writer, tables []TableStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSTATE\tLOAD\tLOAD ROWS\tINSERTS\tUPDATES\tDELETES\tDDLS\tLAG\tOBJECTS\tBYTES\tLAST UPDATE\tLAST OBJECT")
	for _, t := range tables {
		load, lag, last := "-", "-", "-"
		if t.FullLoadPercent != nil {
			load = formatFloat(*t.FullLoadPercent) + "%"
		}
		if t.LagSeconds != nil {
			lag = fmt.Sprintf("%.1fs", *t.LagSeconds)
		}
		if t.LastUpdateTime != nil {
			last = t.LastUpdateTime.UTC().Format(time.DateTime)
		}
		state := t.State
		if t.Error != "" {
			state += ": " + t.Error
		}
		obj := t.LastObject
		if obj == "" {
			obj = "-"
		}
		fmt.Fprintf(tw, "%s.%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", t.Schema, t.Table, state, load,
			t.FullLoadRows, t.Inserts, t.Updates, t.Deletes, t.DDLs, lag, t.Objects, formatBytes(t.Bytes), last, obj)
	}
	tw.Flush()
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}

// formatBytes prints a byte count in binary units, like config sizes.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
