package natsjs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnectOptions reach an external NATS server or cluster.
type ConnectOptions struct {
	URLs []string
	// Credentials is a .creds file (user JWT and NKey seed).
	Credentials string
	User        string
	Password    string
	Token       string
	// TLSCA is a PEM file of the certificate authorities to trust;
	// TLSCert and TLSKey a client certificate, when the server asks for one.
	TLSCA   string
	TLSCert string
	TLSKey  string
	Name    string
}

// Connect connects to the servers, retrying until ctx ends, and keeps
// reconnecting for ever once connected: a stream that is down makes
// capture wait, it does not fail the task.
func Connect(ctx context.Context, o ConnectOptions) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(false),
	}
	if o.Credentials != "" {
		opts = append(opts, nats.UserCredentials(o.Credentials))
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	url := strings.Join(o.URLs, ",")
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
		case <-time.After(time.Second):
		}
	}
}
