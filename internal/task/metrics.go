package task

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/metrics"
)

// collector exposes the task's state as metrics, read at each scrape from
// the same sources as the status: the delivery counters are the persisted
// table statistics (they continue across restarts and equal the status),
// the gauges are computed at the scrape.
type collector struct {
	t *Task

	status, captureLag, deliveryLag, buffered, duplicates, retention, progress *prometheus.Desc
	records, objects, objectBytes, loadRows, estimatedRows, tableLag, warning  *prometheus.Desc
	binlogFile, binlogOffset, deliveredCommit                                  *prometheus.Desc
	streamLag, streamBacklog, streamBytes                                      *prometheus.Desc
}

func newCollector(t *Task) *collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(metrics.Namespace+"_"+name, help, labels, nil)
	}
	return &collector{
		t:               t,
		status:          desc("task_status", "1 for the task's current status (Starting, Running, Stopping, Stopped, Failed), 0 for the others.", "status"),
		captureLag:      desc("capture_lag_seconds", "Now minus the source commit time of the newest transaction captured (while replicating; grows on an idle source)."),
		deliveryLag:     desc("delivery_lag_seconds", "Now minus the source commit time of the oldest record delivery holds that is not yet in the lake; 0 when none waits."),
		buffered:        desc("delivery_buffered_bytes", "Bytes of records waiting in delivery's buffers."),
		duplicates:      desc("delivery_duplicates_dropped_total", "Re-sent records delivery dropped because the lake already held them."),
		retention:       desc("source_binlog_retention_seconds", "How long the source keeps binlogs, read at start; 0 means never purged."),
		progress:        desc("full_load_progress_ratio", "Share of the full load done (0 to 1), by rows against the tables' estimates."),
		records:         desc("delivery_records_total", "Records stored in the lake, each once, by table and operation (load, insert, update, delete, ddl); the persisted table statistics.", "table", "op"),
		objects:         desc("delivery_objects_total", "Objects written to the lake, by table.", "table"),
		objectBytes:     desc("delivery_object_bytes_total", "Bytes of the objects written to the lake (after compression), by table.", "table"),
		loadRows:        desc("full_load_rows", "Rows of the table's full load stored in the lake.", "table"),
		estimatedRows:   desc("full_load_estimated_rows", "The table's estimated row count when its full load started (information_schema.TABLES.TABLE_ROWS).", "table"),
		tableLag:        desc("table_lag_seconds", "How far the lake's copy of the table is behind the source: now minus the commit time of its oldest record not yet in the lake, or capture's lag when none waits.", "table"),
		binlogFile:      desc("capture_binlog_file_number", "The numeric suffix of the binlog file capture has published everything up to (mysql-bin.000042: 42)."),
		binlogOffset:    desc("capture_binlog_offset_bytes", "The offset in that binlog file capture has published everything up to."),
		deliveredCommit: desc("delivered_commit_timestamp_seconds", "The newest source commit time (Unix seconds) among the table's records stored in the lake.", "table"),
		streamLag:       desc("stream_lag_seconds", "How far delivery's reading is behind the newest record of the stream: Kinesis's MillisBehindLatest of the slowest shard (kinesis only)."),
		streamBacklog:   desc("stream_backlog_messages", "Stored stream messages delivery has not read yet, a batch counting once (nats, embedded and kafka)."),
		streamBytes:     desc("stream_bytes", "Bytes an embedded or NATS stream holds: records delivery has not stored, and stored ones younger than max_age."),
		warning:         desc("warning", "1 while a warning with this code is active (see the status's warnings), else 0.", "code"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.status, c.captureLag, c.deliveryLag, c.buffered, c.duplicates, c.retention, c.progress,
		c.records, c.objects, c.objectBytes, c.loadRows, c.estimatedRows, c.tableLag, c.warning,
		c.binlogFile, c.binlogOffset, c.deliveredCommit, c.streamLag, c.streamBacklog, c.streamBytes} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, ob := c.t.observe(time.Now())
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, st := range []string{StatusStarting, StatusRunning, StatusStopping, StatusStopped, StatusFailed} {
		gauge(c.status, b2f(s.Status == st), st)
	}
	active := map[string]bool{}
	for _, w := range s.Warnings {
		active[w.Code] = true
	}
	for _, code := range WarningCodes {
		gauge(c.warning, b2f(active[code]), code)
	}
	c.t.mu.Lock()
	started := c.t.capture != nil || c.t.delivery != nil
	c.t.mu.Unlock()
	if !started {
		return
	}
	if s.LagSeconds != nil {
		gauge(c.captureLag, *s.LagSeconds)
	}
	if s.DeliveryLagSeconds != nil {
		gauge(c.deliveryLag, *s.DeliveryLagSeconds)
	}
	if ob.retention.Known {
		gauge(c.retention, ob.retention.Period.Seconds())
	}
	if ob.binlogFile != "" {
		if n, err := change.BinlogFileNumber(ob.binlogFile); err == nil {
			gauge(c.binlogFile, float64(n))
			gauge(c.binlogOffset, float64(ob.binlogPos))
		}
	}
	if s.StreamLagSeconds != nil {
		gauge(c.streamLag, *s.StreamLagSeconds)
	}
	if s.StreamBytes != nil {
		gauge(c.streamBytes, float64(*s.StreamBytes))
	}
	if s.StreamBacklog != nil {
		gauge(c.streamBacklog, float64(*s.StreamBacklog))
	}
	gauge(c.buffered, float64(s.BufferedBytes))
	counter(c.duplicates, float64(s.DuplicatesDropped))
	gauge(c.progress, s.FullLoadPercent/100)
	for _, t := range s.Tables {
		name := t.Schema + "." + t.Table
		for op, n := range map[string]uint64{"load": t.FullLoadRows, "insert": t.Inserts, "update": t.Updates, "delete": t.Deletes, "ddl": t.DDLs} {
			counter(c.records, float64(n), name, op)
		}
		counter(c.objects, float64(t.Objects), name)
		counter(c.objectBytes, float64(t.Bytes), name)
		gauge(c.loadRows, float64(t.FullLoadRows), name)
		if t.EstimatedRows > 0 {
			gauge(c.estimatedRows, float64(t.EstimatedRows), name)
		}
		if t.LagSeconds != nil {
			gauge(c.tableLag, *t.LagSeconds, name)
		}
		if at, ok := ob.delivered[name]; ok {
			gauge(c.deliveredCommit, float64(at.UnixNano())/1e9, name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
