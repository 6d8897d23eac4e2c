package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// goodConfigs are testdata/*.good.yml with the environment each needs and
// the Config each must parse to.
var goodConfigs = []struct {
	file string
	env  map[string]string
	want func() *Config
}{
	{
		file: "wordpress.good.yml",
		env:  map[string]string{"MYSQL_PASSWORD": "s3cret: #1"},
		want: func() *Config {
			c := defaults()
			c.Task = "wordpress"
			c.Source.MySQL.Host = "127.0.0.1"
			c.Source.MySQL.User = "root"
			c.Source.MySQL.Password = "s3cret: #1"
			c.Source.MySQL.ServerID = deriveServerID("wordpress")
			c.Tables = []TableRule{{Include: "wordpress-db.%"}, {Exclude: "wordpress-db.wp_sessions"}}
			c.Delivery.Buffer.Size = 1 * mib
			c.Delivery.Prefix = "wordpress-db/"
			c.Target = "file:///var/lib/lake"
			c.S3 = S3{Region: "us-west-2", Endpoint: "http://127.0.0.1:7070", PathStyle: true, StallTimeout: Duration(30 * time.Second)}
			c.HTTP.Listen = "127.0.0.1:8080"
			return c
		},
	},
	{
		file: "wordpress.good.yml",
		env:  map[string]string{"MYSQL_PASSWORD": ""}, // set but empty: an empty password
		want: func() *Config {
			c := defaults()
			c.Task = "wordpress"
			c.Source.MySQL.Host = "127.0.0.1"
			c.Source.MySQL.User = "root"
			c.Source.MySQL.ServerID = deriveServerID("wordpress")
			c.Tables = []TableRule{{Include: "wordpress-db.%"}, {Exclude: "wordpress-db.wp_sessions"}}
			c.Delivery.Buffer.Size = 1 * mib
			c.Delivery.Prefix = "wordpress-db/"
			c.Target = "file:///var/lib/lake"
			c.S3 = S3{Region: "us-west-2", Endpoint: "http://127.0.0.1:7070", PathStyle: true, StallTimeout: Duration(30 * time.Second)}
			c.HTTP.Listen = "127.0.0.1:8080"
			return c
		},
	},
	{
		file: "minimal.good.yml",
		want: func() *Config {
			return &Config{
				Task: "shop", Role: RoleAll,
				Source: Source{MySQL: MySQL{
					Host:              "db.internal",
					Port:              3306,
					User:              "binlake",
					ServerID:          deriveServerID("shop"),
					Flavor:            "auto",
					ConnectTimeout:    Duration(10e9),
					Heartbeat:         Duration(10e9),
					TransactionMemory: 64 << 20,
				}},
				Migration: MigrationFullLoadAndCDC,
				Tables:    []TableRule{{Include: "shop.%"}},
				Stream: Stream{
					Type:         "embedded",
					Partitions:   4,
					PartitionKey: PartitionByPrimaryKey,
					Embedded:     Embedded{MaxAge: Duration(168 * 3600e9), MaxBytes: 10 * gib},
					NATS:         defaultNATS,
					Kinesis:      Kinesis{Create: true, LeaseTTL: Duration(30e9)},
					Kafka:        Kafka{Create: true, MaxMessageBytes: mib, SessionTimeout: Duration(45e9)},
				},
				Delivery: Delivery{
					Buffer:       Buffer{Size: 5 * mib, Interval: Duration(60e9)},
					Format:       "json",
					Parquet:      Parquet{Compression: "snappy", RowGroupSize: 128 * mib},
					Compression:  "gzip",
					Partitioning: "time",
					Tables:       TablesNone,
					Snapshot:     defaultSnapshot(),
					Iceberg:      Iceberg{DeleteMode: "copy-on-write"},
					Compaction:   defaultCompaction(),
				},
				Transforms:  Transforms{Processor: defaultProcessor},
				Target:      "file://./lake",
				S3:          S3{StallTimeout: Duration(30e9)},
				StateDir:    "./binlake-state",
				Log:         Log{Level: "info", Format: "text"},
				MemoryLimit: 512 * mib,
			}
		},
	},
	{
		file: "s3-full.good.yml",
		env:  map[string]string{"AWS_SECRET_ACCESS_KEY": ""}, // empty, so :- takes the default
		want: func() *Config {
			return &Config{
				Task: "orders_v2", Role: RoleAll,
				Source: Source{MySQL: MySQL{
					Host:              "mariadb.example.com",
					Port:              3307,
					User:              "cdc",
					Password:          "p#ss: word",
					ServerID:          4242,
					Flavor:            "mariadb",
					ConnectTimeout:    Duration(5e9),
					Heartbeat:         Duration(1.5e9),
					TransactionMemory: 64 << 20,
				}},
				Migration: MigrationCDC,
				Tables: []TableRule{
					{Include: "shop.%"},
					{Exclude: "shop.tmp[_]%"},
					{Include: "shop.tmp_keep"},
					{Include: "audit_[0-9][0-9][0-9][0-9].events"},
				},
				Stream: Stream{
					Type:          "embedded",
					Partitions:    16,
					PartitionKey:  PartitionByTable,
					DMSCompatible: ptr(true),
					Embedded:      Embedded{MaxAge: Duration(72 * 3600e9), MaxBytes: 2 * gib, Listen: "127.0.0.1:4222"},
					NATS:          defaultNATS,
					Kinesis:       Kinesis{Create: true, LeaseTTL: Duration(30e9)},
					Kafka:         Kafka{Create: true, MaxMessageBytes: mib, SessionTimeout: Duration(45e9)},
				},
				Delivery: Delivery{
					Buffer:       Buffer{Size: 128_000_000, Interval: 0},
					Format:       "json",
					Parquet:      Parquet{Compression: "snappy", RowGroupSize: 128 * mib},
					Compression:  "none",
					Partitioning: "time",
					Prefix:       "orders/",
					Tables:       TablesNone,
					Snapshot:     defaultSnapshot(),
					Iceberg:      Iceberg{DeleteMode: "copy-on-write"},
					Compaction:   defaultCompaction(),
				},
				Transforms: Transforms{Processor: defaultProcessor},
				Target:     "s3://my-lake/cdc/orders",
				S3: S3{
					Region:          "eu-central-1",
					Endpoint:        "https://s3.eu-central-1.amazonaws.com",
					AccessKeyID:     "AKIAEXAMPLE",
					SecretAccessKey: "from-default",
					SessionToken:    "${not-a-variable}",
					StallTimeout:    Duration(30 * time.Second),
				},
				StateDir:    "/var/lib/binlake/orders",
				HTTP:        HTTP{Listen: ":9090"},
				Log:         Log{Level: "debug", Format: "json"},
				MemoryLimit: 512 * mib,
			}
		},
	},
	{
		file: "env.good.yml",
		env: map[string]string{
			"BINLAKE_TEST_TASK":       "blog",
			"BINLAKE_TEST_PORT":       "3310",
			"BINLAKE_TEST_PASSWORD":   `*&!{a: "b"} #x`, // YAML syntax stays text
			"BINLAKE_TEST_BUCKET":     "blog-lake",
			"BINLAKE_TEST_PATH_STYLE": "true",
		},
		want: func() *Config {
			c := defaults()
			c.Task = "blog"
			c.Source.MySQL.Host = "localhost"
			c.Source.MySQL.Port = 3310
			c.Source.MySQL.User = "root"
			c.Source.MySQL.Password = `*&!{a: "b"} #x`
			c.Source.MySQL.ServerID = deriveServerID("blog")
			c.Tables = []TableRule{{Include: "blog.%"}}
			c.Delivery.Buffer.Size = 2 * mib
			c.Target = "s3://blog-lake/cdc"
			c.S3.PathStyle = true
			return c
		},
	},
	{
		file: "anchors.good.yml",
		want: func() *Config {
			c := defaults()
			c.Task = "anchors"
			c.Source.MySQL.Host = "10.0.0.5"
			c.Source.MySQL.User = "binlake"
			c.Source.MySQL.ServerID = deriveServerID("anchors")
			c.Source.MySQL.ConnectTimeout = Duration(30e9)
			c.Source.MySQL.Heartbeat = Duration(30e9)
			c.Tables = []TableRule{{Include: "app.%"}}
			c.Target = "file:///srv/lake"
			c.HTTP.Listen = "10.0.0.5:8080"
			return c
		},
	},
	{
		file: "parquet.good.yml",
		want: func() *Config {
			c := defaults()
			c.Task = "lake"
			c.Source.MySQL.Host = "db"
			c.Source.MySQL.User = "binlake"
			c.Source.MySQL.ServerID = deriveServerID("lake")
			c.Tables = []TableRule{{Include: "app.%"}}
			c.Delivery.Format = FormatParquet
			c.Delivery.Parquet = Parquet{Compression: "zstd", RowGroupSize: 64 * mib}
			c.Delivery.CSV.Header = true
			c.Delivery.Tables = TablesSnapshot
			c.Delivery.Snapshot = Snapshot{Interval: Duration(60e9), FileSize: 64 * mib}
			c.Delivery.Compaction = Compaction{Enabled: true, Interval: Duration(300e9), TargetSize: 32 * mib, Grace: Duration(60e9)}
			c.Delivery.Retention = Duration(720 * 3600e9)
			c.Target = "file:///srv/lake"
			return c
		},
	},
	{
		file: "merge.good.yml",
		want: func() *Config {
			c := defaults()
			c.Task = "merged"
			c.Source.MySQL.Host = "db.internal"
			c.Source.MySQL.Port = 3307
			c.Source.MySQL.User = "binlake"
			c.Source.MySQL.ServerID = deriveServerID("merged")
			c.Tables = []TableRule{{Include: "app.%"}}
			c.Target = "file:///srv/lake"
			return c
		},
	},
}

