package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// valid.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("source: {mysql: &m {<<: *m}}"))
	f.Add([]byte("tables: &t [*t]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Parse accepted a config that fails Validate: %v", err)
		}
	})
}

func TestMergeBomb(t *testing.T) {
	doc := "task: t\nsource:\n  mysql:\n    <<: *l9\n"
	prev := "l0"
	anchors := "x0: &l0 {host: h}\n"
	for i := 1; i <= 9; i++ {
		name := "l" + string(rune('0'+i))
		anchors += "x" + string(rune('0'+i)) + ": &" + name + " {<<: [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]}\n"
		prev = name
	}
	_, err := Parse([]byte(anchors + doc))
	if err == nil || !strings.Contains(err.Error(), "more than 1000 merges") {
		t.Errorf("got %v", err)
	}
}
