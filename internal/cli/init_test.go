package cli_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/testbed"
)

func TestInitExample(t *testing.T) {
	t.Setenv("MYSQL_PASSWORD", "secret")
	out := filepath.Join(t.TempDir(), "pipeline.yaml")
	code, stdout, stderr := runCLI("init", "--out", out)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("stdout %q", stdout)
	}
	cfg, err := config.Load(out)
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if cfg.Task != "wordpress" || cfg.Source.MySQL.Password != "secret" || cfg.HTTP.Listen != "127.0.0.1:8080" ||
		!cfg.Selected("wordpress-db", "wp_posts") || cfg.Selected("wordpress-db", "wp_sessions") {
		t.Errorf("config: %+v", cfg)
	}
	text, _ := os.ReadFile(out)
	// Every key is explained: no key line without a comment above it or on it.
	lines := strings.Split(string(text), "\n")
	for i, l := range lines {
		trim := strings.TrimSpace(l)
		if trim == "" || strings.HasPrefix(trim, "#") || strings.HasPrefix(trim, "- ") || strings.Contains(trim, "#") {
			continue
		}
		if strings.HasSuffix(trim, ":") { // a section: its keys carry the comments
			continue
		}
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("line %d %q has no comment", i+1, l)
		}
	}

	// It does not overwrite without --force.
	if err := os.WriteFile(out, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("init", "--out", out)
	if code != 2 || !strings.Contains(stderr, "exists; give --force") {
		t.Errorf("init over an existing file: exit %d, %q", code, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "mine" {
		t.Errorf("init overwrote the file: %q", b)
	}
	if code, _, stderr = runCLI("init", "--out", out, "--force"); code != 0 {
		t.Fatalf("init --force: exit %d: %s", code, stderr)
	}
	if _, err := config.Load(out); err != nil {
		t.Errorf("after --force: %v", err)
	}
	code, stdout, _ = runCLI("init", "--out", "-")
	if code != 0 || !strings.HasPrefix(stdout, "# binlake pipeline config") {
		t.Errorf("init --out -: exit %d, %.80q", code, stdout)
	}
	if code, _, stderr := runCLI("init", "--out", "-", "--dsn", "nonsense"); code != 2 {
		t.Errorf("init --dsn nonsense: exit %d, %q", code, stderr)
	}
}

func TestInitFromDSN(t *testing.T) {
	db := testbed.NewMariaDB(t)
	if err := db.Exec(t.Context(),
		"CREATE DATABASE shop", "CREATE TABLE shop.items (id INT PRIMARY KEY)",
		"CREATE DATABASE my_app", "CREATE DATABASE `odd%db`",
	); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MYSQL_PASSWORD", db.Password)
	out := filepath.Join(t.TempDir(), "pipeline.yaml")
	code, stdout, stderr := runCLI("init", "--dsn", db.DSN(""), "--out", out)
	if code != 0 {
		t.Fatalf("init --dsn: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "3 schema(s): my_app, odd%db, shop") {
		t.Errorf("stdout %q", stdout)
	}
	text, _ := os.ReadFile(out)
	if strings.Contains(string(text), "wordpress") {
		t.Errorf("the DSN's config still names wordpress:\n%s", text)
	}
	cfg, err := config.Load(out)
	if err != nil {
		t.Fatalf("the written config does not load: %v\n%s", err, text)
	}
	host, port := cfg.Source.MySQL.Host, cfg.Source.MySQL.Port
	if !strings.Contains(db.DSN(""), "@tcp("+host+":") || port == 3306 && !strings.Contains(db.DSN(""), ":3306)") || cfg.Source.MySQL.User != db.User {
		t.Errorf("source %s:%d user %s, DSN %s", host, port, cfg.Source.MySQL.User, db.DSN(""))
	}
	if cfg.Task != "my_app-and-more" {
		t.Errorf("task %q", cfg.Task)
	}
	var rules []string
	for _, r := range cfg.Tables {
		rules = append(rules, r.Include)
	}
	if want := []string{"my[_]app.%", "odd[%]db.%", "shop.%"}; !reflect.DeepEqual(rules, want) {
		t.Errorf("include rules %q, want %q", rules, want)
	}
	for _, c := range []struct {
		schema string
		want   bool
	}{{"shop", true}, {"my_app", true}, {"myXapp", false}, {"odd%db", true}, {"oddXdb", false}, {"mysql", false}, {"information_schema", false}} {
		if got := cfg.Selected(c.schema, "t"); got != c.want {
			t.Errorf("Selected(%s.t) = %v, want %v", c.schema, got, c.want)
		}
	}
}
