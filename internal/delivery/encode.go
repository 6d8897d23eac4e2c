package delivery

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// encode compresses JSON lines and returns the object body and extension.
func encode(compression string, lines []byte) ([]byte, string, error) {
	body, ext, err := compress(compression, lines)
	return body, ".json" + ext, err
}

// compress compresses an object body (delivery.compression) and returns
// the compressed body and the extension that says how: "" (none), ".gz",
// ".zst" or ".snappy" (framed).
func compress(compression string, data []byte) ([]byte, string, error) {
	if compression == "none" {
		return append([]byte(nil), data...), "", nil
	}
	var out bytes.Buffer
	out.Grow(len(data)/4 + 64)
	var zw io.WriteCloser
	ext := ".gz"
	switch compression {
	case "zstd":
		w, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		zw, ext = w, ".zst"
	case "snappy":
		zw, ext = snappy.NewBufferedWriter(&out), ".snappy"
	default:
		zw = gzip.NewWriter(&out)
	}
	if _, err := zw.Write(data); err != nil {
		return nil, "", fmt.Errorf("compressing: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("compressing: %w", err)
	}
	return out.Bytes(), ext, nil
}
