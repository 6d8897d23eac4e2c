package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/binlake/binlake/internal/config"
)

// apart checks that several tasks can share one process: each needs its
// own name (it keys metrics and the stream), state directory (its lock and
// checkpoints) and listen addresses.
func apart(paths []string, cfgs []*config.Config) error {
	seen := map[string]string{}
	var errs []error
	claim := func(i int, what, v string) {
		if v == "" {
			return
		}
		k := what + "\x00" + v
		if other, ok := seen[k]; ok {
			errs = append(errs, fmt.Errorf("%s and %s have the same %s %q: each task run in one process needs its own", other, paths[i], what, v))
			return
		}
		seen[k] = paths[i]
	}
	for i, c := range cfgs {
		claim(i, "task", c.Task)
		dir, err := filepath.Abs(c.StateDir)
		if err != nil {
			dir = c.StateDir
		}
		claim(i, "state_dir", filepath.Clean(dir))
		claim(i, "listen address (http.listen, stream.embedded.listen)", c.HTTP.Listen)
		if c.Stream.Type == config.StreamEmbedded {
			claim(i, "listen address (http.listen, stream.embedded.listen)", c.Stream.Embedded.Listen)
		}
	}
	return errors.Join(errs...)
}

// runTasks runs several tasks in this process until ctx is cancelled (or,
// for full-load tasks, until each is done). Each logs to logs with its task
// name; a task that fails is logged and does not stop the others. The
// error names every task that failed.
func runTasks(ctx context.Context, cfgs []*config.Config, logs, progress io.Writer) error {
	var limit config.ByteSize
	for _, c := range cfgs {
		if c.MemoryLimit == 0 {
			limit = 0
			break
		}
		limit += c.MemoryLimit
	}
	setMemoryLimit(limit)
	var wg sync.WaitGroup
	errs := make([]error, len(cfgs))
	for i, c := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log := newLogger(logs, c.Log).With("task", c.Task)
			var pw io.Writer
			if progress != nil {
				pw = &prefixWriter{w: progress, prefix: c.Task + ": "}
			}
			if err := runOne(ctx, c, log, pw, false); err != nil {
				log.Error("task failed; the other tasks go on", "err", err)
				errs[i] = fmt.Errorf("task %s: %w", c.Task, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// prefixWriter writes each Write with a prefix, under a lock shared by
// every writer of the same underlying writer.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

var prefixMu sync.Mutex

func (p *prefixWriter) Write(b []byte) (int, error) {
	prefixMu.Lock()
	defer prefixMu.Unlock()
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}
