package task

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/keytemplate"
	"github.com/binlake/binlake/internal/lease"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/embedded"
	"github.com/binlake/binlake/internal/stream/kafka"
	"github.com/binlake/binlake/internal/stream/kinesis"
	"github.com/binlake/binlake/internal/stream/natsjs"
)

// consumerName is the durable consumer delivery reads with.
const consumerName = "deliver"

// openedStream is the task's stream: its producer, its consumer, and what
// closes them in order.
type openedStream struct {
	prod    stream.Producer
	cons    stream.Consumer // nil when !consume
	consume bool
	limit   int // the backend's message size limit
	closers []func() error

	// A deliver-only process on NATS, Kinesis or Kafka shares the
	// partitions with the task's other deliver workers: cons is parts,
	// whose partitions follow the leases in leases (NATS, Kinesis) or the
	// consumer group (Kafka).
	parts    *stream.Partitioned
	leases   lease.Store
	leaseTTL time.Duration
	group    *kafka.Group

	// room tells how full an embedded or NATS stream is; nil for the
	// other backends, whose retention binlake does not manage.
	room func() natsjs.Room
	// failed delivers the error of an embedded stream that stopped taking
	// records (its store cannot be written); nil for the other backends.
	failed <-chan error
}

func (s *openedStream) close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// openStream opens the backend cfg.Stream.Type names: its producer, and its
// consumer unless cfg.Role is capture (opening the durable consumer resets
// it to its acknowledgement floor, which a capture process must not do to
// the deliver processes reading it). The consumer reads batches; unless
// stream.dms_compatible, the producer writes them. target is the task's
// bucket, unmeasured (nil when not delivering): deliver workers sharing a
// Kinesis stream keep their leases and shard positions there. On error,
// whatever was opened is closed.
func openStream(ctx context.Context, cfg *config.Config, log *slog.Logger, target objstore.Bucket) (*openedStream, error) {
	s, err := openBackend(ctx, cfg, log, target)
	if err != nil {
		return nil, err
	}
	if s.cons != nil && s.parts == nil {
		s.cons = stream.NewUnbatcher(s.cons) // (s.parts unbatches per partition)
	}
	if cfg.Stream.BatchRecords() {
		s.prod = stream.NewBatcher(s.prod, stream.BatchOptions{MaxBytes: batchBytes(s.limit)})
		s.closers = append(s.closers, s.prod.Close)
	}
	return s, nil
}

// batchBytes is the most record data a batch holds: 256 KiB, or less when
// the backend's message limit is small, so that a batch fits in one message.
func batchBytes(limit int) int {
	if limit <= 0 {
		return 256 << 10
	}
	return min(256<<10, limit/2)
}

