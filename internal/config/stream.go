package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// NATS configures stream.type nats: a JetStream stream on an external NATS
// server or cluster, through the same code as the embedded stream.
type NATS struct {
	// URLs are the servers, e.g. nats://nats-1:4222 (tls:// for TLS).
	URLs []string `yaml:"urls,omitempty"`
	// Credentials is a .creds file (user JWT and NKey seed), exclusive
	// with User/Password and Token.
	Credentials  string `yaml:"credentials"`
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	Token        string `yaml:"token"`
	PasswordFile string `yaml:"password_file"`
	TokenFile    string `yaml:"token_file"`
	// TLSCA is a PEM file of certificate authorities to trust; TLSCert and
	// TLSKey a client certificate.
	TLSCA   string `yaml:"tls_ca"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Replicas of the JetStream stream (1, 3 or 5 on a cluster).
	Replicas int      `yaml:"replicas"`
	MaxAge   Duration `yaml:"max_age"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	// LeaseTTL is how long a deliver worker's partition lease lasts
	// without renewal (role deliver): a dead worker's partitions are taken
	// over after it, and a worker stops writing a partition once half of it
	// passed without a renewal, so it must exceed twice the longest object
	// upload.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// Kinesis configures stream.type kinesis: an Amazon Kinesis Data Stream.
type Kinesis struct {
	// StreamName is the stream's name or ARN.
	StreamName string `yaml:"stream_name"`
	Region     string `yaml:"region"`
	// Endpoint overrides the service URL (kinesalite, LocalStack, VPC
	// endpoints).
	Endpoint string `yaml:"endpoint"`
	// Shards is the shard count of a stream binlake creates: 0 creates an
	// on-demand stream.
	Shards int `yaml:"shards"`
	// Create makes the stream when it does not exist.
	Create bool `yaml:"create"`
	// Credentials; empty fields fall back to the AWS SDK's defaults.
	AccessKeyID         string `yaml:"access_key_id"`
	SecretAccessKey     string `yaml:"secret_access_key"`
	SessionToken        string `yaml:"session_token"`
	SecretAccessKeyFile string `yaml:"secret_access_key_file"`
	SessionTokenFile    string `yaml:"session_token_file"`
	// LeaseTTL is how long a deliver worker's partition lease (an object in
	// the target bucket) lasts without renewal (role deliver); see
	// NATS.LeaseTTL.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// Kafka configures stream.type kafka.
type Kafka struct {
	// Brokers are host:port seed brokers.
	Brokers []string `yaml:"brokers,omitempty"`
	// Topic defaults to binlake.<task>; see TopicFor.
	Topic string `yaml:"topic"`
	// Create makes the topic, with stream.partitions partitions, when it
	// does not exist.
	Create bool `yaml:"create"`
	// ReplicationFactor of a topic binlake creates; 0 is the broker's
	// default.
	ReplicationFactor int `yaml:"replication_factor"`
	// MaxMessageBytes is the largest record batch sent; larger records
	// travel in chunks. Keep it at or below the topic's max.message.bytes.
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
	// Group is the consumer group of the task's deliver workers (role
	// deliver) defaults to binlake.<task>.deliver; see GroupFor.
	Group string `yaml:"group"`
	// SessionTimeout is how long the group waits for a deliver worker that
	// stopped heartbeating before it gives the worker's partitions to the
	// others; a worker stops writing a partition once half of it passed
	// without an answered heartbeat, so it must exceed twice the longest
	// object upload.
	SessionTimeout Duration `yaml:"session_timeout"`
	// TLS connects to the brokers over TLS, verifying their certificates
	// against the system's authorities, or TLSCA's; TLSCert and TLSKey are
	// a client certificate. Any of the three implies TLS.
	TLS     bool   `yaml:"tls"`
	TLSCA   string `yaml:"tls_ca"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// UsesTLS tells whether the brokers are reached over TLS.
func (k Kafka) UsesTLS() bool { return k.TLS || k.TLSCA != "" || k.TLSCert != "" }

// GroupFor is the consumer group of a task's deliver workers: Group, or
// binlake.<task>.deliver.
func (k Kafka) GroupFor(task string) string {
	if k.Group != "" {
		return k.Group
	}
	return "binlake." + task + ".deliver"
}

// TopicFor is the Kafka topic of a task: Topic, or binlake.<task>.
func (k Kafka) TopicFor(task string) string {
	if k.Topic != "" {
		return k.Topic
	}
	return "binlake." + task
}

var (
	kafkaTopicRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	kinesisNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	kinesisARNRE  = regexp.MustCompile(`^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[A-Za-z0-9_.-]{1,128}$`)
)

func (c *Config) validateNATS(ps *problems) {
	n := c.Stream.NATS
	if len(n.URLs) == 0 {
		ps.add("stream.nats.urls", "must list at least one server (e.g. urls: [nats://nats-1:4222])")
	}
	for i, u := range n.URLs {
		path := fmt.Sprintf("stream.nats.urls[%d]", i)
		if !strings.Contains(u, "://") {
			if _, _, err := net.SplitHostPort(u); err != nil {
				ps.add(path, "%q is neither a URL (nats://host:4222, tls://host:4222) nor host:port", u)
			}
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) {
			ps.add(path, "%q is not a NATS URL (nats://host:4222, tls://host:4222, ws:// or wss://)", u)
		}
	}
	if n.Credentials != "" && (n.User != "" || n.Token != "") {
		ps.add("stream.nats.credentials", "is exclusive with user/password and token; give one way to authenticate")
	}
	if n.User != "" && n.Token != "" {
		ps.add("stream.nats.token", "is exclusive with user/password; give one way to authenticate")
	}
	if n.Password != "" && n.User == "" {
		ps.add("stream.nats.user", "must be set with stream.nats.password")
	}
	if (n.TLSCert == "") != (n.TLSKey == "") {
		ps.add("stream.nats.tls_cert", "and stream.nats.tls_key must be given together")
	}
	if n.LeaseTTL < Duration(time.Second) {
		ps.add("stream.nats.lease_ttl", "must be at least 1s, got %s (e.g. lease_ttl: 30s)", n.LeaseTTL)
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		ps.add("stream.nats.replicas", "must be between 1 and 5, got %d", n.Replicas)
	}
	if n.MaxAge <= 0 {
		ps.add("stream.nats.max_age", "must be positive, got %s (e.g. max_age: 168h)", n.MaxAge)
	} else if iv := c.Delivery.Buffer.Interval; n.MaxAge <= iv {
		ps.add("stream.nats.max_age", "%s must be longer than delivery.buffer.interval (%s), or events could expire before delivery", n.MaxAge, iv)
	}
	if n.MaxBytes <= 0 {
		ps.add("stream.nats.max_bytes", "must be positive, got %s (e.g. max_bytes: 10GiB)", n.MaxBytes)
	} else if sz := c.Delivery.Buffer.Size; n.MaxBytes < sz {
		ps.add("stream.nats.max_bytes", "%s must be at least delivery.buffer.size (%s), or a full batch could not be buffered", n.MaxBytes, sz)
	}
}

func (c *Config) validateKinesis(ps *problems) {
	k := c.Stream.Kinesis
	switch {
	case k.StreamName == "":
		ps.add("stream.kinesis.stream_name", "must be set: the stream's name or ARN (e.g. stream_name: binlake-%s)", c.Task)
	case strings.HasPrefix(k.StreamName, "arn:"):
		if !kinesisARNRE.MatchString(k.StreamName) {
			ps.add("stream.kinesis.stream_name", "%q is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)", k.StreamName)
		}
	case !kinesisNameRE.MatchString(k.StreamName):
		ps.add("stream.kinesis.stream_name", "%q is not a valid stream name (1 to 128 letters, digits, '_', '.' and '-')", k.StreamName)
	}
	if k.Endpoint != "" {
		u, err := url.Parse(k.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add("stream.kinesis.endpoint", "%q is not a URL; write it with http:// or https://, e.g. http://127.0.0.1:4567", k.Endpoint)
		}
	}
	if k.Shards < 0 || k.Shards > maxPartitions {
		ps.add("stream.kinesis.shards", "must be between 0 (on-demand) and %d, got %d", maxPartitions, k.Shards)
	}
	if k.Shards > 0 && !k.Create {
		ps.add("stream.kinesis.shards", "is the shard count of a stream binlake creates; with create: false leave it out")
	}
	switch {
	case k.AccessKeyID != "" && k.SecretAccessKey == "":
		ps.add("stream.kinesis.secret_access_key", "must be set with stream.kinesis.access_key_id (or leave both out to use the AWS default credentials)")
	case k.AccessKeyID == "" && k.SecretAccessKey != "":
		ps.add("stream.kinesis.access_key_id", "must be set with stream.kinesis.secret_access_key (or leave both out to use the AWS default credentials)")
	}
	if k.SessionToken != "" && (k.AccessKeyID == "" || k.SecretAccessKey == "") {
		ps.add("stream.kinesis.session_token", "needs stream.kinesis.access_key_id and stream.kinesis.secret_access_key")
	}
	if k.LeaseTTL < Duration(time.Second) {
		ps.add("stream.kinesis.lease_ttl", "must be at least 1s, got %s (e.g. lease_ttl: 30s)", k.LeaseTTL)
	}
}

func (c *Config) validateKafka(ps *problems) {
	k := c.Stream.Kafka
	if len(k.Brokers) == 0 {
		ps.add("stream.kafka.brokers", "must list at least one broker (e.g. brokers: [kafka-1:9092])")
	}
	for i, b := range k.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			ps.add(fmt.Sprintf("stream.kafka.brokers[%d]", i), "%q is not host:port (e.g. kafka-1:9092)", b)
		}
	}
	if t := k.TopicFor(c.Task); !kafkaTopicRE.MatchString(t) || t == "." || t == ".." {
		ps.add("stream.kafka.topic", "%q is not a valid topic name (1 to 249 letters, digits, '.', '_' and '-')", t)
	}
	if k.ReplicationFactor < 0 || k.ReplicationFactor > 32 {
		ps.add("stream.kafka.replication_factor", "must be between 0 (the broker's default) and 32, got %d", k.ReplicationFactor)
	}
	if k.MaxMessageBytes < 64*kib || k.MaxMessageBytes > 64*mib {
		ps.add("stream.kafka.max_message_bytes", "must be between 64KiB and 64MiB, got %s", k.MaxMessageBytes)
	}
	if g := k.GroupFor(c.Task); len(g) > 255 || strings.TrimSpace(g) != g {
		ps.add("stream.kafka.group", "%q is not a usable consumer group name (at most 255 characters, no leading or trailing spaces)", g)
	}
	if k.SessionTimeout < Duration(time.Second) || k.SessionTimeout > Duration(30*time.Minute) {
		ps.add("stream.kafka.session_timeout", "must be between 1s and 30m (and within the brokers' group.min.session.timeout.ms and group.max.session.timeout.ms, 6s and 30m by default), got %s", k.SessionTimeout)
	}
	if (k.TLSCert == "") != (k.TLSKey == "") {
		ps.add("stream.kafka.tls_cert", "and stream.kafka.tls_key must be given together")
	}
}
