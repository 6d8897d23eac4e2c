package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/memstream"
	"github.com/binlake/binlake/internal/transform"
)

// wpChange is one WordPress row change for the transform tests.
type wpChange struct {
	table string
	op    change.Op
	row   change.Row
}

// wpChanges are users and posts, with posts in every status and a post
// the test processor fails.
func wpChanges() []wpChange {
	user := func(id int64, login, email string) change.Row {
		return change.Row{{Name: "ID", Value: id}, {Name: "user_login", Value: login}, {Name: "user_pass", Value: "$P$Bsecret"}, {Name: "user_email", Value: email}}
	}
	post := func(id int64, status, title string) change.Row {
		return change.Row{{Name: "ID", Value: id}, {Name: "post_author", Value: uint64(18446744073709551615)}, {Name: "post_status", Value: status}, {Name: "post_title", Value: title}, {Name: "price", Value: change.Decimal("12.340")}}
	}
	var out []wpChange
	for i := int64(1); i <= 6; i++ {
		out = append(out, wpChange{"wp_users", change.OpInsert, user(i, fmt.Sprintf("user%d", i), fmt.Sprintf("user%d@example.com", i))})
		status := []string{"publish", "draft", "publish", "trash", "publish", "future"}[i-1]
		title := fmt.Sprintf("Post %d", i)
		if i == 5 {
			title = "FAIL"
		}
		out = append(out, wpChange{"wp_posts", change.OpInsert, post(i, status, title)})
	}
	out = append(out, wpChange{"wp_posts", change.OpDelete, post(1, "publish", "Post 1")})
	out = append(out, wpChange{"wp_posts", change.OpUpdate, post(3, "publish", "Post 3 again")})
	return out
}

// wpRecord is the DMS record of change i.
func wpRecord(i int, c wpChange) *change.Record {
	r := &change.Record{
		Op: c.op, Schema: "wordpress", Table: c.table, Data: c.row,
		CommitTime:    time.Date(2026, 11, 24, 10, 0, i, 0, time.UTC),
		Position:      change.Position{File: 1, Offset: uint64(1000 + 10*i), Kind: change.KindEvent},
		TransactionID: uint64(100 + i), TransactionSeq: 1,
		PartitionKey: fmt.Sprintf("wordpress.%s.%v", c.table, c.row[0].Value), PartitionKeyPK: true,
	}
	return r
}

