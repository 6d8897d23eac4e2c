package task

import (
	"context"
	"fmt"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/metrics"
	"github.com/binlake/binlake/internal/stream/natsjs"
)

// Warning is a condition that turns into an outage if nobody acts on it.
// Warnings are in the status, in the logs (when they start and end) and in
// the metric binlake_warning{code}.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Table   string `json:"table,omitempty"` // schema.table, for table_error
}

// Warning codes.
const (
	// WarnBinlogRetention: capture is behind the source by more than half
	// of the source's binlog retention.
	WarnBinlogRetention = "binlog_retention"
	// WarnStreamRetention: an embedded or NATS stream is more than half
	// full of records delivery has not stored (capture pauses at 90%).
	WarnStreamRetention = "stream_retention"
	// WarnTableError: a table is in "Table error".
	WarnTableError = "table_error"
	// WarnTargetRefusing: the target refuses writes; delivery retries.
	WarnTargetRefusing = "target_refusing_writes"
	// WarnStreamWaiting: capture has waited longer than streamWaitWarn for
	// the stream to take its messages (the stream is down or pushes back).
	WarnStreamWaiting = "stream_unavailable"
	// WarnSourceUnreachable: capture has lost the source (a restart, the
	// network) and reads the binlog again from its checkpoint once it
	// answers.
	WarnSourceUnreachable = "source_unreachable"
)

// streamWaitWarn is how long a producer call may wait before
// WarnStreamWaiting is raised: longer than a leader election or a
// throttled retry takes.
var streamWaitWarn = 5 * time.Second

// WarningCodes lists every warning code, in the order status lists them.
var WarningCodes = []string{WarnBinlogRetention, WarnStreamRetention, WarnTableError, WarnTargetRefusing, WarnStreamWaiting, WarnSourceUnreachable}

// health is what the warnings are decided from.
type health struct {
	cdc           bool
	captureBehind time.Duration // 0: unknown
	retention     capture.Retention
	streamRoom    natsjs.Room // zero: not known (Kinesis, Kafka)
	streamMaxKey  string      // the config key of streamRoom.MaxBytes
	tables        []TableStatus
	refusal       metrics.Refusal
	streamWaiting time.Duration // how long capture's oldest producer call has waited
	streamType    string
	sourceDown    time.Time // since when capture has not reached the source (zero: it has)
	sourceErr     string
}

// warnings returns the active warnings, in the order of WarningCodes.
func (h health) warnings() []Warning {
	out := []Warning{}
	if r := h.retention; h.cdc && r.Known && r.Period > 0 && 2*h.captureBehind > r.Period {
		out = append(out, Warning{Code: WarnBinlogRetention, Message: fmt.Sprintf(
			"capture is %s behind the source, more than half of the source's binlog retention (%s, %s): "+
				"if it falls further behind, or binlake stays stopped, the binlog it must read is purged and the tables must be loaded again; "+
				"find out why capture is behind, or lengthen the retention",
			roundDuration(h.captureBehind), roundDuration(r.Period), r.From)})
	}
	if r := h.streamRoom; r.MaxBytes > 0 && (r.Paused || 2*r.Stored > r.MaxBytes) {
		state := fmt.Sprintf("the stream holds %s, %d%% of its max_bytes (%s), in records delivery has not stored yet",
			formatBytes(uint64(r.Stored)), 100*r.Stored/r.MaxBytes, formatBytes(uint64(r.MaxBytes)))
		if r.Paused {
			state = "capture is paused: " + state + "; it reads the binlog again as delivery frees room"
		} else {
			state += fmt.Sprintf("; capture pauses at %d%%", int(100*natsjs.PauseAt))
		}
		out = append(out, Warning{Code: WarnStreamRetention, Message: state +
			"; nothing is dropped, but a long pause eats into the source's binlog retention: " +
			"find out why delivery is behind (target_refusing_writes?), or raise " + h.streamMaxKey})
	}
	for _, t := range h.tables {
		if t.State == capture.StateError {
			name := t.Schema + "." + t.Table
			out = append(out, Warning{Code: WarnTableError, Table: name, Message: fmt.Sprintf("table %s is in %q: %s", name, capture.StateError, t.Error)})
		}
	}
	if r := h.refusal; r.Active() {
		out = append(out, Warning{Code: WarnTargetRefusing, Message: fmt.Sprintf(
			"the target has refused %d write(s) since %s (last: %s); delivery retries with backoff while the stream keeps what capture reads",
			r.Failures, r.Since.UTC().Format(time.RFC3339), r.LastErr)})
	}
	if h.streamWaiting > streamWaitWarn {
		out = append(out, Warning{Code: WarnStreamWaiting, Message: fmt.Sprintf(
			"capture has waited %s for the %s stream to take its messages: it is down, unreachable or full; "+
				"nothing is dropped, capture stops reading the binlog and goes on when the stream takes messages again; "+
				"check the stream's servers (binlake's log says what the stream answers)",
			roundDuration(h.streamWaiting), h.streamType)})
	}
	if !h.sourceDown.IsZero() {
		out = append(out, Warning{Code: WarnSourceUnreachable, Message: fmt.Sprintf(
			"capture has not reached the source since %s (last: %s); it tries again with backoff up to 30 s and reads the binlog again from its checkpoint, "+
				"losing nothing, as long as the source keeps the binlog; check the source and the network",
			h.sourceDown.UTC().Format(time.RFC3339), h.sourceErr)})
	}
	return out
}

func roundDuration(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// watchWarnings logs each warning when it starts and when it ends, checking
// every interval until ctx is done.
func (t *Task) watchWarnings(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	active := map[string]Warning{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.logWarnings(active, t.Status().Warnings)
	}
}

// logWarnings logs the difference between the active warnings and now, and
// updates active.
func (t *Task) logWarnings(active map[string]Warning, now []Warning) {
	seen := map[string]bool{}
	for _, w := range now {
		k := w.Code + "|" + w.Table
		seen[k] = true
		if _, ok := active[k]; !ok {
			args := []any{"code", w.Code}
			if w.Table != "" {
				args = append(args, "table", w.Table)
			}
			t.log.Warn("warning raised", append(args, "message", w.Message)...)
		}
		active[k] = w
	}
	for k, w := range active {
		if !seen[k] {
			args := []any{"code", w.Code}
			if w.Table != "" {
				args = append(args, "table", w.Table)
			}
			t.log.Info("warning cleared", args...)
			delete(active, k)
		}
	}
}
