package keytemplate

import (
	"strings"
	"testing"
	"time"
)

// FuzzTemplate: a template that parses renders keys that start with its
// Root (delivery lists the lake under Root to rebuild its checkpoint), for
// any schema and table; nothing makes Parse or Render panic.
func FuzzTemplate(f *testing.F) {
	f.Add("wordpress-db/", "s", "t")
	f.Add("cdc/{schema}/{table}/!{timestamp:yyyy}/", "wordpress-db", "wp_posts")
	f.Add("{task}-{partition}/{yyyy}{MM}{dd}{HH}{mm}/", "a", "b")
	f.Add("x/{nope}/", "a", "b")
	f.Add("!{timestamp:yyyy-MM-dd}", "a", "b")
	f.Add("{", "a", "b")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, tmpl, schema, table string) {
		for _, layout := range []string{TimeLayout, HiveLayout} {
			tp, err := Parse(tmpl, layout)
			if err != nil {
				continue
			}
			key := tp.Render(Values{Schema: schema, Table: table, Task: "task", Partition: 3, Time: time.Date(2026, 11, 24, 9, 5, 0, 0, time.UTC)})
			if !strings.HasPrefix(key, tp.Root()) {
				t.Fatalf("template %q renders %q, which does not start with its root %q", tmpl, key, tp.Root())
			}
		}
	})
}
