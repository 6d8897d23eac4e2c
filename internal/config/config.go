// Package config owns binlake's configuration file: the Config types, how a
// YAML file becomes a Config (environment expansion, strict decoding,
// defaults) and the rules a Config must satisfy before binlake runs.
//
// A config names one task: which MySQL/MariaDB tables to read (full load,
// binlog CDC or both), how events are buffered in the stream, and where and
// how batches are delivered (a local directory or S3). docs/config.md is the
// reference for every key.
package config

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/keytemplate"
)

// Migration types, as in AWS DMS.
const (
	MigrationFullLoad       = "full-load"
	MigrationCDC            = "cdc"
	MigrationFullLoadAndCDC = "full-load-and-cdc"
)

// Roles: the stages of the pipeline a process runs.
const (
	RoleAll     = "all"     // capture and delivery in one process (the default)
	RoleCapture = "capture" // source → stream
	RoleDeliver = "deliver" // stream → object store
)

// Config is one binlake task.
type Config struct {
	// Task names the task; it keys state, metrics and the default server_id.
	Task string `yaml:"task"`
	// Role is the part of the pipeline this process runs: RoleAll (or
	// empty), RoleCapture or RoleDeliver. `binlake run --role` overrides it.
	Role   string `yaml:"role"`
	Source Source `yaml:"source"`
	// Migration is one of MigrationFullLoad, MigrationCDC and
	// MigrationFullLoadAndCDC.
	Migration string `yaml:"migration"`
	// Tables are DMS-style selection rules applied in order; see Selected.
	Tables []TableRule `yaml:"tables"`
	// FullLoad tunes the chunked full load; see FullLoad.
	FullLoad FullLoad `yaml:"full_load"`
	// CDCStartPosition is where a new CDC-only task starts reading the
	// binlog: "now" (the default: the current end of the binlog), a
	// binlog coordinate "file:pos" such as "mysql-bin.000001:4", or a GTID
	// set (after the transactions it holds), or a time (RFC 3339: the first
	// transaction stamped at or after it). A task that has a checkpoint
	// resumes from it instead.
	CDCStartPosition string `yaml:"cdc_start_position"`
	// BeforeImage adds a before-image object to the update and delete
	// records of CDC, like DMS's BeforeImageSettings: BeforeImageNone (or
	// empty: the default), BeforeImagePKOnly or BeforeImageAll.
	BeforeImage string `yaml:"before_image"`
	// IncludeTransactionDetails adds prev-transaction-id and
	// prev-transaction-record-id to the metadata of CDC records, like the
	// DMS endpoint setting of that name.
	IncludeTransactionDetails bool `yaml:"include_transaction_details"`
	// Validation makes `binlake run` compare the lake with the source
	// periodically, as `binlake validate` does, with the results in the
	// status (DMS's ValidationState per table).
	Validation Validation `yaml:"validation"`
	Stream     Stream     `yaml:"stream"`
	Delivery   Delivery   `yaml:"delivery"`
	// TableMappings is the path of an AWS DMS table-mapping JSON file,
	// used as is: its selection rules select the tables (instead of
	// Tables), its transformation rules apply before Transforms.Rules. See
	// Mappings.
	TableMappings string `yaml:"table_mappings"`
	// Transforms change records on their way to the lake.
	Transforms Transforms `yaml:"transforms"`
	// Target is where batches are written: s3://bucket[/prefix],
	// file:///absolute/path or file://relative/path.
	Target string `yaml:"target"`
	// S3 configures the client for an s3:// target; ignored otherwise.
	S3 S3 `yaml:"s3"`
	// StateDir holds checkpoints and the embedded stream's data.
	StateDir string `yaml:"state_dir"`
	HTTP     HTTP   `yaml:"http"`
	Log      Log    `yaml:"log"`
	// MemoryLimit is the Go runtime's soft memory limit for the process
	// (runtime/debug.SetMemoryLimit); 0 leaves the runtime's default. The
	// GOMEMLIMIT environment variable, when set, wins.
	MemoryLimit ByteSize `yaml:"memory_limit"`

	mapped *Mappings // table_mappings as read; see mappings
	// secretWarnings are about secrets written in the file (secrets.go).
	secretWarnings []string
}

// Before images, as DMS's BeforeImageSettings ColumnFilter.
const (
	BeforeImageNone   = "none"
	BeforeImagePKOnly = "pk-only" // the primary-key columns
	BeforeImageAll    = "all"     // every column
)

// Source is the database binlake reads.
type Source struct {
	MySQL MySQL `yaml:"mysql"`
}

