package config

import (
	"github.com/binlake/binlake/internal/keytemplate"

	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks c and returns every problem found, as errors.Join of
// *FieldError, or nil. Each message names the key and says how to fix it.
// Validate does not fill defaults; Parse and Load do that first.
func (c *Config) Validate() error {
	return joinFieldErrors(c.validate())
}

type problems []*FieldError

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// oneOf checks that v is one of valid.
func (ps *problems) oneOf(path, v string, valid ...string) {
	if !slices.Contains(valid, v) {
		ps.add(path, "must be one of %s; got %q", strings.Join(valid, ", "), v)
	}
}

// hostPort checks an optional listen address.
func (ps *problems) hostPort(path, v string) {
	if v == "" {
		return
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		ps.add(path, "%q is not host:port (e.g. 127.0.0.1:8080, or :8080 for every interface)", v)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ps.add(path, "%q has port %q; a port is a number from 0 to 65535", v, port)
	}
}

var (
	taskRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	taskBadRE  = regexp.MustCompile(`[^A-Za-z0-9_-]+`)
	s3BucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// Ranges checked by validate.
const (
	maxPartitions     = 1024
	minBufferSize     = kib
	maxBufferSize     = gib
	maxBufferInterval = Duration(900 * time.Second)
)

func (c *Config) validate() []*FieldError {
	var ps problems

	switch {
	case c.Task == "":
		ps.add("task", "must be set (e.g. task: wordpress); it names the task's state, metrics and default server_id")
	case len(c.Task) > 64:
		ps.add("task", "must be at most 64 characters, got %d", len(c.Task))
	case !taskRE.MatchString(c.Task):
		fixed := strings.Trim(taskBadRE.ReplaceAllString(c.Task, "-"), "-")
		if fixed == "" {
			fixed = "wordpress"
		}
		ps.add("task", "%q may only contain letters, digits, '_' and '-' (e.g. task: %s)", c.Task, fixed)
	}

	ps.oneOf("role", c.Role, RoleAll, RoleCapture, RoleDeliver)
	c.validateMySQL(&ps)

	ps.oneOf("migration", c.Migration, MigrationFullLoad, MigrationCDC, MigrationFullLoadAndCDC)

	c.validateMappings(&ps)
	c.validateTables(&ps)
	c.validateFullLoad(&ps)
	if v := c.Validation; v.Enabled {
		if v.Interval != 0 && v.Interval.D() < time.Second {
			ps.add("validation.interval", "must be at least 1s, got %s (e.g. interval: 10m)", v.Interval)
		}
		if v.Rounds < 0 || v.Rounds > 100 {
			ps.add("validation.rounds", "must be between 1 and 100, got %d", v.Rounds)
		}
		if v.Wait.D() < 0 {
			ps.add("validation.wait", "must not be negative, got %s", v.Wait)
		}
	}
	if _, _, _, err := c.StartPosition(); err != nil {
		ps.add("cdc_start_position", "%v", err)
	} else if c.CDCStartPosition != "" && c.CDCStartPosition != "now" && c.Migration != MigrationCDC {
		ps.add("cdc_start_position", "applies to migration: cdc only (a full load starts CDC at its own snapshot)")
	}
	if b := c.BeforeImage; b != "" && b != BeforeImageNone && b != BeforeImagePKOnly && b != BeforeImageAll {
		ps.add("before_image", "must be one of none, pk-only, all; got %q", b)
	} else if b != "" && b != BeforeImageNone && c.Migration == MigrationFullLoad {
		ps.add("before_image", "is %s, but a full-load task has no update or delete records; remove it or set migration: full-load-and-cdc", b)
	}
	c.validateStream(&ps)
	c.validateDelivery(&ps)
	c.validateTransforms(&ps)
	c.validateTarget(&ps)

	if c.StateDir == "" {
		ps.add("state_dir", "must be set (e.g. state_dir: ./binlake-state)")
	}
	if l := c.MemoryLimit; l != 0 && l < 64*mib {
		ps.add("memory_limit", "must be 0 (the Go runtime's default) or at least 64MiB, got %s (e.g. memory_limit: 512MiB)", l)
	}
	ps.hostPort("http.listen", c.HTTP.Listen)
	if l := c.HTTP.Listen; l != "" && l == c.Stream.Embedded.Listen && !strings.HasSuffix(l, ":0") {
		ps.add("stream.embedded.listen", "%q is also http.listen; give them different ports", l)
	}
	if tok := c.HTTP.Token; tok != "" {
		if c.HTTP.Listen == "" {
			ps.add("http.token", "is set but http.listen is not, so there is no API to protect; set http.listen or remove http.token")
		}
		if strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			ps.add("http.token", "must not contain spaces or control characters (it is sent as Authorization: Bearer <token>)")
		}
	}
	if h := c.HTTP; h.TLSCert != "" || h.TLSKey != "" || h.TLSClientCA != "" {
		switch {
		case h.Listen == "":
			ps.add("http.tls_cert", "is set but http.listen is not, so there is no API to serve over TLS; set http.listen or remove the http.tls_* keys")
		case (h.TLSCert == "") != (h.TLSKey == ""):
			ps.add("http.tls_cert", "and http.tls_key must be given together (PEM files of the server's certificate and its key)")
		case h.TLSClientCA != "" && h.TLSCert == "":
			ps.add("http.tls_client_ca", "needs http.tls_cert and http.tls_key: client certificates are asked for over TLS only")
		}
	}
	ps.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	ps.oneOf("log.format", c.Log.Format, "text", "json")
	return ps
}

func (c *Config) validateMySQL(ps *problems) {
	m := c.Source.MySQL
	if m.Host == "" {
		ps.add("source.mysql.host", "must be set (e.g. host: 127.0.0.1)")
	}
	if m.Port < 1 || m.Port > 65535 {
		ps.add("source.mysql.port", "must be between 1 and 65535, got %d (MySQL's default is 3306)", m.Port)
	}
	if m.User == "" {
		ps.add("source.mysql.user", "must be set (e.g. user: binlake; it needs SELECT, REPLICATION SLAVE and REPLICATION CLIENT)")
	}
	if m.ServerID == 0 {
		ps.add("source.mysql.server_id", "must not be 0; pick an id no other server or replica of the source uses, or leave it out to derive one from the task name")
	}
	ps.oneOf("source.mysql.flavor", m.Flavor, "auto", "mysql", "mariadb")
	if m.ConnectTimeout <= 0 {
		ps.add("source.mysql.connect_timeout", "must be positive, got %s (e.g. connect_timeout: 10s)", m.ConnectTimeout)
	}
	if m.Heartbeat <= 0 {
		ps.add("source.mysql.heartbeat", "must be positive, got %s (e.g. heartbeat: 10s)", m.Heartbeat)
	}
	if m.TransactionMemory <= 0 {
		ps.add("source.mysql.transaction_memory", "must be positive, got %s (e.g. transaction_memory: 64MiB)", m.TransactionMemory)
	}
	t := m.TLS
	if t.Mode != "" {
		ps.oneOf("source.mysql.tls.mode", t.Mode, TLSDisabled, TLSRequired, TLSVerifyCA, TLSVerifyIdentity)
	}
	if t.Mode == TLSDisabled && (t.CA != "" || t.Cert != "" || t.Key != "" || t.ServerName != "") {
		ps.add("source.mysql.tls.mode", "is disabled, but other tls keys are set: remove them, or choose required, verify-ca or verify-identity")
	}
	if (t.Cert == "") != (t.Key == "") {
		ps.add("source.mysql.tls.cert", "and source.mysql.tls.key must be given together (a client certificate and its private key)")
	}
	if t.ServerName != "" && t.EffectiveMode() != TLSVerifyIdentity {
		ps.add("source.mysql.tls.server_name", "is only checked with mode verify-identity")
	}
}

func (c *Config) validateTables(ps *problems) {
	includes := 0
	for i, r := range c.Tables {
		path := fmt.Sprintf("tables[%d]", i)
		switch {
		case r.Include != "" && r.Exclude != "":
			ps.add(path, "has both include and exclude; a rule does one thing, so split it into two rules")
			continue
		case r.Include == "" && r.Exclude == "":
			ps.add(path, "must set include or exclude (e.g. - include: \"mydb.%%\")")
			continue
		}
		p, key := r.Include, "include"
		if p == "" {
			p, key = r.Exclude, "exclude"
		} else {
			includes++
		}
		if _, err := compilePattern(p); err != nil {
			ps.add(path+"."+key, "%v", err)
		}
	}
	switch {
	case len(c.mappings().Selection) > 0:
		// table_mappings selects the tables; validateMappings checks it.
	case len(c.Tables) == 0:
		ps.add("tables", "must list at least one include rule (e.g. tables: [{include: \"mydb.%%\"}] for every table of mydb)")
	case includes == 0:
		ps.add("tables", "has no include rule, so no table is selected; add one (e.g. - include: \"mydb.%%\") before the excludes")
	}
}

func (c *Config) validateStream(ps *problems) {
	s := c.Stream
	switch s.Type {
	case StreamEmbedded:
	case StreamNATS:
		c.validateNATS(ps)
	case StreamKinesis:
		c.validateKinesis(ps)
	case StreamKafka:
		c.validateKafka(ps)
	default:
		ps.add("stream.type", "unknown type %q (supported: embedded, nats, kinesis, kafka)", s.Type)
	}
	if s.Partitions < 1 || s.Partitions > maxPartitions {
		ps.add("stream.partitions", "must be between 1 and %d, got %d", maxPartitions, s.Partitions)
	}
	ps.oneOf("stream.partition_key", s.PartitionKey, PartitionByPrimaryKey, PartitionByTable)
	e := s.Embedded
	if e.MaxAge <= 0 {
		ps.add("stream.embedded.max_age", "must be positive, got %s (e.g. max_age: 168h)", e.MaxAge)
	} else if iv := c.Delivery.Buffer.Interval; e.MaxAge <= iv {
		ps.add("stream.embedded.max_age", "%s must be longer than delivery.buffer.interval (%s), or events could expire before delivery", e.MaxAge, iv)
	}
	if e.MaxBytes <= 0 {
		ps.add("stream.embedded.max_bytes", "must be positive, got %s (e.g. max_bytes: 10GiB)", e.MaxBytes)
	} else if sz := c.Delivery.Buffer.Size; e.MaxBytes < sz {
		ps.add("stream.embedded.max_bytes", "%s must be at least delivery.buffer.size (%s), or a full batch could not be buffered", e.MaxBytes, sz)
	}
	ps.hostPort("stream.embedded.listen", e.Listen)
	switch {
	case s.Type != StreamEmbedded:
	case c.Role == RoleCapture && e.Listen == "":
		ps.add("role", "is capture, but the embedded stream lives inside this process where no deliver process can read it; use stream.type nats, kafka or kinesis (or set stream.embedded.listen and point the deliver processes at it with stream.type: nats)")
	case c.Role == RoleDeliver:
		ps.add("role", "is deliver, but stream.type is embedded, which only a process with role all or capture holds; point this process at the stream the capture process writes (stream.type nats, kafka or kinesis)")
	}
}

func (c *Config) validateDelivery(ps *problems) {
	d := c.Delivery
	if d.Buffer.Size < minBufferSize || d.Buffer.Size > maxBufferSize {
		ps.add("delivery.buffer.size", "must be between %s and %s, got %s (e.g. size: 5MiB)", minBufferSize, maxBufferSize, d.Buffer.Size)
	}
	if d.Buffer.Interval < 0 || d.Buffer.Interval > maxBufferInterval {
		ps.add("delivery.buffer.interval", "must be between 0s and %s, got %s (0 flushes every batch)", maxBufferInterval, d.Buffer.Interval)
	}
	c.validateFormat(ps)
	c.validateLakeTables(ps)
	c.validateCompaction(ps)
	ps.oneOf("delivery.compression", d.Compression, "none", "gzip", "zstd", "snappy")
	ps.oneOf("delivery.partitioning", d.Partitioning, "time", "hive")
	if strings.HasPrefix(d.Prefix, "/") {
		ps.add("delivery.prefix", "%q must not start with '/'; object keys are relative to the target (write %q)", d.Prefix, strings.TrimLeft(d.Prefix, "/"))
	} else if _, err := keytemplate.Parse(d.Prefix, d.KeyLayout()); err != nil {
		ps.add("delivery.prefix", "%v", err)
	}
}

func (c *Config) validateTarget(ps *problems) {
	t := c.Target
	scheme, rest, ok := strings.Cut(t, "://")
	switch {
	case t == "":
		ps.add("target", "must be set (e.g. target: s3://my-bucket/cdc or target: file:///var/lib/lake)")
	case !ok && (strings.HasPrefix(t, "/") || strings.HasPrefix(t, ".")):
		ps.add("target", "%q has no scheme; write file://%s", t, t)
	case !ok:
		ps.add("target", "%q must be s3://bucket[/prefix] or file:///path", t)
	case scheme == "file":
		if rest == "" {
			ps.add("target", "%q names no directory; write file:///absolute/path or file://./relative/path", t)
		}
	case scheme == "s3":
		bucket, _, _ := strings.Cut(rest, "/")
		if bucket == "" {
			ps.add("target", "%q names no bucket; write s3://bucket or s3://bucket/prefix", t)
		} else if !s3BucketRE.MatchString(bucket) {
			ps.add("target", "bucket %q is not a valid S3 bucket name (3 to 63 characters: lower-case letters, digits, '.' and '-')", bucket)
		}
		c.validateS3(ps)
	default:
		ps.add("target", "scheme %q is not supported; write s3://bucket[/prefix] or file:///path", scheme+"://")
	}
}

// validateS3 checks the s3 section; it matters only for an s3:// target.
func (c *Config) validateS3(ps *problems) {
	s := c.S3
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add("s3.endpoint", "%q is not a URL; write it with http:// or https://, e.g. http://127.0.0.1:9000", s.Endpoint)
		}
	}
	switch {
	case s.AccessKeyID != "" && s.SecretAccessKey == "":
		ps.add("s3.secret_access_key", "must be set with s3.access_key_id (or leave both out to use the AWS default credentials)")
	case s.AccessKeyID == "" && s.SecretAccessKey != "":
		ps.add("s3.access_key_id", "must be set with s3.secret_access_key (or leave both out to use the AWS default credentials)")
	}
	if s.SessionToken != "" && (s.AccessKeyID == "" || s.SecretAccessKey == "") {
		ps.add("s3.session_token", "needs s3.access_key_id and s3.secret_access_key")
	}
	if s.SSE != "" {
		ps.oneOf("s3.sse", s.SSE, "AES256", "aws:kms")
	}
	if s.StallTimeout <= 0 {
		ps.add("s3.stall_timeout", "must be positive, got %s (e.g. stall_timeout: 30s)", s.StallTimeout)
	}
	if s.KMSKeyID != "" && s.SSE != "aws:kms" {
		ps.add("s3.kms_key_id", "needs s3.sse: aws:kms")
	}
	if s.StorageClass != "" && !storageClassRE.MatchString(s.StorageClass) {
		ps.add("s3.storage_class", "%q is not an S3 storage class (e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR)", s.StorageClass)
	}
}

var storageClassRE = regexp.MustCompile(`^[A-Z][A-Z_]*$`)
