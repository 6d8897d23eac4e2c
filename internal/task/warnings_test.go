package task

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/metrics"
	"github.com/binlake/binlake/internal/stream/natsjs"
)

func TestWarnings(t *testing.T) {
	week := 7 * 24 * time.Hour
	retention := capture.Retention{Known: true, Period: week, From: "binlog_expire_logs_seconds=604800"}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		h     health
		codes []string
		has   string // a substring of the messages
	}{
		{name: "healthy", h: health{cdc: true, captureBehind: time.Hour, retention: retention, streamRoom: natsjs.Room{Stored: 100 << 20, MaxBytes: 1 << 30}}},
		{name: "capture behind half the retention", h: health{cdc: true, captureBehind: week/2 + time.Second, retention: retention},
			codes: []string{WarnBinlogRetention}, has: "capture is 84h0m1s behind the source, more than half of the source's binlog retention (168h0m0s, binlog_expire_logs_seconds=604800)"},
		{name: "exactly half is not yet a warning", h: health{cdc: true, captureBehind: week / 2, retention: retention}},
		{name: "retention 0 means binlogs are kept forever", h: health{cdc: true, captureBehind: 1000 * week, retention: capture.Retention{Known: true}}},
		{name: "retention unknown", h: health{cdc: true, captureBehind: 1000 * week}},
		{name: "a full-load task reads no binlog", h: health{captureBehind: week, retention: retention}},
		{name: "stream more than half full", h: health{streamRoom: natsjs.Room{Stored: 600 << 20, MaxBytes: 1 << 30}, streamMaxKey: "stream.nats.max_bytes"},
			codes: []string{WarnStreamRetention}, has: "the stream holds 600.0MiB, 58% of its max_bytes (1.0GiB), in records delivery has not stored yet; capture pauses at 90%; nothing is dropped, but a long pause eats into the source's binlog retention: find out why delivery is behind (target_refusing_writes?), or raise stream.nats.max_bytes"},
		{name: "capture paused", h: health{streamRoom: natsjs.Room{Stored: 950 << 20, MaxBytes: 1 << 30, Paused: true}, streamMaxKey: "stream.embedded.max_bytes"},
			codes: []string{WarnStreamRetention}, has: "capture is paused: the stream holds 950.0MiB, 92% of its max_bytes (1.0GiB), in records delivery has not stored yet; it reads the binlog again as delivery frees room"},
		{name: "stream room unknown (Kinesis, Kafka)", h: health{}},
		{name: "table error", h: health{tables: []TableStatus{
			{Schema: "db", Table: "ok", State: capture.StateCompleted},
			{Schema: "db", Table: "bad", State: capture.StateError, Error: "full load of db.bad: connection reset"},
		}}, codes: []string{WarnTableError}, has: `table db.bad is in "Table error": full load of db.bad: connection reset`},
		{name: "target refusing writes", h: health{refusal: metrics.Refusal{Since: since, Failures: 4, LastErr: "AccessDenied"}},
			codes: []string{WarnTargetRefusing}, has: "the target has refused 4 write(s) since 2026-01-02T03:04:05Z (last: AccessDenied)"},
		{name: "all at once, in code order", h: health{cdc: true, captureBehind: week, retention: retention, streamRoom: natsjs.Room{Stored: 9, MaxBytes: 10},
			tables:  []TableStatus{{Schema: "db", Table: "a", State: capture.StateError}, {Schema: "db", Table: "b", State: capture.StateError}},
			refusal: metrics.Refusal{Since: since, Failures: 1}},
			codes: []string{WarnBinlogRetention, WarnStreamRetention, WarnTableError, WarnTableError, WarnTargetRefusing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.h.warnings()
			if got == nil {
				t.Fatal("warnings() = nil, want a list (JSON [])")
			}
			var codes []string
			var msgs []string
			for _, w := range got {
				codes = append(codes, w.Code)
				msgs = append(msgs, w.Message)
			}
			if strings.Join(codes, ",") != strings.Join(tt.codes, ",") {
				t.Errorf("codes = %v, want %v\n%s", codes, tt.codes, strings.Join(msgs, "\n"))
			}
			if tt.has != "" && !strings.Contains(strings.Join(msgs, "\n"), tt.has) {
				t.Errorf("messages:\n%s\nwant one containing %q", strings.Join(msgs, "\n"), tt.has)
			}
		})
	}
}

