// Package kinesis is the stream backend on Amazon Kinesis Data Streams.
//
// Each Kinesis record carries one record's DMS JSON as its data, so
// existing Kinesis consumers and Firehose read binlake's stream unchanged;
// what binlake itself needs to route, order and deduplicate travels in the
// record's partition key (see header.go). Binlake partition p is written
// with an explicit hash key fixed by p, so it always lands on the one open
// shard whose hash range holds that key, and after a reshard on the child
// that inherits it; the consumer reads parent shards to their end before
// their children. Records larger than a Kinesis record (1 MiB) are sent in
// chunks.
package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	kds "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Kinesis limits (docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html).
const (
	MaxRecordBytes   = 1 << 20 // data + partition key of one record
	maxBatchRecords  = 500     // records per PutRecords
	maxBatchBytes    = 5 << 20 // bytes per PutRecords
	maxPartitionKey  = 256     // characters
	getRecordsLimit  = 1000
	pollInterval     = 200 * time.Millisecond // at most 5 GetRecords/s per shard
	activeWait       = 5 * time.Minute
	shardListRefresh = 10 * time.Second
)

// API is the part of the Kinesis client binlake uses; tests wrap it to
// inject failures.
type API interface {
	PutRecords(ctx context.Context, in *kds.PutRecordsInput, opts ...func(*kds.Options)) (*kds.PutRecordsOutput, error)
	GetRecords(ctx context.Context, in *kds.GetRecordsInput, opts ...func(*kds.Options)) (*kds.GetRecordsOutput, error)
	GetShardIterator(ctx context.Context, in *kds.GetShardIteratorInput, opts ...func(*kds.Options)) (*kds.GetShardIteratorOutput, error)
	ListShards(ctx context.Context, in *kds.ListShardsInput, opts ...func(*kds.Options)) (*kds.ListShardsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kds.DescribeStreamSummaryInput, opts ...func(*kds.Options)) (*kds.DescribeStreamSummaryOutput, error)
	CreateStream(ctx context.Context, in *kds.CreateStreamInput, opts ...func(*kds.Options)) (*kds.CreateStreamOutput, error)
}

var _ API = (*kds.Client)(nil)

// Options configure a task's Kinesis stream.
type Options struct {
	// StreamName is the stream's name or ARN.
	StreamName string
	Region     string
	Endpoint   string
	// Shards is the shard count of a stream Open creates; 0 creates it
	// on-demand.
	Shards int
	Create bool
	// Static credentials; empty uses the SDK's default chain.
	AccessKeyID, SecretAccessKey, SessionToken string

	// Partitions is the task's number of partitions.
	Partitions int
	// StateDir holds the consumers' shard positions.
	StateDir string
	Logger   *slog.Logger

	// Client replaces the client built from the fields above (tests).
	Client API
	// MaxRecordBytes lowers the record size limit (tests); records whose
	// data and partition key exceed it are sent in chunks.
	MaxRecordBytes int
}

// Stream is a task's Kinesis data stream.
type Stream struct {
	api  API
	opts Options
	name string // the stream's name, also when opts.StreamName is an ARN
	arn  string
	log  *slog.Logger
}

// Open connects to the stream, creating it when it is missing and
// opts.Create is set, and waits until it is ACTIVE.
func Open(ctx context.Context, opts Options) (*Stream, error) {
	s := &Stream{opts: opts, api: opts.Client, log: opts.Logger, name: opts.StreamName}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if strings.HasPrefix(opts.StreamName, "arn:") {
		s.arn = opts.StreamName
		s.name = opts.StreamName[strings.LastIndex(opts.StreamName, "/")+1:]
		if opts.Region == "" {
			if parts := strings.Split(opts.StreamName, ":"); len(parts) > 3 {
				opts.Region = parts[3]
			}
		}
	}
	if s.api == nil {
		c, err := newClient(ctx, opts)
		if err != nil {
			return nil, err
		}
		s.api = c
	}
	if err := s.ensure(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func newClient(ctx context.Context, o Options) (*kds.Client, error) {
	var lo []func(*awsconfig.LoadOptions) error
	if o.Region != "" {
		lo = append(lo, awsconfig.WithRegion(o.Region))
	}
	if o.AccessKeyID != "" {
		lo = append(lo, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, o.SessionToken)))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("kinesis: loading AWS config: %w", err)
	}
	return kds.NewFromConfig(cfg, func(ko *kds.Options) {
		if o.Endpoint != "" {
			ko.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
}

// ids fills the stream's name or ARN into a request.
func (s *Stream) ids() (name, arn *string) {
	if s.arn != "" {
		return nil, aws.String(s.arn)
	}
	return aws.String(s.name), nil
}

// ensure creates the stream if needed and waits until it is ACTIVE.
func (s *Stream) ensure(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, activeWait)
	defer cancel()
	created := false
	for {
		name, arn := s.ids()
		out, err := s.api.DescribeStreamSummary(ctx, &kds.DescribeStreamSummaryInput{StreamName: name, StreamARN: arn})
		var nf *types.ResourceNotFoundException
		switch {
		case errors.As(err, &nf) && !created:
			if !s.opts.Create {
				return fmt.Errorf("kinesis stream %s does not exist (create it, or set stream.kinesis.create: true)", s.opts.StreamName)
			}
			in := &kds.CreateStreamInput{StreamName: aws.String(s.name)}
			if s.opts.Shards > 0 {
				in.ShardCount = aws.Int32(int32(s.opts.Shards))
				in.StreamModeDetails = &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned}
			} else {
				in.StreamModeDetails = &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}
			}
			var inUse *types.ResourceInUseException
			if _, err := s.api.CreateStream(ctx, in); err != nil && !errors.As(err, &inUse) {
				return fmt.Errorf("creating kinesis stream %s: %w", s.name, err)
			}
			s.log.Info("created kinesis stream", "stream", s.name, "shards", s.opts.Shards)
			created = true
		case err != nil && !errors.As(err, &nf):
			return fmt.Errorf("kinesis stream %s: %w", s.opts.StreamName, err)
		case err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive:
			return nil
		case err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusDeleting:
			return fmt.Errorf("kinesis stream %s is being deleted", s.opts.StreamName)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kinesis stream %s not ACTIVE after %s: %w", s.opts.StreamName, activeWait, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// HashKey is the explicit hash key of binlake partition p of n: the middle
// of the p-th of n equal slices of Kinesis's 128-bit hash key space. It
// does not depend on the shards, so a partition stays on one shard (or its
// children after a reshard) across producer restarts; a stream created with
// n shards (or a divisor of n) gives each shard whole partitions.
func HashKey(p, n int) string {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	k := new(big.Int).Mul(space, big.NewInt(int64(2*p+1)))
	k.Div(k, big.NewInt(int64(2*n)))
	return k.String()
}

func (s *Stream) maxRecord() int {
	if s.opts.MaxRecordBytes > 0 {
		return s.opts.MaxRecordBytes
	}
	return MaxRecordBytes
}
