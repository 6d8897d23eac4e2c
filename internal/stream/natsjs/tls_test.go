package natsjs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/natsjs"
	"github.com/binlake/binlake/internal/testbed"
)

// TestTLS reaches a nats-server that speaks TLS only and requires client
// certificates, its certificate from a test authority: with
// stream.nats.tls_ca and the client certificate, records go through
// exactly; trusting only the system's authorities, or without a client
// certificate, the connection is refused with the reason.
func TestTLS(t *testing.T) {
	certs := testbed.NewCerts(t, "127.0.0.1")
	ns := startServer(t, 1<<20, func(o *server.Options) {
		o.TLSConfig = certs.ServerTLS(t)
		o.TLSVerify = true
		o.TLSTimeout = 2
	})
	addr := ns.Addr().String()
	connect := func(ca, cert, key string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		nc, err := natsjs.Connect(ctx, natsjs.ConnectOptions{URLs: []string{"tls://" + addr}, TLSCA: ca, TLSCert: cert, TLSKey: key, Name: "tls-test"})
		if err == nil {
			nc.Close()
		}
		return err
	}
	if err := connect("", certs.ClientCert, certs.ClientKey); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("trusting the system's authorities only: %v, want an error about the certificate", err)
	}
	if err := connect(certs.CA, "", ""); err == nil {
		t.Errorf("without a client certificate: no error")
	}

	ctx := t.Context()
	nc, err := natsjs.Connect(ctx, natsjs.ConnectOptions{URLs: []string{"tls://" + addr}, TLSCA: certs.CA, TLSCert: certs.ClientCert, TLSKey: certs.ClientKey, Name: "tls-test"})
	if err != nil {
		t.Fatalf("with the authority and a client certificate: %v", err)
	}
	defer nc.Close()
	st, err := natsjs.Open(ctx, nc, natsjs.Options{Task: "tls", Partitions: 1, FileStore: true, MaxAge: time.Hour, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	prod := st.Producer()
	for i := 1; i <= 3; i++ {
		if err := prod.Publish(ctx, &stream.Message{Table: "s.t", Op: "insert", Position: fmt.Sprintf("0000/0000000001/%016d/1/0000000000/0000000000", i),
			CommitTime: time.Now(), Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := st.Consumer(ctx, "deliver", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(ctx, 10, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Data))
	}
	if want := `[{"i":1} {"i":2} {"i":3}]`; fmt.Sprint(got) != want {
		t.Errorf("records over TLS: %v, want %s", got, want)
	}
}
