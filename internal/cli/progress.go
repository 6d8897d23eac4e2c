package cli

import (
	"fmt"
	"io"
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
