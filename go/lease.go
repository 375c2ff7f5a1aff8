package writelane

/*
#include "writelane.h"
*/
import "C"

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// The lease rules a store adapter or tool would otherwise write again (record checks,
// owner ids, force-release) are the core's, through the C library.

// textCall runs a library call that copies text into a caller buffer, with a larger
// buffer when the library reports the one given too small.
func textCall(size int, call func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status) (string, error) {
	for {
		buf := make([]byte, size)
		var n C.size_t
		var cerr C.wl_error
		st := Status(call((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n, &cerr))
		switch {
		case st == StatusOK:
			return string(buf[:n]), nil
		case st == StatusBufferTooSmall && int(n) >= size:
			size = int(n) + 1
			continue
		}
		return "", errorFrom(errorOf(&cerr))
	}
}

// cbytes returns a pointer and length for b without copying (non-NULL when empty).
func cbytes(b []byte) (*C.char, C.size_t) {
	if len(b) == 0 {
		return (*C.char)(unsafe.Pointer(&emptyByte)), 0
	}
	return (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// ParseLeaseRecord parses and validates a lease record exactly as a store returned it
// (the JSON text a file store keeps; a DynamoDB adapter builds the same object from the
// item's attributes) with the core's rules. Store adapters never check a record
// themselves: a record that is not one writelane wrote is a *RecordError naming the
// field and the rule.
func ParseLeaseRecord(record []byte) (*LeaseRecord, error) {
	text, err := textCall(len(record)+96, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		p, l := cbytes(record)
		return C.wl_lease_record_check(p, l, buf, cap, n, cerr)
	})
	runtime.KeepAlive(record)
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
	text, err := textCall(256, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		p, l := cstr(host)
		return C.wl_owner_id(p, l, C.uint32_t(pid), C.uint64_t(entropy), buf, cap, n, cerr)
	})
	runtime.KeepAlive(host)
	return text, err
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
	var swap C.bool
	text, err := textCall(len(foundJSON)+len(key)+256, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		k, kl := cstr(key)
		var f *C.char
		var fl C.size_t
		if found != nil {
			f, fl = cbytes(foundJSON)
		}
		var rvn uint64
		if expected != nil {
			rvn = *expected
		}
		return C.wl_force_release_plan(k, kl, f, fl, C.bool(expected != nil), C.uint64_t(rvn), C.uint64_t(entropy), &swap, buf, cap, n, cerr)
	})
	runtime.KeepAlive(key)
	runtime.KeepAlive(foundJSON)
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
		var known C.bool
		opText := text
		text, err = textCall(len(opText)+256, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
			o, ol := cstr(opText)
			r, rl := cbytes(replyJSON)
			return C.wl_force_release_finish(o, ol, r, rl, &known, buf, cap, n, cerr)
		})
		runtime.KeepAlive(opText)
		runtime.KeepAlive(replyJSON)
		if err != nil {
			return res, err
		}
		if !known {
			return res, fmt.Errorf("%w: %w", ErrForceReleaseUnknown, reply.Err)
		}
	}
	err = json.Unmarshal([]byte(text), &res)
	return res, err
}
