package capture

import (
	"context"
	"strings"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlake/binlake/internal/change"
)

// XA transactions reach the binlog in two parts (MariaDB ≥ 10.5, MySQL ≥
// 5.7.7): XA START, the rows, XA END and an XA_PREPARE event; later, in a
// transaction of its own, XA COMMIT or XA ROLLBACK of the same xid. The
// binlog reader keeps a prepared transaction's records aside (spilled to
// disk like any large transaction) until one of them arrives: at XA COMMIT
// they are published with positions at the XA COMMIT, where the changes took
// effect; at XA ROLLBACK they are dropped, and nothing of them reaches the
// stream. While one waits, the checkpoint stays at its start, so that a
// restart reads it again.

// parseXA recognises an XA statement as the server writes it to the binlog
// ("XA START X'31',X”,1", "XA COMMIT X'31',X”,1 ONE PHASE") and returns
// its verb and the xid.
func parseXA(q string) (verb, xid string, ok bool) {
	f := strings.Fields(q)
	if len(f) < 2 || !strings.EqualFold(f[0], "XA") {
		return "", "", false
	}
	verb = strings.ToUpper(f[1])
	rest := f[2:]
	if n := len(rest); n >= 2 && strings.EqualFold(rest[n-2], "ONE") && strings.EqualFold(rest[n-1], "PHASE") {
		rest = rest[:n-2]
	}
	return verb, strings.Join(rest, " "), true
}

// xa handles an XA statement; start is the event's start offset.
func (r *binlogReader) xa(ctx context.Context, verb, xid string, h *replication.EventHeader, start uint64) (bool, error) {
	switch verb {
	case "START", "BEGIN":
		if r.tx == nil {
			r.begin(0, start)
		}
		r.tx.xid = xid
	case "END":
		// MariaDB writes no XA START: the GTID event carries the xid.
		if r.tx != nil {
			r.tx.xid = xid
		}
	case "COMMIT":
		if r.tx != nil && r.tx.xid == xid {
			return r.commit(ctx, h) // XA COMMIT ... ONE PHASE
		}
		tx := r.prepared[xid]
		if tx == nil {
			r.c.log.Warn("XA COMMIT of a transaction prepared before capture's start position: its changes are not in the binlog read, so not captured", "xid", xid)
			return r.commit(ctx, h)
		}
		delete(r.prepared, xid)
		at := change.Position{Epoch: r.c.state.Epoch, File: r.fileNum, Offset: start, Kind: change.KindEvent}
		last, err := r.publish(ctx, tx, h, &at)
		if err != nil {
			return false, err
		}
		r.c.mu.Lock()
		for table, v := range tx.defined {
			if p := r.c.state.Tables[table]; p != nil {
				p.Defined = v
			}
		}
		if last != nil {
			r.c.state.LastRecord = last
		}
		r.c.mu.Unlock()
		return r.commit(ctx, h)
	case "ROLLBACK":
		if r.tx != nil && r.tx.xid == xid {
			r.tx.records.discard()
			r.tx = nil
		} else if tx := r.prepared[xid]; tx != nil {
			delete(r.prepared, xid)
			r.c.log.Info("XA transaction rolled back: its records are dropped", "xid", xid, "records", tx.records.len())
			if err := tx.records.discard(); err != nil {
				return false, err
			}
		}
		return r.commit(ctx, h)
	}
	if h.LogPos > 0 {
		r.pos = h.LogPos
	}
	return false, nil
}

// xaPrepared sets the current XA transaction aside at its XA_PREPARE event
// until its XA COMMIT or XA ROLLBACK. The transaction's events are read:
// a boundary, though the checkpoint stays at the transaction's start.
func (r *binlogReader) xaPrepared(h *replication.EventHeader) (bool, error) {
	if h.LogPos > 0 {
		r.pos = h.LogPos
	}
	if r.prepared == nil {
		r.prepared = map[string]*txn{}
	}
	r.tx.gsetBefore = r.gsetString()
	r.applyGTID(r.tx)
	r.prepared[r.tx.xid] = r.tx
	r.tx = nil
	r.commitPosition()
	return true, nil
}