// publishWordPress publishes the changes over two partitions.
func publishWordPress(t *testing.T, l *memstream.Log, changes []wpChange) []*change.Record {
	t.Helper()
	p := l.Producer()
	var recs []*change.Record
	for i, c := range changes {
		r := wpRecord(i, c)
		m := &stream.Message{Partition: i % 2, Table: "wordpress." + c.table, Position: r.Position.String(), Op: string(c.op), CommitTime: r.CommitTime, Data: r.AppendJSON(nil)}
		if err := p.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// failingProcessor is a Firehose-style processor over HTTP that fails
// records whose title is FAIL and passes the others unchanged.
func failingProcessor(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Records []struct{ RecordID, Data string }
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type out struct {
			RecordID string `json:"recordId"`
			Result   string `json:"result"`
			Data     string `json:"data"`
		}
		var resp struct {
			Records []out `json:"records"`
		}
		for _, rec := range req.Records {
			data, _ := base64.StdEncoding.DecodeString(rec.Data)
			result := "Ok"
			if bytes.Contains(data, []byte(`"title":"FAIL"`)) {
				result = "ProcessingFailed"
			}
			resp.Records = append(resp.Records, out{rec.RecordID, result, rec.Data})
		}
		json.NewEncoder(w).Encode(&resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func transformConfig(t *testing.T, processorURL string) (*config.Config, *transform.Pipeline) {
	t.Helper()
	t.Setenv("BINLAKE_HASH_KEY", "k3y")
	cfg, err := config.Parse([]byte(`task: t1
source: {mysql: {host: h, user: u}}
tables: [{include: "wordpress.%"}]
target: file:///unused
delivery: {buffer: {size: 1KiB, interval: 0s}, compression: none, prefix: lake/}
transforms:
  rules:
    - {action: hash, table: wp_users, column: user_email, key_env: BINLAKE_HASH_KEY}
    - {action: mask, table: wp_users, column: user_login, keep_last: 1}
    - {action: remove-column, table: wp_users, column: user_pass}
    - {action: rename, target: table, table: wp_posts, value: posts}
    - {action: rename, target: column, table: wp_posts, column: post_title, value: title}
  filters:
    - {table: wp_posts, expression: "operation != 'delete' && data.post_status in ['publish', 'future']"}
  processor:
    url: ` + processorURL + `
    backoff: 1ms
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := transform.New(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, p
}

// lines reads the JSON lines of every object under prefix, in key order.
func lines(t *testing.T, b objstore.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	b.List(context.Background(), prefix, func(key string, size int64) error {
		if !strings.Contains(key, "_binlake/") {
			keys = append(keys, key)
		}
		return nil
	})
	var out []string
	for _, k := range keys {
		body, err := b.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			out = append(out, sc.Text())
		}
	}
	return out
}

func hmacHex(s string) string {
	h := hmac.New(sha256.New, []byte("k3y"))
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// expected works out what the lake must hold: the table lines by table
// directory, and the error output lines.
func expected(recs []*change.Record) (users, posts, failed []string) {
	for _, r := range recs {
		w := *r
		switch r.Table {
		case "wp_users":
			login, _ := r.Data.Get("user_login")
			email, _ := r.Data.Get("user_email")
			l := login.(string)
			w.Data = change.Row{r.Data[0], {Name: "user_login", Value: strings.Repeat("*", len(l)-1) + l[len(l)-1:]}, {Name: "user_email", Value: hmacHex(email.(string))}}
			users = append(users, string(w.AppendJSON(nil)))
		case "wp_posts":
			status, _ := r.Data.Get("post_status")
			if r.Op == change.OpDelete || (status != "publish" && status != "future") {
				continue // filtered
			}
			w.Table = "posts"
			w.Data = append(change.Row(nil), r.Data...)
			w.Data[3].Name = "title"
			line := string(w.AppendJSON(nil))
			if w.Data[3].Value == "FAIL" {
				failed = append(failed, fmt.Sprintf(`{"attemptsMade":1,"errorCode":"Processor.ProcessingFailed","errorMessage":"the processor returned result ProcessingFailed","rawData":"%s","stream-position":"%s","schema":"wordpress","table":"wp_posts"}`,
					base64.StdEncoding.EncodeToString([]byte(line)), r.Position.String()))
				continue
			}
			posts = append(posts, line)
		}
	}
	return users, posts, failed
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = sorted(got), sorted(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %d lines:\n%s\nwant %d lines:\n%s", what, len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}
}

// TestTransforms delivers WordPress changes through a pipeline: masked,
// hashed, removed, renamed and filtered columns in the objects, renamed
// tables in the keys, a failing processor's records under the error
// prefix with Firehose's fields, every message acknowledged.
func TestTransforms(t *testing.T) {
	cfg, p := transformConfig(t, failingProcessor(t).URL)
	mem := objstore.NewMemory()
	l := memstream.New()
	recs := publishWordPress(t, l, wpChanges())
	d := New(Options{Config: cfg, Consumer: l.Consumer(), Bucket: mem, StateDir: t.TempDir(), Logger: quiet, Transform: p})
	done := make(chan struct{})
	close(done)
	if err := d.Run(context.Background(), done); err != nil {
		t.Fatal(err)
	}
	users, posts, failed := expected(recs)
	equalLines(t, "lake/wordpress/wp_users/", lines(t, mem, "lake/wordpress/wp_users/"), users)
	equalLines(t, "lake/wordpress/posts/", lines(t, mem, "lake/wordpress/posts/"), posts)
	equalLines(t, "lake/errors/processing-failed/", lines(t, mem, "lake/errors/processing-failed/"), failed)
	if got := lines(t, mem, "lake/wordpress/wp_posts/"); len(got) != 0 {
		t.Errorf("objects under the source table name: %q", got)
	}
	if got := lines(t, mem, "lake/errors/format-conversion-failed/"); len(got) != 0 {
		t.Errorf("format-conversion-failed: %q", got)
	}
	if l.Unacked() != 0 {
		t.Errorf("%d messages left unacknowledged", l.Unacked())
	}
	mem.List(context.Background(), "lake/errors/", func(key string, size int64) error {
		if !strings.HasPrefix(key, "lake/errors/processing-failed/2026/11/24/10/t1-wordpress.posts-p000") {
			t.Errorf("error object %s", key)
		}
		return nil
	})
	st := d.Stats()
	if st["wordpress.wp_users"].Inserts != 6 || st["wordpress.posts"].Inserts != 3 || st["wordpress.posts"].Updates != 1 || st["wordpress.posts"].Deletes != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestTransformsExactlyOnceAcrossCrashes crashes delivery around each
// upload, error output objects included: afterwards every table line and
// every error line is in the lake exactly once.
func TestTransformsExactlyOnceAcrossCrashes(t *testing.T) {
	srv := failingProcessor(t)
	for _, after := range []bool{false, true} {
		for crashAt := 1; crashAt <= 10; crashAt++ {
			t.Run(fmt.Sprintf("after=%v/put%d", after, crashAt), func(t *testing.T) {
				cfg, p := transformConfig(t, srv.URL)
				dir := t.TempDir()
				mem := objstore.NewMemory()
				l := memstream.New()
				changes := wpChanges()
				recs := publishWordPress(t, l, changes)

				ctx, cancel := context.WithCancel(context.Background())
				cb := &crashingBucket{Bucket: mem, n: crashAt, after: after, cancel: cancel}
				d := New(Options{Config: cfg, Consumer: l.Consumer(), Bucket: cb, StateDir: dir, Logger: quiet, Transform: p})
				done := make(chan struct{})
				close(done)
				d.Run(ctx, done)

				d = New(Options{Config: cfg, Consumer: l.Consumer(), Bucket: mem, StateDir: dir, Logger: quiet, Transform: p})
				if err := d.Run(context.Background(), done); err != nil {
					t.Fatal(err)
				}
				users, posts, failed := expected(recs)
				equalLines(t, "users", lines(t, mem, "lake/wordpress/wp_users/"), users)
				equalLines(t, "posts", lines(t, mem, "lake/wordpress/posts/"), posts)
				equalLines(t, "processing-failed", lines(t, mem, "lake/errors/processing-failed/"), failed)
				if l.Unacked() != 0 {
					t.Errorf("%d messages left unacknowledged", l.Unacked())
				}
			})
		}
	}
}
