package cli

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/task"
)

type progressSource struct {
	mu sync.Mutex
	st task.Status
}

func (p *progressSource) Status() task.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressLine(t *testing.T) {
	lag := 1.25
	st := task.Status{
		Task: "shop", Status: task.StatusRunning, Detail: "Load running", FullLoadPercent: 50, LagSeconds: &lag,
		Warnings: []task.Warning{{Code: task.WarnTargetRefusing, Message: "x"}},
		Tables: []task.TableStatus{
			{State: "Table completed", FullLoadRows: 10, Inserts: 2},
			{State: "Full load", FullLoadRows: 5},
			{State: "Table error"},
		},
	}
	got := progressLine(st, records(st), 3.4)
	want := "binlake shop · Running (Load running) · load 50% · tables 1/3 done, 1 in error · 17 records, 3/s · lag capture 1.2s, delivery – · 1 warning(s): " + task.WarnTargetRefusing
	if got != want {
		t.Errorf("progressLine:\n got %q\nwant %q", got, want)
	}

	src := &progressSource{st: st}
	var out syncBuf
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { reportProgress(stop, src, &out, 20*time.Millisecond); close(done) }()
	time.Sleep(50 * time.Millisecond)
	src.mu.Lock()
	src.st.Tables[1].FullLoadRows = 1005
	src.mu.Unlock()
	time.Sleep(60 * time.Millisecond)
	close(stop)
	<-done
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 || !strings.Contains(lines[0], "17 records, 0/s") || !strings.Contains(out.String(), "1017 records") {
		t.Errorf("progress lines:\n%s", out.String())
	}
}

func TestRenderLive(t *testing.T) {
	pct := func(f float64) *float64 { return &f }
	lag, dlag := 0.4, 1.25
	prev := task.Status{CapturedRecords: 1000, Tables: []task.TableStatus{
		{Schema: "shop", Table: "items", FullLoadRows: 200},
		{Schema: "shop", Table: "orders", FullLoadRows: 100},
	}}
	cur := task.Status{
		Task: "shop", Status: task.StatusRunning, Detail: "Load running", FullLoadPercent: 62.5,
		LagSeconds: &lag, DeliveryLagSeconds: &dlag, CapturedRecords: 1600,
		Tables: []task.TableStatus{
			{Schema: "shop", Table: "items", State: "Full load", FullLoadRows: 300, LoadRowsRead: 500, EstimatedRows: 1000, FullLoadPercent: pct(50)},
			{Schema: "shop", Table: "orders", State: "Table completed", FullLoadRows: 200, EstimatedRows: 180, FullLoadPercent: pct(100), Inserts: 100},
			{Schema: "shop", Table: "x", State: "Before load", FullLoadPercent: pct(0)},
		},
	}
	got := renderLive(prev, cur, 2*time.Second)
	want := []string{
		"shop.items  [###############...............] 500/1000  50%",
		"shop.orders [##############################] 200/180 100%",
		"shop.x      [..............................] 0/?   0%",
		"Running (Load running) · load 62% · captured 300/s, delivered 150/s · lag capture 0.4s, delivery 1.2s · no warnings",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("renderLive while loading:\n got %q\nwant %q", got, want)
	}

	// Loaded: only the live line, with the warnings; no rate without elapsed time.
	cur.Detail, cur.FullLoadPercent, cur.DeliveryLagSeconds = "Load complete, replication ongoing", 100, nil
	cur.Tables[0].State, cur.Tables[2].State = "Table completed", "Table completed"
	cur.Warnings = []task.Warning{{Code: task.WarnBinlogRetention}, {Code: task.WarnTargetRefusing}}
	got = renderLive(cur, cur, 0)
	want = []string{"Running (Load complete, replication ongoing) · load 100% · captured 0/s, delivered 0/s · lag capture 0.4s, delivery – · warnings: " +
		task.WarnBinlogRetention + ", " + task.WarnTargetRefusing}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("renderLive when loaded:\n got %q\nwant %q", got, want)
	}
}

func TestDrawLiveRedraws(t *testing.T) {
	src := &progressSource{st: task.Status{Status: task.StatusRunning, Tables: []task.TableStatus{
		{Schema: "s", Table: "t", State: "Full load", EstimatedRows: 10},
	}}}
	var out syncBuf
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { drawLive(stop, src, &out, 20*time.Millisecond); close(done) }()
	time.Sleep(70 * time.Millisecond)
	close(stop)
	<-done
	// Two lines per drawing; every drawing after the first moves up over two.
	s := out.String()
	draws := strings.Count(s, "Running ·")
	if draws < 2 || strings.Count(s, "\x1b[?7l\x1b[2A\r\x1b[J") != draws-1 || !strings.HasPrefix(s, "\x1b[?7ls.t ") ||
		strings.Count(s, "\x1b[?7h") != draws || !strings.HasSuffix(s, "\x1b[K\n\x1b[?7h") {
		t.Errorf("%d drawings:\n%q", draws, s)
	}
}
