package memstream_test

import (
	"testing"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/memstream"
	"github.com/binlake/binlake/internal/stream/streamtest"
)

func TestConformance(t *testing.T) {
	streamtest.Run(t, func(t *testing.T, partitions int) (stream.Producer, func() stream.Consumer) {
		l := memstream.New()
		return l.Producer(), func() stream.Consumer { return l.Consumer() }
	}, streamtest.Options{})
}
