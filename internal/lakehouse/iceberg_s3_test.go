package lakehouse_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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
	data, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("cdc/lake/_binlake/iceberg/s/items/")})
	if err != nil || len(data.Contents) != 0 {
		t.Fatalf("the table's prefix holds %d objects before any run (%v)", len(data.Contents), err)
	}
	meta := "cdc/lake/_binlake/iceberg/s/items/metadata/"
	killedCommit(t, b, snapshotter, read, metadataFiles{
		get: func(name string) (string, error) {
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String(meta + name)})
			if err != nil {
				return "", err
			}
			defer out.Body.Close()
			body, err := io.ReadAll(out.Body)
			return string(body), err
		},
		put: func(name, body string) error {
			_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake"), Key: aws.String(meta + name), Body: strings.NewReader(body)})
			return err
		},
	})
	// The data files are objects of the bucket.
	data, err = client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("cdc/lake/_binlake/iceberg/s/items/data/")})
	if err != nil || len(data.Contents) == 0 {
		t.Fatalf("no data file in the bucket under the table (%v)", err)
	}
}
