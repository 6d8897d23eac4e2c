// Package embedded runs the default stream: an in-process NATS JetStream
// server storing its files under the state directory, with no port opened
// unless one is asked for.
package embedded

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// MaxMessage is the largest message the embedded server accepts: rows of
// several MiB (WordPress post bodies) pass whole.
const MaxMessage = 64 << 20

// Options configure the embedded server.
type Options struct {
	StoreDir string
	Listen   string // optional host:port for outside NATS clients
	// Logger, if not nil, receives the server's errors (and, at debug, its
	// warnings and notices).
	Logger *slog.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	ns  *server.Server
	log *serverLog
	dir string
}

// Start starts the server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	so := &server.Options{
		ServerName:         "binlake-embedded",
		JetStream:          true,
		StoreDir:           opts.StoreDir,
		DontListen:         opts.Listen == "",
		MaxPayload:         MaxMessage,
		MaxPending:         4 * MaxMessage,
		NoSigs:             true,
		NoLog:              true,
		JetStreamMaxMemory: 256 << 20,
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("stream.embedded.listen %q: %w", opts.Listen, err)
		}
		so.Host = host
		so.Port, err = strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("stream.embedded.listen %q: bad port", opts.Listen)
		}
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("starting embedded NATS: %w", err)
	}
	sl := &serverLog{log: opts.Logger}
	if sl.log == nil {
		sl.log = slog.New(slog.DiscardHandler)
	}
	ns.SetLoggerV2(sl, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS server not ready after 30s")
	}
	return &Server{ns: ns, log: sl, dir: opts.StoreDir}, nil
}

// Err is nil while the server's JetStream can store records. When its
// store cannot be written — the disk of state_dir is full, or refuses
// writes — the stream refuses every later write until the server restarts
// (a "critical write error"), or JetStream disables itself: the task must
// stop rather than wait for it.
func (s *Server) Err() error {
	if s.ns.JetStreamEnabled() && !s.log.storeFailed() {
		return nil
	}
	reason := s.log.lastErrors()
	if reason == "" {
		reason = "JetStream is disabled"
	}
	return fmt.Errorf("the embedded stream's store in %s stopped taking records (%s)", s.dir, reason)
}

// serverLog passes the NATS server's log to slog and keeps its last
// errors: the one that says why JetStream stopped comes before the one
// saying that it did.
type serverLog struct {
	log    *slog.Logger
	mu     sync.Mutex
	last   []string
	failed bool // the store reported a write error it does not recover from
}

func (l *serverLog) storeFailed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *serverLog) lastErrors() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, "; ")
}

func (l *serverLog) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.last = append(l.last, msg); len(l.last) > 3 {
		l.last = l.last[1:]
	}
	lower := strings.ToLower(msg)
	if strings.Contains(lower, "critical write error") || strings.Contains(lower, "will be disabled") {
		l.failed = true
	}
	l.mu.Unlock()
	l.log.Error("embedded NATS server: " + msg)
}

func (l *serverLog) Fatalf(format string, v ...any) { l.Errorf(format, v...) }
func (l *serverLog) Warnf(format string, v ...any) {
	l.log.Debug("embedded NATS server: " + fmt.Sprintf(format, v...))
}
func (l *serverLog) Noticef(format string, v ...any) {
	l.log.Debug("embedded NATS server: " + fmt.Sprintf(format, v...))
}
func (l *serverLog) Debugf(string, ...any) {}
func (l *serverLog) Tracef(string, ...any) {}

// Connect returns an in-process client connection.
func (s *Server) Connect() (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(s.ns), nats.Name("binlake"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connecting to embedded NATS: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server, flushing its store.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
