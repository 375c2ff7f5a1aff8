package writelane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// LeaseRecord is what a lease store keeps per key (the entity name) for shared lanes.
// Its JSON form is the one every writelane binding and store adapter uses, the core's:
// {"owner", "epoch", "rvn", "lease_ms", "committed_token", "holder"} for a version 1
// record and, for a version 2 record (the queue-like hand-off), "version" first and
// "beat", "next_ticket", "hold_ms" and "queue" after "holder", each left out when zero
// or empty as the core leaves them out. Adapters keep every field: one that dropped the
// version 2 fields would turn the record back into version 1 (no queue forms).
type LeaseRecord struct {
	// Version is the record's format: 2, or 0 (left out of the JSON) for version 1.
	Version uint64 `json:"version,omitempty"`
	// Owner is the process holding the lease; "" when released.
	Owner string `json:"owner"`
	// Epoch is the fence: bumped by every new holder, never decreases.
	Epoch uint64 `json:"epoch"`
	// Rvn is the record version number: it changes on every write of the record.
	Rvn uint64 `json:"rvn"`
	// LeaseMs is how long the holder may go without renewing.
	LeaseMs uint64 `json:"lease_ms"`
	// CommittedToken is the entity's last committed change token; nil when none.
	CommittedToken *string `json:"committed_token"`
	// Holder says who holds it in words (host, pipeline, run id); nil when not given.
	Holder *string `json:"holder"`
	// Beat is version 2's progress counter of the holding, bumped by the holder only; 0
	// while the lease is granted to a waiter that has not accepted it.
	Beat uint64 `json:"beat,omitempty"`
	// NextTicket is version 2's next ticket number to give out; it only grows.
	NextTicket uint64 `json:"next_ticket,omitempty"`
	// HoldMs is version 2's expected hold in milliseconds, a moving average the holders
	// publish (0: none known).
	HoldMs uint64 `json:"hold_ms,omitempty"`
	// Queue holds version 2's waiters, oldest first, at most 64.
	Queue []Ticket `json:"queue,omitempty"`
}

// Ticket is one waiter in a version 2 record's queue.
type Ticket struct {
	// Owner is the waiting process's owner id.
	Owner string `json:"owner"`
	// Ticket is its ticket number: the record's NextTicket when it registered.
	Ticket uint64 `json:"ticket"`
	// Beat is its progress counter, bumped by the waiter every renewal interval.
	Beat uint64 `json:"beat"`
}

// Clone returns a deep copy of r (nil for nil).
func (r *LeaseRecord) Clone() *LeaseRecord {
	if r == nil {
		return nil
	}
	c := *r
	if r.CommittedToken != nil {
		t := *r.CommittedToken
		c.CommittedToken = &t
	}
	if r.Holder != nil {
		h := *r.Holder
		c.Holder = &h
	}
	if r.Queue != nil {
		c.Queue = append([]Ticket(nil), r.Queue...)
	}
	return &c
}

// Equal reports whether r and o hold the same fields, the version 2 ones included (nil
// equals nil only; version 0 and 1 are both version 1; a nil and an empty queue are
// the same).
func (r *LeaseRecord) Equal(o *LeaseRecord) bool {
	if r == nil || o == nil {
		return r == nil && o == nil
	}
	eq := func(a, b *string) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }
	version := func(v uint64) uint64 { return max(v, 1) }
	if len(r.Queue) != len(o.Queue) {
		return false
	}
	for i := range r.Queue {
		if r.Queue[i] != o.Queue[i] {
			return false
		}
	}
	return version(r.Version) == version(o.Version) && r.Owner == o.Owner && r.Epoch == o.Epoch &&
		r.Rvn == o.Rvn && r.LeaseMs == o.LeaseMs && eq(r.CommittedToken, o.CommittedToken) &&
		eq(r.Holder, o.Holder) && r.Beat == o.Beat && r.NextTicket == o.NextTicket && r.HoldMs == o.HoldMs
}

// Store is a lease store adapter: one record per key and exactly three primitives, each
// strongly consistent. The engine's store commands are carried out with them (see
// ApplyStoreOp). Implementations must be safe for concurrent use.
//
// Errors: return an error wrapping ErrStoreUnavailable when the store could not be
// reached or refused the request outright (nothing was written), and one wrapping
// ErrStoreLost when a request was sent but no reply came back (it may have been
// applied). ApplyStoreOp treats any other error of a conditional write as lost (the
// engine reads the record back) and of a get as unavailable.
type Store interface {
	// Get reads the record at key; nil when there is none.
	Get(ctx context.Context, key string) (*LeaseRecord, error)
	// PutIfAbsent creates the record at key if there is none. When one exists it returns
	// ok false and the record found.
	PutIfAbsent(ctx context.Context, key string, record LeaseRecord) (ok bool, current *LeaseRecord, err error)
	// CompareAndSwap replaces the whole record at key if the stored record's rvn is
	// expectedRvn. Otherwise it returns ok false and the record found (nil when none).
	CompareAndSwap(ctx context.Context, key string, expectedRvn uint64, record LeaseRecord) (ok bool, current *LeaseRecord, err error)
}