func TestGoodConfigs(t *testing.T) {
	for _, tc := range goodConfigs {
		t.Run(tc.file, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := Load(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			cmp := *got
			cmp.secretWarnings = nil // TestSecretWarnings
			if want := tc.want(); !reflect.DeepEqual(&cmp, want) {
				t.Errorf("Load:\n got %+v\nwant %+v", *got, *want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate after Load: %v", err)
			}
		})
	}
}

// badConfigs are testdata/*.bad.yml with every error each must produce, as
// substrings, in order. A file reports exactly these errors and no others.
var badConfigs = []struct {
	file string
	errs []string
}{
	{"empty.bad.yml", []string{"config is empty"}},
	{"multi-doc.bad.yml", []string{"line 5: a second YAML document starts here; a config holds exactly one"}},
	{"tabs.bad.yml", []string{"invalid YAML: line 3: found character that cannot start any token (indent with spaces; YAML does not allow tabs)"}},
	{"not-mapping.bad.yml", []string{"line 1: the config must be a mapping of keys"}},
	{"duplicate.bad.yml", []string{"task: line 5: key 'task' is already set at line 1; remove one of them"}},
	{"unknown-key.bad.yml", []string{
		"source.mysql.pasword: unknown key 'pasword' at line 6, did you mean 'password'?",
		"delivery.buffr: unknown key 'buffr' at line 10, did you mean 'buffer'?",
		"region: unknown key 'region' at line 13; 'region' belongs at s3.region or stream.kinesis.region (check the indentation)",
		"tls: unknown key 'tls' at line 14; 'tls' belongs at source.mysql.tls or stream.kafka.tls (check the indentation)",
	}},
	{"merge.bad.yml", []string{
		"source.mysql.usr: unknown key 'usr' at line 4, did you mean 'user'?",
	}},
	{"wrong-types.bad.yml", []string{
		"source.mysql.host: line 4: expected a string, got a list",
		`source.mysql.port: line 5: expected an integer, got "three-thousand"`,
		`source.mysql.server_id: line 7: expected an integer from 0 to 4294967295, got "-1"`,
		`tables: line 8: expected a list (lines starting with '- '), got "wordpress-db.%"`,
		`delivery.buffer: line 10: expected a mapping of keys (size, interval), got "5MiB"`,
		`s3.path_style: line 13: expected true or false, got "maybe"`,
	}},
	{"units.bad.yml", []string{
		`source.mysql.connect_timeout: line 6: invalid duration "1.5" (a plain number must be whole seconds`,
		`stream.embedded.max_age: line 11: invalid duration "7d" (days are not a unit; write 168h)`,
		`stream.embedded.max_bytes: line 12: invalid size "-1GiB": must not be negative`,
		`delivery.buffer.size: line 15: invalid size "5 MeB" (write a number with a unit`,
		`delivery.buffer.interval: line 16: invalid duration "soon"`,
	}},
	{"env.bad.yml", []string{
		"source.mysql.password: line 6: environment variable BINLAKE_TEST_UNSET is not set (export it or write ${BINLAKE_TEST_UNSET:-default})",
		"target: line 9: environment variable BINLAKE_TEST_UNSET_TARGET is not set (export it or write ${BINLAKE_TEST_UNSET_TARGET:-default})",
		`state_dir: line 10: unterminated "${BINLAKE_TEST_BROKEN": close it with '}'`,
		"task: must be set (e.g. task: wordpress)",
	}},
	{"migration.bad.yml", []string{`migration: must be one of full-load, cdc, full-load-and-cdc; got "full"`}},
	{"tables.bad.yml", []string{
		"tables[0]: has both include and exclude",
		"tables[1]: must set include or exclude",
		`tables[2].include: "wordpress" has no '.'; write "schema.table", e.g. "wordpress.%"`,
		`tables[3].exclude: "wordpress-db.wp[_sessions" has a '[' without a closing ']'`,
		`tables[4].include: ".users" has an empty schema name`,
		`tables[5].include: "db.[z-a]%" has the range [z-a], which is backwards; write [a-z]`,
	}},
	{"no-include.bad.yml", []string{"tables: has no include rule, so no table is selected"}},
	{"missing.bad.yml", []string{
		"task: must be set (e.g. task: wordpress)",
		"source.mysql.host: must be set (e.g. host: 127.0.0.1)",
		"source.mysql.user: must be set",
		"tables: must list at least one include rule",
		"target: must be set (e.g. target: s3://my-bucket/cdc or target: file:///var/lib/lake)",
	}},
	{"stream.bad.yml", []string{
		`stream.type: unknown type "pulsar" (supported: embedded, nats, kinesis, kafka)`,
		"stream.partitions: must be between 1 and 1024, got 0",
		`stream.partition_key: must be one of primary-key, schema-table; got "table"`,
		"stream.embedded.max_age: 30s must be longer than delivery.buffer.interval (1m)",
		"stream.embedded.max_bytes: 1MiB must be at least delivery.buffer.size (5MiB)",
		`stream.embedded.listen: "localhost" is not host:port`,
	}},
	{"nats.bad.yml", []string{
		`stream.nats.urls[0]: "nats://" is not a NATS URL`,
		`stream.nats.urls[1]: "localhost" is neither a URL (nats://host:4222, tls://host:4222) nor host:port`,
		`stream.nats.urls[2]: "http://n:4222" is not a NATS URL`,
		`stream.nats.credentials: is exclusive with user/password and token`,
		`stream.nats.tls_cert: and stream.nats.tls_key must be given together`,
		`stream.nats.replicas: must be between 1 and 5, got 7`,
		`stream.nats.max_age: 30s must be longer than delivery.buffer.interval (1m)`,
		`stream.nats.max_bytes: 1MiB must be at least delivery.buffer.size (5MiB)`,
	}},
	{"kinesis.bad.yml", []string{
		`stream.kinesis.stream_name: "arn:aws:kinesis:us-east-1:12:stream/x" is not a Kinesis stream ARN`,
		`stream.kinesis.endpoint: "localhost:4567" is not a URL`,
		`stream.kinesis.shards: is the shard count of a stream binlake creates`,
		`stream.kinesis.secret_access_key: must be set with stream.kinesis.access_key_id`,
		`stream.kinesis.lease_ttl: must be at least 1s, got 500ms`,
	}},
	{"kafka.bad.yml", []string{
		`stream.kafka.brokers[0]: "kafka-1" is not host:port`,
		`stream.kafka.topic: "bad topic" is not a valid topic name`,
		`stream.kafka.replication_factor: must be between 0 (the broker's default) and 32, got -1`,
		`stream.kafka.max_message_bytes: must be between 64KiB and 64MiB, got 1KiB`,
		`stream.kafka.session_timeout: must be between 1s and 30m`,
	}},
	{"s3.bad.yml", []string{
		`target: bucket "My_Bucket" is not a valid S3 bucket name`,
		`s3.endpoint: "127.0.0.1:7070" is not a URL; write it with http:// or https://`,
		"s3.secret_access_key: must be set with s3.access_key_id",
		"s3.session_token: needs s3.access_key_id and s3.secret_access_key",
	}},
	{"formats.bad.yml", []string{
		`delivery.parquet.compression: must be one of snappy, zstd, gzip, none; got "lz4"`,
		"delivery.parquet.row_group_size: must be between 1KiB and 1GiB, got 2GiB",
		`before_image: "all" needs delivery.format: json; csv objects hold no before-image`,
		"include_transaction_details: needs delivery.format: json; csv objects hold no prev-transaction-id",
	}},
	{"snapshot.bad.yml", []string{
		`delivery.tables: must be one of none, snapshot, iceberg; got "delta"`,
		`delivery.iceberg.delete_mode: must be one of copy-on-write, merge-on-read; got "rewrite"`,
		"delivery.snapshot.interval: must be between 1s and 24h, got 0s (e.g. interval: 5m)",
		"delivery.snapshot.grace: must be between 0s and 168h, got 200h (e.g. grace: 10m)",
		"delivery.snapshot.file_size: must be between 1KiB and 1GiB, got 2GiB (e.g. file_size: 128MiB)",
		"delivery.compaction.interval: must be between 1s and 24h, got 48h (e.g. interval: 10m)",
		"delivery.compaction.target_size: must be between 1KiB and 5GiB, got 512B (e.g. target_size: 64MiB)",
		"delivery.compaction.grace: must be between 0s and 168h, got -1s (e.g. grace: 10m)",
		"delivery.retention: must be 0 (keep every object) or at least 1m, got 30s (e.g. retention: 720h)",
	}},
	{"ranges.bad.yml", []string{
		`task: "my task!" may only contain letters, digits, '_' and '-' (e.g. task: my-task)`,
		"source.mysql.port: must be between 1 and 65535, got 70000",
		`source.mysql.flavor: must be one of auto, mysql, mariadb; got "percona"`,
		"source.mysql.heartbeat: must be positive, got 0s",
		"delivery.buffer.size: must be between 1KiB and 1GiB, got 512B",
		"delivery.buffer.interval: must be between 0s and 15m, got 20m",
		`delivery.format: must be one of json, parquet, csv; got "avro"`,
		`delivery.compression: must be one of none, gzip, zstd, snappy; got "lz4"`,
		`delivery.prefix: "/cdc/" must not start with '/'`,
		`target: scheme "gs://" is not supported`,
		"state_dir: must be set",
		"memory_limit: must be 0 (the Go runtime's default) or at least 64MiB, got 16MiB",
		`http.listen: "8080" is not host:port`,
		"http.token: must not contain spaces or control characters",
		`log.level: must be one of debug, info, warn, error; got "verbose"`,
		`log.format: must be one of text, json; got "logfmt"`,
	}},
}

func TestBadConfigs(t *testing.T) {
	for _, tc := range badConfigs {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded, want errors %q; got %+v", tc.errs, *c)
			}
			if !strings.HasPrefix(err.Error(), path+":") {
				t.Errorf("error does not start with the file name: %v", err)
			}
			got := fieldErrors(t, err)
			if len(got) != len(tc.errs) {
				t.Errorf("got %d errors, want %d:\n%v", len(got), len(tc.errs), err)
			}
			for i, want := range tc.errs {
				if i < len(got) && !strings.Contains(got[i].Error(), want) {
					t.Errorf("error %d:\n got %q\nwant it to contain %q", i, got[i], want)
				}
			}
		})
	}
}

