package writelane_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	writelane "github.com/writelane/writelane/go"
)

// queueLease lets a holder's write wait seconds for waiters to register (max_write_ms
// bounds a write).
const queueLease = `{"preset": "iam", "lease": {"lease_ms": 6000, "renew_ms": 1000, "lock_delay_ms": 200,
 "poll_ms": 20, "unavailable_ms": 3000, "max_write_ms": 4000}}`

// Three lanes queued behind a holder on one store (memory, file), each started once the
// one before it holds a ticket, commit in the order they registered, a fence apart, and
// the record ends released with an empty queue.
func TestQueuedLanesCommitInRegistrationOrder(t *testing.T) {
	for _, kind := range []string{"memory", "file"} {
		t.Run(kind, func(t *testing.T) {
			var store writelane.Store = writelane.NewMemoryStore()
			if kind == "file" {
				store = writelane.NewFileStore(filepath.Join(t.TempDir(), "leases.json"))
			}
			const key = "role/queue"
			lane := func(owner string) *writelane.Lane {
				l, err := writelane.New(queueLease, writelane.WithStore(store), writelane.WithOwner(owner))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			}
			ctx := context.Background()
			current := func() *writelane.LeaseRecord {
				r, err := store.Get(ctx, key)
				if err != nil {
					t.Error(err)
				}
				return r
			}
			waitUntil := func(what string, ok func(*writelane.LeaseRecord) bool) {
				for deadline := time.Now().Add(10 * time.Second); !ok(current()); time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("still waiting for %s: %+v", what, current())
					}
				}
			}
			var mu sync.Mutex
			var commits []string
			var fences []uint64
			allQueued := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			run := func(l *writelane.Lane, owner string, hold bool) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- l.Run(ctx, key, func(ctx context.Context, a writelane.Attempt) error {
						if hold {
							select {
							case <-allQueued:
							case <-time.After(10 * time.Second):
								return fmt.Errorf("the waiters did not all register")
							}
						}
						mu.Lock()
						defer mu.Unlock()
						commits = append(commits, owner)
						fences = append(fences, *a.Fence)
						return nil
					})
				}()
			}
			run(lane("holder-0"), "holder-0", true)
			waitUntil("the holder's lease", func(r *writelane.LeaseRecord) bool { return r != nil && r.Owner == "holder-0" })
			owners := []string{"waiter-1", "waiter-2", "waiter-3"}
			var tickets []uint64
			for i, owner := range owners {
				run(lane(owner), owner, false)
				waitUntil(owner+"'s ticket", func(r *writelane.LeaseRecord) bool {
					if r == nil || len(r.Queue) != i+1 {
						return false
					}
					for j, tk := range r.Queue {
						if tk.Owner != owners[j] {
							return false
						}
					}
					return true
				})
				tickets = append(tickets, current().Queue[i].Ticket)
			}
			if r := current(); r.Version != 2 || r.Owner != "holder-0" {
				t.Fatalf("record with three queued: %+v", r)
			}
			close(allQueued)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if !(tickets[0] < tickets[1] && tickets[1] < tickets[2]) {
				t.Fatalf("tickets %v not in start order", tickets)
			}
			want := append([]string{"holder-0"}, owners...)
			if fmt.Sprint(commits) != fmt.Sprint(want) {
				t.Fatalf("commit order %v, want %v", commits, want)
			}
			for i := range fences {
				if fences[i] != fences[0]+uint64(i) {
					t.Fatalf("fences %v: not one apart", fences)
				}
			}
			if r := current(); r == nil || r.Owner != "" || len(r.Queue) != 0 {
				t.Fatalf("final record %+v", r)
			}
		})
	}
}
