package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	s3ReadyTimeout = 30 * time.Second
	s3StopGrace    = 10 * time.Second
)

// S3Server is a versitygw S3 gateway serving a POSIX directory over HTTP:
// object key K of bucket B is the file Dir/B/K.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Region    string
	Dir       string

	client  *s3.Client
	mu      sync.Mutex
	process *proc // nil when stopped
}

// NewS3 starts an S3 server in a temporary directory for the length of the
// test. It calls Missing when versitygw is not installed.
func NewS3(t testing.TB) *S3Server {
	t.Helper()
	dir := t.TempDir()
	s, err := StartS3(t.Context(), dir)
	if errors.Is(err, ErrNotInstalled) {
		Missing(t, "versitygw", "scripts/deps.sh s3 (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping S3 server: %v", err)
		}
	})
	return s
}

// StartS3 starts versitygw serving dir/root, creating it if missing, with its
// log in dir/versitygw.log. Object metadata goes in extended attributes or,
// where the file system has none, in dir/meta. The server runs until Stop,
// whatever becomes of ctx, which only bounds the start.
func StartS3(ctx context.Context, dir string) (*S3Server, error) {
	bin, err := findBinary([]string{"versitygw"})
	if err != nil {
		bin, err = findBinary([]string{"versitygw"}, goBinDirs()...)
	}
	if err != nil {
		return nil, fmt.Errorf("starting S3 server: %w", err)
	}
	s := &S3Server{
		AccessKey: "binlake",
		SecretKey: "binlake-secret",
		Region:    "us-east-1",
		Dir:       filepath.Join(dir, "root"),
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting S3 server: %w", err)
	}
	logPath := filepath.Join(dir, "versitygw.log")
	sidecar := "" // metadata in extended attributes
	for attempt := 1; ; attempt++ {
		err := s.start(ctx, bin, sidecar, logPath)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, errAddrInUse) && attempt < startAttempts:
		case sidecar == "" && strings.Contains(err.Error(), "xattr check failed"):
			// versitygw refuses a root without extended attributes (tmpfs on
			// older kernels, some overlays) unless metadata goes to a sidecar.
			sidecar = filepath.Join(dir, "meta")
			if err := os.MkdirAll(sidecar, 0o755); err != nil {
				return nil, fmt.Errorf("starting S3 server: %w", err)
			}
		default:
			return nil, err
		}
	}
	s.client = s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	return s, nil
}

// start launches versitygw on a free port and waits until it answers HTTP.
func (s *S3Server) start(ctx context.Context, bin, sidecar, logPath string) error {
	port, err := FreePort()
	if err != nil {
		return fmt.Errorf("starting S3 server: %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--port", addr,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"--quiet",
		"posix",
	}
	if sidecar != "" {
		args = append(args, "--sidecar", sidecar)
	}
	args = append(args, s.Dir)
	s.Endpoint = "http://" + addr

	offset := logSize(logPath)
	p, err := startProc(bin, args, logPath)
	if err != nil {
		return fmt.Errorf("starting S3 server: %w", err)
	}
	if err := p.waitReady(ctx, s3ReadyTimeout, s.ping); err != nil {
		_ = p.kill()
		return startErr("S3 server at "+s.Endpoint, err, logTail(logPath, offset))
	}
	s.process = p
	return nil
}

// ping succeeds once the server answers HTTP, whatever the status: an
// unsigned request is refused with 403.
func (s *S3Server) ping(ctx context.Context) error { return pingHTTP(ctx, s.Endpoint) }

// Stop shuts the server down with SIGTERM, sending SIGKILL if it has not
// exited after 10 s. Stopping a stopped server does nothing.
func (s *S3Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.process == nil {
		return nil
	}
	if err := s.process.stop(s3StopGrace); err != nil {
		return fmt.Errorf("stopping S3 server: %w", err)
	}
	s.process = nil
	return nil
}

// Client returns an S3 client for the server, using path-style addressing
// and the server's root credentials.
func (s *S3Server) Client() *s3.Client { return s.client }

// CreateBucket creates the bucket name.
func (s *S3Server) CreateBucket(ctx context.Context, name string) error {
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("creating bucket %s: %w", name, err)
	}
	return nil
}

// goBinDirs returns where go install puts binaries: GOBIN if set, else the
// bin directory of each GOPATH entry (by default ~/go/bin).
func goBinDirs() []string {
	gobin, gopath := os.Getenv("GOBIN"), os.Getenv("GOPATH")
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		if lines := strings.Split(string(out), "\n"); len(lines) >= 2 {
			gobin, gopath = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
		}
	}
	if gobin != "" {
		return []string{gobin}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	var dirs []string
	for _, p := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	return dirs
}
