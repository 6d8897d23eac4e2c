package lakehouse_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/testbed"
)

// TestIcebergOnS3 keeps the Iceberg table of a change log in an S3 bucket
// (versitygw over HTTP, target s3://lake/cdc): the metadata and the data
// files are objects, iceberg-go reads the table back from the bucket, and
// the leftovers of a commit killed between its copy and the removal of its
// claim (a claim, a stale version hint) are cleared by the next run, whose
// commit then lands at once.
func TestIcebergOnS3(t *testing.T) {
	ctx := t.Context()
	srv := testbed.NewS3(t)
	if err := srv.CreateBucket(ctx, "lake"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`task: %s
source: {mysql: {host: db, user: u}}
tables: [{include: "s.%%"}]
target: s3://lake/cdc
s3: {endpoint: %q, region: %s, path_style: true, access_key_id: %s, secret_access_key: %s}
stream: {partitions: 2}
delivery: {prefix: "lake/", tables: iceberg, iceberg: {delete_mode: merge-on-read}}
`, task, srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := objstore.NewS3(ctx, "lake", "cdc", objstore.S3Options{
		Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	snapshotter := func() *lakehouse.Snapshotter {
		s, err := lakehouse.New(lakehouse.Options{Config: cfg, Bucket: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	loc, err := lakehouse.IcebergLocationOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if loc.Warehouse != "s3://lake/cdc/lake/_binlake/iceberg" {
		t.Fatalf("warehouse %s", loc.Warehouse)
	}
	read := func() map[string]map[string]any {
		rows, _, err := lakehouse.ReadIcebergTable(ctx, loc, "s", "items")
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	client := srv.Client()
	meta := "cdc/lake/_binlake/iceberg/s/items/metadata/"
	get := func(key string) (string, error) {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String(key)})
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		body, err := io.ReadAll(out.Body)
		return string(body), err
	}
	put := func(key, body string) {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake"), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}

	l := newChangeLog(t, b)
	l.control(change.OpCreateTable, "", itemsDef("name", "varchar(20)"))
	for i := 10; i < 13; i++ {
		l.row(change.OpLoad, i, "name", fmt.Sprint("n", i))
	}
	l.flush()
	run(t, snapshotter()) // v1 creates the table, v2 holds the rows
	assertRows(t, read(), want(
		map[string]any{"id": n(10), "name": "n10"},
		map[string]any{"id": n(11), "name": "n11"},
		map[string]any{"id": n(12), "name": "n12"},
	))
	data, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("cdc/lake/_binlake/iceberg/s/items/data/")})
	if err != nil || len(data.Contents) == 0 {
		t.Fatalf("no data file in the bucket under the table (%v)", err)
	}

	// A commit killed after copying its claim to v3 and before removing it,
	// and before rewriting the hint.
	v2, err := get(meta + "v2.metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	put(meta+"v3.metadata.json.claim", v2)
	put(meta+"version-hint.text", "1")

	s := snapshotter() // restarted
	if res := run(t, s); res.Records != 0 || res.Generation != 1 {
		t.Errorf("a run with nothing new: %+v", res)
	}
	if hint, err := get(meta + "version-hint.text"); err != nil || hint != "2" {
		t.Errorf("version hint %q (%v) after a run with nothing new, want 2", hint, err)
	}
	l.row(change.OpUpdate, 11, "name", "eleven")
	l.row(change.OpDelete, 12, "name", "n12")
	l.flush()
	if res := run(t, s); res.Generation != 2 {
		t.Errorf("generation %d after the commit that followed the killed one, want 2", res.Generation)
	}
	assertRows(t, read(), want(
		map[string]any{"id": n(10), "name": "n10"},
		map[string]any{"id": n(11), "name": "eleven"},
	))
	if _, err := get(meta + "v3.metadata.json.claim"); err == nil {
		t.Errorf("the killed commit's claim is still in the bucket")
	}
	if _, err := get(meta + "v3.metadata.json"); err != nil {
		t.Errorf("the commit did not publish v3: %v", err)
	}
	if hint, err := get(meta + "version-hint.text"); err != nil || hint != "3" {
		t.Errorf("version hint %q (%v), want 3", hint, err)
	}
}
