package delivery

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// A deliver worker that shares the stream with others (see package lease)
// starts and stops delivering partitions while it runs. The hand-overs run
// in Run's goroutine, between two fetches, so they never race a flush.

type ctlOp struct {
	fn   func(ctx context.Context) error
	done chan error // nil: nobody waits
}

// control is the queue of hand-overs, run in the order they were asked for:
// a partition lost and then acquired again must be dropped before it is
// taken anew, never after.
type control struct {
	mu  sync.Mutex
	ops []*ctlOp
}

func (c *control) push(op *ctlOp) {
	c.mu.Lock()
	c.ops = append(c.ops, op)
	c.mu.Unlock()
}

// cancel removes op if Run has not taken it yet, and reports whether it did.
func (c *control) cancel(op *ctlOp) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range c.ops {
		if o == op {
			c.ops = slices.Delete(c.ops, i, i+1)
			return true
		}
	}
	return false
}

func (c *control) pop() *ctlOp {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ops) == 0 {
		return nil
	}
	op := c.ops[0]
	c.ops = c.ops[1:]
	return op
}

// runControl runs the hand-overs that are waiting.
func (d *Delivery) runControl(ctx context.Context) error {
	for op := d.ctl.pop(); op != nil; op = d.ctl.pop() {
		err := op.fn(ctx)
		if op.done != nil {
			op.done <- err
		}
	}
	return nil
}

// do runs fn in Run's goroutine and waits for it, or for ctx.
func (d *Delivery) do(ctx context.Context, fn func(ctx context.Context) error) error {
	op := &ctlOp{fn: fn, done: make(chan error, 1)}
	d.ctl.push(op)
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		if d.ctl.cancel(op) {
			return ctx.Err()
		}
	}
	// Once taken, fn runs to its end: its outcome is the caller's to know
	// even if ctx ends meanwhile.
	return <-op.done
}

// AcquirePartition starts delivering partition: assign starts reading it
// from the stream (from its acknowledgement floor), then the partition's
// stored positions are taken from the lake, where the worker that held it
// before wrote its last objects, so that what it wrote is not written again.
// On error the partition is not read (revoke undoes assign).
func (d *Delivery) AcquirePartition(ctx context.Context, partition int, assign func(context.Context) error, revoke func() error) error {
	return d.do(ctx, func(ctx context.Context) (err error) {
		d.dropPartition(partition)
		if err := assign(ctx); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				d.dropPartition(partition)
				revoke()
			}
		}()
		prefix := strconv.Itoa(partition) + "|"
		found := 0
		err = d.bucket.List(ctx, d.keys.Root(), func(key string, size int64) error {
			k, last, ok := parseObjectName(d.cfg.Task, key)
			if !ok || !strings.HasPrefix(k, prefix) {
				return nil
			}
			found++
			d.mu.Lock()
			if last > d.state.Stored[k] {
				d.state.Stored[k] = last
			}
			d.mu.Unlock()
			return nil
		})
		if err != nil {
			return fmt.Errorf("partition %d: reading its stored positions from the lake: %w", partition, err)
		}
		d.mu.Lock()
		err = d.saveLocked()
		d.mu.Unlock()
		d.log.Info("delivering a partition", "partition", partition, "objects_in_lake", found)
		return err
	})
}

// ReleasePartition stops delivering partition after writing what is
// buffered for it; revoke then stops reading it (sending its last
// acknowledgements).
func (d *Delivery) ReleasePartition(ctx context.Context, partition int, revoke func() error) error {
	return d.do(ctx, func(ctx context.Context) error {
		for _, k := range d.sortedKeys() {
			if k.partition != partition {
				continue
			}
			if err := d.flush(ctx, d.buffers[k]); err != nil {
				return fmt.Errorf("partition %d: %w", partition, err)
			}
		}
		return revoke()
	})
}

// LosePartition stops delivering partition at once, without writing what
// is buffered (another worker owns it now and delivers it again); revoke
// stops reading it. It does not wait, but it is queued before any hand-over
// asked for after it returns.
func (d *Delivery) LosePartition(partition int, revoke func() error) {
	d.ctl.push(&ctlOp{fn: func(ctx context.Context) error {
		d.dropPartition(partition)
		if err := revoke(); err != nil {
			d.log.Warn("closing a lost partition's consumer", "partition", partition, "err", err)
		}
		return nil
	}})
}

// dropPartition forgets partition's buffers without acknowledging them.
func (d *Delivery) dropPartition(partition int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.buffers {
		if k.partition == partition {
			delete(d.buffers, k)
		}
	}
}
