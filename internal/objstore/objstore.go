// Package objstore owns where binlake delivers its change-log objects: a small
// Bucket interface with backends for S3 (and S3-compatible servers), a local
// directory and memory, a prefix wrapper, the Open factory that turns a target
// URL into a Bucket, and AcceptanceTest, the conformance suite every backend runs.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bucket is where delivered objects go.
//
// Keys are '/'-separated paths of non-empty segments, none of which is "." or
// "..", with no leading or trailing '/', in valid UTF-8 and without NUL bytes.
// Every backend enforces the same rules (see ErrInvalidKey), so a key that
// works in tests against Memory also works against File and S3.
type Bucket interface {
	// Put stores body under key, replacing any existing object. It is atomic:
	// readers see either the old object or the whole new one, never a part.
	Put(ctx context.Context, key string, body []byte) error
	// Get returns the object stored under key, or an error wrapping
	// ErrNotFound when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// List calls fn for every object whose key starts with prefix (a plain
	// string prefix, not a directory), recursively, in lexical byte order of
	// keys. An error from fn stops the listing and is returned wrapped.
	List(ctx context.Context, prefix string, fn func(key string, size int64) error) error
	// Delete removes the object stored under key. A missing object is not an
	// error.
	Delete(ctx context.Context, key string) error
	// String names the bucket as a target URL, e.g. "s3://bucket/prefix" or
	// "file:///dir".
	String() string
}

var (
	// ErrNotFound is wrapped by Get when the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidKey is wrapped by every operation given a key that breaks the
	// key rules described on Bucket.
	ErrInvalidKey = errors.New("invalid object key")
)

var (
	_ Bucket = (*Memory)(nil)
	_ Bucket = (*File)(nil)
	_ Bucket = (*S3)(nil)
	_ Bucket = (*prefixed)(nil)
)

// checkKey reports whether key follows the key rules described on Bucket.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: contains a NUL byte", ErrInvalidKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: empty path segment (leading, trailing or doubled '/')", ErrInvalidKey)
		case ".", "..":
			return fmt.Errorf("%w: %q path segment", ErrInvalidKey, seg)
		}
	}
	return nil
}

// joinKey puts key under prefix; prefix has no leading or trailing '/'.
func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}
