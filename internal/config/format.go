package config

// Delivery formats (delivery.format).
const (
	FormatJSON    = "json"
	FormatParquet = "parquet"
	FormatCSV     = "csv"
)

// Parquet configures Parquet objects (delivery.format: parquet).
type Parquet struct {
	// Compression of the column pages: "snappy" (the default), "zstd",
	// "gzip" or "none". delivery.compression does not apply to Parquet
	// objects, whose pages are compressed inside the file.
	Compression string `yaml:"compression"`
	// RowGroupSize closes a row group when the rows written to it reach
	// this size, measured as their JSON records (before encoding and
	// compression), like buffer.size.
	RowGroupSize ByteSize `yaml:"row_group_size"`
}

// CSV configures CSV objects (delivery.format: csv).
type CSV struct {
	// Header writes the column names as the first line of every object.
	Header bool `yaml:"header"`
}

const (
	minRowGroupSize = kib
	maxRowGroupSize = gib
)

// validateFormat checks delivery.format and the settings of that format.
func (c *Config) validateFormat(ps *problems) {
	d := c.Delivery
	ps.oneOf("delivery.format", d.Format, FormatJSON, FormatParquet, FormatCSV)
	ps.oneOf("delivery.parquet.compression", d.Parquet.Compression, "snappy", "zstd", "gzip", "none")
	if d.Parquet.RowGroupSize < minRowGroupSize || d.Parquet.RowGroupSize > maxRowGroupSize {
		ps.add("delivery.parquet.row_group_size", "must be between %s and %s, got %s (e.g. row_group_size: 128MiB)", ByteSize(minRowGroupSize), ByteSize(maxRowGroupSize), d.Parquet.RowGroupSize)
	}
	if d.Format == FormatParquet || d.Format == FormatCSV {
		// Typed objects have one column per table column and the metadata
		// columns; what does not fit there would be lost.
		if c.BeforeImage != "" && c.BeforeImage != BeforeImageNone {
			ps.add("before_image", "%q needs delivery.format: json; %s objects hold no before-image", c.BeforeImage, d.Format)
		}
		if c.IncludeTransactionDetails {
			ps.add("include_transaction_details", "needs delivery.format: json; %s objects hold no prev-transaction-id", d.Format)
		}
	}
}
