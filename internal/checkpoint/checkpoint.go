// Package checkpoint stores the small state files that let capture and
// delivery resume after a restart or a crash: written atomically (temp file,
// fsync, rename, fsync of the directory), as JSON carrying a format version.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Save writes v as JSON to path atomically: after a crash the file holds
// either the previous state or the new one, never a mix.
func Save(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding checkpoint %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("saving checkpoint %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("saving checkpoint %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving checkpoint %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving checkpoint %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("saving checkpoint %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("saving checkpoint %s: syncing directory: %w", path, err)
	}
	return nil
}

// Load reads the JSON file at path into v. It reports false, and no error,
// when the file does not exist.
func Load(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading checkpoint: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("checkpoint %s is damaged (%v): restore it from a backup or remove the state directory to start over", path, err)
	}
	return true, nil
}

// Throttled saves a checkpoint that changes often (a stream consumer's
// positions) at most once per Every, and on demand: a position saved late
// only means more is read again after a crash, and delivery drops it as
// already stored. It is not safe for concurrent use; its owner locks.
type Throttled struct {
	Path  string
	Every time.Duration
	// Write, if not nil, saves the state instead of writing Path: a
	// checkpoint kept elsewhere than in a local file.
	Write func(v any) error

	dirty   bool
	savedAt time.Time
}

// Changed notes that the state differs from what was saved.
func (t *Throttled) Changed() { t.dirty = true }

// Save writes v if it changed and Every has passed since the last save, or
// if force is set; savedAt, if not nil, is stamped with the time first.
func (t *Throttled) Save(v any, savedAt *time.Time, force bool) error {
	if !t.dirty || (!force && time.Since(t.savedAt) < t.Every) {
		return nil
	}
	now := time.Now()
	if savedAt != nil {
		*savedAt = now.UTC()
	}
	save := t.Write
	if save == nil {
		save = func(v any) error { return Save(t.Path, v) }
	}
	if err := save(v); err != nil {
		return err
	}
	t.dirty, t.savedAt = false, now
	return nil
}
