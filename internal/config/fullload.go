package config

import "strings"

// FullLoad tunes the chunked full load: each table is read in chunks of
// ChunkSize rows by primary key, each chunk in its own short snapshot, and
// up to Parallelism chunks are read at once while the binlog keeps flowing.
// Zero means the default.
type FullLoad struct {
	// ChunkSize is the number of rows a chunk reads (default
	// DefaultChunkSize).
	ChunkSize int `yaml:"chunk_size"`
	// Parallelism is how many chunk reads may run at once, on different
	// tables or on consecutive chunks of one table (default
	// DefaultLoadParallelism).
	Parallelism int `yaml:"parallelism"`
	// Snapshot is how a chunk's snapshot gets its exact binlog position:
	// SnapshotAuto (the default), SnapshotWatermark or SnapshotLock.
	Snapshot string `yaml:"snapshot"`
	// WatermarkTable is the source table (schema.table) the watermark
	// snapshots write to (default DefaultWatermarkTable); binlake creates
	// it when it may.
	WatermarkTable string `yaml:"watermark_table"`
	// OnBinlogLoss is what a start does when the checkpoint's binlog is no
	// longer on the source (purged, RESET MASTER): OnBinlogLossFail (the
	// default) stops with the remedy, OnBinlogLossResnapshot loads every
	// selected table again, as binlake run --resnapshot does.
	OnBinlogLoss string `yaml:"on_binlog_loss"`
}

// full_load.on_binlog_loss values.
const (
	OnBinlogLossFail       = "fail"
	OnBinlogLossResnapshot = "resnapshot"
)

// full_load.snapshot values.
const (
	// SnapshotAuto: MariaDB's binlog_snapshot_file/position (no lock, no
	// write), and watermarks on MySQL.
	SnapshotAuto = "auto"
	// SnapshotWatermark: two writes to the watermark table around the
	// start of the snapshot; the binlog reader finds the second, and a row
	// whose key changed between the two is left to its binlog events.
	SnapshotWatermark = "watermark"
	// SnapshotLock: on MySQL, FLUSH TABLES WITH READ LOCK for the instant
	// the snapshot starts (needs RELOAD; RDS and Aurora refuse it).
	SnapshotLock = "lock"
)

// DefaultWatermarkTable is full_load.watermark_table's default.
const DefaultWatermarkTable = "binlake.watermark"

// SnapshotMode is full_load.snapshot with its default applied.
func (f FullLoad) SnapshotMode() string {
	if f.Snapshot == "" {
		return SnapshotAuto
	}
	return f.Snapshot
}

// Watermarks is full_load.watermark_table with its default applied.
func (f FullLoad) Watermarks() string {
	if f.WatermarkTable == "" {
		return DefaultWatermarkTable
	}
	return f.WatermarkTable
}

// Defaults of full_load.
const (
	DefaultChunkSize       = 8192
	DefaultLoadParallelism = 2
	maxChunkSize           = 1 << 20
	maxLoadParallelism     = 64
)

// Chunk is the chunk size in rows.
func (f FullLoad) Chunk() int {
	if f.ChunkSize <= 0 {
		return DefaultChunkSize
	}
	return f.ChunkSize
}

// Readers is the number of chunk reads that may run at once.
func (f FullLoad) Readers() int {
	if f.Parallelism <= 0 {
		return DefaultLoadParallelism
	}
	return f.Parallelism
}

func (c *Config) validateFullLoad(ps *problems) {
	f := c.FullLoad
	if f.ChunkSize < 0 || f.ChunkSize > maxChunkSize {
		ps.add("full_load.chunk_size", "must be between 1 and %d rows (0 or unset: %d), got %d", maxChunkSize, DefaultChunkSize, f.ChunkSize)
	}
	if f.Parallelism < 0 || f.Parallelism > maxLoadParallelism {
		ps.add("full_load.parallelism", "must be between 1 and %d (0 or unset: %d), got %d", maxLoadParallelism, DefaultLoadParallelism, f.Parallelism)
	}
	switch f.Snapshot {
	case "", SnapshotAuto, SnapshotWatermark, SnapshotLock:
	default:
		ps.add("full_load.snapshot", "must be %s, %s or %s, got %q", SnapshotAuto, SnapshotWatermark, SnapshotLock, f.Snapshot)
	}
	switch f.OnBinlogLoss {
	case "", OnBinlogLossFail, OnBinlogLossResnapshot:
	default:
		ps.add("full_load.on_binlog_loss", "must be %s or %s, got %q", OnBinlogLossFail, OnBinlogLossResnapshot, f.OnBinlogLoss)
	}
	if w := f.WatermarkTable; w != "" {
		schema, table, ok := strings.Cut(w, ".")
		if !ok || schema == "" || table == "" || strings.Contains(table, ".") || strings.ContainsAny(w, "`%*") {
			ps.add("full_load.watermark_table", "must be schema.table (e.g. %s), got %q", DefaultWatermarkTable, w)
		}
	}
}
