package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"
)

// systemSchemas are the server's own schemas, never proposed by init.
var systemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys"}

// initOptions are binlake init's flags.
type initOptions struct {
	dsn   string
	out   string
	task  string
	force bool
}

func initCmd(stdout io.Writer) *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented example config (with --dsn: one include rule per schema of that server)",
		Long: `init writes a commented example pipeline config, every key with a line on what it
does. Without --dsn it is the README's WordPress example. With --dsn it connects to that
server, lists its schemas (all but mysql, information_schema, performance_schema and sys)
and writes one include rule per schema, with the DSN's host, port and user; the password
is never written: the file reads it from ${MYSQL_PASSWORD}. It refuses to overwrite an
existing file without --force; --out - writes to standard output. Exit codes: 0 written,
1 the server cannot be read or the file cannot be written, 2 bad flags or the file exists.`,
		Example: `  binlake init
  binlake init --dsn 'root:secret@tcp(127.0.0.1:3306)/' --out pipeline.yaml
  MYSQL_PASSWORD=secret binlake check --config pipeline.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInit(cmd.Context(), o, stdout)
		},
	}
	cmd.Flags().StringVar(&o.dsn, "dsn", "", "MySQL/MariaDB to ask for its schemas: user:password@tcp(host:port)/ (a password left out is read from $MYSQL_PASSWORD)")
	cmd.Flags().StringVarP(&o.out, "out", "o", "pipeline.yaml", "file to write; - for standard output")
	cmd.Flags().StringVar(&o.task, "task", "", "task name (default: wordpress without --dsn, else the first schema's name)")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite --out if it exists")
	return cmd
}

// initSource is what init writes into source.mysql and tables.
type initSource struct {
	host    string
	port    int
	user    string
	schemas []string
}

func runInit(ctx context.Context, o initOptions, stdout io.Writer) error {
	if o.out != "-" && !o.force {
		if _, err := os.Lstat(o.out); err == nil {
			return usageError{fmt.Errorf("%s exists; give --force to overwrite it, or --out another file", o.out)}
		}
	}
	src := initSource{host: "127.0.0.1", port: 3306, user: "root", schemas: []string{"wordpress-db"}}
	task := "wordpress"
	example := true
	if o.dsn != "" {
		var err error
		src, err = readSchemas(ctx, o.dsn)
		if err != nil {
			return err
		}
		example = false
		task = taskName(src.schemas)
	}
	if o.task != "" {
		task = o.task
	}
	text := exampleConfig(task, src, example)
	if o.out == "-" {
		_, err := io.WriteString(stdout, text)
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if o.force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	// 0600: people put secrets into configs they write from this one.
	f, err := os.OpenFile(o.out, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return usageError{fmt.Errorf("%s exists; give --force to overwrite it, or --out another file", o.out)}
	}
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, text); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (task %s, %d schema(s): %s)\nnext: export MYSQL_PASSWORD=…; binlake check --config %s; binlake run --config %s\n",
		o.out, task, len(src.schemas), strings.Join(src.schemas, ", "), o.out, o.out)
	return nil
}

// readSchemas connects with dsn and lists the server's non-system schemas.
func readSchemas(ctx context.Context, dsn string) (initSource, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return initSource{}, usageError{fmt.Errorf("--dsn: %w (want user:password@tcp(host:port)/)", err)}
	}
	if cfg.Net != "tcp" {
		return initSource{}, usageError{fmt.Errorf("--dsn: protocol %q: binlake connects over tcp; write user:password@tcp(host:port)/", cfg.Net)}
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return initSource{}, usageError{fmt.Errorf("--dsn: address %q: %w", cfg.Addr, err)}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return initSource{}, usageError{fmt.Errorf("--dsn: port %q is not a number", portStr)}
	}
	if cfg.Passwd == "" {
		cfg.Passwd = os.Getenv("MYSQL_PASSWORD")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return initSource{}, usageError{fmt.Errorf("--dsn: %w", err)}
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN (?, ?, ?, ?) ORDER BY schema_name",
		systemSchemas[0], systemSchemas[1], systemSchemas[2], systemSchemas[3])
	if err != nil {
		return initSource{}, fmt.Errorf("listing the schemas of %s: %w", cfg.Addr, err)
	}
	defer rows.Close()
	var schemas []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return initSource{}, err
		}
		schemas = append(schemas, s)
	}
	if err := rows.Err(); err != nil {
		return initSource{}, fmt.Errorf("listing the schemas of %s: %w", cfg.Addr, err)
	}
	if len(schemas) == 0 {
		return initSource{}, fmt.Errorf("%s has no schemas but the system ones (%s): create one, or run binlake init without --dsn for an example", cfg.Addr, strings.Join(systemSchemas, ", "))
	}
	return initSource{host: host, port: port, user: cfg.User, schemas: schemas}, nil
}

var notTaskChar = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// taskName derives a valid task name from the first schema.
func taskName(schemas []string) string {
	name := strings.Trim(notTaskChar.ReplaceAllString(schemas[0], "-"), "-")
	if len(schemas) > 1 || name == "" {
		if name == "" {
			return "binlake"
		}
		name += "-and-more"
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// schemaPattern is a selection pattern matching exactly schema: the DMS
// wildcards % and _ (and [, which starts a set) become literal sets.
func schemaPattern(schema string) string {
	var b strings.Builder
	for _, r := range schema {
		switch r {
		case '%', '_', '[':
			b.WriteString("[" + string(r) + "]")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// yamlString quotes s as a YAML double-quoted scalar.
func yamlString(s string) string {
	return strconv.Quote(s)
}

// exampleConfig is the commented config init writes.
func exampleConfig(task string, src initSource, example bool) string {
	var rules strings.Builder
	for _, s := range src.schemas {
		fmt.Fprintf(&rules, "  - include: %s\n", yamlString(schemaPattern(s)+".%"))
	}
	origin := "the WordPress example of binlake's README"
	prefix := "wordpress-db/"
	exclude := "  # Exclude rules drop tables an include selected, e.g. WordPress's sessions:\n  - exclude: \"wordpress-db.wp_sessions\"\n"
	if !example {
		origin = fmt.Sprintf("the schemas of %s", net.JoinHostPort(src.host, strconv.Itoa(src.port)))
		prefix = task + "/"
		exclude = "  # Exclude rules drop tables an include selected, e.g.:\n  # - exclude: \"" + schemaPattern(src.schemas[0]) + ".sessions\"\n"
	}
	return fmt.Sprintf(`# binlake pipeline config, written by binlake init from %[1]s.