// MySQL is a MySQL or MariaDB server, read with SELECTs for the full load and
// as a replica (binlog dump) for CDC.
type MySQL struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// PasswordFile names a file holding the password (see secrets.go).
	PasswordFile string   `yaml:"password_file"`
	TLS          MySQLTLS `yaml:"tls"`
	// ServerID is the replica server id used for the binlog dump. Zero
	// means derive it from the task name (see Parse).
	ServerID uint32 `yaml:"server_id"`
	// Flavor is auto, mysql or mariadb.
	Flavor         string   `yaml:"flavor"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
	Heartbeat      Duration `yaml:"heartbeat"`
	// TransactionMemory is how many bytes of one transaction's records
	// capture holds in memory until its commit; the rest waits in a file
	// under state_dir, so a transaction of millions of rows passes in
	// bounded memory.
	TransactionMemory ByteSize `yaml:"transaction_memory"`
}

// TableRule is one selection rule: exactly one of Include and Exclude is
// set, to a "schema.table" pattern with DMS wildcards.
type TableRule struct {
	Include string `yaml:"include"`
	Exclude string `yaml:"exclude"`
}

// Stream is the durable buffer between the reader and delivery.
type Stream struct {
	// Type is the backend: StreamEmbedded (the default), StreamNATS,
	// StreamKinesis or StreamKafka; its settings are the key of that name.
	Type       string `yaml:"type"`
	Partitions int    `yaml:"partitions"`
	// PartitionKey is what picks a record's partition: PartitionByPrimaryKey
	// (the default; one row's changes stay in order) or PartitionByTable (a
	// whole table's changes stay in order, on one partition).
	PartitionKey string `yaml:"partition_key"`
	// DMSCompatible writes one DMS-format JSON record per stream message,
	// for readers other than binlake (Firehose, Kinesis/Kafka consumers);
	// otherwise a message carries a batch of one partition's records. Unset
	// means true for kinesis and false for the others (BatchRecords).
	DMSCompatible *bool    `yaml:"dms_compatible"`
	Embedded      Embedded `yaml:"embedded"`
	NATS          NATS     `yaml:"nats"`
	Kinesis       Kinesis  `yaml:"kinesis"`
	Kafka         Kafka    `yaml:"kafka"`
}

// Stream types.
const (
	StreamEmbedded = "embedded"
	StreamNATS     = "nats"
	StreamKinesis  = "kinesis"
	StreamKafka    = "kafka"
)

// Partition key policies.
const (
	PartitionByPrimaryKey = "primary-key"
	PartitionByTable      = "schema-table"
)

// BatchRecords reports whether stream messages carry batches of records:
// unless dms_compatible says otherwise, on every backend but Kinesis, whose
// stream other readers (Firehose, DMS-era consumers) are expected to share.
func (s Stream) BatchRecords() bool {
	if s.DMSCompatible != nil {
		return !*s.DMSCompatible
	}
	return s.Type != StreamKinesis
}

// Embedded configures the in-process NATS JetStream stream.
type Embedded struct {
	MaxAge   Duration `yaml:"max_age"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Listen is an optional host:port on which to expose the embedded NATS
	// server; empty means no network port.
	Listen string `yaml:"listen"`
}

// Delivery is how events become objects, like a Firehose delivery stream.
type Delivery struct {
	Buffer Buffer `yaml:"buffer"`
	// Format is FormatJSON (the default), FormatParquet or FormatCSV.
	Format  string  `yaml:"format"`
	Parquet Parquet `yaml:"parquet"`
	CSV     CSV     `yaml:"csv"`
	// Compression is "none", "gzip", "zstd" or "snappy" (framed).
	Compression string `yaml:"compression"`
	// Prefix is the key template of objects, e.g. "wordpress-db/" or
	// "raw/{schema}/{table}/!{timestamp:yyyy/MM/dd}/". A prefix without
	// placeholders gets the Partitioning layout appended.
	Prefix string `yaml:"prefix"`
	// ErrorPrefix is the key template of the error output, where records a
	// transform fails are written: {kind} is processing-failed or
	// format-conversion-failed. Empty means the root of Prefix followed
	// by DefaultErrorLayout; see ErrorKeyTemplate.
	ErrorPrefix string `yaml:"error_prefix"`
	// Tables is what binlake keeps beside the change log: TablesNone (the
	// default) or TablesSnapshot, each table's current rows compacted from
	// the change log into Parquet files named by a manifest (Snapshot).
	Tables   string   `yaml:"tables"`
	Snapshot Snapshot `yaml:"snapshot"`
	Iceberg  Iceberg  `yaml:"iceberg"`
	// Compaction merges small objects of the change log into large ones.
	Compaction Compaction `yaml:"compaction"`
	// Retention deletes change-log objects whose newest record was
	// committed longer ago than this; 0 keeps them all. With tables:
	// snapshot, only objects a snapshot holds are deleted.
	Retention Duration `yaml:"retention"`
	// Partitioning is the layout appended to a plain prefix: "time"
	// ({schema}/{table}/{yyyy}/{MM}/{dd}/{HH}/, the default) or "hive"
	// ({schema}/{table}/year={yyyy}/month={MM}/day={dd}/hour={HH}/).
	Partitioning string `yaml:"partitioning"`
}

