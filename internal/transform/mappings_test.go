package transform

import (
	"fmt"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/config"
)

// TestTableMappings applies a DMS table-mapping file as DMS users have
// them (selection with column filters, transformations, a table-settings
// rule binlake ignores), together with a hash rule from the config, which
// applies after the file's rules.
func TestTableMappings(t *testing.T) {
	t.Setenv("BINLAKE_HASH_KEY", "k3y")
	cfg, err := config.Parse([]byte(`task: t
source: {mysql: {host: h, user: u}}
target: file:///lake
table_mappings: testdata/wordpress-mappings.json
transforms:
  rules:
    - {action: hash, table: wp_users, column: user_email, key_env: BINLAKE_HASH_KEY}
`))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "table_mappings rule-id 20: table-settings rules") {
		t.Errorf("warnings %q", w)
	}
	if !cfg.Selected("wordpress", "wp_users") || cfg.Selected("wordpress", "wp_sessions") || cfg.Selected("shop", "orders") {
		t.Error("the file's selection rules are not the task's")
	}
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}

	out := apply(t, p, "wordpress.wp_users", userUpdate)[0]
	want := dmsRecord(`{"id":18446744073709551615,"login":"alice","user_email":"`+aliceHash+`","price":"12.340","score":1.5e+300,"phone":"+# ###-####","note":null,"origin":"wp_users:18446744073709551615"}`,
		`{"id":18446744073709551615,"user_email":"`+oldHash+`"}`, meta("update", "src_wordpress", "wp_users"))
	if out.Result != Ok || out.Table != "src_wordpress.wp_users" || string(out.Data) != want {
		t.Errorf("wp_users: %s %s\n%s\nwant %s", out.Result, out.Table, out.Data, want)
	}

	posts := []struct {
		id     int
		status string
		result Result
	}{
		{12, "publish", Ok},
		{13, "future", Ok},
		{14, "draft", Dropped},
		{3, "publish", Dropped}, // ID gte 10 fails
	}
	for _, tc := range posts {
		in := post(tc.id, tc.status, "Hello")
		o := apply(t, p, "wordpress.wp_posts", in)[0]
		if o.Result != tc.result || o.Table != "src_wordpress.posts" {
			t.Errorf("post %d %s: %s %s, want %s src_wordpress.posts", tc.id, tc.status, o.Result, o.Table, tc.result)
			continue
		}
		if o.Result != Ok {
			continue
		}
		m := strings.Replace(meta("insert", "src_wordpress", "posts"), "0000000001/0000000000\"", fmt.Sprintf("0000000001/%010d\"", tc.id), 1)
		want := dmsRecord(fmt.Sprintf(`{"id":%d,"post_status":"%s","post_title":"Hello","price":"12.340","origin":"wp_posts:%d"}`, tc.id, tc.status, tc.id), "", m)
		if string(o.Data) != want {
			t.Errorf("post %d:\n got %s\nwant %s", tc.id, o.Data, want)
		}
	}
}
