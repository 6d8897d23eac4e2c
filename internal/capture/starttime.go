package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// positionAt finds where CDC starts for cdc_start_position given as a time:
// the first transaction in the binlog stamped at or after at. The binlog
// files are searched by their creation time (their format description
// event), then the one that covers at is read from its start. A time before
// the oldest binlog the source still has is an error: the changes since
// then are purged.
func (s *source) positionAt(ctx context.Context, my mysqlConn, at time.Time) (string, uint32, error) {
	files, err := s.binlogFiles(ctx)
	if err != nil {
		return "", 0, err
	}
	if len(files) == 0 {
		return "", 0, errors.New("the source lists no binlog files: is the binary log enabled (--log-bin)?")
	}
	created := make([]time.Time, len(files))
	createdAt := func(i int) (time.Time, error) {
		if created[i].IsZero() {
			t, err := s.fileCreated(ctx, my, files[i])
			if err != nil {
				return time.Time{}, err
			}
			created[i] = t
		}
		return created[i], nil
	}
	// The last file created at or before at.
	var searchErr error
	i := sort.Search(len(files), func(i int) bool {
		t, err := createdAt(i)
		if err != nil {
			searchErr = err
			return true
		}
		return t.After(at)
	}) - 1
	if searchErr != nil {
		return "", 0, searchErr
	}
	if i < 0 {
		first, _ := createdAt(0)
		return "", 0, fmt.Errorf("cdc_start_position %s is before the oldest binlog the source still has (%s, started %s): the changes made before that are purged; give a later time, or use migration: full-load-and-cdc",
			at.UTC().Format(time.RFC3339), files[0], first.UTC().Format(time.RFC3339))
	}
	return s.scanFrom(ctx, my, files[i], at)
}

// mysqlConn is what a replication connection needs.
type mysqlConn struct {
	host           string
	port           int
	user, password string
	serverID       uint32
}

func (s *source) syncer(my mysqlConn) *replication.BinlogSyncer {
	return replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: my.serverID, Flavor: s.flavor, Host: my.host, Port: uint16(my.port),
		User: my.user, Password: my.password, Charset: "utf8mb4", TLSConfig: s.tls,
		MaxReconnectAttempts: 1, EventCacheCount: eventReadAhead, Logger: slog.New(discardHandler{}),
	})
}

// fileCreated is when a binlog file was started: its format description
// event's time.
func (s *source) fileCreated(ctx context.Context, my mysqlConn, file string) (time.Time, error) {
	sy := s.syncer(my)
	defer sy.Close()
	st, err := sy.StartSync(mysql.Position{Name: file, Pos: 4})
	if err != nil {
		return time.Time{}, fmt.Errorf("reading binlog %s: %w", file, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("reading binlog %s: %w", file, err)
		}
		if _, ok := ev.Event.(*replication.FormatDescriptionEvent); ok && ev.Header.Timestamp > 0 {
			return time.Unix(int64(ev.Header.Timestamp), 0), nil
		}
	}
}

// scanFrom reads the binlog from file's start and returns the start of the
// first transaction stamped at or after at, or the binlog's end when none
// is yet.
func (s *source) scanFrom(ctx context.Context, my mysqlConn, file string, at time.Time) (string, uint32, error) {
	sy := s.syncer(my)
	defer sy.Close()
	st, err := sy.StartSync(mysql.Position{Name: file, Pos: 4})
	if err != nil {
		return "", 0, fmt.Errorf("reading binlog %s: %w", file, err)
	}
	endFile, endPos, err := s.binlogPosition(ctx)
	if err != nil {
		return "", 0, err
	}
	cur := file
	inTx := false
	for {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ev, err := st.GetEvent(ectx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return endFile, endPos, nil // nothing after the end yet
			}
			return "", 0, fmt.Errorf("reading binlog %s: %w", cur, err)
		}
		h := ev.Header
		start := h.LogPos - min(h.LogPos, h.EventSize)
		begins := false
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			cur = string(e.NextLogName)
			continue
		case *replication.MariadbGTIDEvent, *replication.GTIDEvent:
			begins, inTx = true, true
		case *replication.QueryEvent:
			q := strings.ToUpper(strings.TrimSpace(string(e.Query)))
			switch {
			case q == "BEGIN":
				begins, inTx = !inTx, true
			case q == "COMMIT":
				inTx = false
			default:
				begins = !inTx // a DDL outside a transaction
			}
		case *replication.XIDEvent:
			inTx = false
		}
		if begins && h.Timestamp > 0 && !time.Unix(int64(h.Timestamp), 0).Before(at) {
			return cur, start, nil
		}
		if cur == endFile && h.LogPos >= endPos {
			return endFile, endPos, nil
		}
	}
}
