package natsjs_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/embedded"
	"github.com/binlake/binlake/internal/stream/natsjs"
	"github.com/binlake/binlake/internal/stream/streamtest"
)

// openOn returns a streamtest.Open for streams on connections made by connect.
func openOn(connect func(t *testing.T) *nats.Conn, opts natsjs.Options) streamtest.Open {
	n := 0
	return func(t *testing.T, partitions int) streamtest.Backend {
		n++
		nc := connect(t)
		o := opts
		o.Task = fmt.Sprintf("conf%d", n)
		o.Partitions = partitions
		st, err := natsjs.Open(t.Context(), nc, o)
		if err != nil {
			t.Fatal(err)
		}
		return streamtest.Backend{
			Producer: st.Producer,
			Consumer: func() stream.Consumer {
				c, err := st.Consumer(t.Context(), "deliver", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
		}
	}
}

func TestEmbedded(t *testing.T) {
	dir := t.TempDir()
	ns, err := embedded.Start(embedded.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	connect := func(t *testing.T) *nats.Conn {
		nc, err := ns.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	streamtest.Run(t, openOn(connect, natsjs.Options{FileStore: true, MaxAge: time.Hour, MaxBytes: 1 << 30}), streamtest.Options{})
}

// startServer runs a nats-server with JetStream on a TCP port of
// 127.0.0.1, in process, with the given max_payload and authentication.
func startServer(t *testing.T, maxPayload int32, configure func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		MaxPayload: maxPayload,
		NoSigs:     true,
		NoLog:      true,
	}
	if configure != nil {
		configure(o)
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// TestExternal runs the suite against a nats-server reached over TCP with
// the default max_payload of 1 MiB, so the 3 MiB record travels in chunks.
func TestExternal(t *testing.T) {
	ns := startServer(t, 1<<20, func(o *server.Options) {
		o.Username, o.Password = "binlake", "s3cret"
	})
	connect := func(t *testing.T) *nats.Conn {
		nc, err := natsjs.Connect(t.Context(), natsjs.ConnectOptions{
			URLs: []string{ns.ClientURL()}, User: "binlake", Password: "s3cret", Name: "binlake-test",
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if nc.MaxPayload() != 1<<20 {
			t.Fatalf("server max_payload = %d, want 1 MiB", nc.MaxPayload())
		}
		return nc
	}
	streamtest.Run(t, openOn(connect, natsjs.Options{FileStore: true, MaxAge: time.Hour, MaxBytes: 1 << 30}), streamtest.Options{})
}

// TestConnectAuth checks the token and credentials-file options and that a
// wrong password is refused.
func TestConnectAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	tok := startServer(t, 1<<20, func(o *server.Options) { o.Authorization = "tok3n" })
	nc, err := natsjs.Connect(ctx, natsjs.ConnectOptions{URLs: []string{tok.ClientURL()}, Token: "tok3n"})
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	nc.Close()

	up := startServer(t, 1<<20, func(o *server.Options) { o.Username, o.Password = "u", "p" })
	short, cancel2 := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel2()
	if _, err := natsjs.Connect(short, natsjs.ConnectOptions{URLs: []string{up.ClientURL()}, User: "u", Password: "wrong"}); err == nil {
		t.Fatal("a wrong password connected")
	}
	if _, err := natsjs.Connect(short, natsjs.ConnectOptions{URLs: []string{up.ClientURL()}, Credentials: filepath.Join(t.TempDir(), "missing.creds")}); err == nil {
		t.Fatal("a missing credentials file connected")
	}
}

// TestChunksOfOneRecordAckedTogether publishes a record of 3 MiB through a
// 1 MiB server, reads it without acknowledging, and checks that a restarted
// consumer gets it whole again; then acknowledged, it does not come back.
func TestChunksOfOneRecordAckedTogether(t *testing.T) {
	ns := startServer(t, 1<<20, nil)
	nc, err := natsjs.Connect(t.Context(), natsjs.ConnectOptions{URLs: []string{ns.ClientURL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st, err := natsjs.Open(t.Context(), nc, natsjs.Options{Task: "big", Partitions: 1, FileStore: true, MaxAge: time.Hour, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	big := streamtest.Msg(0, 2)
	big.Data = make([]byte, 3<<20+5)
	for i := range big.Data {
		big.Data[i] = byte(i * 7)
	}
	prod := st.Producer()
	for _, m := range []*stream.Message{streamtest.Msg(0, 1), big, streamtest.Msg(0, 3)} {
		if err := prod.Publish(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	info, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.StreamInfo(natsjs.StreamName("big"))
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Msgs != 6 { // 1 + 4 chunks + 1
		t.Errorf("stream holds %d messages, want 6 (the big record in 4 chunks)", si.State.Msgs)
	}
	read := func(ack bool) []string {
		c, err := st.Consumer(t.Context(), "deliver", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var got []string
		for len(got) < 3 {
			ds, err := c.Fetch(t.Context(), 10, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 0 {
				break
			}
			for _, d := range ds {
				got = append(got, fmt.Sprintf("%s:%d", d.Position[16:32], len(d.Data)))
				if ack || d.Position == streamtest.Position(0, 1) {
					if err := d.Ack(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		return got
	}
	want := fmt.Sprintf("[0000000000000001:%d 0000000000000002:%d 0000000000000003:%d]",
		len(streamtest.Msg(0, 1).Data), len(big.Data), len(streamtest.Msg(0, 3).Data))
	if got := fmt.Sprint(read(false)); got != want {
		t.Fatalf("first read %s, want %s", got, want)
	}
	want = want[:1] + want[strings.Index(want, " ")+1:]
	if got := fmt.Sprint(read(true)); got != want {
		t.Fatalf("after a restart %s, want %s", got, want)
	}
	if got := read(true); len(got) != 0 {
		t.Fatalf("after everything was acknowledged: %v", got)
	}
}
