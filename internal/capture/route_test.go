package capture

import (
	"fmt"
	"testing"

	"github.com/binlake/binlake/internal/change"
	"github.com/binlake/binlake/internal/config"
	"github.com/binlake/binlake/internal/stream/memstream"
)

// TestRoutingKeyPolicy checks stream.partition_key: by default the rows of
// a table spread over the partitions by primary key; with schema-table
// every row of a table lands on the table's one partition, and the message
// key stays the row's partition key.
func TestRoutingKeyPolicy(t *testing.T) {
	for _, policy := range []string{config.PartitionByPrimaryKey, config.PartitionByTable} {
		t.Run(policy, func(t *testing.T) {
			cfg := &config.Config{Stream: config.Stream{Partitions: 8, PartitionKey: policy}}
			log := memstream.New()
			c := New(Options{Config: cfg, Producer: log.Producer()})
			c.out = newEmitter(c.prod)
			defer c.out.close()
			for _, table := range []string{"wp_posts", "wp_options"} {
				parts := map[int]bool{}
				for id := range 100 {
					rec := &change.Record{Schema: "wordpress-db", Table: table}
					partitionKey(rec, change.Row{{Name: "id", Value: int64(id)}}, []int{0})
					if want := fmt.Sprintf("wordpress-db.%s.%d", table, id); rec.PartitionKey != want {
						t.Fatalf("partition key %q, want %q", rec.PartitionKey, want)
					}
					parts[c.partition(c.routingKey(rec))] = true
				}
				// A control record: on every partition, or on the table's.
				ddl := &change.Record{Schema: "wordpress-db", Table: table, Op: change.OpDropTable,
					Position: change.Position{File: 1, Offset: 4, Kind: change.KindEvent}}
				if err := c.broadcast(t.Context(), ddl); err != nil {
					t.Fatal(err)
				}
				if err := c.out.flush(t.Context()); err != nil {
					t.Fatal(err)
				}
				got, err := log.Consumer().Fetch(t.Context(), 100, 0)
				if err != nil {
					t.Fatal(err)
				}
				var copies []string
				for _, m := range got {
					if m.Table == "wordpress-db."+table {
						copies = append(copies, fmt.Sprintf("p%d:%s", m.Partition, m.Position[len(m.Position)-2:]))
						if err := m.Ack(t.Context()); err != nil {
							t.Fatal(err)
						}
					}
				}
				if policy == config.PartitionByTable {
					var p int
					for p = range parts {
					}
					if want := fmt.Sprintf("[p%d:00]", p); fmt.Sprint(copies) != want {
						t.Errorf("%s: control record copies %v, want %s", table, copies, want)
					}
				} else if len(copies) != 8 {
					t.Errorf("%s: control record copies %v, want one on each of 8 partitions", table, copies)
				}
				switch {
				case policy == config.PartitionByTable && len(parts) != 1:
					t.Errorf("%s: rows on %d partitions, want 1", table, len(parts))
				case policy == config.PartitionByPrimaryKey && len(parts) != 8:
					t.Errorf("%s: 100 rows on %d of 8 partitions", table, len(parts))
				}
			}
		})
	}
}
