package capture

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
)

// This file reads one chunk of a table's full load: a short consistent
// snapshot whose exact binlog position W is known, and in it the next rows
// of the table in key order. The binlog reader (load.go) publishes the rows
// when it reaches W.

// Load methods, as the status shows them.
const (
	MethodPrimaryKey = "chunks by primary key"
	MethodUniqueKey  = "chunks by unique key"
	MethodOnePass    = "one pass"
)

// binPos is a binlog coordinate: file number and offset.
type binPos struct{ file, off uint64 }

func (a binPos) less(b binPos) bool {
	return a.file < b.file || (a.file == b.file && a.off < b.off)
}

func (a binPos) String() string { return fmt.Sprintf("%d:%d", a.file, a.off) }

// chunk is one read of a table: scheduled by the binlog reader, run by its
// own goroutine (readChunk), published by the reader at W.
type chunk struct {
	t       *tableLoad
	seq     uint64   // scheduling order, which breaks ties between equal W
	after   [][]byte // the raw key values the chunk starts after; nil: the table's first row
	prevKey []string // the key columns after belongs to
	size    int      // rows to read; the last chunk of a table reads fewer
	stop    context.CancelFunc

	// Set before known is closed.
	known   chan struct{}
	w       binPos
	wFile   string
	at      time.Time // when the snapshot was taken: the rows' commit-timestamp
	info    *tableInfo
	keyCols []string // the chunk key; nil for a one-pass read
	method  string
	onePass bool
	restart bool // after was dropped: the key changed since the last chunk
	// split asks the read for upTo: the key of its last row, read in its
	// snapshot before its rows, so that the table's next chunk can be read
	// at once on another connection (nil: fewer than size rows remain).
	split bool
	upTo  [][]byte
	// alongside: the outcome of an earlier chunk's read of the table was
	// not taken in yet when this one started.
	alongside bool

	collected bool      // the reader took in the read's outcome (loader.finished)
	scheduled time.Time // when the reader started the read

	// A watermark snapshot's chunk (watermark.go): W is where the reader
	// finds its high watermark (wFound), before hBound. touched holds the
	// keys changed since the reader scheduled it; stale, when set, is why
	// the chunk must be read again.
	wm      bool
	wFound  bool
	hBound  binPos
	touched map[string]struct{}
	stale   string

	// rows carries the rows in key order; it is closed after the last one.
	rows chan change.Row
	// Set before done is closed, after rows is closed.
	done chan struct{}
	n    int
	last [][]byte // raw key values of the last row read
	err  error
}

// chunkable reports whether a key column's values can be compared in SQL
// exactly as the server orders them, from the text the SELECT returned:
// not FLOAT, DOUBLE, BIT (read through an expression), ENUM, SET (ordered by
// index, compared as text) or JSON.
func chunkable(k colKind) bool {
	switch k {
	case kindSigned, kindUnsigned, kindYear, kindDecimal, kindTemporal, kindText, kindBinary, kindInet6, kindInet4, kindUUID:
		return true
	}
	return false
}

// loadKey chooses how a table is read: by its primary key (or the unique
// NOT NULL key standing in for it) in chunks, or in one pass.
func (ti *tableInfo) loadKey() (cols []string, method string) {
	if len(ti.pk) == 0 {
		return nil, MethodOnePass + ": no primary key"
	}
	for _, i := range ti.pkIndexes() {
		if !chunkable(ti.columns[i].kind) {
			return nil, MethodOnePass + ": the key column " + ti.columns[i].name + " cannot be compared in key order"
		}
	}
	if ti.pkIndex != "PRIMARY" {
		return ti.pk, MethodUniqueKey + " " + ti.pkIndex
	}
	return ti.pk, MethodPrimaryKey
}

var decimalRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// keyArg turns a key value as the SELECT returned it into an SQL operand
// that compares with the column as the server orders it: integers as
// numbers, DECIMAL as an exact literal, binary strings as binary, and
// text (character data, temporal values, INET6, UUID) as a string in the
// connection's character set, which the column's collation compares.
func keyArg(c sqlColumn, raw []byte) (expr string, arg any, err error) {
	s := string(raw)
	switch c.kind {
	case kindSigned, kindYear:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("key column %s: %w", c.name, err)
		}
		return "?", n, nil
	case kindUnsigned:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("key column %s: %w", c.name, err)
		}
		return "?", n, nil
	case kindDecimal:
		if !decimalRE.MatchString(s) {
			return "", nil, fmt.Errorf("key column %s: %q is not a decimal number", c.name, s)
		}
		return s, nil, nil
	case kindBinary:
		return "?", append([]byte{}, raw...), nil // never nil, which would be NULL
	}
	return "?", s, nil
}

