package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestDocs keeps docs/config.md in step with the code: its example is
// testdata/wordpress.good.yml and it mentions every key.
func TestDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Skipf("no reference to check: %v", err)
	}
	example, err := os.ReadFile("testdata/wordpress.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || block != string(example) {
		t.Errorf("the first yaml block of docs/config.md differs from testdata/wordpress.good.yml:\n%s", block)
	}
	for _, p := range allKeyPaths(reflect.TypeFor[Config](), "") {
		key := p[strings.LastIndex(p, ".")+1:]
		// As `key`, `key.sub` or `parent.key`.
		if !strings.Contains(string(doc), "`"+key+"`") && !strings.Contains(string(doc), "`"+key+".") && !strings.Contains(string(doc), "."+key+"`") {
			t.Errorf("docs/config.md does not describe %s", p)
		}
	}
}
