package capture

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestIdleConn: reads go on for as long as data keeps coming (longer than
// the timeout in all), and fail once nothing has come for the timeout.
func TestIdleConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const timeout = 200 * time.Millisecond
	quiet := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for range 12 { // 600 ms of data, a byte every 50 ms
			c.Write([]byte{1})
			time.Sleep(50 * time.Millisecond)
		}
		close(quiet)
		time.Sleep(5 * time.Second) // silent, the connection open
	}()
	conn, err := idleDialer(timeout)(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 1)
	for i := range 12 {
		if _, err := conn.Read(buf); err != nil {
			t.Fatalf("read %d while data flows: %v", i, err)
		}
	}
	<-quiet
	began := time.Now()
	_, err = conn.Read(buf)
	waited := time.Since(began)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a silent connection: read returned %v, want a deadline error", err)
	}
	// The last byte came at most 50 ms before began.
	if waited < timeout-60*time.Millisecond || waited > 3*timeout {
		t.Fatalf("a silent connection failed a read after %s, want about %s", waited, timeout)
	}
}
