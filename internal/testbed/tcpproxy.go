package testbed

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

// TCPProxy forwards TCP connections from 127.0.0.1:Port to an upstream
// address, and can stall them: while stalled it forwards nothing in either
// direction and closes nothing, as a network that drops every packet
// silently, for open and new connections alike. It stops when the test
// ends.
type TCPProxy struct {
	Port     int
	upstream string
	ln       net.Listener

	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
	conns   []net.Conn
}

// NewTCPProxy starts a proxy to upstream (host:port).
func NewTCPProxy(t testing.TB, upstream string) *TCPProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCPProxy{Port: ln.Addr().(*net.TCPAddr).Port, upstream: upstream, ln: ln, conns: []net.Conn{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Switch sends new connections to upstream from now on and closes the open
// ones, as a virtual IP or DNS name moved to another server after a
// fail-over.
func (p *TCPProxy) Switch(upstream string) {
	p.mu.Lock()
	p.upstream = upstream
	conns := p.conns
	if conns != nil {
		p.conns = []net.Conn{}
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Addr is the proxy's address.
func (p *TCPProxy) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.Port) }

// Stall stops forwarding, without closing a connection.
func (p *TCPProxy) Stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Resume forwards again: what was held on open connections goes on, and
// new connections reach the upstream.
func (p *TCPProxy) Resume() {
	p.mu.Lock()
	p.stalled = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// wait blocks while the proxy is stalled; it reports false once closed.
func (p *TCPProxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.stalled && p.conns != nil {
		p.cond.Wait()
	}
	return p.conns != nil
}

func (p *TCPProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *TCPProxy) serve(c net.Conn) {
	if !p.wait() {
		c.Close()
		return
	}
	p.mu.Lock()
	upstream := p.upstream
	p.mu.Unlock()
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.conns == nil || p.upstream != upstream { // closed, or switched while dialling
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go p.pipe(up, c)
	p.pipe(c, up)
}

// pipe copies src to dst, holding each read while the proxy is stalled;
// when src ends, both ends are closed.
func (p *TCPProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or a closed connection: the other side learns it by the close
		}
	}
}

func (p *TCPProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
