package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/binlake/binlake/internal/objstore"
)

// BucketStore is a Store in an object store with conditional writes (S3
// If-None-Match and If-Match, see objstore.Conditional): each key is an
// object under prefix, created only if missing, and rewritten or deleted
// only if its ETag is the one this worker wrote last. That is the
// compare-and-set the Coordinator needs, without a database.
//
// Objects do not expire by themselves, and clocks of different machines do
// not agree, so expiry is the Kinesis Client Library's: every write changes
// the object's content (a counter in it), and a worker counts a key dead
// once it has seen the same ETag for ttl by its own clock. A dead key is
// taken over with If-Match on that ETag, so of two workers that both think
// it dead, one wins; a key a worker has just started to watch lives for ttl
// from then. Dead keys are deleted when listed.
type BucketStore struct {
	b      objstore.Conditional
	prefix string
	ttl    time.Duration
	writer string // distinguishes this worker's writes from every other's

	mu    sync.Mutex
	count uint64
	revs  uint64
	mine  map[string]written // by key, what this worker wrote last
	seen  map[string]sighting
}

type written struct {
	rev  uint64
	etag string
}

// sighting is a key's ETag as last listed, and when this worker first saw
// that ETag.
type sighting struct {
	etag  string
	since time.Time
}

var _ Store = (*BucketStore)(nil)

// NewBucketStore returns a Store of keys under prefix (which ends in '/')
// in b, expiring ttl after their last write as seen by this worker.
func NewBucketStore(b objstore.Conditional, prefix string, ttl time.Duration) *BucketStore {
	var id [8]byte
	rand.Read(id[:])
	return &BucketStore{b: b, prefix: prefix, ttl: ttl, writer: hex.EncodeToString(id[:]),
		mine: map[string]written{}, seen: map[string]sighting{}}
}

// body is what a key's object holds: the value, and what makes every write
// different from every other.
type body struct {
	Value   string    `json:"value"`
	Writer  string    `json:"writer"`
	Count   uint64    `json:"count"`
	Written time.Time `json:"written"` // for people; expiry never reads it
}

func (s *BucketStore) body(value []byte) []byte {
	s.mu.Lock()
	s.count++
	n := s.count
	s.mu.Unlock()
	b, _ := json.Marshal(body{Value: string(value), Writer: s.writer, Count: n, Written: time.Now().UTC()})
	return b
}

// wrote records a successful write of key and returns its revision.
func (s *BucketStore) wrote(key, etag string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revs++
	s.mine[key] = written{rev: s.revs, etag: etag}
	s.seen[key] = sighting{etag: etag, since: time.Now()}
	return s.revs
}

// sight notes key's ETag as listed now; it reports whether the key is dead.
func (s *BucketStore) sight(key, etag string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.seen[key]
	if !ok || !objstore.SameETag(o.etag, etag) {
		s.seen[key] = sighting{etag: etag, since: now}
		return false
	}
	return now.Sub(o.since) >= s.ttl
}

// Create implements Store: it writes key if there is no such object, or
// takes it over if the object has been dead for ttl.
func (s *BucketStore) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	etag, err := s.b.PutIf(ctx, s.prefix+key, s.body(value), "")
	if err == nil {
		return s.wrote(key, etag), nil
	}
	if !errors.Is(err, objstore.ErrPrecondition) {
		return 0, fmt.Errorf("lease %s: %w", key, err)
	}
	cur, dead, err := s.look(ctx, key)
	if err != nil {
		return 0, err
	}
	if !dead {
		return 0, ErrExists
	}
	etag, err = s.b.PutIf(ctx, s.prefix+key, s.body(value), cur)
	if errors.Is(err, objstore.ErrPrecondition) {
		return 0, ErrExists // renewed, or taken over by another worker first
	}
	if err != nil {
		return 0, fmt.Errorf("lease %s: %w", key, err)
	}
	return s.wrote(key, etag), nil
}

