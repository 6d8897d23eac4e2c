package objstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
)

// tempPrefix starts the names of the files File.Put writes before renaming
// them into place. List skips them and keys may not use them.
const tempPrefix = ".tmp-"

// File is a Bucket in a local directory. A key's '/'-separated segments map to
// subdirectories. Put writes a hidden temporary file next to the object, syncs
// it, renames it into place and syncs the directory, so an object is either
// absent, old or complete, even across crashes.
//
// Unlike S3, a key cannot be both an object and a "directory" of other objects
// ("a" and "a/b"): the second Put fails.
type File struct {
	dir string // absolute, cleaned
}

// NewFile returns a bucket in dir, creating the directory if needed.
func NewFile(dir string) (*File, error) {
	if dir == "" {
		return nil, errors.New("file bucket: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file bucket %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("file bucket %s: %w", dir, err)
	}
	return &File{dir: abs}, nil
}

// String implements Bucket.
func (f *File) String() string {
	d := filepath.ToSlash(f.dir)
	if !strings.HasPrefix(d, "/") {
		d = "/" + d // Windows: file:///C:/dir
	}
	return "file://" + d
}

// checkKey adds File's own rules to the common ones: temporary file names are
// reserved, and on systems whose separator is not '/' it may not appear in keys.
func (f *File) checkKey(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if filepath.Separator != '/' && strings.ContainsRune(key, filepath.Separator) {
		return fmt.Errorf("%w: contains %q", ErrInvalidKey, filepath.Separator)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, tempPrefix) {
			return fmt.Errorf("%w: path segment %q uses the reserved prefix %q", ErrInvalidKey, seg, tempPrefix)
		}
	}
	return nil
}

func (f *File) path(key string) string {
	return filepath.Join(f.dir, filepath.FromSlash(key))
}

// Put implements Bucket.
func (f *File) Put(ctx context.Context, key string, body []byte) error {
	if err := f.checkKey(key); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.put(key, body); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (f *File) put(key string, body []byte) error {
	dst := f.path(key)
	dir := filepath.Dir(dst)

	var tmp *os.File
	for attempt := 1; ; attempt++ {
		err := f.mkdirs(dir)
		if err == nil {
			tmp, err = os.CreateTemp(dir, tempPrefix+"*")
			if err == nil {
				break
			}
		}
		// A concurrent Delete may have removed a directory we just made,
		// because it was empty; make it again.
		if !errors.Is(err, fs.ErrNotExist) || attempt == 10 {
			return err
		}
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	if _, err := tmp.Write(body); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; objects are ordinary files.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	committed = true
	return syncDir(dir)
}

// mkdirs is os.MkdirAll for a directory inside f.dir that also syncs the parent
// of every directory it creates, so that a synced object's path survives a crash.
func (f *File) mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if dir != f.dir && parent != dir {
		if err := f.mkdirs(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made concurrently, or a file: CreateTemp will say so
		}
		return err
	}
	return syncDir(parent)
}

// Get implements Bucket.
func (f *File) Get(ctx context.Context, key string) ([]byte, error) {
	if err := f.checkKey(key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	b, err := os.ReadFile(f.path(key))
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// Delete implements Bucket. It also removes the directories that the deletion
// leaves empty, up to the bucket's own directory.
func (f *File) Delete(ctx context.Context, key string) error {
	if err := f.checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	p := f.path(key)
	fi, err := os.Lstat(p)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a "directory" of other objects, not an object
	}
	if err := os.Remove(p); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	dir := filepath.Dir(p)
	if err := syncDir(dir); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	// Remove emptied parents; os.Remove fails on a non-empty directory, which
	// ends the climb. A concurrent Put recreates what it needs.
	for d := dir; d != f.dir && strings.HasPrefix(d, f.dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// List implements Bucket. It walks only the directories that can hold keys
// with the prefix, and skips temporary files, symbolic links and anything else
// that is not a regular file.
func (f *File) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	// Start in the deepest directory the prefix names in full.
	var dirKey string
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey = prefix[:i]
		if f.checkKey(dirKey) != nil {
			return nil // no valid key has this prefix; and don't walk outside f.dir
		}
	}
	if err := f.walk(ctx, dirKey, prefix, fn); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// walk lists the directory of dirKey ("" is the root) in key order. Entries
// are sorted by their name with a '/' appended to directories, which is how
// their keys compare: "a.txt" < "a/b" because '.' < '/'.
func (f *File) walk(ctx context.Context, dirKey, prefix string, fn func(key string, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := f.dir
	if dirKey != "" {
		dir = f.path(dirKey)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	sortName := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortName(a), sortName(b)) })

	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) {
			continue
		}
		key := joinKey(dirKey, name)
		switch {
		case e.IsDir():
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if err := f.walk(ctx, key, prefix, fn); err != nil {
					return err
				}
			}
		case e.Type().IsRegular():
			if !strings.HasPrefix(key, prefix) || checkKey(key) != nil {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if isNotExist(err) {
					continue // deleted since ReadDir
				}
				return err
			}
			if err := fn(key, fi.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// isNotExist reports whether err means that a path does not name a file:
// nothing is there, a parent is a file, or it is a directory.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR)
}

// syncDir makes the entries of dir durable. Windows cannot sync directories.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
