package kafka_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/kafka"
	"github.com/binlake/binlake/internal/testbed"
)

// TestTLS runs the stream over TLS to a broker whose certificate a test
// authority signed, and which asks for a client certificate: with the
// authority (stream.kafka.tls_ca) and the client certificate the records
// go through exactly; trusting only the system's authorities, or without a
// client certificate, the connection is refused with a clear error.
func TestTLS(t *testing.T) {
	certs := testbed.NewCerts(t, "127.0.0.1")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(certs.ServerTLS(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	open := func(t *testing.T, topic string, cfg *tls.Config) (*kafka.Stream, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return kafka.Open(ctx, kafka.Options{Brokers: c.ListenAddrs(), Topic: topic, Partitions: 1, Create: true,
			MaxMessageBytes: 1 << 20, StateDir: t.TempDir(), TLS: cfg})
	}

	good, err := kafka.LoadTLS(certs.CA, certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := open(t, "binlake.tls", good)
	if err != nil {
		t.Fatalf("over TLS with the authority and a client certificate: %v", err)
	}
	prod, err := st.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := t.Context()
	for i := 1; i <= 3; i++ {
		if err := prod.Publish(ctx, &stream.Message{Table: "s.t", Op: "insert", Position: fmt.Sprintf("0000/0000000001/%016d/1/0000000000/0000000000", i),
			CommitTime: time.Now(), Key: fmt.Sprint(i), Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := st.Consumer(ctx, "deliver")
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); len(got) < 3 && time.Now().Before(deadline); {
		msgs, err := cons.Fetch(ctx, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, string(m.Data))
		}
	}
	if want := `[{"i":1} {"i":2} {"i":3}]`; fmt.Sprint(got) != want {
		t.Errorf("records over TLS: %v, want %s", got, want)
	}

	systemRoots, err := kafka.LoadTLS("", certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, "binlake.tls2", systemRoots); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("trusting the system's authorities only: %v, want an error about the certificate", err)
	}
	noClientCert, err := kafka.LoadTLS(certs.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, "binlake.tls3", noClientCert); err == nil {
		t.Errorf("without a client certificate: no error")
	}
	if _, err := kafka.LoadTLS(certs.ServerKey, "", ""); err == nil || !strings.Contains(err.Error(), "stream.kafka.tls_ca") {
		t.Errorf("a CA file without a certificate: %v, want an error naming stream.kafka.tls_ca", err)
	}
}
