package writelane_test

import (
	"context"
	"testing"

	writelane "github.com/writelane/writelane/go"
)

// simHost drives one Engine (one simulated machine) against a shared store, with a
// clock of its own, through the sans-IO API.
type simHost struct {
	t      *testing.T
	e      *writelane.Engine
	store  writelane.Store
	writes int
	// fail makes every write fail with a conflict (the holder then backs off, holding
	// and renewing the lease).
	fail     bool
	finished bool
}

func newSimHost(t *testing.T, store writelane.Store, owner string, fail bool) *simHost {
	t.Helper()
	const policy = `{"preset": "iam", "lanes": {"mode": "shared"}, "deadline_ms": 600000,
 "retry": {"conflict": {"base_ms": 90000, "cap_ms": 90000, "jitter": "none", "max_attempts": 3}},
 "lease": {"lease_ms": 1000, "renew_ms": 300, "lock_delay_ms": 100, "poll_ms": 50, "unavailable_ms": 5000, "max_write_ms": 200}}`
	e, err := writelane.NewEngineWithOwner(policy, 7, owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &simHost{t: t, e: e, store: store, fail: fail}
}

// step fires due timers at now and carries out every command.
func (h *simHost) step(now uint64) {
	h.t.Helper()
	if at, ok, err := h.e.PollTimeout(); err != nil {
		h.t.Fatal(err)
	} else if ok && at <= now {
		if err := h.e.HandleTimeout(now); err != nil {
			h.t.Fatal(err)
		}
	}
	for {
		c, err := h.e.PollCommand()
		if err != nil {
			h.t.Fatal(err)
		}
		if c == nil {
			return
		}
		in := writelane.Input{Op: c.Op}
		switch c.Kind {
		case writelane.CommandStore:
			reply := writelane.ApplyStoreOp(context.Background(), h.store, *c.Store)
			in.Kind, in.Reply = writelane.InputStoreReply, &reply
		case writelane.CommandRead:
			token := "v1"
			in.Kind, in.Token = writelane.ReadDone, &token
		case writelane.CommandWrite:
			h.writes++
			if h.fail {
				in.Kind, in.Failure = writelane.WriteFailed, &writelane.Failure{Code: "ConcurrentModification", HTTPStatus: 409}
			} else {
				in.Kind = writelane.WriteDone
			}
		case writelane.CommandFinish:
			h.finished = true
			continue
		}
		if err := h.e.Handle(now, in); err != nil {
			h.t.Fatal(err)
		}
	}
}

// One machine's clock jumps forward by a minute while another holds the lease and keeps
// renewing it: the jumped machine does not take the lease over. Once the holder stops
// (its machine is gone), it does, after a whole lease.
func TestClockJumpDoesNotLetTwoWritersIn(t *testing.T) {
	store := writelane.NewMemoryStore()
	a := newSimHost(t, store, "machine-a", true)
	b := newSimHost(t, store, "machine-b", false)
	if _, err := a.e.Submit("role/app", 0, writelane.SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	a.step(0)
	if a.writes != 1 {
		t.Fatalf("machine a made %d writes, want 1 (then a long backoff holding the lease)", a.writes)
	}
	if _, err := b.e.Submit("role/app", 0, writelane.SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	const jump = 60_000
	var t0 uint64
	for t0 = 0; t0 <= 20_000; t0 += 10 {
		a.step(t0)
		bNow := t0
		if t0 >= 2_000 {
			bNow += jump
		}
		b.step(bNow)
		if b.writes != 0 {
			rec, _ := store.Get(context.Background(), "role/app")
			t.Fatalf("machine b wrote at %d ms (its clock %d) while machine a held the lease: %+v", t0, bNow, rec)
		}
	}
	rec, _ := store.Get(context.Background(), "role/app")
	if rec == nil || rec.Owner != "machine-a" {
		t.Fatalf("after 20 s: %+v, want machine a still holding", rec)
	}
	// Machine a is gone (no more renewals): b takes over, no sooner than a lease later.
	stopped := t0
	for ; b.writes == 0 && t0 <= stopped+10_000; t0 += 10 {
		b.step(t0 + jump)
	}
	if b.writes != 1 || !b.finished {
		t.Fatalf("machine b: %d writes, finished %v, after a stopped", b.writes, b.finished)
	}
	if waited := t0 - stopped; waited < 1_000 {
		t.Fatalf("machine b took over %d ms after a stopped, before a whole lease", waited)
	}
	rec, _ = store.Get(context.Background(), "role/app")
	if rec.Epoch != 2 || rec.Owner != "" {
		t.Fatalf("after the takeover: %+v, want released at epoch 2", rec)
	}
}
