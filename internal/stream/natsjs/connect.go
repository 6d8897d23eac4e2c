package natsjs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
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
	servers := strings.Join(o.URLs, ",")
	for {
		nc, err := nats.Connect(servers, opts...)
		if err == nil {
			return nc, nil
		}
		// Wrong credentials do not heal by waiting.
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			return nil, fmt.Errorf("connecting to NATS at %s: %w: check stream.nats.user and password, token or credentials", redactURLs(o.URLs), err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to NATS at %s: %w", redactURLs(o.URLs), err)
		case <-time.After(time.Second):
		}
	}
}

// redactURLs joins the server URLs with any password in them hidden.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, s := range urls {
		out[i] = s
		if u, err := url.Parse(s); err == nil && u.User != nil {
			out[i] = u.Redacted()
		}
	}
	return strings.Join(out, ",")
}
