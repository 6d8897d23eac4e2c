package config

import (
	"strings"
	"testing"
	"time"
)

var defaultNATS = NATS{Replicas: 1, MaxAge: Duration(168 * time.Hour), MaxBytes: 10 * gib, LeaseTTL: Duration(30 * time.Second)}

const streamBase = `task: wordpress
source: {mysql: {host: db, user: u}}
tables: [{include: "a.%"}]
target: file:///lake
`

// TestStreamBackends parses a good config of each stream type.
func TestStreamBackends(t *testing.T) {
	for _, tc := range []struct {
		yml   string
		check func(t *testing.T, s Stream)
	}{
		{`stream: {type: nats, nats: {urls: [nats://n1:4222, "tls://n2:4222", "n3:4222"], credentials: /etc/b.creds, tls_ca: /etc/ca.pem, replicas: 3}}`,
			func(t *testing.T, s Stream) {
				if len(s.NATS.URLs) != 3 || s.NATS.Credentials != "/etc/b.creds" || s.NATS.Replicas != 3 || s.NATS.MaxAge != defaultNATS.MaxAge {
					t.Errorf("nats = %+v", s.NATS)
				}
			}},
		{`stream: {type: nats, nats: {urls: [nats://n1:4222], user: binlake, password: pw}}`, nil},
		{`stream: {type: nats, nats: {urls: [nats://n1:4222], token: t0k}}`, nil},
		{`stream: {type: kinesis, kinesis: {stream_name: cdc, region: eu-west-1}}`,
			func(t *testing.T, s Stream) {
				if s.Kinesis.StreamName != "cdc" || !s.Kinesis.Create || s.Kinesis.Shards != 0 {
					t.Errorf("kinesis = %+v", s.Kinesis)
				}
			}},
		{`stream: {type: kinesis, kinesis: {stream_name: "arn:aws:kinesis:us-east-1:123456789012:stream/cdc", endpoint: "http://127.0.0.1:4567", shards: 2}}`, nil},
		{`stream: {type: kinesis, kinesis: {stream_name: cdc, create: false}}`,
			func(t *testing.T, s Stream) {
				if s.Kinesis.Create {
					t.Error("create: false ignored")
				}
			}},
		{`stream: {type: kafka, partitions: 8, kafka: {brokers: ["k1:9092", "k2:9092"]}}`,
			func(t *testing.T, s Stream) {
				if got := s.Kafka.TopicFor("wordpress"); got != "binlake.wordpress" {
					t.Errorf("default topic %q", got)
				}
				if s.Kafka.MaxMessageBytes != mib || !s.Kafka.Create || s.Kafka.SessionTimeout != Duration(45*time.Second) {
					t.Errorf("kafka = %+v", s.Kafka)
				}
				if got := s.Kafka.GroupFor("wordpress"); got != "binlake.wordpress.deliver" {
					t.Errorf("default group %q", got)
				}
			}},
		{`stream: {type: kafka, kafka: {brokers: ["k1:9092"], topic: cdc.orders, max_message_bytes: 4MiB, replication_factor: 3, group: orders-lake, session_timeout: 10s}}`,
			func(t *testing.T, s Stream) {
				if s.Kafka.GroupFor("wordpress") != "orders-lake" || s.Kafka.SessionTimeout != Duration(10*time.Second) {
					t.Errorf("kafka = %+v", s.Kafka)
				}
			}},
	} {
		c, err := Parse([]byte(streamBase + tc.yml + "\n"))
		if err != nil {
			t.Errorf("%s: %v", tc.yml, err)
			continue
		}
		if tc.check != nil {
			tc.check(t, c.Stream)
		}
	}
}

// The *.bad.yml files of the stream backends are in badConfigs; these are
// the required settings of each type.
func TestStreamRequired(t *testing.T) {
	for yml, want := range map[string]string{
		`stream: {type: nats}`:    "stream.nats.urls: must list at least one server",
		`stream: {type: kinesis}`: "stream.kinesis.stream_name: must be set",
		`stream: {type: kafka}`:   "stream.kafka.brokers: must list at least one broker",
	} {
		_, err := Parse([]byte(streamBase + yml + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", yml, err, want)
		}
	}
}

func TestRedactedStreamSecrets(t *testing.T) {
	c, err := Parse([]byte(streamBase + `stream: {type: nats, nats: {urls: [nats://n:4222], user: u, password: hunter2}, kinesis: {access_key_id: A, secret_access_key: S, session_token: T}}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if r.Stream.NATS.Password != "****" || r.Stream.Kinesis.SecretAccessKey != "****" || r.Stream.Kinesis.SessionToken != "****" {
		t.Errorf("secrets not redacted: %+v %+v", r.Stream.NATS, r.Stream.Kinesis)
	}
	if c.Stream.NATS.Password != "hunter2" {
		t.Error("Redacted changed the original")
	}
}
