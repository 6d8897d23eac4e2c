package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/server"
	"github.com/binlake/binlake/internal/task"
)

// progressEvery is how often binlake run --progress prints its line.
var progressEvery = 5 * time.Second

// reportProgress writes a summary line of src every interval until stop,
// and a last one when stopped.
func reportProgress(stop <-chan struct{}, src server.StatusSource, w io.Writer, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastN, lastT := uint64(0), time.Now()
	first := true
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			st := src.Status()
			n := records(st)
			rate := 0.0
			if !first {
				if dt := now.Sub(lastT).Seconds(); dt > 0 && n >= lastN {
					rate = float64(n-lastN) / dt
				}
			}
			first = false
			lastN, lastT = n, now
			fmt.Fprintln(w, progressLine(st, n, rate))
		}
	}
}

// records counts the rows and changes of every table.
func records(st task.Status) uint64 {
	var n uint64
	for _, t := range st.Tables {
		n += t.FullLoadRows + t.Inserts + t.Updates + t.Deletes + t.DDLs
	}
	return n
}

// progressLine is one line: status, full-load progress, tables done,
// records, rate, lags and warnings.
func progressLine(st task.Status, n uint64, rate float64) string {
	status := st.Status
	if st.Detail != "" {
		status += " (" + st.Detail + ")"
	}
	if st.Reason != "" {
		status += ": " + st.Reason
	}
	done, errs := 0, 0
	for _, t := range st.Tables {
		switch t.State {
		case "Table completed":
			done++
		case "Table error":
			errs++
		}
	}
	lag := func(p *float64) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprintf("%.1fs", *p)
	}
	line := fmt.Sprintf("binlake %s · %s · load %.0f%% · tables %d/%d done", st.Task, status, st.FullLoadPercent, done, len(st.Tables))
	if errs > 0 {
		line += fmt.Sprintf(", %d in error", errs)
	}
	line += fmt.Sprintf(" · %d records, %.0f/s · lag capture %s, delivery %s", n, rate, lag(st.LagSeconds), lag(st.DeliveryLagSeconds))
	if len(st.Warnings) > 0 {
		line += fmt.Sprintf(" · %d warning(s): %s", len(st.Warnings), st.Warnings[0].Code)
	}
	return line
}

// liveEvery is how often binlake run redraws its live view on a terminal.
var liveEvery = time.Second

// barWidth is the width of a full-load progress bar in cells.
const barWidth = 30

// renderLive returns the lines binlake run draws on a terminal for cur:
// while the full load runs, one progress bar per table (name, bar, rows
// read/estimated, %), then a live line of rates (records per second
// captured and delivered, from prev taken elapsed before cur), capture and
// delivery lag, and warnings.
func renderLive(prev, cur task.Status, elapsed time.Duration) []string {
	var lines []string
	loading := false
	for _, t := range cur.Tables {
		if t.State == "Before load" || t.State == "Full load" {
			loading = true
		}
	}
	if loading {
		width := 0
		for _, t := range cur.Tables {
			width = max(width, len(t.Schema)+1+len(t.Table))
		}
		for _, t := range cur.Tables {
			pct := 0.0
			if t.FullLoadPercent != nil {
				pct = *t.FullLoadPercent
			}
			filled := int(pct / 100 * barWidth)
			filled = min(max(filled, 0), barWidth)
			est := "?"
			if t.EstimatedRows > 0 {
				est = fmt.Sprint(t.EstimatedRows)
			}
			line := fmt.Sprintf("%-*s [%s%s] %d/%s %3.0f%%", width, t.Schema+"."+t.Table,
				strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), max(t.LoadRowsRead, t.FullLoadRows), est, pct)
			if t.State == "Table error" {
				line += " error"
			}
			lines = append(lines, line)
		}
	}
	rate := func(a, b uint64) float64 {
		if s := elapsed.Seconds(); s > 0 && b >= a {
			return float64(b-a) / s
		}
		return 0
	}
	lag := func(p *float64) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprintf("%.1fs", *p)
	}
	status := cur.Status
	if cur.Detail != "" {
		status += " (" + cur.Detail + ")"
	}
	if cur.Reason != "" {
		status += ": " + cur.Reason
	}
	line := fmt.Sprintf("%s · load %.0f%% · captured %.0f/s, delivered %.0f/s · lag capture %s, delivery %s",
		status, cur.FullLoadPercent, rate(prev.CapturedRecords, cur.CapturedRecords), rate(records(prev), records(cur)),
		lag(cur.LagSeconds), lag(cur.DeliveryLagSeconds))
	if len(cur.Warnings) == 0 {
		line += " · no warnings"
	} else {
		codes := make([]string, len(cur.Warnings))
		for i, w := range cur.Warnings {
			codes[i] = w.Code
		}
		line += " · warnings: " + strings.Join(codes, ", ")
	}
	return append(lines, line)
}

// drawLive redraws renderLive's lines on the terminal w every interval
// until stop (moving the cursor up over the previous drawing), and a last
// time when stopped.
func drawLive(stop <-chan struct{}, src server.StatusSource, w io.Writer, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	prev, prevT := src.Status(), time.Now()
	drawn := 0
	draw := func(now time.Time) {
		cur := src.Status()
		lines := renderLive(prev, cur, now.Sub(prevT))
		prev, prevT = cur, now
		var b strings.Builder
		// Auto-wrap off while drawing: a line wider than the terminal is
		// cut instead of taking two rows the cursor-up would miss.
		b.WriteString("\x1b[?7l")
		if drawn > 0 {
			fmt.Fprintf(&b, "\x1b[%dA\r\x1b[J", drawn) // up over the last drawing, clear to the end
		}
		for _, l := range lines {
			b.WriteString(l)
			b.WriteString("\x1b[K\n")
		}
		b.WriteString("\x1b[?7h")
		drawn = len(lines)
		io.WriteString(w, b.String())
	}
	for {
		select {
		case <-stop:
			draw(time.Now())
			return
		case now := <-tick.C:
			draw(now)
		}
	}
}

// isTerminal tells whether w is a terminal (a character device); a
// variable so that tests can pretend.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