// Root is the text of the prefix template before its first placeholder:
// every object key starts with it, and binlake's own objects live under
// Root()+"_binlake/". Empty for a prefix that does not parse (Validate
// says why).
func (d Delivery) Root() string {
	t, err := keytemplate.Parse(d.Prefix, d.KeyLayout())
	if err != nil {
		return ""
	}
	return t.Root()
}

// KeyLayout is the layout appended to a plain prefix.
func (d Delivery) KeyLayout() string {
	if d.Partitioning == "hive" {
		return keytemplate.HiveLayout
	}
	return keytemplate.TimeLayout
}

// Buffer flushes a batch when it reaches Size bytes or is Interval old,
// whichever comes first. An Interval of zero flushes every batch read from
// the stream.
type Buffer struct {
	Size     ByteSize `yaml:"size"`
	Interval Duration `yaml:"interval"`
}

// S3 configures the S3 client. Empty fields fall back to the AWS SDK's
// defaults (environment, shared config, instance role).
type S3 struct {
	Region              string `yaml:"region"`
	Endpoint            string `yaml:"endpoint"`
	PathStyle           bool   `yaml:"path_style"`
	AccessKeyID         string `yaml:"access_key_id"`
	SecretAccessKey     string `yaml:"secret_access_key"`
	SessionToken        string `yaml:"session_token"`
	SecretAccessKeyFile string `yaml:"secret_access_key_file"`
	SessionTokenFile    string `yaml:"session_token_file"`
	// SSE is the server-side encryption of new objects: AES256 (SSE-S3) or
	// aws:kms (SSE-KMS, optionally with KMSKeyID); empty keeps the bucket's
	// default.
	SSE      string `yaml:"sse"`
	KMSKeyID string `yaml:"kms_key_id"`
	// StorageClass of new objects, e.g. STANDARD_IA, INTELLIGENT_TIERING.
	StorageClass string `yaml:"storage_class"`
	// StallTimeout abandons (and retries) a request whose connection has
	// sent and received nothing for this long.
	StallTimeout Duration `yaml:"stall_timeout"`
}

// HTTP is the API, metrics, console and health endpoint.
type HTTP struct {
	// Listen is host:port; empty means no HTTP server.
	Listen string `yaml:"listen"`
	// Token, when set, is the bearer token every endpoint but /healthz and
	// /readyz requires (Authorization: Bearer <token>).
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// TLSCert and TLSKey are PEM files of the server's certificate (its
	// chain after it) and key: the API is then served over HTTPS only. The
	// files are read again when they change, so a renewed certificate is
	// served without a restart. TLSClientCA, a PEM file of authorities,
	// makes the server require a client certificate one of them signed.
	TLSCert     string `yaml:"tls_cert"`
	TLSKey      string `yaml:"tls_key"`
	TLSClientCA string `yaml:"tls_client_ca"`
}

