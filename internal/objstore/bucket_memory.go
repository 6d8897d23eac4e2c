package objstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Memory is a Bucket held in memory, for tests. It is safe for concurrent use.
type Memory struct {
	mu      sync.RWMutex
	objects map[string][]byte
}

// NewMemory returns an empty in-memory bucket.
func NewMemory() *Memory {
	return &Memory{objects: make(map[string][]byte)}
}

// Put implements Bucket.
func (m *Memory) Put(ctx context.Context, key string, body []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	b := append([]byte{}, body...)
	m.mu.Lock()
	m.objects[key] = b
	m.mu.Unlock()
	return nil
}

// Get implements Bucket.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	m.mu.RLock()
	b, ok := m.objects[key]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return append([]byte{}, b...), nil
}

// List implements Bucket. It lists a snapshot taken when it is called, so fn
// may itself use the bucket.
func (m *Memory) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	type object struct {
		key  string
		size int64
	}
	var objects []object
	m.mu.RLock()
	for k, b := range m.objects {
		if strings.HasPrefix(k, prefix) {
			objects = append(objects, object{k, int64(len(b))})
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(objects, func(a, b object) int { return strings.Compare(a.key, b.key) })

	for _, o := range objects {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(o.key, o.size); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
	}
	return nil
}

// Delete implements Bucket.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}

// String implements Bucket.
func (m *Memory) String() string { return "mem://" }
