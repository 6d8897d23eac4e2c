package config

import "time"

// Compaction configures the compaction of the change log
// (delivery.compaction): runs of small consecutive objects of one table
// partition are merged into one, and the merged-away objects deleted
// once readers cannot be reading them any more.
type Compaction struct {
	Enabled  bool     `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
	// TargetSize is the size a merged object may reach; objects of half
	// of it or more are not merged again.
	TargetSize ByteSize `yaml:"target_size"`
	// Grace is how long an object merged into another stays before it is
	// deleted: longer than any reader takes to list and read the lake.
	Grace Duration `yaml:"grace"`
}

const (
	minCompactionInterval = time.Second
	maxCompactionInterval = 24 * time.Hour
	minCompactionTarget   = kib
	maxCompactionTarget   = 5 * gib
	maxCompactionGrace    = 7 * 24 * time.Hour
	minRetention          = time.Minute
)

func defaultCompaction() Compaction {
	return Compaction{Interval: Duration(10 * time.Minute), TargetSize: 64 * mib, Grace: Duration(10 * time.Minute)}
}

// validateCompaction checks delivery.compaction and delivery.retention.
func (c *Config) validateCompaction(ps *problems) {
	d := c.Delivery
	k := d.Compaction
	if k.Interval.D() < minCompactionInterval || k.Interval.D() > maxCompactionInterval {
		ps.add("delivery.compaction.interval", "must be between %s and %s, got %s (e.g. interval: 10m)", Duration(minCompactionInterval), Duration(maxCompactionInterval), k.Interval)
	}
	if k.TargetSize < minCompactionTarget || k.TargetSize > maxCompactionTarget {
		ps.add("delivery.compaction.target_size", "must be between %s and %s, got %s (e.g. target_size: 64MiB)", ByteSize(minCompactionTarget), ByteSize(maxCompactionTarget), k.TargetSize)
	}
	if k.Grace < 0 || k.Grace.D() > maxCompactionGrace {
		ps.add("delivery.compaction.grace", "must be between 0s and %s, got %s (e.g. grace: 10m)", Duration(maxCompactionGrace), k.Grace)
	}
	if d.Retention != 0 && d.Retention.D() < minRetention {
		ps.add("delivery.retention", "must be 0 (keep every object) or at least %s, got %s (e.g. retention: 720h)", Duration(minRetention), d.Retention)
	}
}