func openBackend(ctx context.Context, cfg *config.Config, log *slog.Logger, target objstore.Bucket) (_ *openedStream, err error) {
	s := &openedStream{consume: cfg.Role != config.RoleCapture}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	ackWait := cfg.Delivery.Buffer.Interval.D() + 10*time.Minute
	sc := cfg.Stream
	switch sc.Type {
	case config.StreamEmbedded:
		ns, err := embedded.Start(embedded.Options{StoreDir: filepath.Join(cfg.StateDir, "stream"), Listen: sc.Embedded.Listen, Logger: log})
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() error { ns.Shutdown(); return nil })
		s.watch(ns.Err)
		nc, err := ns.Connect()
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() error { nc.Close(); return nil })
		st, err := natsjs.Open(ctx, nc, natsjs.Options{
			Task: cfg.Task, Partitions: sc.Partitions, FileStore: true,
			MaxAge: sc.Embedded.MaxAge.D(), MaxBytes: int64(sc.Embedded.MaxBytes), Logger: log,
		})
		if err != nil {
			return nil, err
		}
		s.keepTrimmed(ctx, st, sc.Embedded.MaxAge.D(), log)
		s.limit = embedded.MaxMessage
		return s.natsjs(ctx, st, ackWait)
	case config.StreamNATS:
		n := sc.NATS
		nc, err := natsjs.Connect(ctx, natsjs.ConnectOptions{
			URLs: n.URLs, Credentials: n.Credentials, User: n.User, Password: n.Password, Token: n.Token,
			TLSCA: n.TLSCA, TLSCert: n.TLSCert, TLSKey: n.TLSKey, Name: "binlake-" + cfg.Task,
		})
		if err != nil {
			return nil, fmt.Errorf("stream.nats: %w", err)
		}
		s.closers = append(s.closers, func() error { nc.Close(); return nil })
		st, err := natsjs.Open(ctx, nc, natsjs.Options{
			Task: cfg.Task, Partitions: sc.Partitions, FileStore: true, Replicas: n.Replicas,
			MaxAge: n.MaxAge.D(), MaxBytes: int64(n.MaxBytes), Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("stream.nats: %w", err)
		}
		s.keepTrimmed(ctx, st, n.MaxAge.D(), log)
		s.limit = int(nc.MaxPayload())
		if cfg.Role == config.RoleDeliver {
			s.leaseTTL = n.LeaseTTL.D()
			return s.natsjsShared(ctx, st, ackWait)
		}
		return s.natsjs(ctx, st, ackWait)
	case config.StreamKinesis:
		k := sc.Kinesis
		st, err := kinesis.Open(ctx, kinesis.Options{
			StreamName: k.StreamName, Region: k.Region, Endpoint: k.Endpoint, Shards: k.Shards, Create: k.Create,
			AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey, SessionToken: k.SessionToken,
			Partitions: sc.Partitions, StateDir: cfg.StateDir, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("stream.kinesis: %w", err)
		}
		s.prod, s.limit = st.Producer(), kinesis.MaxRecordBytes
		s.closers = append(s.closers, s.prod.Close)
		if !s.consume {
			return s, nil
		}
		if cfg.Role == config.RoleDeliver {
			if err := s.kinesisShared(ctx, cfg, st, k.StreamName, target); err != nil {
				return nil, fmt.Errorf("stream.kinesis: %w", err)
			}
			return s, nil
		}
		cons, err := st.Consumer(ctx, consumerName)
		if err != nil {
			return nil, fmt.Errorf("stream.kinesis: %w", err)
		}
		s.cons = cons
		s.closers = append(s.closers, cons.Close)
		return s, nil
	case config.StreamKafka:
		k := sc.Kafka
		var kafkaTLS *tls.Config
		if k.UsesTLS() {
			var err error
			if kafkaTLS, err = kafka.LoadTLS(k.TLSCA, k.TLSCert, k.TLSKey); err != nil {
				return nil, err
			}
		}
		st, err := kafka.Open(ctx, kafka.Options{
			Brokers: k.Brokers, Topic: k.TopicFor(cfg.Task), Partitions: sc.Partitions, Create: k.Create,
			ReplicationFactor: k.ReplicationFactor, MaxMessageBytes: int(k.MaxMessageBytes),
			StateDir: cfg.StateDir, Logger: log, TLS: kafkaTLS,
		})
		if err != nil {
			return nil, fmt.Errorf("stream.kafka: %w", err)
		}
		prod, err := st.Producer()
		if err != nil {
			return nil, fmt.Errorf("stream.kafka: %w", err)
		}
		s.prod, s.limit = prod, int(k.MaxMessageBytes)
		s.closers = append(s.closers, prod.Close)
		if !s.consume {
			return s, nil
		}
		if cfg.Role == config.RoleDeliver {
			s.kafkaShared(st, k.GroupFor(cfg.Task), k.SessionTimeout.D())
			return s, nil
		}
		cons, err := st.Consumer(ctx, consumerName)
		if err != nil {
			return nil, fmt.Errorf("stream.kafka: %w", err)
		}
		s.cons = cons
		s.closers = append(s.closers, cons.Close)
		return s, nil
	}
	return nil, fmt.Errorf("stream.type %q is not supported", sc.Type)
}

// watch checks every second, until the stream is closed (before the
// server is), whether check reports the stream failed, and delivers its
// error on s.failed.
func (s *openedStream) watch(check func() error) {
	failed := make(chan error, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := check(); err != nil {
				failed <- err
				return
			}
		}
	}()
	s.failed = failed
	s.closers = append(s.closers, func() error { close(stop); <-done; return nil })
}

// keepTrimmed runs st.KeepTrimmed until the stream is closed (before its
// connection is): every process that opens an embedded or NATS stream
// removes delivered records from it, and reports how full it is.
func (s *openedStream) keepTrimmed(ctx context.Context, st *natsjs.Stream, maxAge time.Duration, log *slog.Logger) {
	s.room = st.Room
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.KeepTrimmed(ctx, min(max(maxAge/4, time.Second), time.Minute), log)
	}()
	s.closers = append(s.closers, func() error { cancel(); <-done; return nil })
}

