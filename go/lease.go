package writelane

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The lease rules a store adapter or tool would otherwise write again (record checks,
// owner ids, force-release) are the core's, through the C ABI (either backend).

// ParseLeaseRecord parses and validates a lease record exactly as a store returned it
// (the JSON text a file store keeps; a DynamoDB adapter builds the same object from the
// item's attributes) with the core's rules. Store adapters never check a record
// themselves: a record that is not one writelane wrote is a *RecordError naming the
// field and the rule.
func ParseLeaseRecord(record []byte) (*LeaseRecord, error) {
	text, err := libLeaseRecordCheck(record)
	if err != nil {
		return nil, err
	}
	var r LeaseRecord
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		return nil, fmt.Errorf("writelane: the library's record %s: %w", text, err)
	}
	return &r, nil
}

// OwnerID is the owner id of one process in lease records, in the format every binding
// writes (the core's): HOST:PID:ENTROPY with the entropy as 16 hex digits; characters of
// the host name outside printable ASCII, and ':', become '_'. A Lane with a store and no
// WithOwner uses OwnerID(os.Hostname(), os.Getpid(), 64 random bits).
func OwnerID(host string, pid uint32, entropy uint64) (string, error) {
	host = strings.ToValidUTF8(host, "\uFFFD")
	return libOwnerID(host, pid, entropy)
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// Results of a force-release (ForceReleaseResult.Result).
const (
	ForceNoRecord    = "no_record"
	ForceAlreadyFree = "already_free"
	ForceReleased    = "released"
	ForceChanged     = "changed"
)

// ForceReleaseResult is what a force-release came to, the same shape in every binding.
type ForceReleaseResult struct {
	// Result is ForceNoRecord (nothing to release), ForceAlreadyFree (the record has no
	// owner: left as it is), ForceReleased (replaced by a free record, epoch plus one) or
	// ForceChanged (not at the expected rvn, or changed between the read and the
	// compare-and-swap: nothing written; read it again and decide again).
	Result string `json:"result"`
	// Record is the record found (already_free) or written (released).
	Record *LeaseRecord `json:"record,omitempty"`
	// Current is the record found (changed; nil when there is none).
	Current *LeaseRecord `json:"current,omitempty"`
}

// ErrForceReleaseUnknown is returned by ForceRelease when the store gave no answer to the
// compare-and-swap (lost or unavailable): it may or may not have landed. It wraps the
// store's error; read the record and decide again.
var ErrForceReleaseUnknown = errors.New("writelane: the force-release's outcome is unknown")

// ForceReleaseOption configures ForceRelease.
type ForceReleaseOption func(*forceReleaseConfig)

type forceReleaseConfig struct{ expectedRvn *uint64 }

// ExpectedRvn releases only the holding with this rvn (the one you inspected): a record
// at another rvn is left as it is (ForceChanged).
func ExpectedRvn(rvn uint64) ForceReleaseOption {
	return func(c *forceReleaseConfig) { c.expectedRvn = &rvn }
}

// ForceRelease frees a stuck lease at key for people who know its holder is gone. It
// reads the record and lets the core decide: a held record is replaced, by
// compare-and-swap on the rvn read, with one that has no owner, the epoch plus one (the
// old holder's fence is behind every later writer's, and its next renewal is refused), a
// new rvn and no committed token (the next holder reads first); the record is never
// deleted. A store error on the read is returned as it is; no answer to the
// compare-and-swap is ErrForceReleaseUnknown.
func ForceRelease(ctx context.Context, s Store, key string, opts ...ForceReleaseOption) (ForceReleaseResult, error) {
	var cfg forceReleaseConfig
	for _, o := range opts {
		o(&cfg)
	}
	return forceRelease(ctx, s, key, cfg.expectedRvn, randomUint64())
}

func forceRelease(ctx context.Context, s Store, key string, expected *uint64, entropy uint64) (ForceReleaseResult, error) {
	var res ForceReleaseResult
	found, err := s.Get(ctx, key)
	if err != nil {
		return res, err
	}
	var foundJSON []byte
	if found != nil {
		foundJSON, _ = json.Marshal(found)
	}
	swap, text, err := libForceReleasePlan(key, foundJSON, found != nil, expected, entropy)
	if err != nil {
		return res, err
	}
	if swap {
		op, err := ParseStoreOp(text)
		if err != nil {
			return res, err
		}
		reply := ApplyStoreOp(ctx, s, op)
		replyJSON, err := json.Marshal(reply)
		if err != nil {
			return res, err
		}
		known, finished, err := libForceReleaseFinish(text, replyJSON)
		if err != nil {
			return res, err
		}
		text = finished
		if !known {
			return res, fmt.Errorf("%w: %w", ErrForceReleaseUnknown, reply.Err)
		}
	}
	err = json.Unmarshal([]byte(text), &res)
	return res, err
}
