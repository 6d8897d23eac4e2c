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
