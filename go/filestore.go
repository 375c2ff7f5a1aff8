package writelane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FileStore is a lease store in one JSON file, {key: record, ...}, for writers in several
// processes on one host. Every operation holds an exclusive flock(2) on a lock file
// beside it (path + ".lock"; a shared one for Get), reads the JSON file and replaces it
// atomically when it changes: the new content is written to a temporary file in the same
// directory, synced, and renamed over it, so a process killed mid-write leaves the old or
// the new store, never half of one. The layout and the locking are the same as the
// Python binding's FileStore, so processes in both languages can share one store. The
// directory must be writable by every process that uses the store; files are created
// with mode 0600 (use NewFileStoreMode for a group-shared store). flock is not dependable
// over NFS. Waiting for the lock is bounded by the context only (a Lane gives every store
// operation lease.store_timeout_ms): pass one with a deadline when calling it yourself.
// A record is handed to the core as the file holds it (ParseLeaseRecord); one that is not
// a lease record makes the store unavailable. Safe for concurrent use.
type FileStore struct {
	path string
	mode os.FileMode
}

// NewFileStore returns a store kept in the file at path (created on first write).
func NewFileStore(path string) *FileStore {
	return &FileStore{path: path, mode: 0o600}
}

// NewFileStoreMode is NewFileStore with the permission bits new files get.
func NewFileStoreMode(path string, mode os.FileMode) *FileStore {
	return &FileStore{path: path, mode: mode}
}

// Path returns the file's path.
func (f *FileStore) Path() string { return f.path }

func (f *FileStore) unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s %s: %w", ErrStoreUnavailable, what, f.path, err)
}

// lock opens the lock file and takes a flock on it, waiting for other holders while ctx
// allows: the store is then unavailable (nothing was written).
func (f *FileStore) lock(ctx context.Context, how int) (*os.File, error) {
	file, err := os.OpenFile(f.path+".lock", os.O_RDWR|os.O_CREATE, f.mode)
	if err != nil {
		return nil, f.unavailable("open the lock file of", err)
	}
	wait := 500 * time.Microsecond
	for {
		busy, err := tryLock(file, how)
		if err == nil && !busy {
			return file, nil
		}
		if err != nil {
			file.Close()
			return nil, f.unavailable("lock", err)
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
}

// read loads the store, one record per key as the file holds it; a missing file is an
// empty store. The caller holds the lock.
func (f *FileStore) read() (map[string]json.RawMessage, error) {
	records := map[string]json.RawMessage{}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return records, nil
	}
	if err != nil {
		return nil, f.unavailable("read", err)
	}
	if len(b) == 0 {
		return records, nil
	}
	if err := json.Unmarshal(b, &records); err != nil {
		return nil, f.unavailable("decode", err)
	}
	return records, nil
}

// record is the record at key checked by the core; nil when there is none.
func (f *FileStore) record(records map[string]json.RawMessage, key string) (*LeaseRecord, error) {
	raw, ok := records[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	rec, err := ParseLeaseRecord(raw)
	if err != nil {
		return nil, f.unavailable(fmt.Sprintf("the record of %q in", key), err)
	}
	return rec, nil
}

// write replaces the file's content atomically; the caller holds the lock.
func (f *FileStore) write(records map[string]json.RawMessage) error {
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
	file, err := f.lock(ctx, lockShared)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	records, err := f.read()
	if err != nil {
		return nil, err
	}
	return f.record(records, key)
}

func (f *FileStore) update(ctx context.Context, key string, record LeaseRecord, ok func(cur *LeaseRecord) bool) (bool, *LeaseRecord, error) {
	file, err := f.lock(ctx, lockExclusive)
	if err != nil {
		return false, nil, err
	}
	defer file.Close()
	records, err := f.read()
	if err != nil {
		return false, nil, err
	}
	cur, err := f.record(records, key)
	if err != nil {
		return false, nil, err
	}
	if !ok(cur) {
		return false, cur, nil
	}
	if records[key], err = json.Marshal(record); err != nil {
		return false, nil, f.unavailable("encode", err)
	}
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
