package delivery

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// encode compresses JSON lines and returns the object body and extension.
func encode(compression string, lines []byte) ([]byte, string, error) {
	body, ext, err := compress(compression, lines)
	return body, ".json" + ext, err
}

// Compress compresses an object body as delivery.compression names it
// ("none", "gzip", "zstd", "snappy") and returns the body and the
// extension that says how: "", ".gz", ".zst" or ".snappy" (framed).
func Compress(compression string, data []byte) ([]byte, string, error) {
	return compress(compression, data)
}

// CompressionOf is the delivery.compression whose extension ends key.
func CompressionOf(key string) string {
	switch {
	case strings.HasSuffix(key, ".gz"):
		return "gzip"
	case strings.HasSuffix(key, ".zst"):
		return "zstd"
	case strings.HasSuffix(key, ".snappy"):
		return "snappy"
	}
	return "none"
}

// compress compresses an object body (delivery.compression) and returns
// the compressed body and the extension that says how: "" (none), ".gz",
// ".zst" or ".snappy" (framed).
func compress(compression string, data []byte) ([]byte, string, error) {
	switch compression {
	case "none":
		return append([]byte(nil), data...), "", nil
	case "zstd":
		// One encoder for every object: building one allocates megabytes.
		return zstdEncoder.EncodeAll(data, make([]byte, 0, len(data)/4+64)), ".zst", nil
	}
	var out bytes.Buffer
	out.Grow(len(data)/4 + 64)
	var zw io.WriteCloser
	ext := ".gz"
	switch compression {
	case "snappy":
		zw, ext = snappy.NewBufferedWriter(&out), ".snappy"
	default:
		gz := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(gz)
		gz.Reset(&out)
		zw = gz
	}
	if _, err := zw.Write(data); err != nil {
		return nil, "", fmt.Errorf("compressing: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("compressing: %w", err)
	}
	return out.Bytes(), ext, nil
}

// gzipWriters are gzip compressors at level 1 (gzip -1): on JSON records
// klauspost's level 1 is about twice as fast as the default level and
// compresses as well or better; a compressor allocates its tables once.
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// zstdEncoder compresses whole objects (EncodeAll is safe for concurrent
// use).
var zstdEncoder = func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(fmt.Sprintf("delivery: zstd encoder: %v", err))
	}
	return e
}()
