package task_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/cli"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/server"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// TestMetricsAndWarnings runs a task with its HTTP server on a real
// MariaDB, makes a known workload on a table (5 rows loaded, then 3
// inserts, 2 updates, 1 delete) and checks that /metrics and the status
// count exactly that; then, with a binlog retention of 8 s on the source,
// that the idle capture raises the binlog_retention warning in the status,
// the metric and the log.
func TestMetricsAndWarnings(t *testing.T) {
	m := testbed.NewMariaDB(t)
	ctx := t.Context()
	if err := m.Exec(ctx,
		"CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20))",
		"INSERT INTO shop.items VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(5,'e')",
		"CREATE TABLE shop.empty (id INT PRIMARY KEY)",
		"ANALYZE TABLE shop.items", // TABLE_ROWS exact: the estimate the load is measured against
		"SET GLOBAL binlog_expire_logs_seconds = 8",
	); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `task: shop
source:
  mysql: {host: 127.0.0.1, port: %d, user: root, password: ""}
tables:
  - include: "shop.%%"
target: file://%s
state_dir: %s
delivery: {buffer: {size: 1MiB, interval: 1s}}
`, m.Port, t.TempDir(), filepath.Join(t.TempDir(), "state")))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	tk := task.New(cfg, log)
	srv, err := server.Listen("127.0.0.1:0", tk, tk.Registry(), log)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())
	base := "http://" + srv.Addr()

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tk.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("task: %v", err)
		}
	}()
	waitFor(t, 60*time.Second, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })
	workloadStart := time.Now().Add(-time.Second) // the source's clock may round
	if err := m.Exec(ctx,
		"INSERT INTO shop.items VALUES (6,'f'),(7,'g')",
		"INSERT INTO shop.items VALUES (8,'h')",
		"UPDATE shop.items SET name = 'B' WHERE id = 2",
		"UPDATE shop.items SET name = 'C' WHERE id = 3",
		"DELETE FROM shop.items WHERE id = 8",
	); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, tk, m)
	waitFor(t, 30*time.Second, func() bool {
		st := tk.Status()
		items := findTable(st, "shop", "items")
		return items != nil && items.Inserts == 3 && items.Updates == 2 && items.Deletes == 1 && st.BufferedBytes == 0
	})

	st := getStatus(t, base)
	items := findTable(st, "shop", "items")
	if items.FullLoadRows != 5 || items.EstimatedRows != 5 || items.FullLoadPercent == nil || *items.FullLoadPercent != 100 {
		t.Errorf("shop.items load: rows %d, estimated %d, percent %v; want 5, 5, 100", items.FullLoadRows, items.EstimatedRows, items.FullLoadPercent)
	}
	if st.FullLoadPercent != 100 {
		t.Errorf("full_load_progress_percent = %v, want 100", st.FullLoadPercent)
	}
	if st.DeliveryLagSeconds == nil || *st.DeliveryLagSeconds != 0 {
		t.Errorf("delivery_lag_seconds = %v, want 0 with nothing buffered", st.DeliveryLagSeconds)
	}
	if items.LagSeconds == nil || st.LagSeconds == nil {
		t.Errorf("lag: table %v, task %v; want both", items.LagSeconds, st.LagSeconds)
	}

	// binlake status and binlake tables read the same numbers.
	var out, errOut bytes.Buffer
	if code := cli.Main([]string{"status", "--url", base}, &out, &errOut); code != cli.ExitOK {
		t.Fatalf("binlake status: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "task shop: Running (Load complete, replication ongoing)") ||
		!regexp.MustCompile(`(?m)^ +shop\.items +Table completed +5 +3 +2 +1 +\d+ +\d+ *$`).MatchString(out.String()) {
		t.Errorf("binlake status:\n%s", out.String())
	}
	out.Reset()
	if code := cli.Main([]string{"tables", "--url", base, "--json", "shop.items"}, &out, &errOut); code != cli.ExitOK {
		t.Fatalf("binlake tables: exit %d: %s", code, errOut.String())
	}
	var tables []task.TableStatus
	if err := json.Unmarshal(out.Bytes(), &tables); err != nil || len(tables) != 1 || tables[0].Inserts != 3 || tables[0].Updates != 2 || tables[0].Deletes != 1 {
		t.Errorf("binlake tables --json shop.items: %v\n%s", err, out.String())
	}

	fams := scrape(t, base)
	workloadEnd := time.Now().Add(time.Second)

	// The stream positions: capture's coordinate is SHOW MASTER STATUS's
	// (the source is idle now), the lake holds the workload's last commit.
	master := m.BinlogEnd(t)
	file, pos, _ := strings.Cut(master, ":")
	fileNumber, err := change.BinlogFileNumber(file)
	if err != nil {
		t.Fatal(err)
	}
	offset, err := strconv.ParseFloat(pos, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := sample(fams, "binlake_capture_binlog_file_number", ""); !ok || got != float64(fileNumber) {
		t.Errorf("binlake_capture_binlog_file_number = %v (present %v), want %d (SHOW MASTER STATUS %s)", got, ok, fileNumber, master)
	}
	if got, ok := sample(fams, "binlake_capture_binlog_offset_bytes", ""); !ok || got != offset {
		t.Errorf("binlake_capture_binlog_offset_bytes = %v (present %v), want %v (SHOW MASTER STATUS %s)", got, ok, offset, master)
	}
	if got, ok := sample(fams, "binlake_delivered_commit_timestamp_seconds", `table="shop.items"`); !ok ||
		got < float64(workloadStart.Unix()) || got > float64(workloadEnd.Unix()) {
		t.Errorf("binlake_delivered_commit_timestamp_seconds{table=\"shop.items\"} = %v (present %v), want the workload's last commit, in [%d, %d]",
			got, ok, workloadStart.Unix(), workloadEnd.Unix())
	}
	for _, c := range []struct {
		name   string
		labels string
		want   float64
	}{
		{"binlake_capture_records_total", `op="load",table="shop.items"`, 5},
		{"binlake_capture_records_total", `op="insert",table="shop.items"`, 3},
		{"binlake_capture_records_total", `op="update",table="shop.items"`, 2},
		{"binlake_capture_records_total", `op="delete",table="shop.items"`, 1},
		{"binlake_delivery_records_total", `op="load",table="shop.items"`, 5},
		{"binlake_delivery_records_total", `op="insert",table="shop.items"`, 3},
		{"binlake_delivery_records_total", `op="update",table="shop.items"`, 2},
		{"binlake_delivery_records_total", `op="delete",table="shop.items"`, 1},
		{"binlake_delivery_records_total", `op="insert",table="shop.empty"`, 0},
		{"binlake_delivery_objects_total", `table="shop.items"`, float64(items.Objects)},
		{"binlake_delivery_object_bytes_total", `table="shop.items"`, float64(items.Bytes)},
		{"binlake_full_load_rows", `table="shop.items"`, 5},
		{"binlake_full_load_estimated_rows", `table="shop.items"`, 5},
		{"binlake_full_load_progress_ratio", ``, 1},
		{"binlake_delivery_duplicates_dropped_total", ``, 0},
		{"binlake_delivery_buffered_bytes", ``, 0},
		{"binlake_delivery_lag_seconds", ``, 0},
		{"binlake_source_binlog_retention_seconds", ``, 8},
		{"binlake_task_status", `status="Running"`, 1},
		{"binlake_task_status", `status="Failed"`, 0},
		{"binlake_target_operation_failures_total", `operation="put"`, 0},
		{"binlake_stream_failures_total", `operation="publish"`, 0},
		{"binlake_warning", `code="table_error"`, 0},
		{"binlake_warning", `code="target_refusing_writes"`, 0},
		{"binlake_warning", `code="stream_retention"`, 0},
	} {
		got, ok := sample(fams, c.name, c.labels)
		if !ok {
			t.Errorf("%s{%s} is missing", c.name, c.labels)
		} else if got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n, _ := sample(fams, "binlake_capture_records_total", `op="ddl",table="shop.items"`); n != 0 {
		t.Errorf("capture counted %v DDLs on shop.items, want 0", n)
	}
	if objects := items.Objects; objects == 0 {
		t.Error("no object written for shop.items")
	} else if puts, _ := sample(fams, "binlake_target_operations_total", `operation="put"`); puts < float64(objects) {
		t.Errorf("%v puts for %d objects", puts, objects)
	}
	if _, ok := sample(fams, "binlake_capture_lag_seconds", ""); !ok {
		t.Error("binlake_capture_lag_seconds is missing while replicating")
	}
	if _, ok := sample(fams, "binlake_table_lag_seconds", `table="shop.items"`); !ok {
		t.Error("binlake_table_lag_seconds is missing for shop.items")
	}
	if h := fams["binlake_stream_publish_duration_seconds"]; h == nil || h.Metric[0].GetHistogram().GetSampleCount() < 11 {
		t.Errorf("binlake_stream_publish_duration_seconds counts fewer publishes than the 11 records: %v", h)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("the Go runtime metrics are missing")
	}
	for name := range fams {
		if !strings.HasPrefix(name, "binlake_") && !strings.HasPrefix(name, "go_") {
			t.Errorf("metric %s has neither the binlake_ nor the go_ prefix", name)
		}
	}

	// The source is idle now: capture's lag passes half of the 8 s retention.
	waitFor(t, 30*time.Second, func() bool {
		for _, w := range getStatus(t, base).Warnings {
			if w.Code == task.WarnBinlogRetention {
				return true
			}
		}
		return false
	})
	if got, _ := sample(scrape(t, base), "binlake_warning", `code="binlog_retention"`); got != 1 {
		t.Errorf(`binlake_warning{code="binlog_retention"} = %v, want 1`, got)
	}
	waitFor(t, 15*time.Second, func() bool {
		return strings.Contains(logs.String(), `msg="warning raised" code=binlog_retention message="capture is `)
	})
}

func findTable(st task.Status, schema, table string) *task.TableStatus {
	for i := range st.Tables {
		if st.Tables[i].Schema == schema && st.Tables[i].Table == table {
			return &st.Tables[i]
		}
	}
	return nil
}

func getStatus(t *testing.T, base string) task.Status {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st task.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// scrape reads /metrics and parses the Prometheus text format.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// sample returns the value of the series of name whose labels, sorted and
// formatted as a="x",b="y", are labels.
func sample(fams map[string]*dto.MetricFamily, name, labels string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		var ls []string
		for _, l := range m.Label {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(ls)
		if strings.Join(ls, ",") != labels {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
