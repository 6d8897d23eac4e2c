package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("mysql", "p#ss: w*rd\n")
	sk := write("s3", "s3-secret\r\n")
	tok := write("token", "api-token")
	natsPW := write("nats", "nats-pw\n")
	ksk := write("kinesis", "k-secret")
	kst := write("kinesis-token", "k-token\n")
	s3t := write("s3-token", "s3-token")
	t.Setenv("SECRETS", dir)
	c, err := Parse([]byte(`task: t
source: {mysql: {host: h, user: u, password_file: "${SECRETS}/mysql"}}
tables: [{include: "a.%"}]
target: s3://bucket
s3: {access_key_id: AK, secret_access_key_file: ` + sk + `, session_token_file: ` + s3t + `}
http: {listen: 127.0.0.1:8080, token_file: ` + tok + `}
stream:
  nats: {urls: [nats://n:4222], user: u, password_file: ` + natsPW + `}
  kinesis: {access_key_id: AK, secret_access_key_file: ` + ksk + `, session_token_file: ` + kst + `}
`))
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		c.Source.MySQL.Password: "p#ss: w*rd", c.S3.SecretAccessKey: "s3-secret", c.S3.SessionToken: "s3-token",
		c.HTTP.Token: "api-token", c.Stream.NATS.Password: "nats-pw", c.Stream.Kinesis.SecretAccessKey: "k-secret",
		c.Stream.Kinesis.SessionToken: "k-token",
	} {
		if got != want {
			t.Errorf("secret read from a file = %q, want %q", got, want)
		}
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings with every secret from a file: %q", w)
	}
	r := c.Redacted()
	for _, v := range []string{r.Source.MySQL.Password, r.S3.SecretAccessKey, r.S3.SessionToken, r.HTTP.Token, r.Stream.NATS.Password,
		r.Stream.Kinesis.SecretAccessKey, r.Stream.Kinesis.SessionToken} {
		if v != redacted {
			t.Errorf("Redacted left a secret read from a file: %q", v)
		}
	}

	empty := write("empty", "\n")
	_, err = Parse([]byte(`task: t
source: {mysql: {host: h, user: u, password: x, password_file: ` + pw + `}}
tables: [{include: "a.%"}]
target: file:///l
http: {listen: 127.0.0.1:8080, token_file: ` + filepath.Join(dir, "missing") + `}
stream: {nats: {token_file: ` + empty + `}}
`))
	for _, want := range []string{
		"source.mysql.password_file: is set, and so is source.mysql.password: give the secret one way only",
		"http.token_file: reading the secret: open " + filepath.Join(dir, "missing") + ": no such file or directory",
		"stream.nats.token_file: " + empty + " is empty",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to contain %q", err, want)
		}
	}
}

func TestSecretWarnings(t *testing.T) {
	t.Setenv("PW", "from-env")
	c, err := Parse([]byte(`task: t
source: {mysql: {host: h, user: u, password: "${PW}"}}
tables: [{include: "a.%"}]
target: s3://bucket
s3: {access_key_id: AK, secret_access_key: written-here}
http: {listen: 127.0.0.1:8080, token: ""}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Warnings()
	want := "s3.secret_access_key is written in the config file: take it from the environment (secret_access_key: ${NAME}) or a file (secret_access_key_file), so that the file holds no secret"
	if len(w) != 1 || w[0] != want {
		t.Errorf("warnings = %q, want [%q]", w, want)
	}
}

func TestMySQLTLS(t *testing.T) {
	base := "task: t\ntables: [{include: \"a.%\"}]\ntarget: file:///l\nsource: {mysql: {host: h, user: u, tls: %s}}\n"
	for _, tc := range []struct {
		tls, mode, err string
	}{
		{"{}", TLSDisabled, ""},
		{"{ca: /ca.pem}", TLSVerifyIdentity, ""},
		{"{cert: /c.pem, key: /k.pem}", TLSVerifyIdentity, ""},
		{"{mode: required}", TLSRequired, ""},
		{"{mode: verify-ca, ca: /ca.pem}", TLSVerifyCA, ""},
		{"{mode: on}", "", `source.mysql.tls.mode: must be one of disabled, required, verify-ca, verify-identity; got "on"`},
		{"{mode: disabled, ca: /ca.pem}", "", "source.mysql.tls.mode: is disabled, but other tls keys are set"},
		{"{cert: /c.pem}", "", "source.mysql.tls.cert: and source.mysql.tls.key must be given together"},
		{"{mode: verify-ca, server_name: db}", "", "source.mysql.tls.server_name: is only checked with mode verify-identity"},
	} {
		c, err := Parse([]byte(strings.Replace(base, "%s", tc.tls, 1)))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("tls %s: error %v, want %q", tc.tls, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("tls %s: %v", tc.tls, err)
		case tc.err == "" && c.Source.MySQL.TLS.EffectiveMode() != tc.mode:
			t.Errorf("tls %s: mode %s, want %s", tc.tls, c.Source.MySQL.TLS.EffectiveMode(), tc.mode)
		}
	}
}
