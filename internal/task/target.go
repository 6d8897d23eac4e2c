package task

import (
	"context"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/objstore"
)

// OpenTarget opens the task's object store from its config.
func OpenTarget(ctx context.Context, cfg *config.Config) (objstore.Bucket, error) {
	return objstore.Open(ctx, cfg.Target, objstore.S3Options{
		Region: cfg.S3.Region, Endpoint: cfg.S3.Endpoint, PathStyle: cfg.S3.PathStyle,
		AccessKeyID: cfg.S3.AccessKeyID, SecretAccessKey: cfg.S3.SecretAccessKey, SessionToken: cfg.S3.SessionToken,
		SSE: cfg.S3.SSE, KMSKeyID: cfg.S3.KMSKeyID, StorageClass: cfg.S3.StorageClass, StallTimeout: cfg.S3.StallTimeout.D(),
	})
}