// fieldErrors unpacks a Load, Parse or Validate error into its
// *FieldErrors, failing if it holds anything else.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error is not a *FieldError: %#v", err)
	}
	var errs []error
	for err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
			break
		}
		if fe, ok := err.(*FieldError); ok {
			errs = []error{fe}
			break
		}
		err = errors.Unwrap(err)
	}
	var out []*FieldError
	for _, e := range errs {
		fe, ok := e.(*FieldError)
		if !ok {
			t.Fatalf("joined error is %T, not *FieldError: %v", e, e)
		}
		out = append(out, fe)
	}
	return out
}

// TestTestdataCovered keeps testdata and the tables above in step.
func TestTestdataCovered(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, tc := range goodConfigs {
		listed = append(listed, tc.file)
	}
	for _, tc := range badConfigs {
		listed = append(listed, tc.file)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if !strings.HasSuffix(name, ".good.yml") && !strings.HasSuffix(name, ".bad.yml") {
			t.Errorf("%s: name testdata files *.good.yml or *.bad.yml", f)
		}
		if !slices.Contains(listed, name) {
			t.Errorf("%s is in no test table", f)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: got %v, want os.ErrNotExist", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# only a comment\n", "---\n", "~\n"} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), "config is empty") {
			t.Errorf("Parse(%q) = %v, want config is empty", in, err)
		}
	}
}