func TestLogWarnings(t *testing.T) {
	var buf bytes.Buffer
	tk := &Task{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))}
	active := map[string]Warning{}
	tableErr := Warning{Code: WarnTableError, Table: "db.t", Message: "table db.t is in error"}
	refusing := Warning{Code: WarnTargetRefusing, Message: "the target has refused 1 write(s)"}
	tk.logWarnings(active, []Warning{tableErr})
	tk.logWarnings(active, []Warning{tableErr, refusing})
	refusing.Message = "the target has refused 2 write(s)" // the same warning, newer numbers: not logged again
	tk.logWarnings(active, []Warning{tableErr, refusing})
	tk.logWarnings(active, []Warning{refusing})
	want := `level=WARN msg="warning raised" code=table_error table=db.t message="table db.t is in error"
level=WARN msg="warning raised" code=target_refusing_writes message="the target has refused 1 write(s)"
level=INFO msg="warning cleared" code=table_error table=db.t
`
	if buf.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestLoadProgress(t *testing.T) {
	tests := []struct {
		state           string
		rows, estimated uint64
		pct, weight     float64
	}{
		{capture.StateBeforeLoad, 0, 500, 0, 500},
		{capture.StateBeforeLoad, 0, 0, 0, 1},
		{capture.StateFullLoad, 250, 1000, 25, 1000},
		{capture.StateFullLoad, 1, 3, 33.33, 3},
		{capture.StateFullLoad, 5000, 1000, 99, 5000}, // the estimate was low: not done until it is
		{capture.StateFullLoad, 100, 0, 0, 1},         // no estimate
		{capture.StateError, 10, 100, 10, 100},
		{capture.StateCompleted, 1200, 1000, 100, 1200},
		{capture.StateCompleted, 0, 0, 100, 1},
	}
	for _, tt := range tests {
		pct, weight := loadProgress(tt.state, tt.rows, tt.estimated)
		if pct != tt.pct || weight != tt.weight {
			t.Errorf("loadProgress(%q, %d, %d) = %v, %v; want %v, %v", tt.state, tt.rows, tt.estimated, pct, weight, tt.pct, tt.weight)
		}
	}
}

func TestWriteTables(t *testing.T) {
	pct, lag := 42.5, 1.25
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var buf bytes.Buffer
	WriteTables(&buf, []TableStatus{
		{Schema: "db", Table: "t", State: capture.StateFullLoad, FullLoadPercent: &pct, FullLoadRows: 425, Inserts: 3, Updates: 2, Deletes: 1,
			LagSeconds: &lag, Objects: 2, Bytes: 3 << 20, LastUpdateTime: &last, LastObject: "db/t/x.json.gz"},
		{Schema: "db", Table: "u", State: capture.StateError, Error: "boom"},
	})
	want := `TABLE  STATE              LOAD   LOAD ROWS  INSERTS  UPDATES  DELETES  DDLS  LAG   OBJECTS  BYTES   LAST UPDATE          LAST OBJECT
db.t   Full load          42.5%  425        3        2        1        0     1.2s  2        3.0MiB  2026-01-02 03:04:05  db/t/x.json.gz
db.u   Table error: boom  -      0          0        0        0        0     -     0        0B      -                    -
`
	if buf.String() != want {
		t.Errorf("WriteTables:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestStreamMaxBytesKey(t *testing.T) {
	for typ, want := range map[string]string{
		config.StreamEmbedded: "stream.embedded.max_bytes",
		config.StreamNATS:     "stream.nats.max_bytes",
		config.StreamKinesis:  "", // the stream's retention period is not binlake's
		config.StreamKafka:    "",
	} {
		cfg := &config.Config{}
		cfg.Stream.Type = typ
		if got := (&Task{cfg: cfg}).streamMaxBytesKey(); got != want {
			t.Errorf("%s: streamMaxBytesKey() = %q, want %q", typ, got, want)
		}
	}
}
