// Package kafka is the stream backend on a Kafka topic (franz-go): one topic
// per task, binlake partition p written to Kafka partition p by an
// idempotent producer (so retries never reorder or duplicate a partition),
// the record's partition key as the Kafka key, and binlake's fields in
// headers. The consumer reads the partitions directly and keeps the offsets
// up to which everything is acknowledged in the state directory. Records
// larger than max_message_bytes travel in chunks.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/binlake/binlake/internal/stream"
)

// Header names.
const (
	hdrTable    = "binlake-table"
	hdrOp       = "binlake-op"
	hdrCommit   = "binlake-commit" // unix microseconds
	hdrPosition = "binlake-position"
	hdrChunk    = "binlake-chunk" // "i/n" on chunks
	// hdrNoKey marks a record whose message had no partition key: its Kafka
	// key is the table.
	hdrNoKey = "binlake-nokey"
)

// headerRoom is what a record's key, headers and batch framing may take of
// MaxMessageBytes.
const headerRoom = 4 << 10

// Options configure a task's topic.
type Options struct {
	Brokers           []string
	Topic             string
	Partitions        int
	Create            bool
	ReplicationFactor int
	MaxMessageBytes   int
	StateDir          string
	Logger            *slog.Logger
	// TLS, if not nil, is used to reach the brokers.
	TLS *tls.Config
}

// clientOpts are the options every client of the stream starts with.
func (s *Stream) clientOpts(more ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(s.opts.Brokers...)}
	if s.opts.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(s.opts.TLS.Clone()))
	}
	return append(opts, more...)
}

// Stream is a task's topic.
type Stream struct {
	opts Options
	log  *slog.Logger
}

// Open checks the topic, creating it when it is missing and opts.Create is
// set; it must have at least opts.Partitions partitions.
func Open(ctx context.Context, opts Options) (*Stream, error) {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 1 << 20
	}
	s := &Stream{opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(s.clientOpts()...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	n, err := s.partitionCount(ctx, cl)
	if errors.Is(err, kerr.UnknownTopicOrPartition) && opts.Create {
		if err := s.create(ctx, cl); err != nil {
			return nil, err
		}
		n, err = s.partitionCount(ctx, cl)
	}
	if err != nil {
		return nil, fmt.Errorf("kafka topic %s: %w", opts.Topic, err)
	}
	if n < opts.Partitions {
		return nil, fmt.Errorf("kafka topic %s has %d partitions, fewer than stream.partitions (%d)", opts.Topic, n, opts.Partitions)
	}
	return s, nil
}

func (s *Stream) partitionCount(ctx context.Context, cl *kgo.Client) (int, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(s.opts.Topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 {
		return 0, fmt.Errorf("metadata answered %d topics", len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return 0, err
	}
	return len(resp.Topics[0].Partitions), nil
}

func (s *Stream) create(ctx context.Context, cl *kgo.Client) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic = s.opts.Topic
	t.NumPartitions = int32(s.opts.Partitions)
	t.ReplicationFactor = -1
	if s.opts.ReplicationFactor > 0 {
		t.ReplicationFactor = int16(s.opts.ReplicationFactor)
	}
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 30000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("creating kafka topic %s: %w", s.opts.Topic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating kafka topic %s: %w", s.opts.Topic, err)
		}
	}
	s.log.Info("created kafka topic", "topic", s.opts.Topic, "partitions", s.opts.Partitions)
	return nil
}

// Producer writes records to their partitions.
type Producer struct {
	s  *Stream
	cl *kgo.Client

	// slots bounds the records waiting for the brokers: Publish waits for
	// a slot, honouring its context. The record itself is produced with a
	// context that is never cancelled, so stopping capture does not fail
	// records already accepted by Publish (franz-go fails a record whose
	// context ends before it is sent).
	slots chan struct{}

	mu  sync.Mutex
	err error // first failed record since the last Flush
}

const maxBuffered = 10000

var _ stream.Producer = (*Producer)(nil)

// Producer returns an idempotent producer. Records are retried for ever
// (a down cluster makes capture wait); at most 10,000 wait in memory.
func (s *Stream) Producer() (*Producer, error) {
	cl, err := kgo.NewClient(s.clientOpts(
		kgo.DefaultProduceTopic(s.opts.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(int32(s.opts.MaxMessageBytes)),
		kgo.MaxBufferedRecords(2*maxBuffered),
		kgo.ProducerLinger(5*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{s: s, cl: cl, slots: make(chan struct{}, maxBuffered)}, nil
}

// Publish queues m's record (or its chunks) for its partition.
func (p *Producer) Publish(ctx context.Context, m *stream.Message) error {
	key := m.Key
	if key == "" {
		key = m.Table
	}
	room := p.s.opts.MaxMessageBytes - headerRoom - len(key) - len(m.Table) - len(m.Position)
	chunks := stream.Split(m.Data, room)
	for i, data := range chunks {
		r := &kgo.Record{
			Key: []byte(key), Value: data, Partition: int32(m.Partition),
			Headers: []kgo.RecordHeader{
				{Key: hdrTable, Value: []byte(m.Table)},
				{Key: hdrOp, Value: []byte(m.Op)},
				{Key: hdrCommit, Value: strconv.AppendInt(nil, m.CommitTime.UnixMicro(), 10)},
				{Key: hdrPosition, Value: []byte(m.Position)},
			},
		}
		if m.Key == "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: hdrNoKey})
		}
		if len(chunks) > 1 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: hdrChunk, Value: []byte(stream.ChunkLabel(i+1, len(chunks)))})
		}
		pos := m.Position
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.cl.Produce(context.WithoutCancel(ctx), r, func(_ *kgo.Record, err error) {
			<-p.slots
			if err != nil {
				p.mu.Lock()
				if p.err == nil {
					p.err = fmt.Errorf("publishing %s: %w", pos, err)
				}
				p.mu.Unlock()
			}
		})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Flush waits until every record produced so far is acknowledged by the
// brokers.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("kafka flush: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.err
	p.err = nil
	return err
}

// Close closes the client; records not flushed are dropped (capture sends
// them again after a restart).
func (p *Producer) Close() error {
	p.cl.Close()
	return nil
}

// statePath is where a consumer keeps its offsets.
func (s *Stream) statePath(name string) string {
	return filepath.Join(s.opts.StateDir, "kafka-"+s.opts.Topic+"-"+name+".json")
}

// LoadTLS builds the TLS of stream.kafka: the system's authorities, or
// those of the PEM file ca; a client certificate when cert and key are set.
// The broker's name is checked against the host it is dialed at.
func LoadTLS(ca, cert, key string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("stream.kafka.tls_ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("stream.kafka.tls_ca: %s holds no PEM certificate", ca)
		}
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("stream.kafka.tls_cert and tls_key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}