// UsesTLS tells whether the API is served over HTTPS.
func (h HTTP) UsesTLS() bool { return h.TLSCert != "" }

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// FieldError is one problem with a config, located by its key path, such as
// "delivery.buffer.size" or "tables[1].include".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// defaults returns a Config holding every default. Decoding writes over it,
// so a key given explicitly, even as zero, wins over its default.
func defaults() *Config {
	return &Config{
		Source: Source{MySQL: MySQL{
			Port:              3306,
			Flavor:            "auto",
			ConnectTimeout:    Duration(10 * time.Second),
			Heartbeat:         Duration(10 * time.Second),
			TransactionMemory: 64 * mib,
		}},
		Role:      RoleAll,
		Migration: MigrationFullLoadAndCDC,
		Stream: Stream{
			Type:         "embedded",
			Partitions:   4,
			PartitionKey: PartitionByPrimaryKey,
			Embedded: Embedded{
				MaxAge:   Duration(168 * time.Hour),
				MaxBytes: 10 * gib,
			},
			NATS: NATS{
				LeaseTTL: Duration(30 * time.Second),
				Replicas: 1,
				MaxAge:   Duration(168 * time.Hour),
				MaxBytes: 10 * gib,
			},
			Kinesis: Kinesis{Create: true, LeaseTTL: Duration(30 * time.Second)},
			Kafka:   Kafka{Create: true, MaxMessageBytes: mib, SessionTimeout: Duration(45 * time.Second)},
		},
		Delivery: Delivery{
			Buffer:       Buffer{Size: 5 * mib, Interval: Duration(60 * time.Second)},
			Format:       "json",
			Parquet:      Parquet{Compression: "snappy", RowGroupSize: 128 * mib},
			Compression:  "gzip",
			Partitioning: "time",
			Tables:       TablesNone,
			Snapshot:     defaultSnapshot(),
			Iceberg:      Iceberg{DeleteMode: "copy-on-write"},
			Compaction:   defaultCompaction(),
		},
		S3:          S3{StallTimeout: Duration(30 * time.Second)},
		Transforms:  Transforms{Processor: defaultProcessor},
		StateDir:    "./binlake-state",
		Log:         Log{Level: "info", Format: "text"},
		MemoryLimit: 512 * mib,
	}
}

// defaultProcessor holds the defaults of transforms.processor.
var defaultProcessor = Processor{Timeout: Duration(30 * time.Second), Retries: 2, Backoff: Duration(time.Second), BatchSize: 500}

// Server ids derived from the task name fall in this range, away from the
// small ids people give their own servers.
const (
	minDerivedServerID = 1_000_000
	maxDerivedServerID = 4_000_000_000
)

// deriveServerID maps a task name to a stable replica server id.
func deriveServerID(task string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(task))
	return minDerivedServerID + h.Sum32()%(maxDerivedServerID-minDerivedServerID+1)
}

// Load reads the config file at path; see Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, &fileError{path: path, err: err}
	}
	return c, nil
}

// Parse reads a config from YAML. It expands ${NAME} and ${NAME:-default}
// in values from the environment, decodes strictly (unknown keys are
// errors), fills defaults, derives source.mysql.server_id from the task name
// when it is not set, and validates. All problems found are returned at once
// as errors.Join of *FieldError; YAML syntax errors stop at the first.
func Parse(data []byte) (*Config, error) {
	root, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	c := defaults()
	d := &decoder{lookupEnv: os.LookupEnv}
	d.decode(root, c, "")
	if c.Source.MySQL.ServerID == 0 {
		c.Source.MySQL.ServerID = deriveServerID(c.Task)
	}
	errs := append(d.errs, c.readSecretFiles()...)
	c.secretWarnings = literalSecretWarnings(d.literal)
	for _, fe := range c.validate() {
		// A key that failed to decode kept its default; do not also
		// complain about that default.
		if !d.failed(fe.Path) {
			errs = append(errs, fe)
		}
	}
	if len(errs) > 0 {
		return nil, joinFieldErrors(errs)
	}
	return c, nil
}

func joinFieldErrors(fes []*FieldError) error {
	errs := make([]error, len(fes))
	for i, fe := range fes {
		errs[i] = fe
	}
	return errors.Join(errs...)
}

// fileError prefixes a Parse error with the file name, indenting a list of
// problems under it.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string {
	msg := e.err.Error()
	if strings.Contains(msg, "\n") {
		return e.path + ":\n  " + strings.ReplaceAll(msg, "\n", "\n  ")
	}
	return e.path + ": " + msg
}

func (e *fileError) Unwrap() error { return e.err }

const redacted = "****"

// Redacted returns a deep copy of c for printing, with the MySQL password
// the S3 secret key and session token and the HTTP token replaced by "****" (empty ones
// stay empty) and any password in the S3 endpoint URL by "xxxxx", as
// url.URL.Redacted does.
func (c *Config) Redacted() *Config {
	r := *c
	r.Tables = append([]TableRule(nil), c.Tables...)
	hide := func(s *string) {
		if *s != "" {
			*s = redacted
		}
	}
	hide(&r.Source.MySQL.Password)
	hide(&r.S3.SecretAccessKey)
	hide(&r.S3.SessionToken)
	hide(&r.HTTP.Token)
	r.Stream.NATS.URLs = append([]string(nil), c.Stream.NATS.URLs...)
	r.Stream.Kafka.Brokers = append([]string(nil), c.Stream.Kafka.Brokers...)
	hide(&r.Stream.NATS.Password)
	hide(&r.Stream.NATS.Token)
	hide(&r.Stream.Kinesis.SecretAccessKey)
	hide(&r.Stream.Kinesis.SessionToken)
	if u, err := url.Parse(r.S3.Endpoint); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			r.S3.Endpoint = u.Redacted()
		}
	}
	return &r
}

