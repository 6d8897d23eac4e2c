package delivery

import (
	"bytes"
	"fmt"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// encode compresses JSON lines and returns the object body and extension.
func encode(compression string, lines []byte) ([]byte, string, error) {
	var out bytes.Buffer
	out.Grow(len(lines)/4 + 64)
	switch compression {
	case "none":
		return append([]byte(nil), lines...), ".json", nil
	case "zstd":
		zw, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		if _, err := zw.Write(lines); err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		return out.Bytes(), ".json.zst", nil
	case "snappy":
		zw := snappy.NewBufferedWriter(&out)
		if _, err := zw.Write(lines); err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		return out.Bytes(), ".json.snappy", nil
	default:
		zw := gzip.NewWriter(&out)
		if _, err := zw.Write(lines); err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, "", fmt.Errorf("compressing: %w", err)
		}
		return out.Bytes(), ".json.gz", nil
	}
}
