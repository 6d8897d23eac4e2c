package capture

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// idleConn is the binlog connection: a read fails once nothing at all has
// arrived for timeout (three heartbeats), which is how a silent network is
// noticed. go-mysql's own ReadTimeout does the same by moving the deadline
// before every packet, a system call and a timer change per row event that
// took a twentieth of capture's CPU during a catch-up. Here reads only
// note that data came, and a ticker moves the deadline four times per
// timeout: a read fails between 1 and 1.25 timeouts after the last data.
type idleConn struct {
	net.Conn
	timeout time.Duration
	got     atomic.Bool
	done    chan struct{}
	once    sync.Once
}

// idleDialer dials connections that fail a read after timeout of silence.
func idleDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil || timeout <= 0 {
			return conn, err
		}
		c := &idleConn{Conn: conn, timeout: timeout, done: make(chan struct{})}
		if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			conn.Close()
			return nil, err
		}
		go c.watch()
		return c, nil
	}
}

func (c *idleConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.got.Store(true)
	}
	return n, err
}

// SetReadDeadline is go-mysql's, which sets a short one to end a read when
// the stream is closed: the watch leaves deadlines alone from then on.
func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.stop()
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

func (c *idleConn) stop() { c.once.Do(func() { close(c.done) }) }

func (c *idleConn) watch() {
	t := time.NewTicker(c.timeout / 4)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.got.Swap(false) {
				c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
			}
		}
	}
}
