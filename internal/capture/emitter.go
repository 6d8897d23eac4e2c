package capture

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/stream"
)

// The binlog reader is one goroutine, and encoding each record's JSON was
// the larger part of its work. The emitter takes that off it: records are
// grouped into jobs, encoded on every core, and published by one goroutine
// in the order they were emitted, so the stream sees exactly the order the
// reader made. Memory is bounded by the jobs in flight.

const (
	jobRecords   = 256 // records per job, at most
	jobsInFlight = 16  // jobs encoded or waiting to be published, at most
	// A transaction's end hands on a job of fewer than jobSmall records
	// after jobLinger only, so that the small transactions of a busy
	// binlog share jobs: a job per transaction of a few rows spent more
	// of the reader's time in hand-overs to the encoders than in reading.
	jobSmall  = jobRecords / 4
	jobLinger = time.Millisecond
)

type emitJob struct {
	recs []*change.Record
	// parts[i] is recs[i]'s partition; noKey[i] leaves its message's key
	// empty (control records, broadcast to several partitions).
	parts []int
	noKey []bool
	msgs  []*stream.Message
	done  chan struct{}
}

type emitter struct {
	prod stream.Producer

	mu  sync.Mutex // the reader's side: cur, and the order of jobs
	cur *emitJob
	// linger hands on cur after jobLinger (dispatchSoon); lingering tells
	// that it is armed.
	linger    *time.Timer
	lingering bool
	// avg is the average size of the last job's records' JSON, to size
	// the next job's buffers.
	avg atomic.Int64

	work  chan *emitJob
	order chan *emitJob

	// pending counts the jobs handed on and not yet published; flushed is
	// signalled when it drops.
	state   sync.Mutex
	pending int
	flushed *sync.Cond
	err     error // the first publish error, returned from then on

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newEmitter(prod stream.Producer) *emitter {
	e := &emitter{prod: prod, work: make(chan *emitJob, jobsInFlight), order: make(chan *emitJob, jobsInFlight)}
	e.flushed = sync.NewCond(&e.state)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	n := max(runtime.GOMAXPROCS(0), 1)
	e.wg.Add(n + 1)
	for range n {
		go e.encode()
	}
	go e.publish()
	return e
}

// add queues rec for partition part; the job goes on when full.
func (e *emitter) add(ctx context.Context, rec *change.Record, part int, noKey bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.failed(); err != nil {
		return err
	}
	if e.cur == nil {
		e.cur = &emitJob{done: make(chan struct{})}
	}
	e.cur.recs = append(e.cur.recs, rec)
	e.cur.parts = append(e.cur.parts, part)
	e.cur.noKey = append(e.cur.noKey, noKey)
	if len(e.cur.recs) >= jobRecords {
		return e.dispatchLocked(ctx)
	}
	return nil
}

// dispatchSoon hands the open job on at the end of a transaction: now if
// it holds jobSmall records or more, else within jobLinger, so that
// nothing waits for a full job.
func (e *emitter) dispatchSoon(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return nil
	}
	if len(e.cur.recs) >= jobSmall {
		return e.dispatchLocked(ctx)
	}
	if !e.lingering {
		e.lingering = true
		if e.linger == nil {
			e.linger = time.AfterFunc(jobLinger, e.lingered)
		} else {
			e.linger.Reset(jobLinger)
		}
	}
	return nil
}

func (e *emitter) lingered() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lingering {
		e.dispatchLocked(e.ctx)
	}
}

// dispatch hands the open job on: the reader calls it at the end of each
// chunk, so that nothing waits for a full job.
func (e *emitter) dispatch(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatchLocked(ctx)
}

func (e *emitter) dispatchLocked(ctx context.Context) error {
	if e.lingering {
		e.lingering = false
		e.linger.Stop()
	}
	j := e.cur
	if j == nil {
		return nil
	}
	e.cur = nil
	j.msgs = make([]*stream.Message, len(j.recs))
	e.state.Lock()
	e.pending++
	e.state.Unlock()
	// order first: the publisher takes jobs in this order, and waits for
	// each to be encoded. The send waits for the publisher without
	// regard to ctx: a job given up here would leave a hole in the stream
	// that a later checkpoint could pass.
	e.order <- j
	e.work <- j
	return nil
}

