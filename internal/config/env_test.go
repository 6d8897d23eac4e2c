package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"USER": "alice", "EMPTY": "", "SPECIAL": `a: b #c "d" ${USER}`}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${USER}", want: "alice"},
		{in: "pre-${USER}-post", want: "pre-alice-post"},
		{in: "${USER}${USER}", want: "alicealice"},
		{in: "${EMPTY}", want: ""},           // set but empty is a value
		{in: "${EMPTY-dflt}", want: ""},      // - takes the default only when unset
		{in: "${EMPTY:-dflt}", want: "dflt"}, // :- also when empty, as in sh
		{in: "${UNSET:-dflt}", want: "dflt"},
		{in: "${UNSET-dflt}", want: "dflt"},
		{in: "${UNSET:-}", want: ""},             // an empty default
		{in: "${UNSET:-a-b:c}", want: "a-b:c"},   // the default is literal text
		{in: "${SPECIAL}", want: env["SPECIAL"]}, // values are not expanded again
		{in: "$$", want: "$"},                    // $$ escapes $
		{in: "$${USER}", want: "${USER}"},
		{in: "$$$${USER}", want: "$${USER}"},
		{in: "$$${USER}", want: "$alice"},
		{in: "pa$word", want: "pa$word"}, // a lone $ is literal
		{in: "$USER", want: "$USER"},     // only ${...} expands
		{in: "cost: 5$", want: "cost: 5$"},
		{in: "${UNSET}", err: "environment variable UNSET is not set (export it or write ${UNSET:-default})"},
		{in: "${USER", err: `unterminated "${USER"`},
		{in: "${}", err: "invalid environment reference ${}"},
		{in: "${1X}", err: "invalid environment reference ${1X}"},
		{in: "${A B}", err: "invalid environment reference ${A B}"},
	}
	for _, tc := range tests {
		got, err := expandEnv(tc.in, lookup)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("expandEnv(%q) error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("expandEnv(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("expandEnv(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

const envBase = `
task: t
source:
  mysql:
    host: db
    user: u
tables: [{include: "db.%"}]
target: file:///lake
`

func TestParseEnv(t *testing.T) {
	t.Run("typed values", func(t *testing.T) {
		t.Setenv("BINLAKE_TEST_PORT", "3310")
		t.Setenv("BINLAKE_TEST_SIZE", "8MiB")
		t.Setenv("BINLAKE_TEST_BOOL", "true")
		t.Setenv("BINLAKE_TEST_NULL", "null")
		t.Setenv("BINLAKE_TEST_EMPTY", "")
		c, err := Parse([]byte(strings.Replace(envBase, "user: u", `user: u
    port: ${BINLAKE_TEST_PORT}
    password: ${BINLAKE_TEST_NULL}
    heartbeat: ${BINLAKE_TEST_EMPTY}
delivery: {buffer: {size: "${BINLAKE_TEST_SIZE}"}}
s3: {path_style: "${BINLAKE_TEST_BOOL}"}
stream: {partitions: "${BINLAKE_TEST_UNSET:-16}"}`, 1)))
		if err != nil {
			t.Fatal(err)
		}
		m := c.Source.MySQL
		if m.Port != 3310 || m.Password != "null" || m.Heartbeat != Duration(10e9) ||
			c.Delivery.Buffer.Size != 8*mib || !c.S3.PathStyle || c.Stream.Partitions != 16 {
			t.Errorf("got port %d, password %q, heartbeat %s, size %s, path_style %v, partitions %d",
				m.Port, m.Password, m.Heartbeat, c.Delivery.Buffer.Size, c.S3.PathStyle, c.Stream.Partitions)
		}
	})
	t.Run("quoted number without variable", func(t *testing.T) {
		_, err := Parse([]byte(strings.Replace(envBase, "host: db", "host: db\n    port: \"3310\"", 1)))
		if err == nil || !strings.Contains(err.Error(), `source.mysql.port: line 6: expected an integer, got "3310" (remove the quotes)`) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("comments are not expanded", func(t *testing.T) {
		if _, err := Parse([]byte(envBase + "# password: ${BINLAKE_TEST_UNSET}\n")); err != nil {
			t.Error(err)
		}
	})
	t.Run("keys are not expanded", func(t *testing.T) {
		t.Setenv("BINLAKE_TEST_KEY", "task")
		_, err := Parse([]byte(envBase + "${BINLAKE_TEST_KEY}: x\n"))
		if err == nil || !strings.Contains(err.Error(), "unknown key '${BINLAKE_TEST_KEY}'") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("unset reported with other errors", func(t *testing.T) {
		_, err := Parse([]byte(strings.Replace(envBase, "user: u", "user: ${BINLAKE_TEST_UNSET}\n    port: 0", 1)))
		fes := fieldErrors(t, err)
		if len(fes) != 2 ||
			fes[0].Error() != "source.mysql.user: line 6: environment variable BINLAKE_TEST_UNSET is not set (export it or write ${BINLAKE_TEST_UNSET:-default})" ||
			fes[1].Path != "source.mysql.port" {
			t.Errorf("got %v", err)
		}
	})
	t.Run("alias expanded once", func(t *testing.T) {
		c, err := Parse([]byte(strings.Replace(envBase, "user: u", "user: &u $${HOME}\n    password: *u", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if c.Source.MySQL.User != "${HOME}" || c.Source.MySQL.Password != "${HOME}" {
			t.Errorf("user %q, password %q; want both ${HOME}", c.Source.MySQL.User, c.Source.MySQL.Password)
		}
	})
}

func TestHTTPTokenFromEnv(t *testing.T) {
	t.Setenv("BINLAKE_TEST_API_TOKEN", "s3cr3t-token")
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yml")
	yml := "task: t\nsource:\n  mysql:\n    host: h\n    user: u\ntables:\n  - include: \"s.%\"\ntarget: file:///tmp/lake\nhttp:\n  listen: 127.0.0.1:8080\n  token: ${BINLAKE_TEST_API_TOKEN}\n"
	if err := os.WriteFile(p, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Token != "s3cr3t-token" {
		t.Errorf("http.token = %q", c.HTTP.Token)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(yml, "  listen: 127.0.0.1:8080\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "http.token: is set but http.listen is not") {
		t.Errorf("token without listen: %v", err)
	}
}
