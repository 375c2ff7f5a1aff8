package writelane

import (
	"context"
	"fmt"
	"sync"
)

// MemoryStore is a lease store in this process's memory, for tests and for hosts that
// share one store between several engines of one process. Safe for concurrent use.
type MemoryStore struct {
	mu      sync.Mutex
	records map[string]*LeaseRecord
	closed  bool
}

// NewMemoryStore returns an empty memory store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{records: map[string]*LeaseRecord{}}
}

// Close makes every later operation fail with ErrStoreUnavailable (a stopped store).
func (m *MemoryStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *MemoryStore) open() error {
	if m.closed {
		return fmt.Errorf("%w: the memory store is closed", ErrStoreUnavailable)
	}
	return nil
}

// Get reads the record at key; nil when there is none.
func (m *MemoryStore) Get(_ context.Context, key string) (*LeaseRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.open(); err != nil {
		return nil, err
	}
	return m.records[key].Clone(), nil
}

// PutIfAbsent creates the record at key if there is none, else returns the one found.
func (m *MemoryStore) PutIfAbsent(_ context.Context, key string, record LeaseRecord) (bool, *LeaseRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.open(); err != nil {
		return false, nil, err
	}
	if cur, ok := m.records[key]; ok {
		return false, cur.Clone(), nil
	}
	m.records[key] = record.Clone()
	return true, nil, nil
}

// CompareAndSwap replaces the record at key if its rvn is expectedRvn, else returns the
// record found (nil when none).
func (m *MemoryStore) CompareAndSwap(_ context.Context, key string, expectedRvn uint64, record LeaseRecord) (bool, *LeaseRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.open(); err != nil {
		return false, nil, err
	}
	cur, ok := m.records[key]
	if !ok || cur.Rvn != expectedRvn {
		return false, cur.Clone(), nil
	}
	m.records[key] = record.Clone()
	return true, nil, nil
}