// encode encodes jobs' records into their messages. A job's records are
// encoded into shared buffers, sized from the average record of the last
// job and at most arenaSize each, that their messages' Data share: a
// buffer for many records rather than one each. A record that does not fit
// the room left grows a buffer of its own, and the next record starts a new
// one, so that a huge row neither sizes nor is kept by its neighbours.
func (e *emitter) encode() {
	defer e.wg.Done()
	for j := range e.work {
		avg := int(e.avg.Load())
		// Room for a typical record; past an eighth of a buffer, a record
		// is as well encoded on its own.
		want := min(avg+avg/4+64, arenaSize/8)
		var buf []byte
		total := 0
		now := time.Now() // the records' metadata timestamp: when they were built
		for i, rec := range j.recs {
			rec.BuiltAt = now
			if cap(buf)-len(buf) < want {
				buf = make([]byte, 0, min(want*(len(j.recs)-i), arenaSize))
			}
			start, room := len(buf), cap(buf)-len(buf)
			buf = rec.AppendJSON(buf)
			data := buf[start:len(buf):len(buf)]
			if len(data) > room {
				buf = nil // grown for this record alone
			}
			table := ""
			if i > 0 && rec.Schema == j.recs[i-1].Schema && rec.Table == j.recs[i-1].Table {
				table = j.msgs[i-1].Table
			}
			j.msgs[i] = message(rec, j.parts[i], data, table)
			if j.noKey[i] {
				j.msgs[i].Key = ""
			}
			total += len(data)
		}
		if len(j.recs) > 0 {
			e.avg.Store(int64(total / len(j.recs)))
		}
		close(j.done)
	}
}

// arenaSize is the most a buffer shared by a job's records is made with.
const arenaSize = 256 << 10

func (e *emitter) publish() {
	defer e.wg.Done()
	for j := range e.order {
		<-j.done
		if e.failed() == nil {
			for i, m := range j.msgs {
				err := error(nil)
				if len(m.Data) > maxRecord {
					rec := j.recs[i]
					err = fmt.Errorf("%s.%s: a record of %d bytes at %s is larger than the %d bytes binlake carries", rec.Schema, rec.Table, len(m.Data), rec.Position, maxRecord)
				} else {
					err = e.prod.Publish(e.ctx, m)
				}
				if err != nil {
					e.state.Lock()
					if e.err == nil {
						e.err = err
					}
					e.state.Unlock()
					break
				}
			}
		}
		e.settle(j)
	}
}

func (e *emitter) settle(*emitJob) {
	e.state.Lock()
	e.pending--
	e.flushed.Broadcast()
	e.state.Unlock()
}

func (e *emitter) failed() error {
	e.state.Lock()
	defer e.state.Unlock()
	return e.err
}

// flush publishes everything added, then flushes the producer.
func (e *emitter) flush(ctx context.Context) error {
	if err := e.dispatch(ctx); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		e.state.Lock()
		e.flushed.Broadcast()
		e.state.Unlock()
	})
	defer stop()
	e.state.Lock()
	for e.pending > 0 && e.err == nil && ctx.Err() == nil {
		e.flushed.Wait()
	}
	err := e.err
	e.state.Unlock()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return e.prod.Flush(ctx)
}

// close stops the goroutines; what was not flushed is dropped (capture
// publishes it again after a restart, like any unflushed producer).
func (e *emitter) close() {
	e.mu.Lock()
	e.cur = nil
	if e.lingering {
		e.lingering = false
		e.linger.Stop()
	}
	e.mu.Unlock()
	e.cancel()
	close(e.order)
	close(e.work)
	e.wg.Wait()
}

// message is a record's stream message on partition part, with data, the
// record's JSON; table is "schema.table", or empty to be made.
func message(rec *change.Record, part int, data []byte, table string) *stream.Message {
	if table == "" {
		table = rec.Schema + "." + rec.Table
	}
	return &stream.Message{
		Partition:  part,
		Table:      table,
		Position:   rec.Position.String(),
		Op:         string(rec.Op),
		CommitTime: rec.CommitTime,
		Key:        rec.PartitionKey,
		Data:       data,
	}
}

// maxRecord is the largest record capture publishes: every backend carries
// a record over its message limit in chunks, and the lake's readers take
// lines up to this size (lake.Read). A MariaDB row can reach 1 GiB
// (max_allowed_packet); one whose JSON is larger than this stops the task
// rather than be truncated.
const maxRecord = 256 << 20
