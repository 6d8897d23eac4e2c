package main_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/binlake/binlake/internal/capture"
	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/lake"
	"github.com/binlake/binlake/internal/lakehouse"
	"github.com/binlake/binlake/internal/objectkey"
	"github.com/binlake/binlake/internal/testbed"
)

// icebergKillPoint is a moment of an Iceberg commit, known by the file it
// creates under the warehouse, at which the test SIGKILLs binlake.
type icebergKillPoint struct {
	name  string
	match func(base string) bool
	// upTo: the kill waits a random time up to this long after the file
	// appears (0: none).
	upTo time.Duration
	// claims: the kill is meant to land between a version's claim and its
	// publication.
	claims bool
}

var (
	tempMetadata = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.metadata\.json$`)
	published    = regexp.MustCompile(`^v[0-9]+\.metadata\.json$`)
)

// icebergKillPoints are taken in turn: the steps of iceberg-go's commit
// to a file catalog, from the data files to the version's publication.
var icebergKillPoints = []icebergKillPoint{
	{"while its data files are written", func(b string) bool { return strings.HasSuffix(b, ".parquet") }, 3 * time.Millisecond, false},
	{"as its manifest list is written", func(b string) bool { return strings.HasPrefix(b, "snap-") }, 0, false},
	{"as its new metadata is written, unclaimed", tempMetadata.MatchString, 0, false},
	{"between claiming a version and publishing it", func(b string) bool { return strings.HasSuffix(b, ".metadata.json.claim") }, 0, true},
	{"as the version is published, before the table's version hint and the run's next tables", published.MatchString, 0, false},
}

// icebergKillTables are the tables whose commits the kills hit, in turn:
// before the ALTER TABLEs, then after them, when wp_comments's commit
// rewrites the table after its TRUNCATE, wp_options's rewrites it with a
// new column's default, and wp_users's evolves its schema.
var icebergKillTables = []string{"wp_comments", "wp_options", "wp_postmeta", "wp_posts", "wp_stats",
	"wp_comments", "wp_options", "wp_users", "wp_posts", "wp_postmeta"}

// TestIcebergKilledDuringCommits runs the real binary with delivery.tables
// iceberg (a commit a second per table) while the WordPress workload
// writes (updates, deletes, primary-key changes; ALTER TABLEs and a
// TRUNCATE half-way), and SIGKILLs it ten times in the commit of a table
// (each table in turn, icebergKillTables), at the steps of the commit in
// turn (icebergKillPoints), found by watching the warehouse's files appear
// (inotify): as data files are written, as the manifest list is, as the new
// metadata is, between claiming a version and publishing it, and just as it
// is published; it restarts it each time. (When the commit wins the race
// against the signal and publishes the version it claimed, the test leaves
// the claim of the next version, as a kill a moment sooner in the table's
// next commit would.) Then, with the source caught up:
//   - each table read back with iceberg-go (deletes applied) equals the
//     source exactly, no key twice;
//   - every snapshot of each table's history holds no key twice, and each
//     commit's last snapshot holds exactly the change log through the
//     stream-positions its summary names (binlake.partitions): for every key
//     the position of its last record at or before them, nothing later,
//     nothing missing; those positions only move forward from a commit to
//     the next, so the commits' ranges follow each other without gap or
//     overlap: each record is committed exactly once;
//   - the last commit holds the change log to its end;
//   - no run failed after a restart (a version claim a killed commit left
//     would block the table's commits for a minute), no claim is left, and
//     each table's version hint names its newest metadata version.
//
// One subtest per delete mode: merge-on-read, copy-on-write.
func TestIcebergKilledDuringCommits(t *testing.T) {
	for _, mode := range []string{"merge-on-read", "copy-on-write"} {
		t.Run(mode, func(t *testing.T) { icebergKills(t, mode) })
	}
}

// icebergKill is when the watcher kills binlake: at a point of a table's
// commit.
type icebergKill struct {
	table string
	point icebergKillPoint
}

func icebergKills(t *testing.T, mode string) {
	kills := len(icebergKillTables)
	m, db := testbed.NewWordPress(t, 150, 21)
	ctx := t.Context()
	dir := t.TempDir()
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	lakeDir := filepath.Join(dir, "lake")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	cfg := writeConfig(t, cfgPath, fmt.Sprintf(`task: wordpress
source: {mysql: {host: 127.0.0.1, port: %d, user: root}}
tables:
  - include: "wordpress-db.%%"
  - exclude: "wordpress-db.wp_sessions"
delivery:
  buffer: {size: 64KiB, interval: 300ms}
  prefix: "wordpress-db/"
  tables: iceberg
  iceberg: {delete_mode: %s}
  snapshot: {interval: 1s}
target: file://%s
state_dir: %s
http: {listen: %s}
`, m.Port, mode, lakeDir, filepath.Join(dir, "state"), addr))
	warehouse := lakehouse.IcebergWarehouse(lakeDir, "wordpress-db/")
	if err := os.MkdirAll(warehouse, 0o755); err != nil {
		t.Fatal(err)
	}

	// The watcher kills the running binlake as soon as the armed point's
	// file appears, from its own goroutine: no hop between the event and
	// the signal.
	rng := rand.New(rand.NewPCG(uint64(len(mode)), 9))
	var running atomic.Pointer[os.Process]
	var armed atomic.Pointer[icebergKill]
	hits := make(chan string, 1)
	testbed.WatchFiles(t, warehouse, func(path string) {
		at := armed.Load()
		table := filepath.Base(filepath.Dir(filepath.Dir(path))) // <table>/{data,metadata}/<file>
		if at == nil || table != at.table || !at.point.match(filepath.Base(path)) || !armed.CompareAndSwap(at, nil) {
			return
		}
		if at.point.upTo > 0 {
			time.Sleep(time.Duration(rng.Int64N(int64(at.point.upTo))))
		}
		running.Load().Signal(syscall.SIGKILL)
		hits <- path
	})

	work := testbed.NewWorkload(db, testbed.WordPressDB, 5)
	workCtx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- work.Run(workCtx, 100) }()

	logPath := filepath.Join(dir, "binlake.log")
	p := start(t, cfgPath, logPath)
	running.Store(p.cmd.Process)
	claimsLeft := 0
	for k := range kills {
		at := icebergKill{table: icebergKillTables[k], point: icebergKillPoints[k%len(icebergKillPoints)]}
		armed.Store(&at)
		select {
		case path := <-hits:
			<-p.done
			rel, _ := filepath.Rel(warehouse, path)
			left := claims(t, warehouse)
			planted := ""
			if at.point.claims && len(left) == 0 {
				// The commit published its version before the signal
				// landed: leave the claim of the table's next version, as
				// a kill a moment sooner in its next commit would.
				left = []string{plantClaim(t, filepath.Dir(path))}
				planted = ", planted"
			}
			claimsLeft += len(left)
			t.Logf("kill %d %s (%s); version claims left: %d%s", k+1, at.point.name, rel, len(left), planted)
		case <-time.After(60 * time.Second):
			t.Fatalf("kill %d: no commit of %s reached the point %q within 60 s\n%s", k+1, at.table, at.point.name, p.logTail())
		}
		p = start(t, cfgPath, logPath)
		running.Store(p.cmd.Process)
		if k == kills/2-1 {
			// Schema evolution, a rewrite and a truncate under the kills
			// to come, once every table has a commit in its first shape.
			waitIcebergTables(t, p, lakeDir)
			if err := m.Exec(ctx,
				"ALTER TABLE `wordpress-db`.wp_users RENAME COLUMN display_name TO public_name, DROP COLUMN user_status,"+
					" ADD COLUMN karma decimal(6,2) NOT NULL DEFAULT '1.5', ADD COLUMN nick varchar(20) NOT NULL AFTER user_login",
				"ALTER TABLE `wordpress-db`.wp_options ADD COLUMN snap_note varchar(30) DEFAULT 'fresh'",
				"TRUNCATE TABLE `wordpress-db`.wp_comments",
				"UPDATE `wordpress-db`.wp_users SET nick = 'changed', karma = 7.25 WHERE ID = 1",
				"UPDATE `wordpress-db`.wp_users SET ID = ID + 2000 WHERE ID = 3",
				"DELETE FROM `wordpress-db`.wp_users WHERE ID = 4",
			); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(2 * time.Second)
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatal(err)
	}
	waitCaptured(t, p, addr, m.BinlogEnd(t))
	stopGracefully(t, p)

	logText, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logText), "a run failed"); n > 0 {
		t.Errorf("%d Iceberg runs failed after the restarts\n%s", n, p.logTail())
	}
	if left := claims(t, warehouse); len(left) > 0 {
		t.Errorf("version claims left at the end: %q", left)
	}
	for _, name := range wordpressTables {
		meta := filepath.Join(warehouse, testbed.WordPressDB, name, "metadata")
		versions, _ := filepath.Glob(filepath.Join(meta, "v*.metadata.json"))
		hint, err := os.ReadFile(filepath.Join(meta, "version-hint.text"))
		if want := fmt.Sprint(len(versions)); err != nil || string(hint) != want {
			t.Errorf("%s: version hint %q (%v); the newest of the versions v1 to v%s", name, hint, err, want)
		}
	}

	recs := readLake(t, lakeDir, "wordpress-db/")
	if d := lake.ReplayRecords(recs).Duplicates; len(d) > 0 {
		t.Fatalf("the change log holds %d records twice, e.g. %s", len(d), d[0])
	}
	total, commits := 0, 0
	for _, name := range wordpressTables {
		src, err := capture.ReadTable(ctx, cfg.Source.MySQL, testbed.WordPressDB, name)
		if err != nil {
			t.Fatal(err)
		}
		got, mf, err := lakehouse.ReadIcebergTable(ctx, lakehouse.FileIceberg(lakeDir, "wordpress-db/"), testbed.WordPressDB, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if mf == nil {
			t.Fatalf("%s: no Iceberg table", name)
		}
		if len(mf.Inexact) > 0 {
			t.Errorf("%s: the table says it is not exact: %+v", name, mf.Inexact)
		}
		if len(got) != len(src) {
			t.Errorf("%s: iceberg-go reads %d rows, the source has %d", name, len(got), len(src))
		}
		bad := 0
		for key, row := range src {
			if have, ok := got[key]; !ok || !reflect.DeepEqual(have, lake.SourceRow(row)) {
				if bad++; bad <= 5 {
					t.Errorf("%s %s: source %v\niceberg %v", name, key, lake.SourceRow(row), have)
				}
			}
		}
		log := tableLog(recs, testbed.WordPressDB, name)
		if ends := log.ends(); !maps.Equal(mf.Partitions, ends) {
			t.Errorf("%s: the last commit holds the change log through %v; it ends at %v", name, mf.Partitions, ends)
		}
		n := checkIcebergHistory(t, lakeDir, name, log)
		total += len(src)
		commits += n
		t.Logf("%s: %d rows, generation %d, %d commits with snapshots checked", name, len(got), mf.Generation, n)
	}
	t.Logf("%d SIGKILLs during Iceberg commits (%s), leaving %d version claims; %d commits checked against the change log; the source's %d rows compared",
		kills, mode, claimsLeft, commits, total)
}

// waitIcebergTables waits until every WordPress table has an Iceberg
// table with a commit.
func waitIcebergTables(t *testing.T, p *proc, lakeDir string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range wordpressTables {
		for {
			_, mf, err := lakehouse.ReadIcebergTable(t.Context(), lakehouse.FileIceberg(lakeDir, "wordpress-db/"), testbed.WordPressDB, name)
			if err == nil && mf != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no Iceberg commit within 60 s (%v)\n%s", name, err, p.logTail())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// plantClaim leaves in the metadata directory meta the claim of the
// version after the newest, as a commit killed between claiming it and
// publishing it leaves it (its content: the metadata it was publishing),
// and returns its path.
func plantClaim(t *testing.T, meta string) string {
	t.Helper()
	versions, err := filepath.Glob(filepath.Join(meta, "v*.metadata.json"))
	if err != nil || len(versions) == 0 {
		t.Fatalf("no metadata version in %s (%v)", meta, err)
	}
	newest := filepath.Join(meta, fmt.Sprintf("v%d.metadata.json", len(versions)))
	body, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	claim := filepath.Join(meta, fmt.Sprintf("v%d.metadata.json.claim", len(versions)+1))
	if err := os.WriteFile(claim, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return claim
}

// claims lists the version claims (vN.metadata.json.claim) under the
// warehouse: those of a commit under way, or left by a killed one.
func claims(t *testing.T, warehouse string) []string {
	t.Helper()
	out, err := filepath.Glob(filepath.Join(warehouse, "*", "*", "metadata", "*.claim"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changeLog is a table's records in the change log, in stream-position
// order, with the partition each was delivered on.
type changeLog struct {
	recs  []lake.Record
	parts []int
}

func tableLog(recs []lake.Record, schema, table string) changeLog {
	var l changeLog
	sorted := slices.Clone(recs)
	slices.SortFunc(sorted, func(a, b lake.Record) int { return strings.Compare(a.Position, b.Position) })
	for _, r := range sorted {
		if r.Schema != schema || r.Table != table {
			continue
		}
		n, _ := objectkey.Parse(r.Object)
		l.recs = append(l.recs, r)
		l.parts = append(l.parts, n.Partition)
	}
	return l
}

// ends is the last position of each partition.
func (l changeLog) ends() map[int]string {
	out := map[int]string{}
	for i, r := range l.recs {
		out[l.parts[i]] = max(out[l.parts[i]], r.Position)
	}
	return out
}

// through replays the records at or before the positions of their
// partitions in through: each key's stream-position in the table then.
func (l changeLog) through(through map[int]string) map[string]string {
	out := map[string]string{}
	for i, r := range l.recs {
		if r.Position > through[l.parts[i]] {
			continue
		}
		switch {
		case r.Type == "data" && r.Op == string(change.OpDelete):
			delete(out, r.Key)
		case r.Type == "data":
			out[r.Key] = r.Position
		case r.Op == string(change.OpTruncateTable) || r.Op == string(change.OpDropTable):
			clear(out)
		}
	}
	return out
}

// checkIcebergHistory fails t unless every snapshot of table's history
// holds no key twice, the positions its summary names never go back, and
// the last snapshot of each commit (snapshots of one commit share their
// summary's positions) holds exactly the change log through them. It
// returns the number of commits checked.
func checkIcebergHistory(t *testing.T, lakeDir, table string, log changeLog) int {
	t.Helper()
	hist, err := lakehouse.IcebergHistory(t.Context(), lakehouse.FileIceberg(lakeDir, "wordpress-db/"), testbed.WordPressDB, table)
	if err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	commits := 0
	for i, s := range hist {
		if len(s.Duplicates) > 0 {
			t.Errorf("%s: snapshot %d (%s) holds %d keys twice, e.g. %s", table, s.ID, s.Operation, len(s.Duplicates), s.Duplicates[0])
		}
		if len(s.Partitions) == 0 {
			t.Errorf("%s: snapshot %d (%s) names no stream-positions in its summary", table, s.ID, s.Operation)
			continue
		}
		if i > 0 {
			for p, pos := range hist[i-1].Partitions {
				if s.Partitions[p] < pos {
					t.Errorf("%s: snapshot %d holds partition %d through %s, the snapshot before it through %s", table, s.ID, p, s.Partitions[p], pos)
				}
			}
		}
		if i+1 < len(hist) && maps.Equal(hist[i+1].Partitions, s.Partitions) {
			continue // not the commit's last snapshot
		}
		commits++
		want := log.through(s.Partitions)
		var bad []string
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if got, ok := s.Positions[k]; !ok || got != want[k] {
				bad = append(bad, fmt.Sprintf("key %s at %q, the change log has it at %s", k, got, want[k]))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(s.Positions)) {
			if _, ok := want[k]; !ok {
				bad = append(bad, fmt.Sprintf("key %s at %s, not in the change log through those positions", k, s.Positions[k]))
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s: snapshot %d (%s), through %v, differs from the change log in %d keys:\n%s",
				table, s.ID, s.Operation, s.Partitions, len(bad), strings.Join(bad[:min(len(bad), 5)], "\n"))
		}
	}
	return commits
}
