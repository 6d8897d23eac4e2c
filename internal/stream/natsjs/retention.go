package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Retention. JetStream's own limits (max_age, and max_bytes with the
// oldest dropped first) remove records whether a consumer has read them or
// not: a delivery outage longer than max_age, or one during which capture
// writes more than max_bytes, would lose records that are in no lake. So
// the stream is created without an age limit, binlake removes delivered
// records itself (Trim: those every consumer has acknowledged, once older
// than MaxAge, or whatever their age when the stream needs room), and the
// producer waits while the stream is nearly full (waitRoom), so that
// capture stops reading the binlog instead of pushing undelivered records
// out. The server keeps MaxBytes as a last resort only.

const (
	// PauseAt is the share of MaxBytes above which the producer waits.
	PauseAt = 0.9
	// trimAt is the share of MaxBytes above which delivered records are
	// removed whatever their age.
	trimAt = 0.5
	// lookEvery is how old the producer's view of the stream's size may
	// be once the stream is half full.
	lookEvery = time.Second
)

// room is what the stream holds, as last seen, plus what was sent since.
type room struct {
	mu      sync.Mutex
	stored  int64     // the stream's bytes at the last look
	sent    int64     // bytes sent since the last look by the producer
	checked time.Time // zero: never looked
	paused  bool      // the producer waits for room
}

// Room is how full a task's stream is.
type Room struct {
	Stored   int64 // bytes the stream holds, as last seen
	MaxBytes int64 // Options.MaxBytes (0: no limit)
	Paused   bool  // the producer waits for delivery to free room
}

// Room returns how full the stream is, as last seen by the producer or
// KeepTrimmed (about every second).
func (s *Stream) Room() Room {
	s.room.mu.Lock()
	defer s.room.mu.Unlock()
	return Room{Stored: s.room.stored, MaxBytes: s.opts.MaxBytes, Paused: s.room.paused}
}

// look reads the stream's size from the server; what the producer sent
// before it is counted in it.
func (s *Stream) look(ctx context.Context, resetSent bool) (jetstream.StreamState, error) {
	info, err := s.s.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, fmt.Errorf("stream info: %w", err)
	}
	s.room.mu.Lock()
	s.room.stored = int64(info.State.Bytes)
	if resetSent {
		s.room.sent = 0
	}
	s.room.checked = time.Now()
	s.room.mu.Unlock()
	return info.State, nil
}

// msgSize is about what a message takes in the stream: its data, headers
// and subject, and the store's own overhead.
func msgSize(data []byte, h map[string][]string, subject string) int64 {
	n := len(data) + len(subject) + 64
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}