func (s *openedStream) natsjs(ctx context.Context, st *natsjs.Stream, ackWait time.Duration) (*openedStream, error) {
	s.prod = st.Producer()
	s.closers = append(s.closers, s.prod.Close)
	if !s.consume {
		return s, nil
	}
	cons, err := st.Consumer(ctx, consumerName, ackWait)
	if err != nil {
		return nil, err
	}
	s.cons = cons
	s.closers = append(s.closers, cons.Close)
	return s, nil
}

// natsjsShared opens the stream for a deliver worker that shares the
// partitions with others: no partition is read until its lease is taken.
func (s *openedStream) natsjsShared(ctx context.Context, st *natsjs.Stream, ackWait time.Duration) (*openedStream, error) {
	s.prod = st.Producer()
	s.closers = append(s.closers, s.prod.Close)
	leases, err := st.LeaseStore(ctx, s.leaseTTL)
	if err != nil {
		return nil, fmt.Errorf("stream.nats: %w", err)
	}
	s.leases = leases
	s.parts = stream.NewPartitioned(func(ctx context.Context, p int) (stream.Consumer, error) {
		c, err := st.PartitionConsumer(ctx, consumerName, p, ackWait)
		if err != nil {
			return nil, err
		}
		return stream.NewUnbatcher(c), nil
	})
	s.cons = s.parts
	s.closers = append(s.closers, s.parts.Close)
	return s, nil
}

// kafkaShared reads the topic as a member of the deliver workers' consumer
// group: no partition is read until the group assigns it.
func (s *openedStream) kafkaShared(st *kafka.Stream, group string, sessionTimeout time.Duration) {
	s.group = st.Group(kafka.GroupOptions{Name: group, SessionTimeout: sessionTimeout})
	s.parts = stream.NewPartitioned(func(ctx context.Context, p int) (stream.Consumer, error) {
		return stream.NewUnbatcher(s.group.Partition(p)), nil
	})
	s.cons = s.parts
	s.closers = append(s.closers, s.group.Close, s.parts.Close)
}

// kinesisShared reads the stream as one of the task's deliver workers:
// leases on the partitions, and each partition's shard positions, are
// objects in the target bucket, written with conditional writes.
func (s *openedStream) kinesisShared(ctx context.Context, cfg *config.Config, st *kinesis.Stream, streamName string, target objstore.Bucket) error {
	b, ok := objstore.AsConditional(target)
	if !ok {
		return fmt.Errorf("deliver workers keep their leases in the target, and %s has no conditional writes", target)
	}
	keys, err := keytemplate.Parse(cfg.Delivery.Prefix, cfg.Delivery.KeyLayout())
	if err != nil {
		return err
	}
	root := keys.Root() + "_binlake/"
	s.leaseTTL = cfg.Stream.Kinesis.LeaseTTL.D()
	store := lease.NewBucketStore(b, root+"leases/"+cfg.Task+"/", s.leaseTTL)
	if err := store.Check(ctx); err != nil {
		return err
	}
	s.leases = store
	name := streamName[strings.LastIndexByte(streamName, '/')+1:] // a name, or an ARN's
	s.parts = stream.NewPartitioned(func(ctx context.Context, p int) (stream.Consumer, error) {
		c, err := st.PartitionConsumer(ctx, p, bucketJSON{b, fmt.Sprintf("%skinesis/%s/%s/partition-%d.json", root, cfg.Task, name, p)})
		if err != nil {
			return nil, err
		}
		return stream.NewUnbatcher(c), nil
	})
	s.cons = s.parts
	s.closers = append(s.closers, s.parts.Close)
	return nil
}

// bucketJSON is a JSON document under key in a bucket: where a Kinesis
// partition's shard positions are kept for whichever worker delivers it.
type bucketJSON struct {
	b   objstore.Bucket
	key string
}

func (j bucketJSON) Load(ctx context.Context, v any) (bool, error) {
	data, err := j.b.Get(ctx, j.key)
	if errors.Is(err, objstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s is damaged (%v): delete it, and the partition is read from the stream's oldest record", j, err)
	}
	return true, nil
}

func (j bucketJSON) Save(ctx context.Context, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return j.b.Put(ctx, j.key, data)
}

func (j bucketJSON) String() string { return strings.TrimSuffix(j.b.String(), "/") + "/" + j.key }