var (
	// ErrStoreUnavailable is wrapped by adapter errors meaning the store could not be
	// reached or refused the request outright; nothing was written.
	ErrStoreUnavailable = errors.New("writelane: lease store unavailable")
	// ErrStoreLost is wrapped by adapter errors meaning a request was sent and no reply
	// came back (a timeout, a dropped connection): it may or may not have been applied.
	ErrStoreLost = errors.New("writelane: lease store reply lost")
)

// Store operation kinds (StoreOp.Op).
const (
	StoreGet            = "get"
	StorePutIfAbsent    = "put_if_absent"
	StoreCompareAndSwap = "compare_and_swap"
)

// StoreOp is one store operation the engine asks for (a store command), in the JSON form
// {"op":"get","key":K} | {"op":"put_if_absent","key":K,"record":R} |
// {"op":"compare_and_swap","key":K,"expected_rvn":N,"record":R}.
type StoreOp struct {
	// Op is StoreGet, StorePutIfAbsent or StoreCompareAndSwap.
	Op string `json:"op"`
	// Key is the record's key (the entity name).
	Key string `json:"key"`
	// ExpectedRvn is the rvn the stored record must have (compare_and_swap only).
	ExpectedRvn *uint64 `json:"expected_rvn,omitempty"`
	// Record is the record to write (put_if_absent and compare_and_swap).
	Record *LeaseRecord `json:"record,omitempty"`
}

// Store reply kinds (StoreReply.Reply).
const (
	ReplyFound       = "found"
	ReplyDone        = "done"
	ReplyRefused     = "refused"
	ReplyLost        = "lost"
	ReplyUnavailable = "unavailable"
)

// StoreReply is what the adapter observed, fed back to the engine. JSON:
// {"reply":"found","record":R|null} | {"reply":"done"} | {"reply":"refused","current":R|null}
// | {"reply":"lost"} | {"reply":"unavailable"}.
type StoreReply struct {
	// Reply is ReplyFound, ReplyDone, ReplyRefused, ReplyLost or ReplyUnavailable.
	Reply string
	// Record is the record a get found (nil when none); ReplyFound only.
	Record *LeaseRecord
	// Current is the record found by a refused conditional write (nil when none);
	// ReplyRefused only.
	Current *LeaseRecord
	// Err is the adapter's error behind a lost or unavailable reply (not serialised).
	Err error
}

// MarshalJSON writes the reply in the engine's JSON form.
func (r StoreReply) MarshalJSON() ([]byte, error) {
	switch r.Reply {
	case ReplyFound:
		return json.Marshal(struct {
			Reply  string       `json:"reply"`
			Record *LeaseRecord `json:"record"`
		}{r.Reply, r.Record})
	case ReplyRefused:
		return json.Marshal(struct {
			Reply   string       `json:"reply"`
			Current *LeaseRecord `json:"current"`
		}{r.Reply, r.Current})
	case ReplyDone, ReplyLost, ReplyUnavailable:
		return json.Marshal(struct {
			Reply string `json:"reply"`
		}{r.Reply})
	}
	return nil, &StoreOpError{Field: "reply", Message: fmt.Sprintf("unknown store reply %q", r.Reply)}
}

// UnmarshalJSON reads a reply in the engine's JSON form.
func (r *StoreReply) UnmarshalJSON(b []byte) error {
	var raw struct {
		Reply   string       `json:"reply"`
		Record  *LeaseRecord `json:"record"`
		Current *LeaseRecord `json:"current"`
	}
	if err := strictDecode(b, &raw); err != nil {
		return err
	}
	switch raw.Reply {
	case ReplyFound, ReplyDone, ReplyRefused, ReplyLost, ReplyUnavailable:
	default:
		return &StoreOpError{Field: "reply", Message: fmt.Sprintf("unknown store reply %q", raw.Reply)}
	}
	*r = StoreReply{Reply: raw.Reply, Record: raw.Record, Current: raw.Current}
	return nil
}

// StoreOpError is a store operation (or reply) that is not well formed: Field names the
// field at fault.
type StoreOpError struct {
	// Field is the JSON field at fault ("op", "record.epoch", "$" for the whole text).
	Field string
	// Message names the field and the rule.
	Message string
}