// waitRoom returns once the stream has room for n more bytes below
// PauseAt of MaxBytes. While it has not, it makes room by trimming the
// delivered records, looks again every half second, and reports the wait
// in Room.
func (p *producer) waitRoom(ctx context.Context, n int64) error {
	s := p.s
	limit := s.opts.MaxBytes
	if limit <= 0 {
		return nil
	}
	high := int64(PauseAt * float64(limit))
	for {
		r := &s.room
		r.mu.Lock()
		used, age, known := r.stored+r.sent+n, time.Since(r.checked), !r.checked.IsZero()
		// A record larger than the limit passes into an empty stream
		// rather than wait for ever.
		empty := r.stored+r.sent == 0 && age < lookEvery
		if known && (empty || used <= high && (used <= limit/2 || age < lookEvery)) {
			r.sent += n
			r.paused = false
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		// Settle what was sent so that the server's count holds it, make
		// room if that is what is missing, and look again.
		if err := p.Flush(ctx); err != nil {
			return err
		}
		if known && used > high {
			if err := s.Trim(ctx); err != nil && ctx.Err() == nil {
				s.log().Warn("removing delivered records from the stream failed", "err", err)
			}
		}
		if _, err := s.look(ctx, true); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !retriable(err) {
				return err
			}
		}
		r.mu.Lock()
		full := r.stored+r.sent+n > high && r.stored+r.sent > 0
		r.paused = full
		r.mu.Unlock()
		if full {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// Trim removes the records every durable consumer reading them has
// acknowledged, once they are older than MaxAge, or whatever their age when
// the stream holds more than trimAt of MaxBytes. A partition no consumer
// reads keeps its records: they are not delivered.
func (s *Stream) Trim(ctx context.Context) error {
	s.trimMu.Lock()
	defer s.trimMu.Unlock()
	state, err := s.look(ctx, false)
	if err != nil || state.Msgs == 0 {
		return err
	}
	floors, err := s.ackFloors(ctx)
	if err != nil {
		return err
	}
	needRoom := s.opts.MaxBytes > 0 && float64(state.Bytes) > trimAt*float64(s.opts.MaxBytes)
	ageCut := state.LastSeq + 1
	if !needRoom {
		if s.opts.MaxAge <= 0 {
			return nil
		}
		if ageCut, err = s.firstAfter(ctx, time.Now().Add(-s.opts.MaxAge), state); err != nil {
			return err
		}
	}
	if s.trimmed == nil {
		s.trimmed = map[int]uint64{}
	}
	purged := false
	for p := range s.opts.Partitions {
		floor, ok := floors[p]
		if !ok || floor == 0 {
			continue
		}
		cut := min(floor+1, ageCut)
		if cut <= state.FirstSeq || cut <= s.trimmed[p] {
			continue
		}
		if err := s.s.Purge(ctx, jetstream.WithPurgeSubject(Subject(s.opts.Task, p)), jetstream.WithPurgeSequence(cut)); err != nil {
			return fmt.Errorf("removing delivered records of partition %d: %w", p, err)
		}
		s.trimmed[p] = cut
		purged = true
	}
	if purged {
		_, err = s.look(ctx, false)
	}
	return err
}

// ackFloors returns, for each partition that some durable consumer reads,
// the lowest acknowledgement floor among those consumers: every record of
// the partition at or below it is delivered to all of them.
func (s *Stream) ackFloors(ctx context.Context) (map[int]uint64, error) {
	floors := map[int]uint64{}
	list := s.s.ListConsumers(ctx)
	for info := range list.Info() {
		filters := info.Config.FilterSubjects
		if info.Config.FilterSubject != "" {
			filters = append(filters, info.Config.FilterSubject)
		}
		for p := range s.opts.Partitions {
			subj := Subject(s.opts.Task, p)
			if len(filters) > 0 && !matchesAny(filters, subj) {
				continue
			}
			if f, ok := floors[p]; !ok || info.AckFloor.Stream < f {
				floors[p] = info.AckFloor.Stream
			}
		}
	}
	if err := list.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("listing consumers: %w", err)
	}
	return floors, nil
}

// firstAfter returns the sequence of the first record stored after t, or
// the sequence after the last one: storage times grow with the sequence.
func (s *Stream) firstAfter(ctx context.Context, t time.Time, state jetstream.StreamState) (uint64, error) {
	subj := "binlake." + s.opts.Task + ".*"
	lo, hi := state.FirstSeq, state.LastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := s.s.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid // nothing at or after mid
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading record %d: %w", mid, err)
		}
		if m.Time.After(t) {
			hi = mid
		} else {
			lo = m.Sequence + 1
		}
	}
	return lo, nil
}

// matchesAny reports whether subject matches one of the NATS subject
// filters ('*' one token, '>' the rest).
func matchesAny(filters []string, subject string) bool {
	for _, f := range filters {
		if matches(f, subject) {
			return true
		}
	}
	return false
}

func matches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return i < len(st)
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

// KeepTrimmed looks at the stream every second (for Room) and trims it
// every interval, and at once when it is more than half full, until ctx
// ends. Every process that opens the stream runs it; trimming is
// idempotent.
func (s *Stream) KeepTrimmed(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r := s.Room()
		if time.Since(last) < interval && (r.MaxBytes == 0 || float64(r.Stored) <= trimAt*float64(r.MaxBytes)) {
			if _, err := s.look(ctx, false); err != nil && ctx.Err() == nil {
				log.Debug("reading the stream's size failed", "err", err)
			}
			continue
		}
		last = time.Now()
		if err := s.Trim(ctx); err != nil && ctx.Err() == nil {
			log.Warn("removing delivered records from the stream failed; trying again later", "err", err)
		}
	}
}
