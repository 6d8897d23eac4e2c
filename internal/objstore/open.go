package objstore

import (
	"context"
	"fmt"
	"strings"
)

// acceptedTargets lists the target forms Open accepts, for its errors.
const acceptedTargets = "accepted forms are s3://bucket, s3://bucket/prefix, file:///absolute/dir and file://./relative/dir"

// Open returns the bucket a target URL names:
//
//	s3://bucket               the S3 bucket, configured by opts
//	s3://bucket/some/prefix   the same, with every key placed under some/prefix/
//	file:///absolute/dir      a local directory (see File)
//	file://./relative/dir     a local directory relative to the working directory
//
// A plain path is not accepted, so that a typo cannot silently write to a
// local directory. opts is used only by s3 targets.
func Open(ctx context.Context, target string, opts S3Options) (Bucket, error) {
	if target == "" {
		return nil, fmt.Errorf("empty target; %s", acceptedTargets)
	}
	scheme, rest, ok := strings.Cut(target, "://")
	if !ok {
		return nil, fmt.Errorf("target %q is not a URL; %s", target, acceptedTargets)
	}
	switch strings.ToLower(scheme) {
	case "file":
		dir, err := parseFileTarget(rest)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w; %s", target, err, acceptedTargets)
		}
		return NewFile(dir)
	case "s3":
		bucket, prefix, err := parseS3Target(rest)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w; %s", target, err, acceptedTargets)
		}
		return NewS3(ctx, bucket, prefix, opts)
	default:
		return nil, fmt.Errorf("target %q: unsupported scheme %q; %s", target, scheme, acceptedTargets)
	}
}

// parseFileTarget returns the directory of a file target, given what follows
// "file://". The text is a path, taken literally (no %-decoding).
func parseFileTarget(rest string) (string, error) {
	switch {
	case rest == "":
		return "", fmt.Errorf("no directory")
	case strings.HasPrefix(rest, "/"),
		rest == ".", rest == "..",
		strings.HasPrefix(rest, "./"), strings.HasPrefix(rest, "../"):
		return rest, nil
	default:
		host, _, _ := strings.Cut(rest, "/")
		return "", fmt.Errorf("host %q in file URL (only local directories are supported: use three slashes for an absolute path, file://./ for a relative one)", host)
	}
}

// parseS3Target returns the bucket and key prefix of an s3 target, given what
// follows "s3://".
func parseS3Target(rest string) (bucket, prefix string, err error) {
	if strings.ContainsAny(rest, "?#") {
		return "", "", fmt.Errorf("query parameters and fragments are not supported (set S3 options in the configuration)")
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("no bucket name")
	}
	for _, r := range bucket {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '-' || r == '_') {
			return "", "", fmt.Errorf("invalid bucket name %q: only letters, digits, '.', '-' and '_' are allowed", bucket)
		}
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return "", "", fmt.Errorf("invalid prefix %q: %w", prefix, err)
		}
	}
	return bucket, prefix, nil
}

// FileTargetDir returns the local directory of a file:// target, for
// what needs the directory itself rather than a Bucket over it.
// S3Target returns the bucket and key prefix of an s3:// target.
func S3Target(target string) (bucket, prefix string, err error) {
	scheme, rest, ok := strings.Cut(target, "://")
	if !ok || !strings.EqualFold(scheme, "s3") {
		return "", "", fmt.Errorf("target %q is not an s3:// URL", target)
	}
	return parseS3Target(rest)
}

func FileTargetDir(target string) (string, error) {
	scheme, rest, ok := strings.Cut(target, "://")
	if !ok || !strings.EqualFold(scheme, "file") {
		return "", fmt.Errorf("target %q is not a file:// URL", target)
	}
	dir, err := parseFileTarget(rest)
	if err != nil {
		return "", fmt.Errorf("target %q: %w; %s", target, err, acceptedTargets)
	}
	return dir, nil
}
