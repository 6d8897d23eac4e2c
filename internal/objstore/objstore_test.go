package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/testbed"
)

const testBucket = "binlake"

func TestMemory(t *testing.T) {
	objstore.AcceptanceTest(t, objstore.NewMemory())
	objstore.ConditionalAcceptanceTest(t, objstore.NewMemory())
}

func TestWithPrefix(t *testing.T) {
	ctx := t.Context()
	m := objstore.NewMemory()
	// Neighbours of the prefix, which the prefixed view must not see or touch.
	outside := map[string]string{"a/bc/x": "1", "a/b": "2", "a/b.txt": "3", "x": "4"}
	for k, v := range outside {
		if err := m.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	b := objstore.WithPrefix(m, "/a/b/")
	if got, want := b.String(), "mem://a/b"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	objstore.AcceptanceTest(t, b)
	c, ok := objstore.AsConditional(b)
	if !ok {
		t.Fatal("a prefixed view of a memory bucket has no conditional writes")
	}
	objstore.ConditionalAcceptanceTest(t, c)

	if err := b.Put(ctx, "k/v", []byte("in")); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Get(ctx, "a/b/k/v"); err != nil || string(got) != "in" {
		t.Errorf("underlying Get(a/b/k/v) = %q, %v; want \"in\"", got, err)
	}
	if err := b.Delete(ctx, "k/v"); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := m.List(ctx, "", func(key string, _ int64) error { keys = append(keys, key); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/b", "a/b.txt", "a/bc/x", "x"}; !slices.Equal(keys, want) {
		t.Errorf("underlying keys after the tests = %q, want %q", keys, want)
	}

	if objstore.WithPrefix(m, "/") != objstore.Bucket(m) {
		t.Errorf("WithPrefix with an empty prefix did not return the bucket itself")
	}
	nested := objstore.WithPrefix(objstore.WithPrefix(m, "a"), "b")
	if got, err := nested.Get(ctx, "x"); err == nil {
		t.Errorf("nested Get(x) = %q; want ErrNotFound", got)
	}
	if got, want := nested.String(), "mem://a/b"; got != want {
		t.Errorf("nested String() = %q, want %q", got, want)
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "file://"+filepath.ToSlash(dir); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	objstore.AcceptanceTest(t, b)

	// Deletes removed the directories they emptied, and Puts left no
	// temporary files behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the bucket directory after the acceptance test: %s", e.Name())
	}
}

// TestFileConditional runs the conditional writes of a directory bucket,
// and checks they are atomic between processes' separate opens of it.
func TestFileConditional(t *testing.T) {
	dir := t.TempDir()
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	objstore.ConditionalAcceptanceTest(t, b)
	// Two buckets on one directory, as two processes have: one wins.
	b2, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	e, err := b.PutIf(ctx, "k", []byte("1"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.PutIf(ctx, "k", []byte("2"), ""); !errors.Is(err, objstore.ErrPrecondition) {
		t.Errorf("second creator: %v, want ErrPrecondition", err)
	}
	if _, err := b2.PutIf(ctx, "k", []byte("2"), e); err != nil {
		t.Errorf("update by the other bucket with the current ETag: %v", err)
	}
	if _, err := b.PutIf(ctx, "k", []byte("3"), e); !errors.Is(err, objstore.ErrPrecondition) {
		t.Errorf("update with the ETag the other bucket replaced: %v, want ErrPrecondition", err)
	}
	var keys []string
	b.List(ctx, "", func(k string, _ int64) error { keys = append(keys, k); return nil })
	if !slices.Equal(keys, []string{"k"}) {
		t.Errorf("List = %v, want [k] (the lock file hidden)", keys)
	}
}

func TestFileLayout(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := objstore.NewFile(filepath.Join(dir, "new", "bucket")) // created
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "new", "bucket")
	if err := b.Put(ctx, "db/table/0001.json.gz", []byte("data")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "db", "table", "0001.json.gz")
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "data" {
		t.Fatalf("ReadFile(%s) = %q, %v; want the object", p, got, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("object mode = %v, %v; want 0644", fi.Mode(), err)
	}

	// A crash can leave a temporary file behind: List must not show it, and
	// keys cannot name one.
	stray := filepath.Join(root, "db", "table", ".tmp-12345")
	if err := os.WriteFile(stray, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := b.List(ctx, "", func(key string, _ int64) error { keys = append(keys, key); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"db/table/0001.json.gz"}; !slices.Equal(keys, want) {
		t.Errorf("List = %q, want %q", keys, want)
	}
	if err := b.Put(ctx, "db/.tmp-x", nil); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("Put(db/.tmp-x) = %v, want ErrInvalidKey", err)
	}

	// Nothing escapes the directory.
	if err := os.WriteFile(filepath.Join(dir, "new", "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../secret", "db/../../secret", "/etc/passwd"} {
		if _, err := b.Get(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	keys = nil
	if err := b.List(ctx, "../", func(key string, _ int64) error { keys = append(keys, key); return nil }); err != nil || len(keys) > 0 {
		t.Errorf("List(../) = %q, %v; want nothing", keys, err)
	}

	// A key cannot be both an object and a directory of objects here.
	if err := b.Put(ctx, "db/table/0001.json.gz/x", nil); err == nil {
		t.Errorf("Put under an object's key succeeded")
	}
	if err := b.Put(ctx, "db/table", nil); err == nil {
		t.Errorf("Put of a directory's key succeeded")
	}

	// Deleting the last object removes the directories it leaves empty, but
	// never the bucket directory.
	if err := os.Remove(stray); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "db/table/0001.json.gz"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("db directory still there after deleting its only object: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("bucket directory gone: %v", err)
	}
}

// TestFileConcurrentPutDelete races Puts against Deletes that empty, and so
// remove, the directories the Puts write into.
func TestFileConcurrentPutDelete(t *testing.T) {
	ctx := t.Context()
	b, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range 200 {
				key := "x/y/z/" + string(rune('a'+w))
				if err := b.Put(ctx, key, []byte("v")); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				if err := b.Delete(ctx, key); err != nil {
					t.Errorf("Delete: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestS3GoFakeS3(t *testing.T) {
	isolateAWSConfig(t)
	srv := newFakeS3(t, nil)
	b, err := objstore.NewS3(t.Context(), testBucket, "", srv.options())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "s3://"+testBucket; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	objstore.AcceptanceTest(t, b)
	if n := srv.count(isUploadPart); n < 5 {
		t.Errorf("%d UploadPart requests; want the 20 MiB object in at least 5 parts of 5 MiB", n)
	}
}

func TestS3GoFakeS3Prefix(t *testing.T) {
	isolateAWSConfig(t)
	srv := newFakeS3(t, nil)
	ctx := t.Context()
	raw, err := objstore.NewS3(ctx, testBucket, "", srv.options())
	if err != nil {
		t.Fatal(err)
	}
	// Neighbours of the prefix, which the prefixed bucket must not see.
	for _, k := range []string{"cdc/prodx/a", "cdc/prod", "other"} {
		if err := raw.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}

	b, err := objstore.Open(ctx, "s3://"+testBucket+"/cdc/prod/", srv.options())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "s3://"+testBucket+"/cdc/prod"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	objstore.AcceptanceTest(t, b)

	if err := b.Put(ctx, "db/t/1.json", []byte("row")); err != nil {
		t.Fatal(err)
	}
	if got, err := raw.Get(ctx, "cdc/prod/db/t/1.json"); err != nil || string(got) != "row" {
		t.Errorf("Get(cdc/prod/db/t/1.json) without prefix = %q, %v; want \"row\"", got, err)
	}
}

// TestS3AbortsFailedUpload makes one part of a multipart upload fail and
// checks that the upload is aborted and no object appears.
func TestS3AbortsFailedUpload(t *testing.T) {
	isolateAWSConfig(t)
	srv := newFakeS3(t, func(r *http.Request) bool {
		return isUploadPart(r) && r.URL.Query().Get("partNumber") == "3"
	})
	ctx := t.Context()
	b, err := objstore.NewS3(ctx, testBucket, "", srv.options())
	if err != nil {
		t.Fatal(err)
	}
	err = b.Put(ctx, "big", make([]byte, 20<<20))
	if err == nil {
		t.Fatal("Put succeeded although a part failed")
	}
	t.Logf("Put error: %v", err)
	if n := srv.count(isAbort); n != 1 {
		t.Errorf("%d AbortMultipartUpload requests, want 1", n)
	}
	if n := srv.count(isComplete); n != 0 {
		t.Errorf("%d CompleteMultipartUpload requests, want 0", n)
	}
	if _, err := b.Get(ctx, "big"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Get after a failed Put: %v, want ErrNotFound", err)
	}
}

func TestS3Versitygw(t *testing.T) {
	isolateAWSConfig(t)
	srv := testbed.NewS3(t)
	ctx := t.Context()
	if err := srv.CreateBucket(ctx, testBucket); err != nil {
		t.Fatal(err)
	}
	opts := objstore.S3Options{
		Region:          srv.Region,
		Endpoint:        srv.Endpoint,
		PathStyle:       true,
		AccessKeyID:     srv.AccessKey,
		SecretAccessKey: srv.SecretKey,
		PartSize:        objstore.MinPartSize,
	}
	t.Run("bucket", func(t *testing.T) {
		b, err := objstore.NewS3(ctx, testBucket, "", opts)
		if err != nil {
			t.Fatal(err)
		}
		objstore.AcceptanceTest(t, b)
		checkMultipartETag(t, b, srv.Client())
		objstore.ConditionalAcceptanceTest(t, b)
	})
	t.Run("prefix", func(t *testing.T) {
		b, err := objstore.Open(ctx, "s3://"+testBucket+"/cdc/prod", opts)
		if err != nil {
			t.Fatal(err)
		}
		objstore.AcceptanceTest(t, b)
		c, ok := objstore.AsConditional(b)
		if !ok {
			t.Fatal("an s3 target has no conditional writes")
		}
		objstore.ConditionalAcceptanceTest(t, c)
	})
}

// checkMultipartETag puts 20 MiB through b, whose part size must be 5 MiB,
// and checks that S3 stored it as a four-part multipart upload.
func checkMultipartETag(t *testing.T, b *objstore.S3, client *s3.Client) {
	t.Helper()
	ctx := t.Context()
	const key = "multipart-check"
	if err := b.Put(ctx, key, bytes.Repeat([]byte("m"), 20<<20)); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Delete(context.Background(), key) }()
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(head.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-4") {
		t.Errorf("ETag %s: want the ETag of a 4-part multipart upload (ending in -4)", etag)
	}
}

func TestOpen(t *testing.T) {
	isolateAWSConfig(t)
	t.Chdir(t.TempDir()) // relative file targets land here
	tmp := t.TempDir()
	opts := objstore.S3Options{Region: "eu-west-1", AccessKeyID: "k", SecretAccessKey: "s"}

	const forms = "accepted forms are s3://bucket, s3://bucket/prefix, file:///absolute/dir and file://./relative/dir"
	for _, tc := range []struct {
		target  string
		want    string // String() of the bucket
		wantErr string // substring of the error
	}{
		{target: "file://" + tmp + "/out", want: "file://" + tmp + "/out"},
		{target: "file://./rel/dir", want: "file://" + filepath.Join(mustGetwd(t), "rel", "dir")},
		{target: "file://.", want: "file://" + mustGetwd(t)},
		{target: "file://../up", want: "file://" + filepath.Join(filepath.Dir(mustGetwd(t)), "up")},
		{target: "FILE://" + tmp, want: "file://" + tmp},
		{target: "s3://bucket", want: "s3://bucket"},
		{target: "s3://bucket/", want: "s3://bucket"},
		{target: "s3://bucket/some/prefix", want: "s3://bucket/some/prefix"},
		{target: "s3://bucket/some/prefix/", want: "s3://bucket/some/prefix"},
		{target: "s3://my.bucket-1/p", want: "s3://my.bucket-1/p"},

		{target: "", wantErr: "empty target; " + forms},
		{target: "/abs/dir", wantErr: `target "/abs/dir" is not a URL; ` + forms},
		{target: "relative/dir", wantErr: `target "relative/dir" is not a URL; ` + forms},
		{target: "./dir", wantErr: "is not a URL; " + forms},
		{target: "file:/abs/dir", wantErr: "is not a URL; " + forms},
		{target: "file:dir", wantErr: "is not a URL; " + forms},
		{target: "file://", wantErr: `target "file://": no directory; ` + forms},
		{target: "file://host/dir", wantErr: `host "host" in file URL`},
		{target: "file://rel/dir", wantErr: `host "rel" in file URL`},
		{target: "s3://", wantErr: "no bucket name; " + forms},
		{target: "s3:///prefix", wantErr: "no bucket name"},
		{target: "s3://bad bucket", wantErr: `invalid bucket name "bad bucket"`},
		{target: "s3://user@bucket", wantErr: `invalid bucket name "user@bucket"`},
		{target: "s3://bucket?region=eu-west-1", wantErr: "query parameters and fragments are not supported"},
		{target: "s3://bucket/p#frag", wantErr: "query parameters and fragments are not supported"},
		{target: "s3://bucket//p", wantErr: `invalid prefix "/p"`},
		{target: "s3://bucket/a/../b", wantErr: `invalid prefix "a/../b"`},
		{target: "gs://bucket", wantErr: `unsupported scheme "gs"; ` + forms},
		{target: "https://s3.amazonaws.com/bucket", wantErr: `unsupported scheme "https"`},
	} {
		t.Run(tc.target, func(t *testing.T) {
			b, err := objstore.Open(t.Context(), tc.target, opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open(%q) = %v, %v; want error containing %q", tc.target, b, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.target, err)
			}
			if got := b.String(); got != filepath.ToSlash(tc.want) {
				t.Errorf("Open(%q).String() = %q, want %q", tc.target, got, tc.want)
			}
		})
	}
}

func TestNewS3Options(t *testing.T) {
	isolateAWSConfig(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name     string
		bucket   string
		opts     objstore.S3Options
		wantErrs []string // all reported at once
	}{
		{
			name:   "everything wrong",
			bucket: "",
			opts: objstore.S3Options{
				Endpoint:    "localhost:7070",
				AccessKeyID: "k",
				PartSize:    1 << 20,
			},
			wantErrs: []string{
				"empty bucket name",
				`endpoint "localhost:7070": want a URL like https://host[:port]`,
				"static credentials need both an access key ID and a secret access key",
				"part size 1048576: must be 0 (default 16777216) or at least 5242880",
			},
		},
		{
			name:     "session token alone",
			bucket:   "b",
			opts:     objstore.S3Options{Region: "us-east-1", SessionToken: "t"},
			wantErrs: []string{"a session token needs an access key ID and a secret access key"},
		},
		{
			name:     "no region for AWS",
			bucket:   "b",
			opts:     objstore.S3Options{},
			wantErrs: []string{"no AWS region: set the region option or AWS_REGION"},
		},
		{name: "custom endpoint without region", bucket: "b", opts: objstore.S3Options{Endpoint: "http://127.0.0.1:9"}},
		{name: "region and default chain", bucket: "b", opts: objstore.S3Options{Region: "eu-central-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := objstore.NewS3(ctx, tc.bucket, "", tc.opts)
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("NewS3: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewS3 succeeded; want errors %q", tc.wantErrs)
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("NewS3 error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// fakeS3 is gofakes3 on an httptest server that records the requests it gets
// and fails those that fail says to.
type fakeS3 struct {
	url  string
	mu   sync.Mutex
	reqs []*http.Request
}

func newFakeS3(t *testing.T, fail func(*http.Request) bool) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(backend).Server()
	f := &fakeS3{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Clone(context.Background()))
		f.mu.Unlock()
		if fail != nil && fail(r) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected failure</Message></Error>`))
			return
		}
		faker.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeS3) options() objstore.S3Options {
	return objstore.S3Options{
		Region:          "us-east-1",
		Endpoint:        f.url,
		PathStyle:       true,
		AccessKeyID:     "key",
		SecretAccessKey: "secret",
		PartSize:        objstore.MinPartSize,
	}
}

func (f *fakeS3) count(match func(*http.Request) bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.reqs {
		if match(r) {
			n++
		}
	}
	return n
}

func isUploadPart(r *http.Request) bool {
	q := r.URL.Query()
	return r.Method == http.MethodPut && q.Has("uploadId") && q.Has("partNumber")
}

func isAbort(r *http.Request) bool {
	return r.Method == http.MethodDelete && r.URL.Query().Has("uploadId")
}

func isComplete(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}

// isolateAWSConfig keeps the developer's AWS configuration and environment out
// of the test.
func isolateAWSConfig(t *testing.T) {
	t.Helper()
	missing := filepath.Join(t.TempDir(), "missing")
	t.Setenv("AWS_CONFIG_FILE", missing)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// TestS3EncryptionAndStorageClass checks that SSE-KMS, its key and the
// storage class are sent with every upload, single and multipart.
func TestS3EncryptionAndStorageClass(t *testing.T) {
	f := newFakeS3(t, nil)
	opts := f.options()
	opts.SSE, opts.KMSKeyID, opts.StorageClass = "aws:kms", "alias/lake", "STANDARD_IA"
	b, err := objstore.NewS3(t.Context(), testBucket, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), "small.json", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), "big.json", bytes.Repeat([]byte("x"), 2*int(objstore.MinPartSize)+10)); err != nil {
		t.Fatal(err)
	}
	starts := f.count(func(r *http.Request) bool {
		isStart := (r.Method == http.MethodPut && !r.URL.Query().Has("partNumber")) || (r.Method == http.MethodPost && r.URL.Query().Has("uploads"))
		if !isStart {
			return false
		}
		if r.Header.Get("X-Amz-Server-Side-Encryption") != "aws:kms" ||
			r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != "alias/lake" ||
			r.Header.Get("X-Amz-Storage-Class") != "STANDARD_IA" {
			t.Errorf("%s %s sent SSE %q key %q class %q", r.Method, r.URL, r.Header.Get("X-Amz-Server-Side-Encryption"),
				r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"), r.Header.Get("X-Amz-Storage-Class"))
		}
		return true
	})
	if starts != 2 {
		t.Errorf("%d object-creating requests, want 2 (one PutObject, one CreateMultipartUpload)", starts)
	}
	if _, err := objstore.NewS3(t.Context(), testBucket, "", objstore.S3Options{SSE: "AES", KMSKeyID: "k"}); err == nil ||
		!strings.Contains(err.Error(), `server-side encryption "AES"`) || !strings.Contains(err.Error(), "needs server-side encryption aws:kms") {
		t.Errorf("bad SSE options: %v", err)
	}
}