func TestValidateZeroConfig(t *testing.T) {
	err := (&Config{}).Validate()
	if err == nil {
		t.Fatal("Validate of a zero Config succeeded")
	}
	for _, want := range []string{
		"task: must be set",
		"source.mysql.server_id: must not be 0",
		"migration: must be one of",
		"stream.type: unknown type \"\" (supported: embedded, nats, kinesis, kafka)",
		"delivery.buffer.size: must be between 1KiB and 1GiB, got 0B",
		"state_dir: must be set",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
}

func TestValidateTargets(t *testing.T) {
	tests := []struct {
		target string
		err    string // "" for valid
	}{
		{"file:///var/lib/lake", ""},
		{"file://./lake", ""},
		{"file://lake/cdc", ""},
		{"s3://my-bucket", ""},
		{"s3://my-bucket/", ""},
		{"s3://my.bucket-1/a/b/c", ""},
		{"", "target: must be set"},
		{"file://", "names no directory"},
		{"s3://", "names no bucket"},
		{"s3:///prefix", "names no bucket"},
		{"s3://ab", "not a valid S3 bucket name"},
		{"/var/lib/lake", "has no scheme; write file:///var/lib/lake"},
		{"./lake", "has no scheme; write file://./lake"},
		{"my-bucket", "must be s3://bucket[/prefix] or file:///path"},
		{"https://example.com/x", `scheme "https://" is not supported`},
	}
	for _, tc := range tests {
		c := validConfig(t)
		c.Target = tc.target
		err := c.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("target %q: %v", tc.target, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("target %q: got %v, want %q", tc.target, err, tc.err)
		}
	}
}

func TestS3SettingsIgnoredForFileTarget(t *testing.T) {
	c := validConfig(t)
	c.Target = "file:///lake"
	c.S3 = S3{Endpoint: "not a url", SessionToken: "t"}
	if err := c.Validate(); err != nil {
		t.Errorf("s3 settings with a file target: %v", err)
	}
	c.Target = "s3://lake"
	if err := c.Validate(); err == nil {
		t.Error("bad s3 settings with an s3 target passed Validate")
	}
}

func TestExplicitZeroBeatsDefault(t *testing.T) {
	c, err := Parse([]byte(`
task: t
source: {mysql: {host: db, user: u}}
tables: [{include: "a.%"}]
delivery: {buffer: {interval: 0}}
target: file:///lake
state_dir:            # null keeps the default
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.Buffer.Interval != 0 {
		t.Errorf("interval: 0 gave %s", c.Delivery.Buffer.Interval)
	}
	if c.StateDir != "./binlake-state" {
		t.Errorf("state_dir: with no value gave %q", c.StateDir)
	}
}

func TestServerID(t *testing.T) {
	// The derived id must not change between releases: a replica that
	// reconnects with a new id leaves a stale one on the source.
	if got := deriveServerID("wordpress"); got != 2685718236 {
		t.Errorf("deriveServerID(wordpress) = %d, want 2685718236", got)
	}
	for _, task := range []string{"", "a", "wordpress", "orders_v2", strings.Repeat("x", 64)} {
		id := deriveServerID(task)
		if id < minDerivedServerID || id > maxDerivedServerID {
			t.Errorf("deriveServerID(%q) = %d, outside [%d, %d]", task, id, minDerivedServerID, maxDerivedServerID)
		}
	}
	if deriveServerID("a") == deriveServerID("b") {
		t.Error("tasks a and b derive the same server id")
	}
	c, err := Parse([]byte("task: t\nsource: {mysql: {host: db, user: u, server_id: 0}}\ntables: [{include: a.b}]\ntarget: file:///x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.MySQL.ServerID != deriveServerID("t") {
		t.Errorf("server_id: 0 gave %d, want the derived %d", c.Source.MySQL.ServerID, deriveServerID("t"))
	}
}

func TestRedacted(t *testing.T) {
	c := validConfig(t)
	c.Source.MySQL.Password = "pw"
	c.S3 = S3{
		Endpoint:        "http://minio:secret@127.0.0.1:9000",
		AccessKeyID:     "AKIA",
		SecretAccessKey: "sk",
		SessionToken:    "st",
	}
	c.HTTP = HTTP{Listen: "127.0.0.1:8080", Token: "tk"}
	r := c.Redacted()
	if r.Source.MySQL.Password != "****" || r.S3.SecretAccessKey != "****" || r.S3.SessionToken != "****" || r.HTTP.Token != "****" {
		t.Errorf("secrets not redacted: %+v %+v", r.Source.MySQL, r.S3)
	}
	if strings.Contains(r.S3.Endpoint, "secret") || !strings.Contains(r.S3.Endpoint, "127.0.0.1:9000") {
		t.Errorf("endpoint redacted to %q", r.S3.Endpoint)
	}
	if r.S3.AccessKeyID != "AKIA" || r.Task != c.Task {
		t.Errorf("non-secrets changed: %+v", r)
	}
	if c.Source.MySQL.Password != "pw" || c.S3.SecretAccessKey != "sk" {
		t.Error("Redacted modified the original")
	}
	r.Tables[0].Include = "changed.%"
	if c.Tables[0].Include == "changed.%" {
		t.Error("Redacted shares Tables with the original")
	}
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"pw", "sk", "st", "secret", "tk"} {
		if strings.Contains(string(out), ": "+secret+"\n") || strings.Contains(string(out), ":"+secret+"@") {
			t.Errorf("marshalled redacted config shows %q:\n%s", secret, out)
		}
	}

	empty := validConfig(t)
	if got := empty.Redacted().Source.MySQL.Password; got != "" {
		t.Errorf("empty password redacted to %q, want it left empty", got)
	}
}

// TestMarshalRoundTrip checks that a marshalled Config, as printed by a
// "show config" command, parses back to the same Config.
func TestMarshalRoundTrip(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	c, err := Load("testdata/s3-full.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	// $$ in the file gave a literal ${...}; escape it again.
	c.S3.SessionToken = "plain-token"
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"size: 128MB", "interval: 0s", "max_age: 72h", "heartbeat: 1.5s"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("marshalled config lacks %q:\n%s", want, out)
		}
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("parsing marshalled config: %v\n%s", err, out)
	}
	back.secretWarnings, c.secretWarnings = nil, nil // written out, the secrets are literal
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *back, *c)
	}
}

func TestFieldErrorMessage(t *testing.T) {
	if got := (&FieldError{Path: "task", Msg: "must be set"}).Error(); got != "task: must be set" {
		t.Errorf("got %q", got)
	}
	if got := (&FieldError{Msg: "config is empty"}).Error(); got != "config is empty" {
		t.Errorf("got %q", got)
	}
}

// validConfig returns a Config that passes Validate.
func validConfig(t *testing.T) *Config {
	t.Helper()
	c, err := Parse([]byte(`
task: test
source: {mysql: {host: db, user: u}}
tables: [{include: "db.%"}]
target: file:///lake
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartPosition(t *testing.T) {
	for _, tc := range []struct {
		in, file string
		pos      uint32
		given    bool
		err      string
	}{
		{"", "", 0, false, ""},
		{"now", "", 0, false, ""},
		{"mysql-bin.000042:4", "mysql-bin.000042", 4, true, ""},
		{"my.host-bin.7:123456", "my.host-bin.7", 123456, true, ""},
		{"mysql-bin.000042", "", 0, false, "write now, file:pos"},
		{"0-1-100", "", 0, false, ""},
		{"0-1-100,1-2-7", "", 0, false, ""},
		{"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57", "", 0, false, ""},
		{"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9,4e11fa47-71ca-11e1-9e33-c80aa9429562:3", "", 0, false, ""},
		{"0-1", "", 0, false, "write now, file:pos"},
		{"2026-11-24T08:00:00Z", "", 0, false, ""},
		{"2026-11-24T08:00:00.5+01:00", "", 0, false, ""},
		{"2026-11-24 08:00", "", 0, false, "at least 4"},
		{"mysql-bin.000042:2", "", 0, false, "at least 4"},
		{"binlog:4", "", 0, false, "binlog file name"},
		{"yesterday", "", 0, false, "write now, file:pos"},
	} {
		c := &Config{CDCStartPosition: tc.in}
		file, pos, given, err := c.StartPosition()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || file != tc.file || pos != tc.pos || given != tc.given {
			t.Errorf("%q: %q %d %v %v", tc.in, file, pos, given, err)
		}
		_, gtid := c.StartGTIDSet()
		_, at := c.StartTime()
		if gtid == at && tc.file == "" && tc.in != "" && tc.in != "now" || gtid && at {
			t.Errorf("%q: StartGTIDSet says %v, StartTime %v", tc.in, gtid, at)
		}
		if at != (strings.HasPrefix(tc.in, "2026") && tc.err == "") {
			t.Errorf("%q: StartTime says %v", tc.in, at)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestBatchRecords: batches by default except on Kinesis; dms_compatible
// decides when given.
func TestBatchRecords(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		dms  *bool
		want bool
	}{
		{StreamEmbedded, nil, true}, {StreamNATS, nil, true}, {StreamKafka, nil, true}, {StreamKinesis, nil, false},
		{StreamEmbedded, ptr(true), false}, {StreamKinesis, ptr(false), true}, {StreamKafka, ptr(false), true},
	} {
		if got := (Stream{Type: tc.typ, DMSCompatible: tc.dms}).BatchRecords(); got != tc.want {
			t.Errorf("type %s, dms_compatible %v: BatchRecords() = %v, want %v", tc.typ, tc.dms != nil && *tc.dms, got, tc.want)
		}
	}
}

// TestHTTPTLSConfig: the http.tls_* keys go together and need http.listen.
func TestHTTPTLSConfig(t *testing.T) {
	base := "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"s.%\"}]\ntarget: file:///tmp/l\nstate_dir: /tmp/s\n"
	for _, tc := range []struct{ http, want string }{
		{"{listen: \":8443\", tls_cert: c.pem, tls_key: k.pem}", ""},
		{"{listen: \":8443\", tls_cert: c.pem, tls_key: k.pem, tls_client_ca: ca.pem}", ""},
		{"{listen: \":8443\", tls_cert: c.pem}", "http.tls_cert: and http.tls_key must be given together"},
		{"{listen: \":8443\", tls_key: k.pem}", "http.tls_cert: and http.tls_key must be given together"},
		{"{listen: \":8443\", tls_client_ca: ca.pem}", "http.tls_client_ca: needs http.tls_cert and http.tls_key"},
		{"{tls_cert: c.pem, tls_key: k.pem}", "http.tls_cert: is set but http.listen is not"},
	} {
		c, err := Parse([]byte(base + "http: " + tc.http + "\n"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("http: %s: %v", tc.http, err)
		case tc.want == "" && !c.HTTP.UsesTLS():
			t.Errorf("http: %s: UsesTLS false", tc.http)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("http: %s: %v, want %q", tc.http, err, tc.want)
		}
	}
}
