package embedded_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/embedded"
	"github.com/binlake/binlake/internal/stream/natsjs"
	"github.com/binlake/binlake/internal/testbed"
)

// TestErrWhenStoreFails: once the store's disk is full, the server's
// stream refuses every write until a restart, and Err says so with the
// server's own reason; before, Err is nil.
func TestErrWhenStoreFails(t *testing.T) {
	fs := testbed.NewTmpfs(t, 16<<20)
	ns, err := embedded.Start(embedded.Options{StoreDir: fs.Dir + "/stream"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st, err := natsjs.Open(t.Context(), nc, natsjs.Options{Task: "full", Partitions: 1, FileStore: true, MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	prod := st.Producer()
	pub := func(i int) error {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		m := &stream.Message{Table: "s.t", Op: "insert", CommitTime: time.Now(), Data: []byte(strings.Repeat("x", 64<<10)),
			Position: fmt.Sprintf("0000/0000000001/%016d/1/0000000000/0000000000", i)}
		if err := prod.Publish(ctx, m); err != nil {
			return err
		}
		return prod.Flush(ctx)
	}
	if err := pub(0); err != nil {
		t.Fatal(err)
	}
	if err := ns.Err(); err != nil {
		t.Fatalf("Err with a healthy store: %v", err)
	}
	if err := fs.Fill(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 50 && ns.Err() == nil; i++ {
		pub(i) // fails or times out once the store cannot write
	}
	err = ns.Err()
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Err after the disk filled = %v, want the store's write error", err)
	}
	t.Logf("Err: %v", err)
}