// chunkQuery is the SELECT of the chunk after the key values after (nil:
// from the first row), in key order, at most size rows:
//
//	... WHERE k1 >= ? AND (k1 > ? OR (k1 = ? AND k2 > ?)) ORDER BY k1, k2 LIMIT n
//
// (a row-constructor comparison would do, but not every server uses the
// index for it).
func (ti *tableInfo) chunkQuery(keyCols []string, after [][]byte, size int) (string, []any, error) {
	return ti.keyQuery(ti.selectAll(), keyCols, after, fmt.Sprintf(" LIMIT %d", size))
}

// boundaryQuery is the SELECT of the key of the chunk's last row, when the
// chunk after after reads size rows: the start of the next chunk.
func (ti *tableInfo) boundaryQuery(keyCols []string, after [][]byte, size int) (string, []any, error) {
	exprs := make([]string, len(keyCols))
	for i, name := range keyCols {
		j := slices.IndexFunc(ti.columns, func(c sqlColumn) bool { return c.name == name })
		if j < 0 {
			return "", nil, fmt.Errorf("key column %s of %s not found", name, ti.name)
		}
		exprs[i] = ti.columns[j].selectExpr()
	}
	sel := "SELECT " + strings.Join(exprs, ", ") + " FROM " + quoteIdent(ti.name.Schema) + "." + quoteIdent(ti.name.Table)
	return ti.keyQuery(sel, keyCols, after, fmt.Sprintf(" LIMIT 1 OFFSET %d", size-1))
}

// keyQuery is sel over the rows after the key values after, in key order,
// with limit.
func (ti *tableInfo) keyQuery(sel string, keyCols []string, after [][]byte, limit string) (string, []any, error) {
	var b strings.Builder
	b.WriteString(sel)
	var args []any
	cols := make([]sqlColumn, len(keyCols))
	for i, name := range keyCols {
		j := slices.IndexFunc(ti.columns, func(c sqlColumn) bool { return c.name == name })
		if j < 0 {
			return "", nil, fmt.Errorf("key column %s of %s not found", name, ti.name)
		}
		cols[i] = ti.columns[j]
	}
	if after != nil {
		if len(after) != len(cols) {
			return "", nil, fmt.Errorf("%s: the saved key has %d values, the key %d columns", ti.name, len(after), len(cols))
		}
		exprs := make([]string, len(cols))
		vals := make([]any, len(cols))
		for i := range cols {
			e, a, err := keyArg(cols[i], after[i])
			if err != nil {
				return "", nil, fmt.Errorf("%s: %w", ti.name, err)
			}
			exprs[i], vals[i] = e, a
		}
		operand := func(i int) string {
			if exprs[i] == "?" {
				args = append(args, vals[i])
			}
			return exprs[i]
		}
		// k1 >= v1 bounds the index range; the rest is exact.
		b.WriteString(" WHERE " + quoteIdent(cols[0].name) + " >= " + operand(0) + " AND ")
		var cond func(i int) string
		cond = func(i int) string {
			q := quoteIdent(cols[i].name)
			s := q + " > " + operand(i)
			if i+1 < len(cols) {
				s += " OR (" + q + " = " + operand(i) + " AND (" + cond(i+1) + "))"
			}
			return s
		}
		b.WriteString("(" + cond(0) + ")")
	}
	b.WriteString(" ORDER BY ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.name))
	}
	b.WriteString(limit)
	return b.String(), args, nil
}

// chunkReadHook, set by tests, runs in a keyed chunk's read once the
// reader has its snapshot position (and boundary), before its SELECT: an
// error fails the read there. port is the source's.
var chunkReadHook atomic.Pointer[func(port int, t TableName, after [][]byte) error]

