package objstore

//lint:file-ignore SA1019 manager.Uploader is deprecated for feature/s3/transfermanager, which this module does not depend on yet.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DefaultPartSize is the S3Options.PartSize used when it is zero.
const DefaultPartSize = 16 << 20

// MinPartSize is the smallest part S3 accepts in a multipart upload.
const MinPartSize = manager.MinUploadPartSize

// S3Options configures an S3 bucket. The zero value uses AWS itself with the
// region and credentials of the standard AWS configuration (environment,
// shared config files, instance roles, …).
type S3Options struct {
	// Region overrides the configured AWS region. With a custom Endpoint and
	// no region anywhere, "us-east-1" is used.
	Region string
	// Endpoint is the base URL of an S3-compatible server, e.g.
	// "http://127.0.0.1:7070". Empty means AWS.
	Endpoint string
	// PathStyle addresses the bucket as http://host/bucket rather than
	// http://bucket.host; most S3-compatible servers need it.
	PathStyle bool
	// AccessKeyID, SecretAccessKey and optionally SessionToken are static
	// credentials. Empty means the standard AWS credential chain.
	AccessKeyID, SecretAccessKey, SessionToken string
	// PartSize is the size of the parts of a multipart upload; bodies larger
	// than it are uploaded in parts. Zero means DefaultPartSize; otherwise it
	// must be at least MinPartSize.
	PartSize int64
	// SSE is the server-side encryption of new objects: "" (the bucket's
	// default), "AES256" (SSE-S3) or "aws:kms" (SSE-KMS, with KMSKeyID or
	// the account's default key).
	SSE      string
	KMSKeyID string
	// StorageClass of new objects, e.g. STANDARD_IA; empty means STANDARD.
	StorageClass string
	// StallTimeout abandons a request whose connection has sent and
	// received nothing for this long, so that the SDK's retries (and the
	// caller's) can go on: a server that accepted a connection and went
	// silent would otherwise hold it for ever. A slow transfer that keeps
	// moving is not cut. Zero means DefaultStallTimeout.
	StallTimeout time.Duration
}

// DefaultStallTimeout is the S3Options.StallTimeout used when it is zero:
// longer than S3 takes to answer even a CompleteMultipartUpload of many
// parts, short enough that a silent server costs only a retry.
const DefaultStallTimeout = 30 * time.Second

// validate reports every problem with o at once.
func (o S3Options) validate() error {
	var errs []error
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q: want a URL like https://host[:port]", o.Endpoint))
		}
	}
	switch o.SSE {
	case "", "AES256", "aws:kms":
	default:
		errs = append(errs, fmt.Errorf("server-side encryption %q: want AES256 or aws:kms", o.SSE))
	}
	if o.KMSKeyID != "" && o.SSE != "aws:kms" {
		errs = append(errs, errors.New("a KMS key ID needs server-side encryption aws:kms"))
	}
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		errs = append(errs, errors.New("static credentials need both an access key ID and a secret access key"))
	}
	if o.SessionToken != "" && o.AccessKeyID == "" {
		errs = append(errs, errors.New("a session token needs an access key ID and a secret access key"))
	}
	if o.StallTimeout < 0 {
		errs = append(errs, fmt.Errorf("stall timeout %s: must not be negative", o.StallTimeout))
	}
	if o.PartSize != 0 && o.PartSize < MinPartSize {
		errs = append(errs, fmt.Errorf("part size %d: must be 0 (default %d) or at least %d", o.PartSize, DefaultPartSize, MinPartSize))
	}
	return errors.Join(errs...)
}

// S3 is a Bucket in an S3 bucket, under an optional key prefix. Put uploads
// bodies larger than the part size in parts; S3 shows such an object only
// once the upload completes, and a failed upload is aborted.
type S3 struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string // no leading or trailing '/'
	opts     S3Options
}

// NewS3 returns a bucket for the S3 bucket named bucket, with every key placed
// under prefix. The context is used only while loading the AWS configuration;
// NewS3 does not contact S3.
func NewS3(ctx context.Context, bucket, prefix string, opts S3Options) (*S3, error) {
	prefix = strings.Trim(prefix, "/")
	var errs []error
	if bucket == "" {
		errs = append(errs, errors.New("empty bucket name"))
	}
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			errs = append(errs, fmt.Errorf("prefix %q: %w", prefix, err))
		}
	}
	if err := opts.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("s3 bucket %s: %w", bucket, err)
	}

	var load []func(*config.LoadOptions) error
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Endpoint != "" {
		load = append(load, config.WithBaseEndpoint(opts.Endpoint))
	}
	if opts.AccessKeyID != "" {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, opts.SessionToken)))
	}
	stall := opts.StallTimeout
	if stall == 0 {
		stall = DefaultStallTimeout
	}
	load = append(load, config.WithHTTPClient(stallingClient(stall)))
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s: loading AWS config: %w", bucket, err)
	}
	if cfg.Region == "" {
		if opts.Endpoint == "" {
			return nil, fmt.Errorf("s3 bucket %s: no AWS region: set the region option or AWS_REGION", bucket)
		}
		cfg.Region = "us-east-1" // S3-compatible servers mostly ignore it, but requests are signed with it
	}

	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = opts.PathStyle
		// Objects uploaded in parts have no whole-object checksum to
		// validate; don't log a warning on every Get of one.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	partSize := opts.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	// manager.Uploader is deprecated in favour of feature/s3/transfermanager,
	// which this module does not depend on yet. Its defaults abort a failed
	// multipart upload (LeavePartsOnError is false).
	uploader := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = partSize
	})
	return &S3{client: client, uploader: uploader, bucket: bucket, prefix: prefix, opts: opts}, nil
}