// GTID set syntax: MariaDB's domain-server-sequence list, MySQL's
// uuid:interval list.
var (
	mariadbGTIDSetRE = regexp.MustCompile(`^\d+-\d+-\d+(\s*,\s*\d+-\d+-\d+)*$`)
	mysqlGTIDSetRE   = regexp.MustCompile(`^(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}(:\d+(-\d+)?)+(\s*,\s*[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}(:\d+(-\d+)?)+)*$`)
)

// StartGTIDSet returns CDCStartPosition when it is a GTID set (MariaDB
// 0-1-100 or MySQL 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57): CDC then
// starts after the transactions it holds.
func (c *Config) StartGTIDSet() (string, bool) {
	v := strings.TrimSpace(c.CDCStartPosition)
	if mariadbGTIDSetRE.MatchString(v) || mysqlGTIDSetRE.MatchString(v) {
		return v, true
	}
	return "", false
}

// StartTime returns CDCStartPosition when it is a time (RFC 3339, e.g.
// 2026-11-24T08:00:00Z): CDC then starts at the first transaction stamped
// at or after it.
func (c *Config) StartTime() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(c.CDCStartPosition))
	return t, err == nil
}

// StartPosition parses CDCStartPosition: ok is false for "now" (or empty),
// for a GTID set (StartGTIDSet) and for a time (StartTime).
func (c *Config) StartPosition() (file string, pos uint32, ok bool, err error) {
	v := c.CDCStartPosition
	_, gtid := c.StartGTIDSet()
	_, at := c.StartTime()
	if v == "" || v == "now" || gtid || at {
		return "", 0, false, nil
	}
	i := strings.LastIndexByte(v, ':')
	if i <= 0 || i == len(v)-1 {
		return "", 0, false, fmt.Errorf("%q: write now, file:pos (e.g. mysql-bin.000001:4), a GTID set (MariaDB 0-1-100, MySQL uuid:1-57) or a time (RFC 3339, e.g. 2026-11-24T08:00:00Z)", v)
	}
	n, err := strconv.ParseUint(v[i+1:], 10, 32)
	if err != nil || n < 4 {
		return "", 0, false, fmt.Errorf("%q: the position after ':' must be a binlog offset of at least 4", v)
	}
	if j := strings.LastIndexByte(v[:i], '.'); j < 0 || j == i-1 {
		return "", 0, false, fmt.Errorf("%q: the file must be a binlog file name such as mysql-bin.000001", v)
	}
	return v[:i], uint32(n), true, nil
}

// Validation configures continuous validation during run.
type Validation struct {
	Enabled bool `yaml:"enabled"`
	// Interval between two validations of every table (0: 10m).
	Interval Duration `yaml:"interval"`
	// Rounds and Wait: a differing row is checked again Rounds times, Wait
	// apart, before it counts as mismatched (0: 3 and 10s).
	Rounds int      `yaml:"rounds"`
	Wait   Duration `yaml:"wait"`
}

// TLS modes of source.mysql.tls.mode, MySQL's --ssl-mode in lower case.
const (
	TLSDisabled       = "disabled"        // plain TCP
	TLSRequired       = "required"        // encrypted, the server's certificate not checked
	TLSVerifyCA       = "verify-ca"       // encrypted, certificate signed by a trusted CA
	TLSVerifyIdentity = "verify-identity" // as verify-ca, and issued for the host (or server_name)
)

// MySQLTLS encrypts the connections to the source. With none of its keys
// set there is no TLS; once any is set, Mode defaults to verify-identity:
// the server's certificate must be signed by CA (or a CA the system
// trusts) and name the host.
type MySQLTLS struct {
	Mode string `yaml:"mode"`
	// CA is a PEM file of the certificate authorities to trust; empty
	// trusts the system's.
	CA string `yaml:"ca"`
	// Cert and Key are a client certificate and its key (PEM files), for a
	// user created with REQUIRE X509 or REQUIRE SUBJECT.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the name the certificate must carry, when it is not
	// the host binlake connects to (an IP address, a tunnel).
	ServerName string `yaml:"server_name"`
}

// EffectiveMode is Mode with its default filled in.
func (t MySQLTLS) EffectiveMode() string {
	switch {
	case t.Mode != "":
		return t.Mode
	case t.CA != "" || t.Cert != "" || t.Key != "" || t.ServerName != "":
		return TLSVerifyIdentity
	}
	return TLSDisabled
}
