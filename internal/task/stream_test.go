package task_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// streamBackends give the config of each stream type for the end-to-end
// test, starting the server the backend needs.
var streamBackends = map[string]func(t *testing.T) string{
	"embedded": func(t *testing.T) string { return "stream:\n  type: embedded\n" },
	// An external nats-server over TCP with the default 1 MiB max_payload:
	// the WordPress post bodies of several MiB travel in chunks.
	"nats": func(t *testing.T) string {
		ns, err := server.NewServer(&server.Options{
			Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
			MaxPayload: 1 << 20, NoSigs: true, NoLog: true,
			Username: "binlake", Password: "pw",
		})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(30 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		return fmt.Sprintf("stream:\n  type: nats\n  nats: {urls: [%q], user: binlake, password: pw}\n", ns.ClientURL())
	},
	"kinesis": func(t *testing.T) string {
		k := testbed.NewKinesalite(t)
		return fmt.Sprintf("stream:\n  type: kinesis\n  kinesis: {stream_name: wordpress-cdc, shards: 2, endpoint: %q, region: %s, access_key_id: %s, secret_access_key: %s}\n",
			k.Endpoint, k.Region, k.AccessKey, k.SecretKey)
	},
	// An in-process Kafka cluster whose brokers take messages of at most
	// 1 MiB: large rows travel in chunks.
	"kafka": func(t *testing.T) string {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "1048576"}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return fmt.Sprintf("stream:\n  type: kafka\n  kafka: {brokers: [%q]}\n", c.ListenAddrs()[0])
	},
}

// TestEndToEndStreams is TestEndToEnd through each stream backend: full
// load with changes during and after it, a DDL, drain on stop, and a lake
// that replays to exactly the source without a duplicate.
//
// Each backend runs in its default message mode and in the other one
// (stream.dms_compatible), and the embedded stream also with
// stream.partition_key: schema-table, where every table's objects must come
// from one partition.
func TestEndToEndStreams(t *testing.T) {
	cases := []struct{ name, backend, stream string }{
		{"embedded", "embedded", ""},
		{"embedded/dms_compatible", "embedded", "dms_compatible: true"},
		{"embedded/schema-table", "embedded", "partition_key: schema-table"},
		{"nats", "nats", ""},
		{"nats/dms_compatible", "nats", "dms_compatible: true"},
		{"kinesis", "kinesis", ""},
		{"kinesis/batched", "kinesis", "dms_compatible: false"},
		{"kafka", "kafka", ""},
		{"kafka/dms_compatible", "kafka", "dms_compatible: true"},
	}
	for _, tc := range cases {
		name := tc.backend
		t.Run(tc.name, func(t *testing.T) {
			extra := streamBackends[name](t)
			if tc.stream != "" {
				extra += "  " + tc.stream + "\n"
			}
			m := startWordPress(t, 200)
			dir := t.TempDir()
			bucket, err := objstore.NewFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t, m, "file://"+dir, extra)
			if cfg.Stream.Type != name {
				t.Fatalf("stream.type = %s", cfg.Stream.Type)
			}
			db, err := m.Open("")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			work := testbed.NewWorkload(db, testbed.WordPressDB, 3)
			for range 20 {
				if err := work.Step(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			workCtx, stopWork := context.WithCancel(t.Context())
			workDone := make(chan error, 1)
			go func() { workDone <- work.Run(workCtx, 0) }()

			tk := task.New(cfg, logger(t))
			ctx, stop := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- tk.Run(ctx) }()
			waitFor(t, 90*time.Second, func() bool { return tk.Status().Detail == "Load complete, replication ongoing" })
			time.Sleep(2 * time.Second)
			stopWork()
			if err := <-workDone; err != nil {
				t.Fatal(err)
			}
			if err := m.Exec(t.Context(), "ALTER TABLE `wordpress-db`.wp_options ADD COLUMN note varchar(20) NULL",
				"UPDATE `wordpress-db`.wp_options SET note = CONCAT('after-alter-', option_id)"); err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, tk, m)
			stop()
			if err := <-done; err != nil {
				t.Fatalf("task: %v", err)
			}
			rp := assertLakeEqualsSource(t, bucket, cfg, false)
			checkValues(t, rp)
			checkStats(t, tk.Status(), rp)
			// The stream's own view of delivery's progress, after the drain.
			st := tk.Status()
			switch {
			case name == "kinesis" && (st.StreamLagSeconds == nil || st.StreamBacklog != nil):
				t.Errorf("kinesis: stream_lag_seconds %v, stream_backlog_messages %v: want MillisBehindLatest only", st.StreamLagSeconds, st.StreamBacklog)
			case name != "kinesis" && (st.StreamBacklog == nil || *st.StreamBacklog != 0 || st.StreamLagSeconds != nil):
				t.Errorf("%s: stream_backlog_messages %v after the drain, stream_lag_seconds %v: want a backlog of 0", name, st.StreamBacklog, st.StreamLagSeconds)
			}
			parts := objectPartitions(t, dir)
			for table, ps := range parts {
				if cfg.Stream.PartitionKey == config.PartitionByTable && len(ps) != 1 {
					t.Errorf("partition_key schema-table: %s has objects from partitions %v", table, ps)
				}
			}
			if cfg.Stream.PartitionKey == config.PartitionByPrimaryKey && len(parts["wordpress-db.wp_posts"]) < 2 {
				t.Errorf("partition_key primary-key: wp_posts has objects from partitions %v only", parts["wordpress-db.wp_posts"])
			}
		})
	}
}

// objectPartitions lists, per table, the partitions of the data objects
// under dir (object names end in <task>-<schema.table>-pNNNN-<first>-<last>.ext).
func objectPartitions(t *testing.T, dir string) map[string][]int {
	t.Helper()
	name := regexp.MustCompile(`^wordpress-(.+)-p(\d{4})-\d+-\d+\.`)
	out := map[string][]int{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		m := name.FindStringSubmatch(d.Name())
		if m == nil {
			return nil
		}
		p, _ := strconv.Atoi(m[2])
		if !slices.Contains(out[m[1]], p) {
			out[m[1]] = append(out[m[1]], p)
			slices.Sort(out[m[1]])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no data objects in the lake")
	}
	return out
}
