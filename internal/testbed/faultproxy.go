package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what a FaultProxy does to one request.
type Fault int

// The faults a FaultProxy injects: the ways S3 fails in production.
const (
	// Pass forwards the request and its answer unchanged.
	Pass Fault = iota
	// InternalError answers 500 InternalError without contacting the server.
	InternalError
	// ServiceUnavailable answers 503 ServiceUnavailable.
	ServiceUnavailable
	// SlowDown answers 503 SlowDown, S3's throttling answer.
	SlowDown
	// Hang reads the request and never answers: the client must time out.
	Hang
	// DropRequest forwards the headers and half of the body, then cuts the
	// connections to both sides: the server sees an upload end in the middle.
	DropRequest
	// DropResponse forwards the whole request, lets the server complete it,
	// and cuts the client's connection before the answer: the client cannot
	// tell whether the write happened.
	DropResponse
)

var faultNames = [...]string{"pass", "500 InternalError", "503 ServiceUnavailable", "503 SlowDown", "hang", "drop mid-request", "drop response"}

func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// FaultProxy is an HTTP reverse proxy on 127.0.0.1 in front of a server
// (versitygw, for S3) that fails the requests its rule picks, and can be
// taken down and brought back on the same address. The Host header is
// passed through, so SigV4 signatures made for the proxy's address stay
// valid.
type FaultProxy struct {
	URL  string // http://127.0.0.1:port, the address clients use
	addr string

	rp *httputil.ReverseProxy

	mu       sync.Mutex
	rule     func(*http.Request) Fault
	injected map[Fault]int
	srv      *http.Server // nil while down
	stop     chan struct{}
	closed   bool
}

// errCut ends a request body in the middle for DropRequest.
var errCut = errors.New("fault proxy: request cut")

// NewFaultProxy starts a proxy to upstream (e.g. S3Server.Endpoint) for the
// length of the test. It forwards everything until SetRule says otherwise.
func NewFaultProxy(t testing.TB, upstream string) *FaultProxy {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("fault proxy: upstream %q: %v", upstream, err)
	}
	p := &FaultProxy{injected: map[Fault]int{}, stop: make(chan struct{})}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the client signed this host
		},
		// A failed hop becomes a cut connection, not a 502 the client
		// could mistake for the server's answer.
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) },
		ModifyResponse: func(resp *http.Response) error {
			if fault, _ := resp.Request.Context().Value(faultKey{}).(Fault); fault == DropResponse {
				resp.Body.Close()
				return errCut
			}
			return nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.URL = "http://" + p.addr
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

type faultKey struct{}

func contextWithFault(ctx context.Context, f Fault) context.Context {
	return context.WithValue(ctx, faultKey{}, f)
}

// discardLog silences the proxy server's complaints about the connections
// it cuts on purpose.
var discardLog = log.New(io.Discard, "", 0)

// SetRule makes rule pick the fault of every later request; nil forwards
// everything.
func (p *FaultProxy) SetRule(rule func(*http.Request) Fault) {
	p.mu.Lock()
	p.rule = rule
	p.mu.Unlock()
}

// Injected returns how many requests got each fault other than Pass.
func (p *FaultProxy) Injected() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Fault]int, len(p.injected))
	for f, n := range p.injected {
		out[f] = n
	}
	return out
}

// Down closes the listener and every open connection: clients get
// "connection refused" until Up.
func (p *FaultProxy) Down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Up listens again on the same address after Down.
func (p *FaultProxy) Up() error {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after Close
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("fault proxy: listening again on %s: %w", p.addr, err)
	}
	p.serve(ln)
	return nil
}

func (p *FaultProxy) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(p.handle), ErrorLog: discardLog}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go srv.Serve(ln)
}

func (p *FaultProxy) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.Down()
}

func (p *FaultProxy) handle(w http.ResponseWriter, r *http.Request) {
	fault := Pass
	p.mu.Lock()
	if p.rule != nil {
		fault = p.rule(r)
	}
	if fault != Pass {
		p.injected[fault]++
	}
	p.mu.Unlock()

	switch fault {
	case InternalError:
		s3Error(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case ServiceUnavailable:
		s3Error(w, r, http.StatusServiceUnavailable, "ServiceUnavailable", "Service is unable to handle request.")
	case SlowDown:
		s3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case Hang:
		io.Copy(io.Discard, r.Body)
		select { // until the client gives up, or the proxy closes
		case <-r.Context().Done():
		case <-p.stop:
		}
	case DropRequest:
		if r.ContentLength <= 0 {
			panic(http.ErrAbortHandler) // nothing to cut in half: drop it whole
		}
		r.Body = &cutBody{r: r.Body, left: r.ContentLength / 2}
		p.rp.ServeHTTP(w, r)
	default:
		ctx := r.Context()
		if fault == DropResponse {
			ctx = contextWithFault(ctx, fault)
		}
		p.rp.ServeHTTP(w, r.WithContext(ctx))
	}
}

// s3Error answers like S3 does, after reading the request body as a server
// that received the upload and then failed would.
func s3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><RequestId>binlake-fault-proxy</RequestId></Error>`, code, msg)
}

// cutBody returns left bytes, then errCut.
type cutBody struct {
	r    io.ReadCloser
	left int64
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.r.Close() }

// RandomFaults returns a rule that gives each request that writes (PUT and
// POST: objects, parts, multipart uploads) one of faults with probability
// rate, drawn from a generator seeded with seed, and passes everything else.
func RandomFaults(seed uint64, rate float64, faults ...Fault) func(*http.Request) Fault {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(r *http.Request) Fault {
		if r.Method != http.MethodPut && r.Method != http.MethodPost {
			return Pass
		}
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() >= rate {
			return Pass
		}
		return faults[rng.IntN(len(faults))]
	}
}

// IsMultipart reports whether r belongs to a multipart upload: its
// creation, a part, its completion or abort.
func IsMultipart(r *http.Request) bool {
	q := r.URL.Query()
	return q.Has("uploads") || q.Has("uploadId") || strings.Contains(r.URL.RawQuery, "partNumber")
}
