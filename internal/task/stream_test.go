package task_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/binlake/binlake/internal/objstore"
	"github.com/binlake/binlake/internal/task"
	"github.com/binlake/binlake/internal/testbed"
)

// streamBackends give the config of each stream type for the end-to-end
// test, starting the server the backend needs.
var streamBackends = map[string]func(t *testing.T) string{
	"embedded": func(t *testing.T) string { return "" },
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
func TestEndToEndStreams(t *testing.T) {
	for name, backend := range streamBackends {
		t.Run(name, func(t *testing.T) {
			extra := backend(t)
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
		})
	}
}
