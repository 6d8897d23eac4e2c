package delivery

import (
	"bytes"
	"context"
	"fmt"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/keytemplate"
	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/transform"
)

// Transforms in delivery. Each fetched message goes through the pipeline
// before it is buffered; its Table becomes the table the rules give it,
// and so decides its buffer, its stored position and its object name. A
// record stays in its buffer's message list whatever became of it, so it
// is acknowledged only once the buffer is in the lake:
//
//   - Ok: its (new) JSON is a line of the table's object;
//   - Dropped: nothing is written for it;
//   - Failed: its error output line goes into the buffer's error lines of
//     its kind, written by the same flush as an object under
//     delivery.error_prefix, named like the table's object (same
//     partition and position range). The error objects are put first and
//     listed in the flush's intent; the table's object (or, without one,
//     the last error object) is the one whose presence says the flush was
//     stored. After a crash that left it missing, the error objects already
//     put are deleted, since their records come again, perhaps in objects
//     with other ranges: every failed record is in the error output once.

// object is a named object body.
type object struct {
	key  string
	body []byte
}

// errorKeys parses the key templates of the error output.
func errorKeys(cfg *config.Config) map[string]*keytemplate.Template {
	out := map[string]*keytemplate.Template{}
	for _, kind := range config.ErrorKinds {
		t, err := keytemplate.Parse(cfg.Delivery.ErrorKeyTemplate(kind), "")
		if err != nil {
			panic(fmt.Sprintf("delivery: unvalidated config: %v", err)) // config.Validate rejects it
		}
		out[kind] = t
	}
	return out
}

// transform applies the pipeline to a fetched batch, in order: each
// message takes its new table, and an Ok one its new JSON. Without a
// pipeline every result is Ok and the messages stay as they are.
func (d *Delivery) transform(ctx context.Context, msgs []*stream.Delivered) ([]transform.Output, error) {
	if d.tf == nil || len(msgs) == 0 {
		return make([]transform.Output, len(msgs)), nil
	}
	in := make([]transform.Input, len(msgs))
	for i, m := range msgs {
		in[i] = transform.Input{Data: m.Data, Table: m.Table, Position: m.Position, CommitTime: m.CommitTime}
	}
	out, err := d.tf.Apply(ctx, in)
	if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		m.Table = out[i].Table
		if out[i].Result == transform.Ok {
			m.Data = out[i].Data
		}
	}
	return out, nil
}

// write buffers m as its transform result says.
func (b *buffer) write(m *stream.Delivered, res transform.Output) {
	switch res.Result {
	case transform.Ok:
		b.data.Write(m.Data)
		b.data.WriteByte('\n')
	case transform.Failed:
		if b.errs == nil {
			b.errs = map[string]*bytes.Buffer{}
		}
		e := b.errs[res.Kind]
		if e == nil {
			e = &bytes.Buffer{}
			b.errs[res.Kind] = e
		}
		e.Write(res.Data)
		e.WriteByte('\n')
	}
}

// errorObjects encodes the buffer's error output, one object per kind.
func (d *Delivery) errorObjects(b *buffer) ([]object, error) {
	var objs []object
	for _, kind := range config.ErrorKinds {
		lines := b.errs[kind]
		if lines == nil || lines.Len() == 0 {
			continue
		}
		body, ext, err := encode(d.cfg.Delivery.Compression, lines.Bytes())
		if err != nil {
			return nil, err
		}
		objs = append(objs, object{d.keyIn(d.errKeys[kind], b, ext), body})
	}
	return objs, nil
}

// settleDropped closes a buffer whose records were all dropped by the
// transforms: there is nothing to write, so nothing to commit; after a
// crash before the acknowledgements the records come again and are dropped
// again.
func (d *Delivery) settleDropped(ctx context.Context, b *buffer) error {
	d.mu.Lock()
	delete(d.buffers, b.key)
	d.mu.Unlock()
	for _, m := range b.msgs {
		if err := m.Ack(ctx); err != nil {
			d.log.Warn("acknowledging a dropped message failed", "position", m.Position, "err", err)
		}
	}
	return d.writeMarker(ctx, b.key.table)
}

// deleteErrorObjects removes the error objects of a flush whose main
// object a crash kept from the lake.
func (d *Delivery) deleteErrorObjects(ctx context.Context, in *Intent) error {
	for _, k := range in.Errors {
		if err := d.bucket.Delete(ctx, k); err != nil {
			return fmt.Errorf("deleting %s, an error output object of an interrupted flush: %w", k, err)
		}
	}
	return nil
}
