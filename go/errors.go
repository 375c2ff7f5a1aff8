package writelane

import (
	"errors"
	"fmt"
	"sync"
)

// Status is a libwritelane status code (wl_status). Values never change.
type Status uint32

// Status values, as in writelane.h.
const (
	StatusOK              Status = 0
	StatusNullArgument    Status = 1
	StatusInvalidUTF8     Status = 2
	StatusInvalidPolicy   Status = 3
	StatusUsageError      Status = 4
	StatusBufferTooSmall  Status = 5
	StatusBusy            Status = 6
	StatusPanicked        Status = 7
	StatusPoisoned        Status = 8
	StatusInvalidDocument Status = 9
	StatusInvalidArgument Status = 10
	StatusInvalidRecord   Status = 11
)

// String is the status's name in writelane.h (WL_STATUS_BUSY), as the library spells it.
func (s Status) String() string {
	if n, ok := names().status[uint32(s)]; ok {
		return n
	}
	return libStatusName(uint32(s))
}

// libNames are the library's names of statuses and usage kinds, read once.
var libNames = sync.OnceValue(func() (n struct{ status, usage map[uint32]string }) {
	n.status, n.usage = map[uint32]string{}, map[uint32]string{}
	for v := uint32(0); v < 64; v++ {
		if name := libStatusName(v); name != "" && name != "WL_STATUS_UNKNOWN" {
			n.status[v] = name
		}
		if name := libUsageName(v); name != "" && name != "unknown" {
			n.usage[v] = name
		}
	}
	return n
})

func names() struct{ status, usage map[uint32]string } { return libNames() }

// usageName is the library's snake_case name of a usage kind ("unknown" for none).
func usageName(u uint32) string {
	if n, ok := names().usage[u]; ok {
		return n
	}
	return "unknown"
}

var (
	// ErrGaveUp matches (with errors.Is) every error of a write that gave up.
	ErrGaveUp = errors.New("writelane: gave up")
	// ErrStaleRevision matches a write that gave up because the entity is at a revision
	// the writer has not seen.
	ErrStaleRevision = errors.New("writelane: stale revision")
	// ErrClosed is returned by calls on a closed Lane or Engine.
	ErrClosed = errors.New("writelane: closed")
	// ErrLeaseLost matches a write that gave up because its shared lease was lost
	// (another process took it over, or a renewal failed); it wrote nothing without it.
	ErrLeaseLost = errors.New("writelane: lease lost")
	// ErrLockUnavailable matches a write that gave up because the lease store stayed
	// unavailable; nothing was written.
	ErrLockUnavailable = errors.New("writelane: lease store unavailable")
)

// GaveUpError is returned when a write (or an SDK call under Retryer) gave up. It matches
// ErrGaveUp, and ErrStaleRevision when Reason is "stale_revision"; Unwrap gives the last
// error the write function (or the SDK) returned, or the context's error on cancellation.
type GaveUpError struct {
	// Op is the operation id (0 for Retryer decisions).
	Op uint64
	// Entity is the entity written.
	Entity string
	// Reason is attempts_exhausted, budget_exhausted, deadline_exceeded, fatal,
	// stale_revision, cancelled, lease_lost, lock_unavailable or, for Retryer refusals,
	// not_retryable.
	Reason string
	// Class is the class of the last failure (conflict, throttle, ...), when known.
	Class string
	// Scope is the budget that refused (engine or entity) for budget_exhausted.
	Scope string
	// Code is the last error code, when known.
	Code string
	// HTTPStatus is the last HTTP status for fatal failures (0 when absent).
	HTTPStatus int
	// Attempts is the number of write attempts made.
	Attempts int
	// Expected and Found are the tokens of a stale revision (nil when absent).
	Expected, Found *string
	// Cause is the last error seen, if any.
	Cause error
}

func (e *GaveUpError) Error() string {
	msg := fmt.Sprintf("writelane: gave up on %q after %d attempts: %s", e.Entity, e.Attempts, e.Reason)
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Is matches ErrGaveUp, ErrStaleRevision for stale revisions, ErrLeaseLost and
// ErrLockUnavailable for the shared-lane reasons.
func (e *GaveUpError) Is(target error) bool {
	return target == ErrGaveUp || (target == ErrStaleRevision && e.Reason == "stale_revision") ||
		(target == ErrLeaseLost && e.Reason == "lease_lost") ||
		(target == ErrLockUnavailable && e.Reason == "lock_unavailable")
}

// Unwrap returns the last error seen.
func (e *GaveUpError) Unwrap() error { return e.Cause }

// PolicyError is a refused policy: the field path and the rule it broke.
type PolicyError struct {
	// Path is the dotted field path (retry.conflict.base_ms), or $ for the whole document.
	Path string
	// Message names the field and the rule.
	Message string
}

func (e *PolicyError) Error() string { return "writelane: " + e.Message }

// UsageError is misuse of the engine's contract (an input for an unknown operation, time
// going backwards, ...). The call changed nothing.
type UsageError struct {
	// Kind is the snake_case kind (time_went_backwards, unknown_op, ...).
	Kind string
	// Message describes it.
	Message string
}

func (e *UsageError) Error() string { return "writelane: " + e.Message }

// DocumentError is a policy document refused by PolicyToken.
type DocumentError struct {
	// Path is the place in the document (Statement[0].Effect), or $.
	Path string
	// Message describes it.
	Message string
}

func (e *DocumentError) Error() string { return "writelane: " + e.Message }

// RecordError is a lease record that the core refused (ParseLeaseRecord, ForceRelease):
// it is not one writelane wrote. Store adapters report it as an unavailable store.
type RecordError struct {
	// Field is the field at fault (epoch, rvn, ...; found.epoch for the record
	// ForceRelease read), or $ (found for ForceRelease) for the whole record.
	Field string
	// Message names the field and the rule.
	Message string
}

func (e *RecordError) Error() string { return "writelane: " + e.Message }

// StatusError is any other failure reported by libwritelane (a bad argument, a poisoned
// handle after an internal panic).
type StatusError struct {
	// Status is the code.
	Status Status
	// Path names the argument at fault, when known.
	Path string
	// Message describes it.
	Message string
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return "writelane: " + e.Status.String()
	}
	return "writelane: " + e.Status.String() + ": " + e.Message
}

func errorFrom(status Status, usage, path, message string) error {
	switch status {
	case StatusOK:
		return nil
	case StatusInvalidPolicy:
		return &PolicyError{Path: path, Message: message}
	case StatusUsageError:
		return &UsageError{Kind: usage, Message: message}
	case StatusInvalidDocument:
		return &DocumentError{Path: path, Message: message}
	case StatusInvalidRecord:
		return &RecordError{Field: path, Message: message}
	default:
		return &StatusError{Status: status, Path: path, Message: message}
	}
}

// outcomeError is the error Run returns for how the engine finished the operation: nil
// when committed, else a *GaveUpError carrying the last error seen.
func outcomeError(op uint64, entity string, o *Outcome, lastErr error) error {
	if o.Committed {
		return nil
	}
	e := &GaveUpError{
		Op: op, Entity: entity, Reason: o.Reason, Class: o.Class, Scope: o.Scope,
		HTTPStatus: o.HTTPStatus, Attempts: o.Attempts, Expected: o.Expected, Found: o.Found,
		Cause: lastErr,
	}
	if o.Code != nil {
		e.Code = *o.Code
	}
	return e
}
