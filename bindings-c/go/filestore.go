package writelane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileStore is a lease store in one JSON file, {key: record, ...}, for writers in several
// processes on one host. Every operation holds an exclusive flock(2) on the file (a
// shared one for Get) and replaces it atomically: the new content is written to a
// temporary file in the same directory, synced, and renamed over it. The directory must
// be writable by every process that uses the store; the file is created with mode 0600
// (use NewFileStoreMode for a group-shared store). Safe for concurrent use.
type FileStore struct {
	path string
	mode os.FileMode
}

// NewFileStore returns a store kept in the file at path (created on first write).
func NewFileStore(path string) *FileStore { return &FileStore{path: path, mode: 0o600} }

// NewFileStoreMode is NewFileStore with the permission bits new files get.
func NewFileStoreMode(path string, mode os.FileMode) *FileStore {
	return &FileStore{path: path, mode: mode}
}

// Path returns the file's path.
func (f *FileStore) Path() string { return f.path }

func (f *FileStore) unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s %s: %w", ErrStoreUnavailable, what, f.path, err)
}

// lock opens the file and takes a flock on it, waiting (while ctx allows) for other
// holders. The file may have been replaced by a rename between open and lock, so the
// lock counts only if the open file is still the one at the path.
func (f *FileStore) lock(ctx context.Context, how int) (*os.File, error) {
	wait := time.Millisecond
	for {
		file, err := os.OpenFile(f.path, os.O_RDWR|os.O_CREATE, f.mode)
		if err != nil {
			return nil, f.unavailable("open", err)
		}
		for {
			err = syscall.Flock(int(file.Fd()), how|syscall.LOCK_NB)
			if err == nil || !errors.Is(err, syscall.EWOULDBLOCK) {
				break
			}
			select {
			case <-ctx.Done():
				file.Close()
				return nil, f.unavailable("lock", ctx.Err())
			case <-time.After(wait):
			}
			if wait < 20*time.Millisecond {
				wait *= 2
			}
		}
		if err != nil {
			file.Close()
			return nil, f.unavailable("lock", err)
		}
		held, err1 := file.Stat()
		now, err2 := os.Stat(f.path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return file, nil
		}
		file.Close() // replaced meanwhile: lock the new file
	}
}

func (f *FileStore) read(file *os.File) (map[string]*LeaseRecord, error) {
	b, err := io.ReadAll(file)
	if err != nil {
		return nil, f.unavailable("read", err)
	}
	records := map[string]*LeaseRecord{}
	if len(b) == 0 {
		return records, nil
	}
	if err := json.Unmarshal(b, &records); err != nil {
		return nil, f.unavailable("decode", err)
	}
	return records, nil
}

// write replaces the file's content atomically; the caller holds the lock on the old file.
func (f *FileStore) write(records map[string]*LeaseRecord) error {
	b, err := json.Marshal(records)
	if err != nil {
		return f.unavailable("encode", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), "."+filepath.Base(f.path)+".tmp*")
	if err != nil {
		return f.unavailable("create temporary file for", err)
	}
	name := tmp.Name()
	fail := func(what string, err error) error {
		tmp.Close()
		os.Remove(name)
		return f.unavailable(what, err)
	}
	if err := tmp.Chmod(f.mode); err != nil {
		return fail("chmod temporary file for", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fail("write", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := tmp.Close(); err != nil {
		return fail("close", err)
	}
	if err := os.Rename(name, f.path); err != nil {
		os.Remove(name)
		return f.unavailable("rename over", err)
	}
	return nil
}

// Get reads the record at key; nil when there is none.
func (f *FileStore) Get(ctx context.Context, key string) (*LeaseRecord, error) {
	file, err := f.lock(ctx, syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	records, err := f.read(file)
	if err != nil {
		return nil, err
	}
	return records[key], nil
}

func (f *FileStore) update(ctx context.Context, key string, record LeaseRecord, ok func(cur *LeaseRecord) bool) (bool, *LeaseRecord, error) {
	file, err := f.lock(ctx, syscall.LOCK_EX)
	if err != nil {
		return false, nil, err
	}
	defer file.Close()
	records, err := f.read(file)
	if err != nil {
		return false, nil, err
	}
	cur := records[key]
	if !ok(cur) {
		return false, cur, nil
	}
	records[key] = &record
	if err := f.write(records); err != nil {
		return false, nil, err
	}
	return true, nil, nil
}

// PutIfAbsent creates the record at key if there is none, else returns the one found.
func (f *FileStore) PutIfAbsent(ctx context.Context, key string, record LeaseRecord) (bool, *LeaseRecord, error) {
	return f.update(ctx, key, record, func(cur *LeaseRecord) bool { return cur == nil })
}

// CompareAndSwap replaces the record at key if its rvn is expectedRvn, else returns the
// record found (nil when none).
func (f *FileStore) CompareAndSwap(ctx context.Context, key string, expectedRvn uint64, record LeaseRecord) (bool, *LeaseRecord, error) {
	return f.update(ctx, key, record, func(cur *LeaseRecord) bool { return cur != nil && cur.Rvn == expectedRvn })
}