// look lists key alone: its ETag, and whether it is dead.
func (s *BucketStore) look(ctx context.Context, key string) (etag string, dead bool, err error) {
	now := time.Now()
	err = s.b.ListETags(ctx, s.prefix+key, func(k, e string) error {
		if k == s.prefix+key {
			etag, dead = e, s.sight(key, e, now)
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("lease %s: %w", key, err)
	}
	return etag, dead && etag != "", nil
}

// Update implements Store: it rewrites key if it still holds what this
// worker wrote as rev.
func (s *BucketStore) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	s.mu.Lock()
	w, ok := s.mine[key]
	s.mu.Unlock()
	if !ok || w.rev != rev {
		return 0, ErrChanged
	}
	etag, err := s.b.PutIf(ctx, s.prefix+key, s.body(value), w.etag)
	if errors.Is(err, objstore.ErrPrecondition) {
		s.forget(key)
		return 0, ErrChanged
	}
	if err != nil {
		return 0, fmt.Errorf("lease %s: %w", key, err)
	}
	return s.wrote(key, etag), nil
}

// Delete implements Store.
func (s *BucketStore) Delete(ctx context.Context, key string, rev uint64) error {
	s.mu.Lock()
	w, ok := s.mine[key]
	s.mu.Unlock()
	if !ok || w.rev != rev {
		return ErrChanged
	}
	err := s.b.DeleteIf(ctx, s.prefix+key, w.etag)
	if errors.Is(err, objstore.ErrPrecondition) {
		s.forget(key)
		return ErrChanged
	}
	if err != nil {
		return fmt.Errorf("lease %s: %w", key, err)
	}
	s.forget(key)
	return nil
}

func (s *BucketStore) forget(key string) {
	s.mu.Lock()
	delete(s.mine, key)
	delete(s.seen, key)
	s.mu.Unlock()
}

// Keys implements Store: the live keys under prefix. Every key of the store
// is listed, so that the worker watches the leases of a dead worker from
// the start, and dead keys are deleted (only if unchanged since listed).
func (s *BucketStore) Keys(ctx context.Context, prefix string) ([]string, error) {
	now := time.Now()
	var live []string
	dead := map[string]string{}
	listed := map[string]bool{}
	err := s.b.ListETags(ctx, s.prefix, func(k, etag string) error {
		key := strings.TrimPrefix(k, s.prefix)
		listed[key] = true
		switch {
		case s.sight(key, etag, now):
			dead[key] = etag
		case strings.HasPrefix(key, prefix):
			live = append(live, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("leases %s: %w", prefix, err)
	}
	s.mu.Lock()
	for k := range s.seen {
		if !listed[k] {
			delete(s.seen, k)
		}
	}
	s.mu.Unlock()
	for k, etag := range dead {
		if err := s.b.DeleteIf(ctx, s.prefix+k, etag); err == nil {
			s.forget(k)
		}
	}
	return live, nil
}

// Check makes sure the bucket honours conditional writes, which some
// S3-compatible servers ignore (they would store every write and let two
// workers hold one lease): a second create of one key, and a write with a
// stale ETag, must both be refused.
func (s *BucketStore) Check(ctx context.Context) error {
	// A store's transient refusals (versitygw answers 409 to a write
	// racing another worker's creation of the same directory) are tried
	// again; only the verdict on conditional writes is final.
	var err error
	for attempt := range 6 {
		if err = s.check(ctx, attempt); err == nil || errors.Is(err, errIgnoresConditions) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 250 * time.Millisecond):
		}
	}
	return err
}

var errIgnoresConditions = errors.New("ignores conditional writes (If-None-Match, If-Match)")

func (s *BucketStore) check(ctx context.Context, attempt int) error {
	key := s.prefix + "check-" + s.writer + "-" + strconv.Itoa(attempt)
	e1, err := s.b.PutIf(ctx, key, []byte("1"), "")
	if err != nil {
		return fmt.Errorf("lease store %s: %w", s.b, err)
	}
	defer s.b.Delete(context.WithoutCancel(ctx), key)
	_, err1 := s.b.PutIf(ctx, key, []byte("2"), "")
	e3, err := s.b.PutIf(ctx, key, []byte("3"), e1)
	if err != nil {
		return fmt.Errorf("lease store %s: %w", s.b, err)
	}
	_, err2 := s.b.PutIf(ctx, key, []byte("4"), e1)
	if !errors.Is(err1, objstore.ErrPrecondition) || !errors.Is(err2, objstore.ErrPrecondition) || objstore.SameETag(e1, e3) {
		return fmt.Errorf("lease store %s %w: deliver workers cannot share partitions through it; use a store that honours them (Amazon S3, MinIO, versitygw 1.8), or run a single deliver process", s.b, errIgnoresConditions)
	}
	return nil
}
