package delivery

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/stream/memstream"
)

// TestHandOversInOrder checks that hand-overs run in the order they were
// asked for: a partition lost (LosePartition does not wait) and at once
// acquired again is dropped first and then read anew, never the other way
// round, which would drop the new owner's reader.
func TestHandOversInOrder(t *testing.T) {
	cfg := testConfig(t, "")
	d := New(Options{Config: cfg, Consumer: memstream.New().Consumer(), Bucket: objstore.NewMemory(), StateDir: t.TempDir(), Logger: quiet})
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	var mu sync.Mutex
	var got, want []string
	note := func(s string) func() error {
		return func() error {
			mu.Lock()
			got = append(got, s)
			mu.Unlock()
			return nil
		}
	}
	for i := range 10 {
		d.LosePartition(1, note(fmt.Sprint("revoke ", i)))
		assign := note(fmt.Sprint("assign ", i+1))
		if err := d.AcquirePartition(t.Context(), 1, func(context.Context) error { return assign() }, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprint("revoke ", i), fmt.Sprint("assign ", i+1))
	}
	stop()
	<-done
	if !slices.Equal(got, want) {
		t.Errorf("hand-overs ran as %v, want %v", got, want)
	}
}
