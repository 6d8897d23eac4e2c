package delivery

import "time"

// OldestBuffered returns, per table, the source commit time of the oldest
// record waiting in a buffer: fetched from the stream but not yet in the
// lake. A table with nothing buffered is absent. A buffer stays until its
// object is stored, so while the target refuses writes its age keeps growing.
func (d *Delivery) OldestBuffered() map[string]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]time.Time{}
	for k, b := range d.buffers {
		if b.oldest.IsZero() {
			continue
		}
		if t, ok := out[k.table]; !ok || b.oldest.Before(t) {
			out[k.table] = b.oldest
		}
	}
	return out
}