func (e *StoreOpError) Error() string { return "writelane: store operation: " + e.Message }

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		field := "$"
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			field = te.Field
		} else if s := err.Error(); strings.HasPrefix(s, "json: unknown field ") {
			field = strings.Trim(strings.TrimPrefix(s, "json: unknown field "), `"`)
		}
		return &StoreOpError{Field: field, Message: fmt.Sprintf("field '%s': %v", field, err)}
	}
	if dec.More() {
		return &StoreOpError{Field: "$", Message: "trailing data after the JSON value"}
	}
	return nil
}

// ParseStoreOp reads a store operation from its JSON text, checking that the fields its
// kind needs are there. A malformed operation is a *StoreOpError naming the field.
func ParseStoreOp(operation string) (StoreOp, error) {
	var op StoreOp
	if err := strictDecode([]byte(operation), &op); err != nil {
		return StoreOp{}, err
	}
	return op, op.validate()
}

func (op StoreOp) validate() error {
	switch op.Op {
	case StoreGet:
		if op.Record != nil || op.ExpectedRvn != nil {
			return &StoreOpError{Field: "op", Message: "a get takes only a key"}
		}
	case StorePutIfAbsent:
		if op.Record == nil {
			return &StoreOpError{Field: "record", Message: "field 'record' is required for put_if_absent"}
		}
		if op.ExpectedRvn != nil {
			return &StoreOpError{Field: "expected_rvn", Message: "field 'expected_rvn' is not allowed for put_if_absent"}
		}
	case StoreCompareAndSwap:
		if op.Record == nil {
			return &StoreOpError{Field: "record", Message: "field 'record' is required for compare_and_swap"}
		}
		if op.ExpectedRvn == nil {
			return &StoreOpError{Field: "expected_rvn", Message: "field 'expected_rvn' is required for compare_and_swap"}
		}
	default:
		return &StoreOpError{Field: "op", Message: fmt.Sprintf("field 'op': unknown store operation %q (get, put_if_absent, compare_and_swap)", op.Op)}
	}
	if op.Key == "" {
		return &StoreOpError{Field: "key", Message: "field 'key' must not be empty"}
	}
	return nil
}

// ApplyStoreOp carries out op with the adapter s and returns the reply for the engine.
// Adapter errors never escape: they become ReplyLost or ReplyUnavailable (with Err set).
// A malformed op gives ReplyUnavailable with a *StoreOpError in Err, and nothing is sent
// to the store.
func ApplyStoreOp(ctx context.Context, s Store, op StoreOp) StoreReply {
	if err := op.validate(); err != nil {
		return StoreReply{Reply: ReplyUnavailable, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return StoreReply{Reply: ReplyUnavailable, Err: fmt.Errorf("%w: %w", ErrStoreUnavailable, err)}
	}
	switch op.Op {
	case StoreGet:
		rec, err := s.Get(ctx, op.Key)
		if err != nil {
			return failedReply(err, false)
		}
		return StoreReply{Reply: ReplyFound, Record: rec}
	case StorePutIfAbsent:
		ok, cur, err := s.PutIfAbsent(ctx, op.Key, *op.Record)
		return writeReply(ok, cur, err)
	default:
		ok, cur, err := s.CompareAndSwap(ctx, op.Key, *op.ExpectedRvn, *op.Record)
		return writeReply(ok, cur, err)
	}
}

func writeReply(ok bool, cur *LeaseRecord, err error) StoreReply {
	switch {
	case err != nil:
		return failedReply(err, true)
	case ok:
		return StoreReply{Reply: ReplyDone}
	default:
		return StoreReply{Reply: ReplyRefused, Current: cur}
	}
}

// failedReply maps an adapter error: wrapped sentinels decide; otherwise a call that ran
// out of time (the lane bounds each by lease.store_timeout_ms) or a write whose fate is
// unknown is lost (the engine reads back), and a get is unavailable.
func failedReply(err error, write bool) StoreReply {
	switch {
	case errors.Is(err, ErrStoreUnavailable):
		return StoreReply{Reply: ReplyUnavailable, Err: err}
	case errors.Is(err, ErrStoreLost), errors.Is(err, context.DeadlineExceeded), write:
		return StoreReply{Reply: ReplyLost, Err: err}
	default:
		return StoreReply{Reply: ReplyUnavailable, Err: err}
	}
}

// ApplyStoreJSON carries out a store operation given as JSON text (the engine's store
// command) with s and returns the reply as JSON text. Adapter errors become "lost" or
// "unavailable" replies; only a malformed operation is an error (*StoreOpError).
func ApplyStoreJSON(ctx context.Context, s Store, operation string) (string, error) {
	op, err := ParseStoreOp(operation)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(ApplyStoreOp(ctx, s, op))
	return string(b), err
}