# Every key is explained in docs/config.md; keys left out take their defaults.
# Values may read the environment: ${NAME}, ${NAME:-default}.
#
#   binlake check --config <this file>   # checks the source, the target and state_dir
#   binlake run --config <this file>     # runs the task until Ctrl-C

# The task's name: it keys the state, the metrics and the object names, and
# the default replica server_id is derived from it.
task: %[2]s

source:
  mysql:
    # The MySQL or MariaDB server to copy from (binlog_format=ROW,
    # binlog_row_image=FULL for change data capture).
    host: %[3]s
    # Its TCP port.
    port: %[4]d
    # A user with SELECT, REPLICATION SLAVE and REPLICATION CLIENT.
    user: %[5]s
    # Read from the environment so the file holds no secret:
    # export MYSQL_PASSWORD=... before binlake check/run.
    password: ${MYSQL_PASSWORD}
    # server_id: 1234567    # replica id for the binlog dump; default: derived from task
    # flavor: auto          # auto, mysql or mariadb

# full-load (copy the tables, then stop), cdc (binlog changes only) or
# full-load-and-cdc (copy, then follow the binlog).
migration: full-load-and-cdc

# Selection rules, DMS style: schema.table with %% (any characters) and _ (one
# character); [_] is a literal underscore. A table is copied when an include
# matches it and no later exclude does.
tables:
%[6]s%[7]s
# The stream between capture and delivery: embedded (inside binlake, on disk
# under state_dir), or nats, kafka, kinesis to share it with other consumers.
stream:
  # embedded, nats, kafka or kinesis (each with its own section, see docs/config.md).
  type: embedded

delivery:
  # An object is written when the buffer holds this much, or this long after
  # its first record, whichever comes first (Firehose's buffer hints).
  buffer: {size: 1MiB, interval: 60s}
  # Record format of the objects: json (lines), parquet or csv.
  format: json
  # Compression of the objects: gzip, zstd, snappy or none.
  compression: gzip
  # Prefix of every object key, after the target's path.
  prefix: %[8]s
  # Also keep each table's current rows as Parquet files beside the change
  # log, remade every snapshot.interval (5m): none or snapshot.
  tables: none

# Where objects go: file:///a/directory or s3://bucket/optional/path.
target: file:///var/lib/lake

# S3 settings, used only with an s3:// target; left out, the AWS SDK's
# defaults (environment, ~/.aws, instance role) apply.
s3:
  # The bucket's AWS region.
  region: us-west-2
  # An S3-compatible server (MinIO, versitygw, ...); leave out for AWS.
  endpoint: http://127.0.0.1:7070
  # Path-style URLs (http://host/bucket/key), which most S3-compatible servers need.
  path_style: true

# Checkpoints (binlog position, full-load progress) and the embedded stream's data.
state_dir: ./binlake-state

http:
  # The HTTP API, the web console (http://127.0.0.1:8080/), /metrics and the
  # health probes; leave out for none. Binds localhost unless told otherwise.
  listen: 127.0.0.1:8080
  # Optional bearer token every endpoint but /healthz, /readyz and the console
  # page then requires (binlake status --token, or the console's #token=...).
  # token: ${BINLAKE_API_TOKEN}
  # HTTPS only, with this certificate and key (a renewed pair is picked up
  # without a restart); tls_client_ca asks for client certificates too.
  # tls_cert: /etc/binlake/tls.crt
  # tls_key: /etc/binlake/tls.key

log:
  # debug, info, warn or error.
  level: info
  # text or json.
  format: text
`, origin, task, yamlString(src.host), src.port, yamlString(src.user), rules.String(), exclude, yamlString(prefix))
}