// readChunk runs the chunk: snapshot, table definition, SELECT. It holds
// the snapshot until every row is handed over, so a one-pass read, whose
// rows do not fit in the channel, streams them to the reader at W.
func (c *Capture) readChunk(ctx context.Context, ch *chunk, wm *watermarks) {
	isKnown := false
	fail := func(err error) {
		ch.err = err
		if !isKnown {
			close(ch.known)
		}
		close(ch.rows)
		close(ch.done)
	}
	conn, err := c.src.db.Conn(ctx)
	if err != nil {
		fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
		return
	}
	defer conn.Close()
	if wm != nil {
		if ch.hBound, err = wm.snapshot(ctx, c.src, conn, ch); err != nil {
			conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
			return
		}
		ch.wm = true
	} else {
		file, pos, err := c.src.snapshot(ctx, conn, c.cfg.FullLoad.SnapshotMode() == config.SnapshotLock)
		if err != nil {
			fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
			return
		}
		num, err := change.BinlogFileNumber(file)
		if err != nil {
			fail(err)
			return
		}
		ch.w, ch.wFile = binPos{num, uint64(pos)}, file
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	ch.at = time.Now().UTC()
	// information_schema is not part of the snapshot, but a table altered
	// after the snapshot began fails the SELECT below (ER_TABLE_DEF_CHANGED).
	info, err := readTableInfo(ctx, conn, ch.t.name)
	if err != nil {
		fail(err)
		return
	}
	ch.info = info
	ch.keyCols, ch.method = info.loadKey()
	ch.onePass = ch.keyCols == nil
	if ch.after != nil && !slices.Equal(ch.keyCols, ch.prevKey) {
		ch.after, ch.restart = nil, true // a new key: its order is not the old one's
	}
	// The boundary is read in the snapshot the SELECT below reads in: that
	// SELECT (LIMIT size) then ends exactly at upTo, with no upper bound.
	if ch.split && !ch.onePass && !ch.restart {
		q, args, err := info.boundaryQuery(ch.keyCols, ch.after, ch.size)
		if err != nil {
			fail(err)
			return
		}
		key := make([][]byte, len(ch.keyCols))
		dest := make([]any, len(key))
		for i := range key {
			dest[i] = &key[i]
		}
		switch err := conn.QueryRowContext(ctx, q, args...).Scan(dest...); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
			return
		default:
			for i := range key {
				if key[i] == nil {
					key[i] = []byte{} // never nil: NULL is not a key
				}
			}
			ch.upTo = key
		}
	}
	isKnown = true
	close(ch.known)
	if hook := chunkReadHook.Load(); hook != nil && !ch.onePass {
		if err := (*hook)(c.cfg.Source.MySQL.Port, ch.t.name, ch.after); err != nil {
			fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
			return
		}
	}

	query, args := info.selectAll(), []any(nil)
	if !ch.onePass {
		if query, args, err = info.chunkQuery(ch.keyCols, ch.after, ch.size); err != nil {
			fail(err)
			return
		}
	}
	rows, err := conn.QueryContext(ctx, query, args...)
	if err != nil {
		fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
		return
	}
	defer rows.Close()
	raw, dest := info.scanDest()
	keyIdx := make([]int, len(ch.keyCols))
	for i, name := range ch.keyCols {
		keyIdx[i] = slices.IndexFunc(info.columns, func(c sqlColumn) bool { return c.name == name })
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
			return
		}
		row, err := info.row(raw)
		if err != nil {
			fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
			return
		}
		select {
		case ch.rows <- row:
		case <-ctx.Done():
			fail(ctx.Err())
			return
		}
		ch.n++
		if len(keyIdx) > 0 {
			if ch.last == nil {
				ch.last = make([][]byte, len(keyIdx))
			}
			for i, j := range keyIdx {
				ch.last[i] = append(make([]byte, 0, len(raw[j])), raw[j]...) // never nil: NULL is not a key
			}
		}
	}
	if err := rows.Err(); err != nil {
		fail(fmt.Errorf("full load of %s: %w", ch.t.name, err))
		return
	}
	close(ch.rows)
	close(ch.done)
}

// MySQL and MariaDB errors a chunk read meets.
const (
	erNoSuchTable     = 1146 // the table was dropped or renamed
	erTableDefChanged = 1412 // altered after the snapshot began: read again
	erLockDeadlock    = 1213
	erLockWaitTimeout = 1205
)

func mysqlErrno(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// connectionLost tells an error of a connection to the source that broke
// or could not be made (the server restarting, the network), as opposed to
// an error of the query itself.
func connectionLost(err error) bool {
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne)
}