// String implements Bucket.
func (s *S3) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// Put implements Bucket.
func (s *S3) Put(ctx context.Context, key string, body []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(joinKey(s.prefix, key)),
		Body:   bytes.NewReader(body),
	}
	s.encrypt(in)
	if s.opts.StorageClass != "" {
		in.StorageClass = types.StorageClass(s.opts.StorageClass)
	}
	_, err := s.uploader.Upload(ctx, in)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// encrypt sets the server-side encryption of a new object.
func (s *S3) encrypt(in *s3.PutObjectInput) {
	if s.opts.SSE != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.opts.SSE)
	}
	if s.opts.KMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.opts.KMSKeyID)
	}
}

// Get implements Bucket.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(joinKey(s.prefix, key)),
	})
	if err != nil {
		if isNoSuchKey(err) {
			return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf.Grow(int(n))
	}
	if _, err := io.Copy(&buf, out.Body); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return buf.Bytes(), nil
}

// List implements Bucket. Keys in the bucket that break the key rules (such as
// the "dir/" folder markers some S3 consoles create) are skipped.
func (s *S3) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	return s.list(ctx, prefix, func(key string, obj types.Object) error { return fn(key, aws.ToInt64(obj.Size)) })
}

// list calls fn with every object under prefix, by its key in the bucket.
func (s *S3) list(ctx context.Context, prefix string, fn func(key string, obj types.Object) error) error {
	base := ""
	if s.prefix != "" {
		base = s.prefix + "/"
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(base + prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, obj := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(obj.Key), base)
			if !ok || checkKey(key) != nil {
				continue
			}
			if err := fn(key, obj); err != nil {
				return fmt.Errorf("list %s: %w", prefix, err)
			}
		}
	}
	return nil
}

// Delete implements Bucket.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(joinKey(s.prefix, key)),
	})
	if err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// isNoSuchKey reports whether err is S3 saying that an object does not exist.
func isNoSuchKey(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	// Some S3-compatible servers send codes the SDK does not model for the
	// operation; smithy.APIError has this method.
	var apiErr interface{ ErrorCode() string }
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchKey"
}

// stallingClient is the SDK's HTTP client with every connection wrapped in
// a stallConn. Idle pooled connections are closed before their pending
// read could stall out.
func stallingClient(stall time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithReadTimeout(0). // stallConn covers reads and writes
		WithTransportOptions(func(tr *http.Transport) {
			tr.IdleConnTimeout = min(tr.IdleConnTimeout, stall*9/10)
			dial := tr.DialContext
			if dial == nil {
				dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
			}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &stallConn{Conn: c, stall: stall}, nil
			}
		})
}

// stallConn fails a read or write once the connection has made no progress
// in either direction for stall. Every read and write moves both deadlines,
// so writing a request extends the wait for its answer, and a server that
// stops reading an upload is noticed as well as one that never answers.
type stallConn struct {
	net.Conn
	stall time.Duration
}

func (c *stallConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetDeadline(time.Now().Add(c.stall)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	return n, c.stalled(err)
}

func (c *stallConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetDeadline(time.Now().Add(c.stall)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(b)
	return n, c.stalled(err)
}

func (c *stallConn) stalled(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("s3 connection to %s stalled: nothing sent or received for %s: %w", c.RemoteAddr(), c.stall, err)
	}
	return err
}

// PutIf implements Conditional with PutObject's If-None-Match: * (match "")
// or If-Match.
func (s *S3) PutIf(ctx context.Context, key string, body []byte, match string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(joinKey(s.prefix, key)),
		Body:   bytes.NewReader(body),
	}
	if match == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(match)
	}
	s.encrypt(in) // small objects: the standard storage class
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		if isPreconditionFailed(err) {
			return "", fmt.Errorf("put %s: %w (%v)", key, ErrPrecondition, err)
		}
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	return aws.ToString(out.ETag), nil
}

// DeleteIf implements Conditional with DeleteObject's If-Match.
func (s *S3) DeleteIf(ctx context.Context, key, match string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket:  aws.String(s.bucket),
		Key:     aws.String(joinKey(s.prefix, key)),
		IfMatch: aws.String(match),
	})
	if err != nil {
		if isPreconditionFailed(err) {
			return fmt.Errorf("delete %s: %w (%v)", key, ErrPrecondition, err)
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// ListETags implements Conditional.
func (s *S3) ListETags(ctx context.Context, prefix string, fn func(key, etag string) error) error {
	return s.list(ctx, prefix, func(key string, obj types.Object) error { return fn(key, aws.ToString(obj.ETag)) })
}

// isPreconditionFailed reports whether S3 refused a conditional request
// because the object is not as the condition said: 412 Precondition Failed,
// 409 ConditionalRequestConflict (a concurrent conditional write won), or
// NoSuchKey for an If-Match on an object that is gone.
func isPreconditionFailed(err error) bool {
	var apiErr interface{ ErrorCode() string }
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusNotFound)
}
