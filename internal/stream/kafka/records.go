package kafka

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/binlake/binlake/internal/stream"
)

// What both consumers share: decoding a Kafka record, following which of
// the records handed out are acknowledged, and asking the brokers for a
// partition's first and end offsets.

// toPart decodes r, whose acknowledgement (or discarding) calls ack.
func toPart(r *kgo.Record, seq uint64, ack func()) (stream.Part, error) {
	p := stream.Part{
		Message: stream.Message{Partition: int(r.Partition), Key: string(r.Key), Data: r.Value},
		Index:   1, Count: 1, Seq: seq,
		Ack:     func(context.Context) error { ack(); return nil },
		Discard: ack,
	}
	for _, h := range r.Headers {
		switch h.Key {
		case hdrTable:
			p.Table = string(h.Value)
		case hdrOp:
			p.Op = string(h.Value)
		case hdrPosition:
			p.Position = string(h.Value)
		case hdrCommit:
			us, _ := strconv.ParseInt(string(h.Value), 10, 64)
			p.CommitTime = time.UnixMicro(us).UTC()
		case hdrNoKey:
			p.Key = ""
		case hdrChunk:
			var err error
			if p.Index, p.Count, err = stream.ParseChunkLabel(string(h.Value)); err != nil {
				return p, fmt.Errorf("kafka record %d/%d: %w", r.Partition, r.Offset, err)
			}
		}
	}
	return p, nil
}

// handedOut follows one partition's records handed out, in offset order,
// and the offset before which every one of them is acknowledged: where a
// restarted reader resumes.
type handedOut struct {
	next     int64 // offset after the last record handed out
	inflight []*inflight
}

type inflight struct {
	offset int64
	epoch  int32
	acked  bool
}

func (h *handedOut) add(r *kgo.Record) *inflight {
	e := &inflight{offset: r.Offset, epoch: r.LeaderEpoch}
	h.inflight = append(h.inflight, e)
	h.next = r.Offset + 1
	return e
}

// ack marks e acknowledged and returns the offset (and leader epoch) the
// acknowledged prefix now ends at; ok is false when the prefix did not move.
func (h *handedOut) ack(e *inflight) (resume kgo.EpochOffset, ok bool) {
	e.acked = true
	i := 0
	for ; i < len(h.inflight) && h.inflight[i].acked; i++ {
		resume, ok = kgo.EpochOffset{Epoch: h.inflight[i].epoch, Offset: h.inflight[i].offset + 1}, true
	}
	h.inflight = h.inflight[i:]
	return resume, ok
}

// Offsets asked of ListOffsets.
const (
	atEnd   = -1
	atStart = -2
)

// listOffsets returns the first (atStart) or end (atEnd) offset of each of
// partitions.
func listOffsets(ctx context.Context, cl *kgo.Client, topic string, partitions []int32, at int64) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = at
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("kafka list offsets: %w", err)
	}
	out := make(map[int32]int64, len(partitions))
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, fmt.Errorf("kafka list offsets of partition %d: %w", rp.Partition, err)
			}
			out[rp.Partition] = rp.Offset
		}
	}
	return out, nil
}
