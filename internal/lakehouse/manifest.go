package lakehouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/binlake/binlake/internal/objstore"
)

// ManifestFormatVersion is the version of the manifest's format; a
// manifest of another version is refused, never guessed at.
const ManifestFormatVersion = 1

// Manifest says what a table's snapshot is: which Parquet files hold its
// rows, and up to where in the change log they are exact. It is written
// after the files it names and is the only thing readers should follow: a
// file it does not name is either not written whole yet or retired.
type Manifest struct {
	FormatVersion int    `json:"format_version"`
	Task          string `json:"task"`
	Schema        string `json:"schema"`
	Table         string `json:"table"`
	// Generation grows by one with every manifest written.
	Generation int64 `json:"generation"`
	// ExactThrough: every record of the table at or before this
	// stream-position is applied (empty until every partition that can
	// hold the table's records has delivered some).
	ExactThrough string `json:"exact_through"`
	// Partitions maps each stream partition to the last stream-position
	// of the table applied from it: on partition p, every record at or
	// before Partitions[p] is applied and none after it.
	Partitions map[int]string `json:"partitions"`
	Rows       int64          `json:"rows"`
	Files      []File         `json:"files"`
	// TableDef is the files' table definition, in the JSON form control
	// records carry; absent while the table has none.
	TableDef json.RawMessage `json:"table_def,omitempty"`
	// Dropped: the table's last DDL dropped it; it has no rows.
	Dropped bool `json:"dropped,omitempty"`
	// Inexact lists schema changes after which the values of some
	// columns in rows not written since cannot be known: those values are
	// NULL.
	Inexact []Inexact `json:"inexact,omitempty"`
	// Retired are files earlier manifests named, kept for readers of
	// those until delivery.snapshot.grace has passed.
	Retired   []Retired `json:"retired,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`

	// What the next run needs to apply records still on their way: the
	// newest truncate or drop, the schema changes newer than
	// ExactThrough, the newest schema change the files' rows are in the
	// shape of, and the table definition each partition last carried (CSV
	// objects without a header take their columns from it).
	TruncatedAt   string                  `json:"truncated_at,omitempty"`
	Steps         []step                  `json:"pending_schema_changes,omitempty"`
	ShapePosition string                  `json:"shape_position,omitempty"`
	PartitionDefs map[int]json.RawMessage `json:"partition_table_defs,omitempty"`
}

// File is one Parquet file of a snapshot: its rows sorted by
// partition-key-value, MinKey to MaxKey.
type File struct {
	Key    string `json:"key"`
	Rows   int64  `json:"rows"`
	Size   int64  `json:"size"`       // bytes of the Parquet file
	Bytes  int64  `json:"json_bytes"` // its rows as JSON records, the measure of delivery.snapshot.file_size
	MinKey string `json:"min_key"`
	MaxKey string `json:"max_key"`
}

// Retired is a file no longer in the snapshot, deleted after the grace
// period.
type Retired struct {
	Key       string    `json:"key"`
	RetiredAt time.Time `json:"retired_at"`
}

// Inexact is a schema change whose effect on older rows binlake cannot
// compute.
type Inexact struct {
	Position  string `json:"position"`
	Statement string `json:"statement"`
	Column    string `json:"column,omitempty"`
	Reason    string `json:"reason"`
}

// Dir is where the snapshot of schema.table lives, under the root of the
// change log's key template.
func Dir(root, schema, table string) string {
	return root + "_binlake/snapshot/" + schema + "/" + table + "/"
}

// ManifestKey is the key of the manifest of schema.table.
func ManifestKey(root, schema, table string) string {
	return Dir(root, schema, table) + "manifest.json"
}

// ReadManifest reads the manifest of schema.table; nil when there is none.
func ReadManifest(ctx context.Context, b objstore.Bucket, root, schema, table string) (*Manifest, error) {
	key := ManifestKey(root, schema, table)
	body, err := b.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	if m.FormatVersion != ManifestFormatVersion {
		return nil, fmt.Errorf("%s has format version %d, this binlake reads %d", key, m.FormatVersion, ManifestFormatVersion)
	}
	return &m, nil
}

func writeManifest(ctx context.Context, b objstore.Bucket, key string, m *Manifest) error {
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := b.Put(ctx, key, append(body, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}
