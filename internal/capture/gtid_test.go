package capture_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// compareShop compares each of tables in the lake's replay with the source
// read over cfg's connection.
func compareShop(t *testing.T, lt *lakeTask, tables ...string) lake.Replay {
	t.Helper()
	rp := lt.replay(t)
	if len(rp.Duplicates) > 0 {
		t.Errorf("%d records are in the lake twice, e.g. %s", len(rp.Duplicates), rp.Duplicates[0])
	}
	for _, name := range tables {
		src, err := capture.ReadTable(t.Context(), lt.cfg.Source.MySQL, "shop", name)
		if err != nil {
			t.Fatal(err)
		}
		got := rp.Tables["shop."+name]
		for i, x := range lake.Compare(got, src) {
			if i == 10 {
				t.Errorf("%s: ...", name)
				break
			}
			t.Errorf("%s: %s", name, x)
		}
		if len(src) == 0 {
			t.Errorf("%s: the source table is empty: the test shows nothing", name)
		}
	}
	return rp
}

// purgeAll purges every binlog but the current one. MariaDB keeps a
// binlog until its binlog checkpoint has moved on (asynchronously) and no
// dump thread reads it: it purges until the first is gone.
func purgeAll(t *testing.T, m *testbed.MariaDB) {
	t.Helper()
	mdb, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer mdb.Close()
	waitUntil(t, 30*time.Second, func() bool {
		end := strings.Split(m.BinlogEnd(t), ":")[0]
		if err := m.Exec(t.Context(), fmt.Sprintf("PURGE BINARY LOGS TO '%s'", end)); err != nil {
			t.Fatal(err)
		}
		var first string
		rows, err := mdb.QueryContext(t.Context(), "SHOW BINARY LOGS")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		if rows.Next() {
			vals := make([]any, len(cols))
			vals[0] = &first
			for i := 1; i < len(vals); i++ {
				vals[i] = new(any)
			}
			if err := rows.Scan(vals...); err != nil {
				t.Fatal(err)
			}
		}
		return first != "mysql-bin.000001"
	})
}

