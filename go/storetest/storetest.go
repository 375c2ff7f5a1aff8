// Package storetest is the conformance suite every writelane lease store adapter passes:
// the same expectations for memory, file and DynamoDB stores (and any adapter a user
// writes). Call Run from a test with a Harness for the adapter.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"
	"testing"
	"time"

	writelane "github.com/writelane/writelane/go"
)

// Harness tells the suite how to reach the adapter under test.
type Harness struct {
	// Open returns a handle on the store under test. Every call must reach the same
	// records (the concurrency test opens one handle per writer, like separate
	// processes would).
	Open func(t *testing.T) writelane.Store
	// Unreachable returns a handle whose store is stopped or cannot be reached.
	Unreachable func(t *testing.T) writelane.Store
	// Writers is how many concurrent writers race in the compare-and-swap test (16
	// when zero).
	Writers int
}

func str(s string) *string { return &s }

// uniqueKey gives each test its own key, so the suite can run against a shared store.
func uniqueKey(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "role/conformance-" + hex.EncodeToString(b[:])
}

func record(owner string, epoch, rvn uint64) writelane.LeaseRecord {
	return writelane.LeaseRecord{Owner: owner, Epoch: epoch, Rvn: rvn, LeaseMs: 10000,
		CommittedToken: str("c1:sha256:" + owner), Holder: str("host-a pipeline 7")}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// apply runs one operation through writelane.ApplyStoreJSON and decodes the reply.
func apply(t *testing.T, s writelane.Store, op writelane.StoreOp) writelane.StoreReply {
	t.Helper()
	b, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	text, err := writelane.ApplyStoreJSON(ctx(t), s, string(b))
	if err != nil {
		t.Fatalf("apply %s: %v", b, err)
	}
	var r writelane.StoreReply
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		t.Fatalf("reply %s: %v", text, err)
	}
	return r
}

func get(key string) writelane.StoreOp { return writelane.StoreOp{Op: writelane.StoreGet, Key: key} }

func put(key string, r writelane.LeaseRecord) writelane.StoreOp {
	return writelane.StoreOp{Op: writelane.StorePutIfAbsent, Key: key, Record: &r}
}

func cas(key string, expected uint64, r writelane.LeaseRecord) writelane.StoreOp {
	return writelane.StoreOp{Op: writelane.StoreCompareAndSwap, Key: key, ExpectedRvn: &expected, Record: &r}
}

func show(r *writelane.LeaseRecord) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func wantFound(t *testing.T, r writelane.StoreReply, want *writelane.LeaseRecord) {
	t.Helper()
	if r.Reply != writelane.ReplyFound || !r.Record.Equal(want) {
		t.Fatalf("got %s %s, want found %s", r.Reply, show(r.Record), show(want))
	}
}

func wantReply(t *testing.T, r writelane.StoreReply, kind string, current *writelane.LeaseRecord) {
	t.Helper()
	if r.Reply != kind || (kind == writelane.ReplyRefused && !r.Current.Equal(current)) {
		t.Fatalf("got %s (current %s), want %s (current %s)", r.Reply, show(r.Current), kind, show(current))
	}
}

