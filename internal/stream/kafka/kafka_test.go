package kafka_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/kafka"
	"github.com/binlake/binlake/internal/stream/streamtest"
)

// newCluster starts an in-process Kafka cluster (kfake) whose brokers
// accept messages of at most 1 MiB.
func newCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(1 << 20)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func TestConformance(t *testing.T) {
	brokers := newCluster(t)
	n := 0
	streamtest.Run(t, func(t *testing.T, partitions int) streamtest.Backend {
		n++
		dir := t.TempDir()
		st, err := kafka.Open(t.Context(), kafka.Options{
			Brokers: brokers, Topic: fmt.Sprintf("binlake.conf%d", n), Partitions: partitions, Create: true,
			MaxMessageBytes: 1 << 20, StateDir: dir,
		})
		if err != nil {
			t.Fatal(err)
		}
		return streamtest.Backend{
			Producer: func() stream.Producer {
				prod, err := st.Producer()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { prod.Close() })
				return prod
			},
			Consumer: func() stream.Consumer {
				c, err := st.Consumer(t.Context(), "deliver")
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
		}
	}, streamtest.Options{})
}

func TestTooFewPartitions(t *testing.T) {
	brokers := newCluster(t)
	if _, err := kafka.Open(t.Context(), kafka.Options{Brokers: brokers, Topic: "small", Partitions: 2, Create: true, StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if _, err := kafka.Open(t.Context(), kafka.Options{Brokers: brokers, Topic: "small", Partitions: 4, Create: true, StateDir: t.TempDir()}); err == nil {
		t.Fatal("a topic with 2 partitions was accepted for 4")
	}
	if _, err := kafka.Open(t.Context(), kafka.Options{Brokers: brokers, Topic: "missing", Partitions: 1, Create: false, StateDir: t.TempDir()}); err == nil {
		t.Fatal("a missing topic was accepted with create: false")
	}
}
