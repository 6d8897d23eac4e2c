package keytemplate

import (
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	v := Values{Schema: "wordpress-db", Table: "wp_posts", Task: "wp", Partition: 3, Time: time.Date(2026, 11, 4, 7, 5, 0, 0, time.FixedZone("x", 3600))}
	for _, tc := range []struct{ tmpl, layout, want, root string }{
		{"wordpress-db/", TimeLayout, "wordpress-db/wordpress-db/wp_posts/2026/11/04/06/", "wordpress-db/"},
		{"", TimeLayout, "wordpress-db/wp_posts/2026/11/04/06/", ""},
		{"lake/", HiveLayout, "lake/wordpress-db/wp_posts/year=2026/month=11/day=04/hour=06/", "lake/"},
		{"raw/{table}/!{timestamp:yyyy/MM/dd}/", TimeLayout, "raw/wp_posts/2026/11/04/", "raw/"},
		{"{task}/{schema}.{table}/p={partition}/{yyyy}-{MM}-{dd}T{HH}:{mm}/", TimeLayout, "wp/wordpress-db.wp_posts/p=0003/2026-11-04T06:05/", ""},
		{"a!b/{table}/", TimeLayout, "a!b/wp_posts/", "a!b/"},
	} {
		tp, err := Parse(tc.tmpl, tc.layout)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		if got := tp.Render(v); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.tmpl, got, tc.want)
		}
		if tp.Root() != tc.root {
			t.Errorf("%q: root %q, want %q", tc.tmpl, tp.Root(), tc.root)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{"x/{tabel}/", "unknown placeholder {tabel}"},
		{"x/{table", "unclosed {"},
		{"x/!{firehose:random-string}/", "unknown placeholder !{firehose:random-string}"},
		{"x/!{timestamp:yyyy/MMM}/", "only yyyy, MM, dd, HH, mm"},
		{"/x/{table}/", "must not start with '/'"},
	} {
		_, err := Parse(tc.tmpl, TimeLayout)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.tmpl, err, tc.want)
		}
	}
}