// Run runs every conformance test against the adapter h reaches.
func Run(t *testing.T, h Harness) {
	t.Run("GetMissing", func(t *testing.T) {
		s := h.Open(t)
		wantFound(t, apply(t, s, get(uniqueKey(t))), nil)
	})
	t.Run("PutIfAbsentTwice", func(t *testing.T) {
		s, key := h.Open(t), uniqueKey(t)
		first, second := record("a", 1, 11), record("b", 1, 22)
		wantReply(t, apply(t, s, put(key, first)), writelane.ReplyDone, nil)
		wantReply(t, apply(t, s, put(key, second)), writelane.ReplyRefused, &first)
		wantFound(t, apply(t, s, get(key)), &first)
	})
	t.Run("CompareAndSwap", func(t *testing.T) {
		s, key := h.Open(t), uniqueKey(t)
		first, next, other := record("a", 1, 11), record("a", 1, 12), record("b", 2, 13)
		wantReply(t, apply(t, s, put(key, first)), writelane.ReplyDone, nil)
		wantReply(t, apply(t, s, cas(key, 99, other)), writelane.ReplyRefused, &first)
		wantFound(t, apply(t, s, get(key)), &first)
		wantReply(t, apply(t, s, cas(key, 11, next)), writelane.ReplyDone, nil)
		wantFound(t, apply(t, s, get(key)), &next)
		// The old rvn no longer matches.
		wantReply(t, apply(t, s, cas(key, 11, other)), writelane.ReplyRefused, &next)
	})
	t.Run("CompareAndSwapMissing", func(t *testing.T) {
		s, key := h.Open(t), uniqueKey(t)
		wantReply(t, apply(t, s, cas(key, 0, record("a", 1, 1))), writelane.ReplyRefused, nil)
		wantFound(t, apply(t, s, get(key)), nil)
	})
	t.Run("RoundTripVersion2", func(t *testing.T) {
		// A version 2 record with a queue of three keeps every field through the store,
		// in a get and in a refusal; zero counters and an empty queue stay version 2.
		s, key := h.Open(t), uniqueKey(t)
		queue := []writelane.Ticket{
			{Owner: "host-b:2:00000000000000b2", Ticket: 9, Beat: 3},
			{Owner: "host-c:3:00000000000000c3", Ticket: 10, Beat: 0},
			{Owner: "host-d:4:00000000000000d4", Ticket: 11, Beat: 7},
		}
		first := record("host-a:1:00000000000000a1", 1, 21)
		first.Version, first.Beat, first.NextTicket, first.HoldMs, first.Queue = 2, 4, 12, 350, queue
		wantReply(t, apply(t, s, put(key, first)), writelane.ReplyDone, nil)
		found := apply(t, s, get(key))
		wantFound(t, found, &first)
		if b, want := show(found.Record), show(&first); b != want {
			t.Fatalf("the record found reads %s, want %s", b, want)
		}
		granted := first
		granted.Owner, granted.Epoch, granted.Rvn, granted.Beat, granted.Queue = queue[0].Owner, 2, 22, 0, queue[1:]
		wantReply(t, apply(t, s, cas(key, 21, granted)), writelane.ReplyDone, nil)
		wantFound(t, apply(t, s, get(key)), &granted)
		wantReply(t, apply(t, s, cas(key, 21, first)), writelane.ReplyRefused, &granted)
		bare := record("", 2, 23)
		bare.Version = 2
		wantReply(t, apply(t, s, cas(key, 22, bare)), writelane.ReplyDone, nil)
		back := apply(t, s, get(key))
		wantFound(t, back, &bare)
		if back.Record.Version != 2 {
			t.Fatalf("a version 2 record without a queue came back as %s", show(back.Record))
		}
	})
	t.Run("RoundTrip", func(t *testing.T) {
		s, key := h.Open(t), uniqueKey(t)
		nulls := writelane.LeaseRecord{Owner: "", Epoch: 1, Rvn: 1<<53 - 1, LeaseMs: 1} // the smallest valid values
		wantReply(t, apply(t, s, put(key, nulls)), writelane.ReplyDone, nil)
		wantFound(t, apply(t, s, get(key)), &nulls)
		full := writelane.LeaseRecord{Owner: "host:4242:9f3a", Epoch: 1<<53 - 1, Rvn: 7, LeaseMs: 86400000,
			CommittedToken: str("c1:sha256:0f0e"), Holder: str(`pipeline "deploy" · run 12 ✓`)}
		wantReply(t, apply(t, s, cas(key, nulls.Rvn, full)), writelane.ReplyDone, nil)
		wantFound(t, apply(t, s, get(key)), &full)
		empties := writelane.LeaseRecord{Owner: "x", Epoch: 3, Rvn: 8, LeaseMs: 5, CommittedToken: str(""), Holder: str("")}
		wantReply(t, apply(t, s, cas(key, full.Rvn, empties)), writelane.ReplyDone, nil)
		wantFound(t, apply(t, s, get(key)), &empties)
		// A refusal carries the record found with its nulls and empty strings intact.
		wantReply(t, apply(t, s, put(key, full)), writelane.ReplyRefused, &empties)
	})
	t.Run("ConcurrentCompareAndSwap", func(t *testing.T) {
		key := uniqueKey(t)
		base := record("", 1, 100)
		wantReply(t, apply(t, h.Open(t), put(key, base)), writelane.ReplyDone, nil)
		n := h.Writers
		if n == 0 {
			n = 16
		}
		stores := make([]writelane.Store, n)
		for i := range stores {
			stores[i] = h.Open(t)
		}
		replies := make([]writelane.StoreReply, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				op := cas(key, 100, record("writer", 2, uint64(1000+i)))
				b, _ := json.Marshal(op)
				text, err := writelane.ApplyStoreJSON(context.Background(), stores[i], string(b))
				if err == nil {
					err = json.Unmarshal([]byte(text), &replies[i])
				}
				if err != nil {
					replies[i] = writelane.StoreReply{Reply: "error: " + err.Error()}
				}
			}(i)
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, r := range replies {
			switch r.Reply {
			case writelane.ReplyDone:
				if winner >= 0 {
					t.Fatalf("writers %d and %d both won", winner, i)
				}
				winner = i
			case writelane.ReplyRefused:
				if r.Current == nil || r.Current.Rvn == 100 {
					t.Fatalf("writer %d refused with %s, want the winner's record", i, show(r.Current))
				}
			default:
				t.Fatalf("writer %d: %s", i, r.Reply)
			}
		}
		if winner < 0 {
			t.Fatal("no writer won")
		}
		want := record("writer", 2, uint64(1000+winner))
		wantFound(t, apply(t, h.Open(t), get(key)), &want)
		for i, r := range replies {
			if i != winner && !r.Current.Equal(&want) {
				t.Fatalf("writer %d refused with %s, want the winner's %s", i, show(r.Current), show(&want))
			}
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		s, key := h.Unreachable(t), uniqueKey(t)
		for _, op := range []writelane.StoreOp{get(key), put(key, record("a", 1, 1)), cas(key, 1, record("a", 1, 2))} {
			r := apply(t, s, op)
			if r.Reply != writelane.ReplyUnavailable && r.Reply != writelane.ReplyLost {
				t.Fatalf("%s on a stopped store: %s, want unavailable or lost", op.Op, r.Reply)
			}
		}
	})
}
