package config

import (
	"strings"
	"testing"
)

func TestFullLoad(t *testing.T) {
	base := "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"a.%\"}]\ntarget: file:///tmp/lake\n"
	tests := []struct {
		yml             string
		chunk, parallel int
		errs            []string
	}{
		{"", DefaultChunkSize, DefaultLoadParallelism, nil},
		{"full_load: {chunk_size: 100, parallelism: 5}", 100, 5, nil},
		{"full_load: {chunk_size: 0, parallelism: 0}", DefaultChunkSize, DefaultLoadParallelism, nil},
		{"full_load: {chunk_size: -1, parallelism: 65}", 0, 0, []string{
			"full_load.chunk_size: must be between 1 and 1048576 rows (0 or unset: 8192), got -1",
			"full_load.parallelism: must be between 1 and 64 (0 or unset: 2), got 65",
		}},
		{"full_load: {chunk_size: 2000000}", 0, 0, []string{"full_load.chunk_size: must be between 1 and 1048576"}},
		{"full_load: {chunksize: 10}", 0, 0, []string{"chunksize: unknown key"}},
	}
	for _, tc := range tests {
		t.Run(tc.yml, func(t *testing.T) {
			c, err := Parse([]byte(base + tc.yml))
			if len(tc.errs) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.errs)
				}
				for _, want := range tc.errs {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.FullLoad.Chunk(); got != tc.chunk {
				t.Errorf("Chunk() = %d, want %d", got, tc.chunk)
			}
			if got := c.FullLoad.Readers(); got != tc.parallel {
				t.Errorf("Readers() = %d, want %d", got, tc.parallel)
			}
		})
	}
}
