package objstore

import (
	"context"
	"fmt"
	"strings"
)

// WithPrefix returns a view of b in which every key is placed under prefix:
// Put(ctx, "k", …) stores "prefix/k" in b, and List only sees, and reports
// relative to prefix, the objects under "prefix/". Leading and trailing '/' of
// prefix are ignored; an empty prefix returns b itself.
func WithPrefix(b Bucket, prefix string) Bucket {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return b
	}
	return &prefixed{b: b, prefix: prefix}
}

type prefixed struct {
	b      Bucket
	prefix string // no leading or trailing '/'
}

// The caller's key is checked here so that errors name it rather than the
// joined key; errors from p.b already say which operation failed.

func (p *prefixed) Put(ctx context.Context, key string, body []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return p.b.Put(ctx, joinKey(p.prefix, key), body)
}

func (p *prefixed) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return p.b.Get(ctx, joinKey(p.prefix, key))
}

func (p *prefixed) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	base := p.prefix + "/"
	return p.b.List(ctx, base+prefix, func(key string, size int64) error {
		return fn(strings.TrimPrefix(key, base), size)
	})
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return p.b.Delete(ctx, joinKey(p.prefix, key))
}

func (p *prefixed) String() string {
	s := p.b.String()
	if strings.HasSuffix(s, "/") {
		return s + p.prefix
	}
	return s + "/" + p.prefix
}
