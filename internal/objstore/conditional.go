package objstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Conditional is implemented by buckets that write or delete an object only
// if it is as the caller last saw it: S3's conditional writes (If-None-Match
// and If-Match on PutObject, If-Match on DeleteObject), the compare-and-set
// that deliver workers' leases are built on (see lease.BucketStore). An
// ETag identifies one version of an object's content.
type Conditional interface {
	Bucket
	// PutIf stores body under key only if the object's ETag is match, or,
	// with match "", only if there is no object. It returns the new
	// object's ETag, or an error wrapping ErrPrecondition.
	PutIf(ctx context.Context, key string, body []byte, match string) (etag string, err error)
	// DeleteIf removes key only if its ETag is match, and returns
	// ErrPrecondition if it has another. A missing object is not an error
	// (S3 answers so).
	DeleteIf(ctx context.Context, key, match string) error
	// ListETags calls fn for every object whose key starts with prefix,
	// with its ETag, in key order.
	ListETags(ctx context.Context, prefix string, fn func(key, etag string) error) error
}

// ErrPrecondition is wrapped by PutIf and DeleteIf when the object is not as
// the caller said.
var ErrPrecondition = errors.New("precondition failed: the object changed")

// SameETag reports whether two ETags name the same content, with or
// without their quotes.
func SameETag(a, b string) bool { return strings.Trim(a, `"`) == strings.Trim(b, `"`) }

// AsConditional returns b's conditional writes, if it has them.
func AsConditional(b Bucket) (Conditional, bool) {
	if p, ok := b.(*prefixed); ok {
		if _, ok := p.b.(Conditional); !ok {
			return nil, false
		}
		return p, true
	}
	c, ok := b.(Conditional)
	return c, ok
}

var (
	_ Conditional = (*Memory)(nil)
	_ Conditional = (*File)(nil)
	_ Conditional = (*S3)(nil)
	_ Conditional = (*prefixed)(nil)
)

// contentETag is the ETag of body as S3 gives it to an object put in one
// part: its MD5, quoted.
func contentETag(body []byte) string {
	sum := md5.Sum(body)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// Memory

// PutIf implements Conditional.
func (m *Memory) PutIf(ctx context.Context, key string, body []byte, match string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objects[key]
	if (match == "" && ok) || (match != "" && (!ok || !SameETag(contentETag(cur), match))) {
		return "", fmt.Errorf("put %s: %w", key, ErrPrecondition)
	}
	m.objects[key] = append([]byte{}, body...)
	return contentETag(body), nil
}

// DeleteIf implements Conditional.
func (m *Memory) DeleteIf(ctx context.Context, key, match string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objects[key]
	if ok && !SameETag(contentETag(cur), match) {
		return fmt.Errorf("delete %s: %w", key, ErrPrecondition)
	}
	delete(m.objects, key)
	return nil
}

// ListETags implements Conditional.
func (m *Memory) ListETags(ctx context.Context, prefix string, fn func(key, etag string) error) error {
	return listETags(ctx, m, prefix, fn)
}

// listETags lists b with the ETag of each object's content as it is read.
func listETags(ctx context.Context, b Bucket, prefix string, fn func(key, etag string) error) error {
	var keys []string
	if err := b.List(ctx, prefix, func(key string, _ int64) error { keys = append(keys, key); return nil }); err != nil {
		return err
	}
	for _, k := range keys {
		body, err := b.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(k, contentETag(body)); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
	}
	return nil
}

// prefixed: conditional when the bucket it views is (see AsConditional).

var errNotConditional = errors.New("the bucket has no conditional writes")

func (p *prefixed) cond() (Conditional, error) {
	c, ok := p.b.(Conditional)
	if !ok {
		return nil, errNotConditional
	}
	return c, nil
}

func (p *prefixed) PutIf(ctx context.Context, key string, body []byte, match string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	c, err := p.cond()
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	return c.PutIf(ctx, joinKey(p.prefix, key), body, match)
}

func (p *prefixed) DeleteIf(ctx context.Context, key, match string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	c, err := p.cond()
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return c.DeleteIf(ctx, joinKey(p.prefix, key), match)
}

func (p *prefixed) ListETags(ctx context.Context, prefix string, fn func(key, etag string) error) error {
	c, err := p.cond()
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	base := p.prefix + "/"
	return c.ListETags(ctx, base+prefix, func(key, etag string) error {
		return fn(strings.TrimPrefix(key, base), etag)
	})
}
