package writelane_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	writelane "github.com/writelane/writelane/go"
)

// fastLease is a shared-lane policy with short timings, so the tests run quickly.
const fastLease = `{"preset": "iam", "retry": {"conflict": {"base_ms": 5, "max_attempts": 50}},
 "lease": {"lease_ms": 2000, "renew_ms": 500, "lock_delay_ms": 50, "poll_ms": 20, "unavailable_ms": 300, "max_write_ms": 200}}`

func newSharedLane(t *testing.T, store writelane.Store, opts ...writelane.Option) *writelane.Lane {
	t.Helper()
	l, err := writelane.New(fastLease, append([]writelane.Option{writelane.WithStore(store)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Several lanes (one engine each, as separate processes would have) share one store:
// writes to the entity never overlap, each carries a fence that never goes backwards,
// and the record ends released with the last committed token.
func TestSharedLanesSerialiseWriters(t *testing.T) {
	store := writelane.NewMemoryStore()
	const lanes, each = 4, 5
	var inWrite, overlaps, writes atomic.Int32
	var mu sync.Mutex
	var lastFence uint64
	var wg sync.WaitGroup
	errs := make(chan error, lanes*each)
	for i := 0; i < lanes; i++ {
		l := newSharedLane(t, store, writelane.WithOwner(fmt.Sprintf("host-%d", i)), writelane.WithHolder(fmt.Sprintf("test lane %d", i)))
		for j := 0; j < each; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- l.Run(context.Background(), "role/app", func(ctx context.Context, a writelane.Attempt) error {
					if inWrite.Add(1) != 1 {
						overlaps.Add(1)
					}
					defer inWrite.Add(-1)
					if a.Fence == nil {
						return errors.New("a shared-lane write without a fence")
					}
					mu.Lock()
					if *a.Fence < lastFence {
						mu.Unlock()
						return fmt.Errorf("fence went back from %d to %d", lastFence, *a.Fence)
					}
					lastFence = *a.Fence
					mu.Unlock()
					time.Sleep(2 * time.Millisecond)
					a.SetToken(fmt.Sprintf("v%d", writes.Add(1)))
					return nil
				})
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if overlaps.Load() != 0 {
		t.Fatalf("%d writes overlapped", overlaps.Load())
	}
	rec, err := store.Get(context.Background(), "role/app")
	if err != nil || rec == nil {
		t.Fatalf("record: %v %v", rec, err)
	}
	want := fmt.Sprintf("v%d", lanes*each)
	if rec.Owner != "" || rec.Holder != nil || rec.CommittedToken == nil || *rec.CommittedToken != want || rec.Epoch < 1 {
		t.Fatalf("final record %+v (token %v), want released with token %s", rec, rec.CommittedToken, want)
	}
}

// While a write runs the record names this lane's owner and holder.
func TestSharedLaneRecordShowsOwnerAndHolder(t *testing.T) {
	store := writelane.NewMemoryStore()
	l := newSharedLane(t, store, writelane.WithOwner("ci-runner:42:ab"), writelane.WithHolder("lane default"))
	var seen *writelane.LeaseRecord
	err := l.Run(context.Background(), "role/app", func(ctx context.Context, a writelane.Attempt) error {
		seen, _ = store.Get(ctx, "role/app")
		return nil
	}, writelane.WithRunHolder("pipeline deploy, run 7"))
	if err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Owner != "ci-runner:42:ab" || seen.Holder == nil || *seen.Holder != "pipeline deploy, run 7" || seen.Epoch != 1 {
		t.Fatalf("record during the write: %+v", seen)
	}
	// Without WithOwner the owner is host:pid:random; the lane's holder applies.
	l2 := newSharedLane(t, store, writelane.WithHolder("lane default"))
	err = l2.Run(context.Background(), "role/other", func(ctx context.Context, a writelane.Attempt) error {
		seen, _ = store.Get(ctx, "role/other")
		return nil
	})
	if err != nil || seen == nil || !strings.Contains(seen.Owner, fmt.Sprintf(":%d:", os.Getpid())) || seen.Holder == nil || *seen.Holder != "lane default" {
		t.Fatalf("default owner: %+v %v", seen, err)
	}
}

// A store that cannot be reached: the run gives up with lock_unavailable and never writes.
func TestSharedLaneStoreUnavailable(t *testing.T) {
	store := writelane.NewMemoryStore()
	_ = store.Close()
	l := newSharedLane(t, store)
	called := false
	start := time.Now()
	err := l.Run(context.Background(), "role/app", func(context.Context, writelane.Attempt) error {
		called = true
		return nil
	})
	var gu *writelane.GaveUpError
	if !errors.Is(err, writelane.ErrLockUnavailable) || !errors.As(err, &gu) || gu.Reason != "lock_unavailable" {
		t.Fatalf("got %v, want lock_unavailable", err)
	}
	if !errors.Is(err, writelane.ErrStoreUnavailable) {
		t.Fatalf("%v does not carry the store's error", err)
	}
	if called {
		t.Fatal("wrote without a lease")
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("gave up after %v, before unavailable_ms", d)
	}
}

// The lease is taken over while the holder backs off after a conflict: its renewal is
// refused, and it gives up with lease_lost instead of writing again.
func TestSharedLaneLeaseLost(t *testing.T) {
	store := writelane.NewMemoryStore()
	policy := `{"preset": "iam", "lanes": {"mode": "shared"}, "retry": {"conflict": {"base_ms": 400, "jitter": "none", "max_attempts": 5}},
 "lease": {"lease_ms": 600, "renew_ms": 100, "lock_delay_ms": 50, "poll_ms": 20, "unavailable_ms": 300, "max_write_ms": 100}}`
	l, err := writelane.New(policy, writelane.WithStore(store), writelane.WithOwner("me"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	attempts := 0
	err = l.Run(context.Background(), "role/app", func(ctx context.Context, a writelane.Attempt) error {
		attempts++
		rec, _ := store.Get(ctx, "role/app")
		thief := *rec
		thief.Owner, thief.Epoch, thief.Rvn = "thief", rec.Epoch+1, rec.Rvn+1
		if ok, _, err := store.CompareAndSwap(ctx, "role/app", rec.Rvn, thief); !ok || err != nil {
			return fmt.Errorf("steal: %v %v", ok, err)
		}
		return &writelane.Failure{Code: "ConcurrentModification", HTTPStatus: 409}
	})
	if !errors.Is(err, writelane.ErrLeaseLost) {
		t.Fatalf("got %v, want lease_lost", err)
	}
	if attempts != 1 {
		t.Fatalf("%d write attempts, want 1 (never write without the lease)", attempts)
	}
	rec, _ := store.Get(context.Background(), "role/app")
	if rec.Owner != "thief" {
		t.Fatalf("the thief's record was overwritten: %+v", rec)
	}
}

// Cancelling a run that holds the lease (during a backoff) releases it at once.
func TestSharedLaneCancelReleases(t *testing.T) {
	store := writelane.NewMemoryStore()
	policy := `{"preset": "iam", "retry": {"conflict": {"base_ms": 5000, "jitter": "none"}},
 "lease": {"lease_ms": 20000, "renew_ms": 5000, "lock_delay_ms": 50, "poll_ms": 20, "unavailable_ms": 300, "max_write_ms": 200}}`
	l, err := writelane.New(policy, writelane.WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err = l.Run(ctx, "role/app", func(context.Context, writelane.Attempt) error {
		return &writelane.Failure{Code: "ConcurrentModification", HTTPStatus: 409}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want cancelled", err)
	}
	rec, _ := store.Get(context.Background(), "role/app")
	if rec == nil || rec.Owner != "" {
		t.Fatalf("the lease was not released: %+v", rec)
	}
	// The next writer gets it at once, with the epoch bumped.
	start := time.Now()
	if err := l.Run(context.Background(), "role/app", func(context.Context, writelane.Attempt) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the next writer waited %v", d)
	}
	rec, _ = store.Get(context.Background(), "role/app")
	if rec.Epoch != 2 {
		t.Fatalf("epoch %d after the second holder, want 2", rec.Epoch)
	}
}

func TestSharedLanePolicyChecks(t *testing.T) {
	var pe *writelane.PolicyError
	if _, err := writelane.New(`{"lanes": {"mode": "shared"}}`); !errors.As(err, &pe) || pe.Path != "lanes.mode" {
		t.Fatalf("shared lanes without a store: %v", err)
	}
	if _, err := writelane.New(`"iam"`, writelane.WithStore(writelane.NewMemoryStore()), writelane.WithOwner(strings.Repeat("o", 300))); err == nil {
		t.Fatal("an owner over 256 bytes was accepted")
	} else if ue := (*writelane.UsageError)(nil); !errors.As(err, &ue) || ue.Kind != "invalid_owner" {
		t.Fatalf("long owner: %v", err)
	}
	if _, err := writelane.New(`{"preset": "iam", "lease": {"lease_ms": 1000, "renew_ms": 600}}`, writelane.WithStore(writelane.NewMemoryStore())); !errors.As(err, &pe) || pe.Path != "lease.lease_ms" {
		t.Fatalf("lease shorter than twice the renewal: %v", err)
	}
	// A store means shared lanes, whatever the policy said (the core's rule): a preset,
	// an object without lanes, aws-standard (lanes none) and an explicit local mode.
	for _, p := range []string{`"iam"`, `{"preset": "iam", "deadline_ms": 30000}`, `"aws-standard"`, `{"lanes": {"mode": "local"}}`} {
		l, err := writelane.New(p, writelane.WithStore(writelane.NewMemoryStore()))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		text, _ := l.Engine().PolicyJSON()
		l.Close()
		var got struct {
			Lanes struct{ Mode string } `json:"lanes"`
		}
		if err := json.Unmarshal([]byte(text), &got); err != nil || got.Lanes.Mode != "shared" {
			t.Fatalf("%s with a store: %s", p, text)
		}
	}
}

// Separate processes (this test binary re-run as helpers), each with its own lane, share
// a file store and read-modify-write one counter file with no other locking: no update
// is lost.
func TestSharedLanesAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "counter")
	if err := os.WriteFile(counter, []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	const procs, each = 4, 10
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*strings.Builder, procs)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0])
		cmds[i].Env = append(os.Environ(), "WRITELANE_LANE_HELPER="+dir, "WRITELANE_LANE_WRITES="+strconv.Itoa(each))
		outs[i] = &strings.Builder{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	b, _ := os.ReadFile(counter)
	if string(b) != strconv.Itoa(procs*each) {
		t.Fatalf("counter %s after %d processes x %d increments", b, procs, each)
	}
	rec, err := writelane.NewFileStore(filepath.Join(dir, "leases.json")).Get(context.Background(), "counter")
	if err != nil || rec == nil || rec.Owner != "" || rec.CommittedToken == nil || *rec.CommittedToken != strconv.Itoa(procs*each) {
		t.Fatalf("final record %+v %v", rec, err)
	}
}

// laneHelper is one process of TestSharedLanesAcrossProcesses.
func laneHelper(dir string) error {
	n, _ := strconv.Atoi(os.Getenv("WRITELANE_LANE_WRITES"))
	l, err := writelane.New(fastLease, writelane.WithStore(writelane.NewFileStore(filepath.Join(dir, "leases.json"))),
		writelane.WithHolder(fmt.Sprintf("helper pid %d", os.Getpid())))
	if err != nil {
		return err
	}
	defer l.Close()
	counter := filepath.Join(dir, "counter")
	for i := 0; i < n; i++ {
		err := l.Run(context.Background(), "counter", func(ctx context.Context, a writelane.Attempt) error {
			b, err := os.ReadFile(counter)
			if err != nil {
				return err
			}
			v, err := strconv.Atoi(string(b))
			if err != nil {
				return err
			}
			time.Sleep(3 * time.Millisecond) // widen the window a lost update would need
			next := strconv.Itoa(v + 1)
			if err := os.WriteFile(counter, []byte(next), 0o600); err != nil {
				return err
			}
			a.SetToken(next)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// A lease stuck with a holder that is gone: ForceRelease frees it (epoch bumped, never
// deleted), the next writer gets it at once, and the old holder's record version is dead.
func TestForceRelease(t *testing.T) {
	store := writelane.NewMemoryStore()
	ctx := context.Background()
	if res, err := writelane.ForceRelease(ctx, store, "role/app"); err != nil || res.Result != writelane.ForceNoRecord {
		t.Fatalf("no record: %+v %v", res, err)
	}
	token, holder := "c1:sha256:old", "gone pipeline"
	ghost := writelane.LeaseRecord{Owner: "ghost", Epoch: 7, Rvn: 70, LeaseMs: 3600000, CommittedToken: &token, Holder: &holder}
	if ok, _, err := store.PutIfAbsent(ctx, "role/app", ghost); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// Not the holding the operator inspected: nothing is written.
	if res, err := writelane.ForceRelease(ctx, store, "role/app", writelane.ExpectedRvn(69)); err != nil ||
		res.Result != writelane.ForceChanged || !res.Current.Equal(&ghost) {
		t.Fatalf("expected rvn 69: %+v %v", res, err)
	}
	res, err := writelane.ForceRelease(ctx, store, "role/app", writelane.ExpectedRvn(70))
	rec := res.Record
	if err != nil || res.Result != writelane.ForceReleased || rec.Owner != "" || rec.Epoch != 8 || rec.Rvn == 70 ||
		rec.CommittedToken != nil || rec.Holder != nil {
		t.Fatalf("force-released: %+v %v", res, err)
	}
	if got, _ := store.Get(ctx, "role/app"); !got.Equal(rec) {
		t.Fatalf("stored %+v, returned %+v", got, rec)
	}
	// Releasing a released record changes nothing.
	if again, err := writelane.ForceRelease(ctx, store, "role/app"); err != nil || again.Result != writelane.ForceAlreadyFree ||
		!again.Record.Equal(rec) {
		t.Fatalf("second force-release: %+v %v", again, err)
	}
	// The ghost's renewal (compare-and-swap on its rvn) is refused.
	if ok, _, _ := store.CompareAndSwap(ctx, "role/app", 70, ghost); ok {
		t.Fatal("the old holder could still renew")
	}
	l := newSharedLane(t, store)
	start := time.Now()
	reads := 0
	err = l.Run(ctx, "role/app", func(context.Context, writelane.Attempt) error { return nil },
		writelane.WithRead(func(context.Context) (string, bool, error) { reads++; return "v1", true, nil }))
	if err != nil || time.Since(start) > time.Second {
		t.Fatalf("after the force-release: %v in %v", err, time.Since(start))
	}
	if reads != 1 {
		t.Fatalf("%d reads, want 1 (no committed token after a force-release)", reads)
	}
	got, _ := store.Get(ctx, "role/app")
	if got.Epoch != 9 {
		t.Fatalf("epoch %d, want 9", got.Epoch)
	}
	// A store that does not answer the swap: the outcome is unknown, an error.
	if _, err := writelane.ForceRelease(ctx, &faulty{Store: store, fail: writelane.ErrStoreUnavailable}, "role/app"); err != nil {
		t.Fatalf("an already free record needs no swap: %v", err)
	}
	ok, _, _ := store.CompareAndSwap(ctx, "role/app", got.Rvn, ghost)
	if !ok {
		t.Fatal("could not put the ghost back")
	}
	_, err = writelane.ForceRelease(ctx, &faulty{Store: store, fail: writelane.ErrStoreLost}, "role/app")
	if !errors.Is(err, writelane.ErrForceReleaseUnknown) || !errors.Is(err, writelane.ErrStoreLost) {
		t.Fatalf("a lost swap: %v", err)
	}
	// A malformed record is refused by the core, naming the field.
	bad := ghost
	bad.Epoch = 0
	bad.Rvn = 71
	if ok, _, _ := store.CompareAndSwap(ctx, "role/app", 70, bad); !ok {
		t.Fatal("could not store the bad record")
	}
	var re *writelane.RecordError
	if _, err := writelane.ForceRelease(ctx, store, "role/app"); !errors.As(err, &re) || re.Field != "found.epoch" {
		t.Fatalf("a record with epoch 0: %v", err)
	}
}

// faulty fails every compare-and-swap with fail (wrapped), after nothing was applied.
type faulty struct {
	writelane.Store
	fail error
}

func (f *faulty) CompareAndSwap(context.Context, string, uint64, writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	return false, nil, fmt.Errorf("test: %w", f.fail)
}

// dropping applies every operation to the store underneath, then loses the reply of
// every other conditional write (as a dropped connection would).
type dropping struct {
	writelane.Store
	n, dropped atomic.Int32
}

func (d *dropping) drop(ok bool, cur *writelane.LeaseRecord, err error) (bool, *writelane.LeaseRecord, error) {
	if err == nil && d.n.Add(1)%2 == 1 {
		d.dropped.Add(1)
		return false, nil, fmt.Errorf("connection reset: %w", writelane.ErrStoreLost)
	}
	return ok, cur, err
}

func (d *dropping) PutIfAbsent(ctx context.Context, key string, r writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	return d.drop(d.Store.PutIfAbsent(ctx, key, r))
}

func (d *dropping) CompareAndSwap(ctx context.Context, key string, rvn uint64, r writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	return d.drop(d.Store.CompareAndSwap(ctx, key, rvn, r))
}

// Replies lost after the store applied the write: the engine reads the record back,
// sees it is its own, and goes on; nobody is locked out and nothing is written twice.
func TestSharedLaneLostRepliesAreReadBack(t *testing.T) {
	mem := writelane.NewMemoryStore()
	store := &dropping{Store: mem}
	a := newSharedLane(t, store, writelane.WithOwner("a"))
	b := newSharedLane(t, store, writelane.WithOwner("b"))
	var writes atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- l.Run(context.Background(), "role/app", func(context.Context, writelane.Attempt) error {
				writes.Add(1)
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if writes.Load() != 10 || store.dropped.Load() < 5 {
		t.Fatalf("%d writes with %d replies dropped, want 10 writes and many drops", writes.Load(), store.dropped.Load())
	}
	rec, _ := mem.Get(context.Background(), "role/app")
	if rec == nil || rec.Owner != "" {
		t.Fatalf("final record %+v, want released", rec)
	}
}

// A write that panics under a lease: the panic reaches the caller, and the lane still
// carries out the release the engine commands, so the next writer does not wait a lease.
func TestSharedLanePanicReleasesTheLease(t *testing.T) {
	store := writelane.NewMemoryStore()
	l := newSharedLane(t, store)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic must reach the caller")
			}
		}()
		_ = l.Run(context.Background(), "role/app", func(context.Context, writelane.Attempt) error { panic("boom") })
	}()
	deadline := time.Now().Add(2 * time.Second)
	for {
		rec, _ := store.Get(context.Background(), "role/app")
		if rec != nil && rec.Owner == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease was not released after the panic: %+v", rec)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
