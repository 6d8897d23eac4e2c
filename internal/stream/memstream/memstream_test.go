package memstream_test

import (
	"testing"

	"github.com/binlake/binlake/internal/stream"
	"github.com/binlake/binlake/internal/stream/memstream"
	"github.com/binlake/binlake/internal/stream/streamtest"
)

func TestConformance(t *testing.T) {
	streamtest.Run(t, func(t *testing.T, partitions int) streamtest.Backend {
		l := memstream.New()
		return streamtest.Backend{
			Producer: func() stream.Producer { return l.Producer() },
			Consumer: func() stream.Consumer { return l.Consumer() },
		}
	}, streamtest.Options{})
}
