// Package embedded runs the default stream: an in-process NATS JetStream
// server storing its files under the state directory, with no port opened
// unless one is asked for.
package embedded

import (
	"fmt"
	"net"
	"strconv"
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
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
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
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS server not ready after 30s")
	}
	return &Server{ns: ns}, nil
}

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