// purgedCheckpoint loads a table, lets CDC run, stops binlake, then
// changes the source (deletes among the changes) and purges the binlog the
// checkpoint points into.
func purgedCheckpoint(t *testing.T, extra string) (*testbed.MariaDB, *lakeTask) {
	t.Helper()
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO shop.items SELECT seq, CONCAT('v', seq) FROM shop.seq_1_to_300"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, m, "full_load: {chunk_size: 100"+extra+"}")
	lt.start(t)
	if err := m.Exec(t.Context(), "UPDATE shop.items SET v = 'cdc' WHERE id <= 10"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	if err := m.Exec(t.Context(), "DELETE FROM shop.items WHERE id BETWEEN 50 AND 59",
		"UPDATE shop.items SET v = 'gap' WHERE id BETWEEN 100 AND 104",
		"INSERT INTO shop.items VALUES (1000, 'new')",
		"FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	purgeAll(t, m)
	return m, lt
}

// resnapshotted checks the lake after a resnapshot: changes made after it
// arrive, the replay equals the source (the rows deleted during the gap
// gone), and the reload started with a truncate-table record at epoch 1.
func resnapshotted(t *testing.T, m *testbed.MariaDB, lt *lakeTask) {
	t.Helper()
	if err := m.Exec(t.Context(), "UPDATE shop.items SET v = 'after' WHERE id = 1000", "DELETE FROM shop.items WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	compareShop(t, lt, "items")
	var marks []string
	for _, r := range lt.records(t, "items") {
		if r.meta("operation") == "truncate-table" {
			marks = append(marks, r.meta("stream-position"))
		}
	}
	if len(marks) == 0 {
		t.Fatalf("no truncate-table record of the resnapshot in the lake")
	}
	for _, p := range marks {
		pos, err := change.ParsePosition(p)
		if err != nil || pos.Epoch != 1 {
			t.Errorf("resnapshot marker at %s (%v), want epoch 1", p, err)
		}
	}
}

// checkpointFinding is binlake check's finding on the task's checkpoint,
// nil if none.
func checkpointFinding(t *testing.T, lt *lakeTask) *capture.Finding {
	t.Helper()
	for _, f := range capture.Preflight(t.Context(), lt.cfg) {
		if f.Check == "checkpoint" {
			return &f
		}
	}
	return nil
}

// TestResnapshotAfterPurge: the checkpoint's binlog is purged while binlake
// is stopped. binlake run refuses to start with the purge spelled out and
// the --resnapshot remedy; binlake check says the same; with the resnapshot
// requested, every table is loaded again behind a truncate-table record, and
// the lake's replay equals the source.
func TestResnapshotAfterPurge(t *testing.T) {
	m, lt := purgedCheckpoint(t, "")
	purged := checkpointFinding(t, lt)
	if purged == nil || purged.Level != capture.LevelFail || !strings.Contains(purged.Detail, "mysql-bin.000001") ||
		!strings.Contains(purged.Detail, "purged") || !strings.Contains(purged.Fix, "--resnapshot") ||
		!strings.Contains(purged.Fix, "on_binlog_loss: resnapshot") {
		t.Fatalf("preflight checkpoint finding: %+v, want a failure naming the purged binlog, --resnapshot and on_binlog_loss", purged)
	}
	tk := task.New(lt.cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)))
	err := tk.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "--resnapshot") || !strings.Contains(err.Error(), "no longer on the source") {
		t.Fatalf("run on a purged checkpoint: %v, want the purge and the --resnapshot remedy", err)
	}
	if err := capture.RequestResnapshot(lt.cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	lt.start(t)
	resnapshotted(t, m, lt)
}

// TestResnapshotWhenBinlogLost: with full_load.on_binlog_loss: resnapshot
// the same purge makes binlake load every table again by itself, with a
// warning, and the lake's replay equals the source.
func TestResnapshotWhenBinlogLost(t *testing.T) {
	m, lt := purgedCheckpoint(t, ", on_binlog_loss: resnapshot")
	lost := checkpointFinding(t, lt)
	if lost == nil || lost.Level != capture.LevelWarn || !strings.Contains(lost.Detail, "loads every selected table again") {
		t.Fatalf("preflight checkpoint finding: %+v, want a warning that run loads the tables again", lost)
	}
	lt.start(t)
	if !strings.Contains(lt.logs.String(), "full_load.on_binlog_loss: resnapshot") {
		t.Error("no warning that the tables are loaded again")
	}
	resnapshotted(t, m, lt)
}

// TestFailoverByGTID: binlake reads a primary whose replica logs what it
// applies. binlake stops; the primary goes on a little, the replica
// catches up and is promoted, and the writes continue there. binlake,
// pointed at the replica, sees another server_id, resumes after the
// checkpoint's GTID set one epoch up, and the lake equals the new primary:
// the changes made on the old primary after the stop are there once, those
// before it are not there twice.
func TestFailoverByGTID(t *testing.T) {
	primary, replica := primaryAndReplica(t)
	if err := primary.Exec(t.Context(), "CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO shop.items SELECT seq, CONCAT('v', seq) FROM shop.seq_1_to_200"); err != nil {
		t.Fatal(err)
	}
	lt := newLakeTask(t, primary, "")
	lt.start(t)
	for i := range 20 {
		if err := primary.Exec(t.Context(), fmt.Sprintf("UPDATE shop.items SET v = 'p%d' WHERE id = %d", i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	lt.drain(t)
	before := captureState(t, lt.cfg.StateDir)
	if before.GTIDSet == "" || before.ServerID != 1 {
		t.Fatalf("checkpoint: gtid_set %q, server_id %d: want a GTID set read on server 1", before.GTIDSet, before.ServerID)
	}

	// The old primary goes on after binlake stopped; the replica applies it.
	if err := primary.Exec(t.Context(), "UPDATE shop.items SET v = 'late' WHERE id BETWEEN 30 AND 39",
		"DELETE FROM shop.items WHERE id BETWEEN 40 AND 44", "INSERT INTO shop.items VALUES (500, 'late')"); err != nil {
		t.Fatal(err)
	}
	promote(t, primary, replica)
	if err := replica.Exec(t.Context(), "UPDATE shop.items SET v = 'new primary' WHERE id BETWEEN 100 AND 109", "INSERT INTO shop.items VALUES (600, 'r')"); err != nil {
		t.Fatal(err)
	}

	lt.m = replica
	lt.cfg.Source.MySQL.Port = replica.Port
	lt.start(t)
	if err := replica.Exec(t.Context(), "DELETE FROM shop.items WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	lt.drain(t)
	compareShop(t, lt, "items")
	after := captureState(t, lt.cfg.StateDir)
	if after.Epoch != before.Epoch+1 || after.ServerID != 2 {
		t.Errorf("after the fail-over: epoch %d, server_id %d; want epoch %d on server 2", after.Epoch, after.ServerID, before.Epoch+1)
	}
	var late int
	for _, r := range lt.records(t, "items") {
		if strings.Contains(r.line, `"late"`) {
			late++
			if pos, err := change.ParsePosition(r.meta("stream-position")); err != nil || pos.Epoch != before.Epoch+1 {
				t.Errorf("a change read on the new primary at %s, want epoch %d", r.meta("stream-position"), before.Epoch+1)
			}
		}
	}
	if late != 11 {
		t.Errorf("%d records of the old primary's last changes, want 11 (10 updates, 1 insert), each once", late)
	}
}

// primaryAndReplica starts a MariaDB primary (server_id 1) and a replica
// (server_id 2) that replicates it by GTID and logs what it applies, in
// binlog files of other names and offsets than the primary's, as two
// servers' binlogs are.
func primaryAndReplica(t *testing.T) (primary, replica *testbed.MariaDB) {
	t.Helper()
	primary = testbed.NewMariaDB(t)
	replica = testbed.NewMariaDBWith(t, "--server-id=2", "--log-slave-updates")
	if err := replica.Exec(t.Context(), fmt.Sprintf(
		"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos", primary.Port),
		"START SLAVE", "FLUSH BINARY LOGS", "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	return primary, replica
}

// promote waits until the replica has applied everything the primary
// logged, and makes it a primary.
func promote(t *testing.T, primary, replica *testbed.MariaDB) {
	t.Helper()
	var gtid string
	db, err := primary.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRowContext(t.Context(), "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	rdb, err := replica.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var waited int
	if err := rdb.QueryRowContext(t.Context(), "SELECT MASTER_GTID_WAIT(?, 30)", gtid).Scan(&waited); err != nil || waited != 0 {
		t.Fatalf("replica did not catch up with %s: %d %v", gtid, waited, err)
	}
	if err := replica.Exec(t.Context(), "STOP SLAVE", "RESET SLAVE ALL"); err != nil {
		t.Fatal(err)
	}
}

// behindVIP starts a primary with shop.items of rows rows, its replica, a
// proxy to the primary standing for a virtual IP or a DNS name, and a task
// reading the primary through the proxy, its full load done.
func behindVIP(t *testing.T, rows int) (primary, replica *testbed.MariaDB, vip *testbed.TCPProxy, lt *lakeTask) {
	t.Helper()
	primary, replica = primaryAndReplica(t)
	if err := primary.Exec(t.Context(), "CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(20))",
		fmt.Sprintf("INSERT INTO shop.items SELECT seq, CONCAT('v', seq) FROM shop.seq_1_to_%d", rows)); err != nil {
		t.Fatal(err)
	}
	vip = testbed.NewTCPProxy(t, fmt.Sprintf("127.0.0.1:%d", primary.Port))
	lt = newLakeTask(t, primary, "")
	lt.cfg.Source.MySQL.Port = vip.Port
	lt.start(t)
	return primary, replica, vip, lt
}

// TestFailoverWhileRunning: binlake reads a primary through an address that
// moves to the promoted replica while binlake runs (a proxy standing for a
// virtual IP or a database endpoint's DNS name), as writes go on. On the
// reconnection binlake sees another server_id and resumes after the GTID
// set it has published, one epoch up, without a restart: the lake equals
// the new primary, nothing twice, and what was read on the new primary is
// at the higher epoch. Without following the fail-over it would read the
// new server's binlog at the old one's file and offset.
func TestFailoverWhileRunning(t *testing.T) {
	primary, replica, vip, lt := behindVIP(t, 200)
	for i := range 20 {
		if err := primary.Exec(t.Context(), fmt.Sprintf("UPDATE shop.items SET v = 'p%d' WHERE id = %d", i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 60*time.Second, func() bool { return lt.tk.Status().SourcePosition == primary.BinlogEnd(t) })
	before := lt.tk.Status()
	if err := primary.Exec(t.Context(), "UPDATE shop.items SET v = 'late' WHERE id BETWEEN 30 AND 39",
		"DELETE FROM shop.items WHERE id BETWEEN 40 AND 44", "INSERT INTO shop.items VALUES (500, 'late')"); err != nil {
		t.Fatal(err)
	}
	promote(t, primary, replica)
	vip.Switch(fmt.Sprintf("127.0.0.1:%d", replica.Port))
	if err := replica.Exec(t.Context(), "UPDATE shop.items SET v = 'new primary' WHERE id BETWEEN 100 AND 109",
		"INSERT INTO shop.items VALUES (600, 'r')", "DELETE FROM shop.items WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	drainOnNewPrimary(t, lt, replica, before.SourcePosition)
	var onNew int
	for _, r := range lt.records(t, "items") {
		if strings.Contains(r.line, `"new primary"`) || strings.Contains(r.line, `"r"`) {
			onNew++
			if pos, err := change.ParsePosition(r.meta("stream-position")); err != nil || pos.Epoch != 1 {
				t.Errorf("a change made on the new primary at %s, want epoch 1", r.meta("stream-position"))
			}
		}
	}
	if onNew != 11 {
		t.Errorf("%d records of the changes made on the new primary, want 11 (10 updates, 1 insert)", onNew)
	}
	if !strings.Contains(lt.logs.String(), "a fail-over?") {
		t.Errorf("no warning about the fail-over in the log")
	}
}

// TestFailoverDuringDial: the address moves to the promoted replica after
// capture checked the server_id (on the old primary) and before its binlog
// connection is made, which then reaches the new server. Asked again once
// connected, the server_id tells, and capture reads again by GTID set, one
// epoch up, instead of reading the new server at the old one's position.
func TestFailoverDuringDial(t *testing.T) {
	primary, replica, vip, lt := behindVIP(t, 100)
	if err := primary.Exec(t.Context(), "UPDATE shop.items SET v = 'before' WHERE id <= 5"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, func() bool { return lt.tk.Status().SourcePosition == primary.BinlogEnd(t) })
	promote(t, primary, replica)
	var once sync.Once
	capture.SetBinlogDialHook(t, vip.Port, func() {
		once.Do(func() { vip.Switch(fmt.Sprintf("127.0.0.1:%d", replica.Port)) })
	})
	vip.Switch(fmt.Sprintf("127.0.0.1:%d", primary.Port)) // a reconnection, still to the primary
	if err := replica.Exec(t.Context(), "UPDATE shop.items SET v = 'new primary' WHERE id BETWEEN 10 AND 14"); err != nil {
		t.Fatal(err)
	}
	drainOnNewPrimary(t, lt, replica, "")
	if !strings.Contains(lt.logs.String(), "while the binlog connection was made") {
		t.Errorf("the fail-over was not caught after the binlog connection was made")
	}
}

// TestStartAtGTIDSet: migration cdc with cdc_start_position as a GTID set
// starts right after the transactions the set holds.
func TestStartAtGTIDSet(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO shop.items VALUES (1, 'before')"); err != nil {
		t.Fatal(err)
	}
	db, err := m.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var gtid string
	if err := db.QueryRowContext(t.Context(), "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(t.Context(), "INSERT INTO shop.items VALUES (2, 'after')", "UPDATE shop.items SET v = 'changed' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	got := cdcFrom(t, m, gtid)
	if want := `[insert 2 "after" update 1 "changed"]`; fmt.Sprint(got) != want {
		t.Errorf("records after GTID %s: %v, want %s", gtid, got, want)
	}
}

// TestStartAtTime: migration cdc with cdc_start_position as a time starts
// at the first transaction stamped at or after it, found across binlog
// files; a time before the oldest binlog is refused.
func TestStartAtTime(t *testing.T) {
	m := testbed.NewMariaDB(t)
	if err := m.Exec(t.Context(), "CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO shop.items VALUES (1, 'before')", "FLUSH BINARY LOGS",
		"INSERT INTO shop.items VALUES (2, 'before')"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	at := time.Now().Truncate(time.Second)
	if err := m.Exec(t.Context(), "INSERT INTO shop.items VALUES (3, 'after')", "UPDATE shop.items SET v = 'changed' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	got := cdcFrom(t, m, at.UTC().Format(time.RFC3339))
	if want := `[insert 3 "after" update 1 "changed"]`; fmt.Sprint(got) != want {
		t.Errorf("records from %s: %v, want %s", at, got, want)
	}

	early := newLakeTask(t, m, "migration: cdc\ncdc_start_position: \"2001-01-01T00:00:00Z\"\n")
	err := task.New(early.cfg, slog.New(slog.NewTextHandler(testLog{t}, nil))).Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "before the oldest binlog") {
		t.Errorf("a time before the oldest binlog: %v, want it refused", err)
	}
}

// cdcFrom runs a CDC task on shop.items from cdc_start_position start until
// it has read the binlog to its end, and returns its data records as
// "operation id v".
func cdcFrom(t *testing.T, m *testbed.MariaDB, start string) []string {
	t.Helper()
	lt := newLakeTask(t, m, fmt.Sprintf("migration: cdc\ncdc_start_position: %q\n", start))
	lt.tk = task.New(lt.cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)))
	ctx, stop := context.WithCancel(t.Context())
	lt.stop, lt.done = stop, make(chan error, 1)
	go func() { lt.done <- lt.tk.Run(ctx) }()
	lt.drain(t)
	var got []string
	for _, r := range lt.records(t, "items") {
		if r.meta("record-type") == "data" {
			got = append(got, r.meta("operation")+" "+string(r.data["id"])+" "+string(r.data["v"]))
		}
	}
	return got
}

// drainOnNewPrimary drains a task whose source failed over to replica
// (server_id 2), and checks that it did not fail, that the lake equals
// shop.items on the replica, and that capture follows the replica one
// epoch up. before is the source position before the fail-over, for the
// message, or empty.
func drainOnNewPrimary(t *testing.T, lt *lakeTask, replica *testbed.MariaDB, before string) {
	t.Helper()
	lt.m = replica
	lt.drain(t)
	if st := lt.tk.Status(); st.Status == task.StatusFailed {
		t.Fatalf("the task failed at the fail-over: %s", st.Reason)
	}
	compareShop(t, lt, "items")
	if after := captureState(t, lt.cfg.StateDir); after.ServerID != 2 || after.Epoch != 1 {
		t.Errorf("after the fail-over: server_id %d, epoch %d; want server 2 at epoch 1 (source position before: %s)", after.ServerID, after.Epoch, before)
	}
}
