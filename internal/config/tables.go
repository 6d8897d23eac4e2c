package config

import "time"

// What binlake keeps beside the change log (delivery.tables).
const (
	TablesNone     = "none"     // the change log only
	TablesSnapshot = "snapshot" // each table's current rows as Parquet files and a manifest
	TablesIceberg  = "iceberg"  // each table's current rows as an Apache Iceberg table
)

// Iceberg configures the Iceberg tables of delivery.tables: iceberg.
type Iceberg struct {
	// DeleteMode is how an Iceberg commit removes changed and deleted
	// rows: copy-on-write (rewrites the data files that hold them) or
	// merge-on-read (writes delete files that readers apply).
	DeleteMode string `yaml:"delete_mode"`
}

// Snapshot configures the current-state tables of delivery.tables:
// snapshot: how often the change log is compacted into them, how long
// files a newer manifest no longer names are kept for readers still using
// the older one, and how large a file grows.
type Snapshot struct {
	Interval Duration `yaml:"interval"`
	Grace    Duration `yaml:"grace"`
	// FileSize closes a snapshot file when its rows reach this size,
	// measured as their JSON records (like buffer.size).
	FileSize ByteSize `yaml:"file_size"`
}

const (
	minSnapshotInterval = time.Second
	maxSnapshotInterval = 24 * time.Hour
	maxSnapshotGrace    = 7 * 24 * time.Hour
	minSnapshotFileSize = kib
	maxSnapshotFileSize = gib
)

func defaultSnapshot() Snapshot {
	return Snapshot{Interval: Duration(5 * time.Minute), Grace: Duration(10 * time.Minute), FileSize: 128 * mib}
}

// validateLakeTables checks delivery.tables and its settings.
func (c *Config) validateLakeTables(ps *problems) {
	d := c.Delivery
	ps.oneOf("delivery.tables", d.Tables, TablesNone, TablesSnapshot, TablesIceberg)
	ps.oneOf("delivery.iceberg.delete_mode", d.Iceberg.DeleteMode, "copy-on-write", "merge-on-read")
	s := d.Snapshot
	if s.Interval.D() < minSnapshotInterval || s.Interval.D() > maxSnapshotInterval {
		ps.add("delivery.snapshot.interval", "must be between %s and %s, got %s (e.g. interval: 5m)", Duration(minSnapshotInterval), Duration(maxSnapshotInterval), s.Interval)
	}
	if s.Grace < 0 || s.Grace.D() > maxSnapshotGrace {
		ps.add("delivery.snapshot.grace", "must be between 0s and %s, got %s (e.g. grace: 10m)", Duration(maxSnapshotGrace), s.Grace)
	}
	if s.FileSize < minSnapshotFileSize || s.FileSize > maxSnapshotFileSize {
		ps.add("delivery.snapshot.file_size", "must be between %s and %s, got %s (e.g. file_size: 128MiB)", ByteSize(minSnapshotFileSize), ByteSize(maxSnapshotFileSize), s.FileSize)
	}
}
