package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/binlake/binlake/internal/lease"
)

// LeaseBucket is the JetStream KV bucket holding a task's deliver-worker
// leases.
func LeaseBucket(task string) string { return "binlake_" + task + "_leases" }

// LeaseStore returns the task's lease store: a KV bucket whose entries
// expire ttl after their last write, replicated like the stream.
func (s *Stream) LeaseStore(ctx context.Context, ttl time.Duration) (lease.Store, error) {
	storage := jetstream.MemoryStorage
	if s.opts.FileStore {
		storage = jetstream.FileStorage
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      LeaseBucket(s.opts.Task),
		Description: "binlake deliver workers and their partition leases",
		TTL:         ttl,
		History:     1,
		Storage:     storage,
		Replicas:    max(s.opts.Replicas, 1),
	}
	// Every worker of a task opens the bucket at its start, most often at
	// once: an existing bucket with the right TTL is used as it is, since
	// concurrent updates of one bucket on a cluster can wait out a whole
	// API timeout.
	var kv jetstream.KeyValue
	err := retryTimeouts(ctx, func(ctx context.Context) (err error) {
		kv, err = s.js.KeyValue(ctx, cfg.Bucket)
		if err == nil {
			st, err := kv.Status(ctx)
			if err == nil && st.TTL() == ttl {
				return nil
			}
		}
		kv, err = s.js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", LeaseBucket(s.opts.Task), err)
	}
	return kvLeases{kv}, nil
}

type kvLeases struct{ kv jetstream.KeyValue }

func (l kvLeases) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := l.kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, lease.ErrExists
	}
	return rev, err
}

func (l kvLeases) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	n, err := l.kv.Update(ctx, key, value, rev)
	if isWrongRevision(err) {
		return 0, lease.ErrChanged
	}
	return n, err
}

func (l kvLeases) Delete(ctx context.Context, key string, rev uint64) error {
	err := l.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if isWrongRevision(err) {
		return lease.ErrChanged
	}
	return err
}

func (l kvLeases) Keys(ctx context.Context, prefix string) ([]string, error) {
	lister, err := l.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range lister.Keys() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out, nil
}

// isWrongRevision tells a failed compare-and-set: the key was written
// since, deleted, or expired.
func isWrongRevision(err error) bool {
	return apiErrorIs(err, jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant) ||
		errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}
