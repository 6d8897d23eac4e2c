package objstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// File's conditional writes compare and write under an exclusive flock of
// one lock file in the bucket's directory (hidden from List like temporary
// files), so that they are atomic among the processes of one machine; a
// directory shared over a network file system is as safe as its flock.

// lock takes the bucket's lock for a conditional write.
func (f *File) lock() (func(), error) {
	l, err := os.OpenFile(filepath.Join(f.dir, tempPrefix+"conditional.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(l.Fd()), syscall.LOCK_EX); err != nil {
		l.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(l.Fd()), syscall.LOCK_UN)
		l.Close()
	}, nil
}

// etag returns the ETag of key's object, or "" when there is none.
func (f *File) etag(key string) (string, error) {
	b, err := os.ReadFile(f.path(key))
	if err != nil {
		if isNotExist(err) {
			return "", nil
		}
		return "", err
	}
	return contentETag(b), nil
}

// PutIf implements Conditional.
func (f *File) PutIf(ctx context.Context, key string, body []byte, match string) (string, error) {
	if err := f.checkKey(key); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	unlock, err := f.lock()
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	defer unlock()
	cur, err := f.etag(key)
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	if (match == "" && cur != "") || (match != "" && (cur == "" || !SameETag(cur, match))) {
		return "", fmt.Errorf("put %s: %w", key, ErrPrecondition)
	}
	if err := f.put(key, body); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	return contentETag(body), nil
}

// DeleteIf implements Conditional.
func (f *File) DeleteIf(ctx context.Context, key, match string) error {
	if err := f.checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	unlock, err := f.lock()
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	defer unlock()
	cur, err := f.etag(key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if cur == "" {
		return nil
	}
	if !SameETag(cur, match) {
		return fmt.Errorf("delete %s: %w", key, ErrPrecondition)
	}
	return f.Delete(ctx, key)
}

// ListETags implements Conditional.
func (f *File) ListETags(ctx context.Context, prefix string, fn func(key, etag string) error) error {
	return listETags(ctx, f, prefix, fn)
}
