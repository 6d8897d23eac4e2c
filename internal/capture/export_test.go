package capture

import (
	"context"
	"sync"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
)

// ChunkedKeys reads table t chunk by chunk, size rows at a time, with the
// full load's chunk queries, and returns the partition-key-value of each
// row in the order read.
func ChunkedKeys(ctx context.Context, c config.MySQL, t TableName, size int) ([]string, error) {
	src, err := openSource(ctx, c)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	info, err := readTableInfo(ctx, src.db, t)
	if err != nil {
		return nil, err
	}
	keyCols, _ := info.loadKey()
	pkIdx := info.pkIndexes()
	var keys []string
	var after [][]byte
	for {
		q, args, err := info.chunkQuery(keyCols, after, size)
		if err != nil {
			return nil, err
		}
		rows, err := src.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		raw, dest := info.scanDest()
		n := 0
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return nil, err
			}
			row, err := info.row(raw)
			if err != nil {
				rows.Close()
				return nil, err
			}
			rec := &change.Record{Schema: t.Schema, Table: t.Table}
			partitionKey(rec, row, pkIdx)
			keys = append(keys, rec.PartitionKey)
			after = make([][]byte, len(pkIdx))
			for i, j := range pkIdx {
				after[i] = append([]byte{}, raw[j]...)
			}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if n < size {
			return keys, nil
		}
	}
}

// SetWatermarkHook runs f between each watermark chunk's snapshot and its
// high watermark, for chunks whose watermark table is wm (tests run in
// parallel); after is the raw key the chunk starts after (nil: the
// table's start).
func SetWatermarkHook(t interface{ Cleanup(func()) }, wm TableName, f func(table TableName, after [][]byte)) {
	hook := func(w, table TableName, after [][]byte) {
		if w == wm {
			f(table, after)
		}
	}
	watermarkHook.Store(&hook)
	t.Cleanup(func() { watermarkHook.Store(nil) })
}

// portHooks holds the hooks of the tests running, by the port of their
// source (tests run in parallel).
type portHooks[F any] struct {
	mu sync.Mutex
	m  map[int]F
}

// set makes f the hook of port until the test ends.
func (h *portHooks[F]) set(t interface{ Cleanup(func()) }, port int, f F) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[int]F{}
	}
	h.m[port] = f
	t.Cleanup(func() {
		h.mu.Lock()
		delete(h.m, port)
		h.mu.Unlock()
	})
}

func (h *portHooks[F]) get(port int) (F, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.m[port]
	return f, ok
}

var (
	chunkHooks portHooks[func(table TableName, after [][]byte) error]
	dialHooks  portHooks[func()]
)

func init() {
	chunk := func(port int, table TableName, after [][]byte) error {
		if f, ok := chunkHooks.get(port); ok {
			return f(table, after)
		}
		return nil
	}
	chunkReadHook.Store(&chunk)
	dial := func(port int) {
		if f, ok := dialHooks.get(port); ok {
			f()
		}
	}
	binlogDialHook.Store(&dial)
}

// SetChunkReadHook runs f in each keyed chunk read of the source on port
// once its snapshot position is known, before its SELECT; an error f
// returns fails the read. after is the raw key the chunk starts after
// (nil: the table's start).
func SetChunkReadHook(t interface{ Cleanup(func()) }, port int, f func(table TableName, after [][]byte) error) {
	chunkHooks.set(t, port, f)
}

// SetBinlogDialHook runs f each time capture of the source on port has
// checked the source's server_id and is about to make its binlog
// connection.
func SetBinlogDialHook(t interface{ Cleanup(func()) }, port int, f func()) {
	dialHooks.set(t, port, f)
}
