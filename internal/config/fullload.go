package config

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
}
