//go:build writelane_cgo && cgo

package writelane

// The cgo backend (build tag writelane_cgo): the static C library of bindings-c, found
// with pkg-config as writelane-static (the C release tarball's lib/pkgconfig, or the one
// bindings-c/install.sh writes). Each Engine holds a wl_engine; its call structs and the
// strings they point to live in C memory, so no Go pointer is passed to C inside a struct.

/*
#cgo pkg-config: writelane-static
#include <stdlib.h>
#include "writelane.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// backend names the backend this package was built with.
const backend = "cgo"

// emptyByte backs empty strings, which must still be passed as a non-NULL pointer.
var emptyByte byte

// cstr returns a pointer and length for s without copying. The pointer is valid while s
// is alive; C does not keep it past the call.
func cstr(s string) (*C.char, C.size_t) {
	if len(s) == 0 {
		return (*C.char)(unsafe.Pointer(&emptyByte)), 0
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// cbytes returns a pointer and length for b without copying (non-NULL when empty).
func cbytes(b []byte) (*C.char, C.size_t) {
	if len(b) == 0 {
		return (*C.char)(unsafe.Pointer(&emptyByte)), 0
	}
	return (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// gostr copies a borrowed wl_str; nil when absent.
func gostr(s C.wl_str) *string {
	if s.ptr == nil {
		return nil
	}
	v := C.GoStringN(s.ptr, C.int(s.len))
	return &v
}

func libErrorOf(e *C.wl_error) libError {
	return libError{status: uint32(e.status), usage: uint32(e.usage), path: C.GoString(&e.path[0]), message: C.GoString(&e.message[0])}
}

func libABIVersion() uint32 { return uint32(C.wl_abi_version()) }

func libVersion() string { return C.GoString(C.wl_version()) }

func libStatusName(s uint32) string { return C.GoString(C.wl_status_name(C.uint32_t(s))) }

func libUsageName(u uint32) string { return C.GoString(C.wl_usage_name(C.uint32_t(u))) }

// bareCall is the cheapest call into the library, for measuring cgo overhead.
func bareCall() uint32 { return uint32(C.wl_abi_version()) }

// headerValues are the header's values of the constants abi.go and the public types
// spell in Go, for the tests to compare.
func headerValues() map[string][2]uint64 {
	return map[string][2]uint64{
		"WL_ABI_VERSION":                            {C.WL_ABI_VERSION, wlABIVersion},
		"WL_POLICY_TOKEN_LEN":                       {C.WL_POLICY_TOKEN_LEN, wlPolicyTokenLen},
		"WL_ERROR_PATH_CAP":                         {C.WL_ERROR_PATH_CAP, wlErrorPathCap},
		"WL_ERROR_MESSAGE_CAP":                      {C.WL_ERROR_MESSAGE_CAP, wlErrorMessageCap},
		"WL_STATUS_OK":                              {C.WL_STATUS_OK, uint64(StatusOK)},
		"WL_STATUS_NULL_ARGUMENT":                   {C.WL_STATUS_NULL_ARGUMENT, uint64(StatusNullArgument)},
		"WL_STATUS_INVALID_UTF8":                    {C.WL_STATUS_INVALID_UTF8, uint64(StatusInvalidUTF8)},
		"WL_STATUS_INVALID_POLICY":                  {C.WL_STATUS_INVALID_POLICY, uint64(StatusInvalidPolicy)},
		"WL_STATUS_USAGE_ERROR":                     {C.WL_STATUS_USAGE_ERROR, uint64(StatusUsageError)},
		"WL_STATUS_BUFFER_TOO_SMALL":                {C.WL_STATUS_BUFFER_TOO_SMALL, uint64(StatusBufferTooSmall)},
		"WL_STATUS_BUSY":                            {C.WL_STATUS_BUSY, uint64(StatusBusy)},
		"WL_STATUS_PANICKED":                        {C.WL_STATUS_PANICKED, uint64(StatusPanicked)},
		"WL_STATUS_POISONED":                        {C.WL_STATUS_POISONED, uint64(StatusPoisoned)},
		"WL_STATUS_INVALID_DOCUMENT":                {C.WL_STATUS_INVALID_DOCUMENT, uint64(StatusInvalidDocument)},
		"WL_STATUS_INVALID_ARGUMENT":                {C.WL_STATUS_INVALID_ARGUMENT, uint64(StatusInvalidArgument)},
		"WL_STATUS_INVALID_RECORD":                  {C.WL_STATUS_INVALID_RECORD, uint64(StatusInvalidRecord)},
		"WL_COMMAND_KIND_NONE":                      {C.WL_COMMAND_KIND_NONE, wlCommandNone},
		"WL_COMMAND_KIND_READ":                      {C.WL_COMMAND_KIND_READ, uint64(CommandRead)},
		"WL_COMMAND_KIND_WRITE":                     {C.WL_COMMAND_KIND_WRITE, uint64(CommandWrite)},
		"WL_COMMAND_KIND_FINISH":                    {C.WL_COMMAND_KIND_FINISH, uint64(CommandFinish)},
		"WL_COMMAND_KIND_STORE":                     {C.WL_COMMAND_KIND_STORE, uint64(CommandStore)},
		"WL_COMMAND_KIND_APPLY":                     {C.WL_COMMAND_KIND_APPLY, uint64(CommandApply)},
		"WL_OUTCOME_COMMITTED":                      {C.WL_OUTCOME_COMMITTED, wlOutcomeCommitted},
		"WL_BUDGET_SCOPE_ENGINE":                    {C.WL_BUDGET_SCOPE_ENGINE, wlBudgetScopeEngine},
		"WL_BUDGET_SCOPE_ENTITY":                    {C.WL_BUDGET_SCOPE_ENTITY, wlBudgetScopeEntity},
		"WL_INPUT_KIND_READ_DONE":                   {C.WL_INPUT_KIND_READ_DONE, uint64(ReadDone)},
		"WL_INPUT_KIND_READ_FAILED":                 {C.WL_INPUT_KIND_READ_FAILED, uint64(ReadFailed)},
		"WL_INPUT_KIND_WRITE_DONE":                  {C.WL_INPUT_KIND_WRITE_DONE, uint64(WriteDone)},
		"WL_INPUT_KIND_WRITE_FAILED":                {C.WL_INPUT_KIND_WRITE_FAILED, uint64(WriteFailed)},
		"WL_INPUT_KIND_CANCEL":                      {C.WL_INPUT_KIND_CANCEL, uint64(Cancel)},
		"WL_INPUT_KIND_STORE_REPLY":                 {C.WL_INPUT_KIND_STORE_REPLY, uint64(InputStoreReply)},
		"WL_INPUT_KIND_APPLY_DONE":                  {C.WL_INPUT_KIND_APPLY_DONE, uint64(InputApplyDone)},
		"WL_GIVE_UP_REASON_LOCK_UNAVAILABLE (last)": {C.WL_GIVE_UP_REASON_LOCK_UNAVAILABLE, uint64(len(reasonNames) - 1)},
		"WL_ERROR_CLASS_FATAL (last)":               {C.WL_ERROR_CLASS_FATAL, uint64(len(classNames) - 1)},
		"WL_REFUSAL_DEADLINE_EXCEEDED (last)":       {C.WL_REFUSAL_DEADLINE_EXCEEDED, uint64(len(refusalNames) - 1)},
	}
}

// headerNames pairs the Go name tables' entries at the header's values with the names
// they must have, for the tests to compare.
func headerNames() [][2]string {
	return [][2]string{
		{reasonName(C.WL_GIVE_UP_REASON_ATTEMPTS_EXHAUSTED), "attempts_exhausted"},
		{reasonName(C.WL_GIVE_UP_REASON_BUDGET_EXHAUSTED), "budget_exhausted"},
		{reasonName(C.WL_GIVE_UP_REASON_DEADLINE_EXCEEDED), "deadline_exceeded"},
		{reasonName(C.WL_GIVE_UP_REASON_FATAL), "fatal"},
		{reasonName(C.WL_GIVE_UP_REASON_STALE_REVISION), "stale_revision"},
		{reasonName(C.WL_GIVE_UP_REASON_CANCELLED), "cancelled"},
		{reasonName(C.WL_GIVE_UP_REASON_LEASE_LOST), "lease_lost"},
		{reasonName(C.WL_GIVE_UP_REASON_LOCK_UNAVAILABLE), "lock_unavailable"},
		{className(C.WL_ERROR_CLASS_CONFLICT), "conflict"},
		{className(C.WL_ERROR_CLASS_THROTTLE), "throttle"},
		{className(C.WL_ERROR_CLASS_TRANSIENT), "transient"},
		{className(C.WL_ERROR_CLASS_UNKNOWN), "unknown"},
		{className(C.WL_ERROR_CLASS_FATAL), "fatal"},
		{refusalName(C.WL_REFUSAL_NOT_RETRYABLE), "not_retryable"},
		{refusalName(C.WL_REFUSAL_ATTEMPTS_EXHAUSTED), "attempts_exhausted"},
		{refusalName(C.WL_REFUSAL_BUDGET_EXHAUSTED), "budget_exhausted"},
		{refusalName(C.WL_REFUSAL_DEADLINE_EXCEEDED), "deadline_exceeded"},
	}
}

// scratch is allocated with C.calloc: it holds no Go pointers.
type scratch struct {
	in    C.wl_input
	cmd   C.wl_command
	fail  C.wl_failure
	opts  C.wl_submit_options
	dec   C.wl_retry_decision
	tok   C.wl_retry_token
	str   C.wl_str
	err   C.wl_error
	op    C.uint64_t
	at    C.uint64_t
	has   C.bool
	level C.uint32_t
	class C.wl_error_class
	len   C.size_t
}

// engineHandle is one wl_engine with its call structs and string arena in C memory.
type engineHandle struct {
	h *C.wl_engine
	s *scratch
	// arena is C memory that the strings of one call are copied into, so the structs
	// passed to C hold no Go pointers.
	arena    unsafe.Pointer
	arenaCap int
	used     int
}

func newEngineHandle(c ctor, policy string, seed uint64, owner string) (*engineHandle, error) {
	var h *C.wl_engine
	var cerr C.wl_error
	p, n := cstr(policy)
	o, on := cstr(owner)
	var st C.wl_status
	switch c {
	case ctorPlain:
		st = C.wl_engine_new(p, n, C.uint64_t(seed), &h, &cerr)
	case ctorOwner:
		st = C.wl_engine_new_with_owner(p, n, C.uint64_t(seed), o, on, &h, &cerr)
	default:
		st = C.wl_engine_new_for_store(p, n, C.uint64_t(seed), o, on, &h, &cerr)
	}
	runtime.KeepAlive(policy)
	runtime.KeepAlive(owner)
	if st != C.WL_STATUS_OK {
		le := libErrorOf(&cerr)
		return nil, le.err()
	}
	return &engineHandle{h: h, s: (*scratch)(C.calloc(1, C.size_t(unsafe.Sizeof(scratch{}))))}, nil
}

func (e *engineHandle) free() {
	C.wl_engine_free(e.h)
	C.free(e.arena)
	C.free(unsafe.Pointer(e.s))
	*e = engineHandle{}
}

// check turns a failed status into an error with the handle's details.
func (e *engineHandle) check(st C.wl_status) error {
	if st == C.WL_STATUS_OK {
		return nil
	}
	cerr := &e.s.err
	if C.wl_engine_last_error(e.h, cerr) != C.WL_STATUS_OK || cerr.status != st {
		return &StatusError{Status: Status(st)}
	}
	le := libErrorOf(cerr)
	return le.err()
}

// reserve makes room for n bytes of strings in the arena and empties it.
func (e *engineHandle) reserve(n int) {
	if n+1 > e.arenaCap {
		C.free(e.arena)
		e.arenaCap = 2*n + 64
		e.arena = C.malloc(C.size_t(e.arenaCap))
	}
	e.used = 0
}

// put copies an optional string into the arena (reserve made room for it).
func (e *engineHandle) put(s *string) C.wl_str {
	if s == nil {
		return C.wl_str{}
	}
	p := unsafe.Add(e.arena, e.used)
	copy(unsafe.Slice((*byte)(p), len(*s)), *s)
	e.used += len(*s)
	return C.wl_str{ptr: (*C.char)(p), len: C.size_t(len(*s))}
}

// failure converts f, copying its strings into the arena (reserved by the caller).
func (e *engineHandle) failure(f *Failure) C.wl_failure {
	var out C.wl_failure
	if f == nil {
		return out
	}
	if f.Code != "" {
		out.code = e.put(&f.Code)
	}
	out.http_status = C.uint16_t(f.HTTPStatus)
	if f.RetryAfterMs != nil {
		out.has_retry_after = true
		out.retry_after_ms = C.uint64_t(*f.RetryAfterMs)
	}
	out.retry_after_header = e.put(f.RetryAfterHeader)
	out.outcome_unknown = C.bool(f.OutcomeUnknown)
	out.intended_token = e.put(f.IntendedToken)
	return out
}

func (e *engineHandle) submit(entity string, now uint64, opts *SubmitOptions) (uint64, error) {
	e.reserve(strLen(opts.Expected) + strLen(opts.Holder))
	o := &e.s.opts
	o.expected = e.put(opts.Expected)
	o.holder = e.put(opts.Holder)
	o.no_read = C.bool(opts.NoRead)
	o.has_deadline = opts.DeadlineMs != nil
	o.deadline_ms = 0
	if opts.DeadlineMs != nil {
		o.deadline_ms = C.uint64_t(*opts.DeadlineMs)
	}
	p, n := cstr(entity)
	st := C.wl_engine_submit(e.h, p, n, C.uint64_t(now), o, &e.s.op)
	runtime.KeepAlive(entity)
	return uint64(e.s.op), e.check(st)
}

func (e *engineHandle) handle(now uint64, in *Input, reply *string) error {
	e.reserve(strLen(in.Token) + failureLen(in.Failure) + strLen(reply))
	ci := &e.s.in
	ci.kind = C.uint32_t(in.Kind)
	ci.op = C.uint64_t(in.Op)
	ci.token = e.put(in.Token)
	ci.failure = e.failure(in.Failure)
	ci.reply = e.put(reply)
	return e.check(C.wl_engine_handle(e.h, C.uint64_t(now), ci))
}

func (e *engineHandle) handleTimeout(now uint64) error {
	return e.check(C.wl_engine_handle_timeout(e.h, C.uint64_t(now)))
}

func (e *engineHandle) submitUpdate(entity string, now uint64, opts *UpdateOptions) (uint64, error) {
	e.reserve(strLen(opts.Holder))
	o := &e.s.opts
	o.expected = C.wl_str{}
	o.holder = e.put(opts.Holder)
	o.no_read = false
	o.has_deadline = opts.DeadlineMs != nil
	o.deadline_ms = 0
	if opts.DeadlineMs != nil {
		o.deadline_ms = C.uint64_t(*opts.DeadlineMs)
	}
	p, n := cstr(entity)
	st := C.wl_engine_submit_update(e.h, p, n, C.uint64_t(now), o, &e.s.op)
	runtime.KeepAlive(entity)
	return uint64(e.s.op), e.check(st)
}

// pollCommand takes a command (action: or an apply step) of any operation, or of op.
func (e *engineHandle) pollCommand(action, forOp bool, op uint64, out *rawCommand) error {
	c := &e.s.cmd
	var st C.wl_status
	switch {
	case action && forOp:
		st = C.wl_engine_poll_action_for(e.h, C.uint64_t(op), c)
	case action:
		st = C.wl_engine_poll_action(e.h, c)
	case forOp:
		st = C.wl_engine_poll_command_for(e.h, C.uint64_t(op), c)
	default:
		st = C.wl_engine_poll_command(e.h, c)
	}
	if err := e.check(st); err != nil {
		return err
	}
	*out = rawCommand{kind: uint32(c.kind), op: uint64(c.op)}
	switch out.kind {
	case wlCommandWrite:
		out.attempt = uint32(c.attempt)
		out.baseToken = gostr(c.base_token)
		out.hasFence = bool(c.has_fence)
		out.fence = uint64(c.fence)
	case wlCommandStore, wlCommandApply:
		out.operation = C.GoStringN(c.operation.ptr, C.int(c.operation.len))
	case wlCommandFinish:
		out.outcome = uint32(c.outcome)
		out.attempts = uint32(c.attempts)
		out.token = gostr(c.token)
		out.reason = uint32(c.reason)
		out.errorClass = uint32(c.error_class)
		out.budgetScope = uint32(c.budget_scope)
		out.code = gostr(c.code)
		out.httpStatus = uint16(c.http_status)
		out.expected = gostr(c.expected)
		out.found = gostr(c.found)
	}
	return nil
}

func (e *engineHandle) pollTimeout(forOp bool, op uint64) (uint64, bool, error) {
	var st C.wl_status
	if forOp {
		st = C.wl_engine_poll_timeout_for(e.h, C.uint64_t(op), &e.s.has, &e.s.at)
	} else {
		st = C.wl_engine_poll_timeout(e.h, &e.s.has, &e.s.at)
	}
	return uint64(e.s.at), bool(e.s.has), e.check(st)
}

func (e *engineHandle) pollTimeoutsFor(ops, at []uint64) error {
	st := C.wl_engine_poll_timeouts_for(e.h, (*C.uint64_t)(unsafe.Pointer(&ops[0])), C.size_t(len(ops)), (*C.uint64_t)(unsafe.Pointer(&at[0])))
	return e.check(st)
}

func (e *engineHandle) clearEvents() (int, error) {
	st := C.wl_engine_clear_events(e.h, &e.s.op)
	return int(e.s.op), e.check(st)
}

func (e *engineHandle) pollEvent() (string, bool, error) {
	s := &e.s.str
	if err := e.check(C.wl_engine_poll_event(e.h, s)); err != nil {
		return "", false, err
	}
	if s.ptr == nil {
		return "", false, nil
	}
	return C.GoStringN(s.ptr, C.int(s.len)), true, nil
}

func (e *engineHandle) statsJSON() (string, error) {
	s := &e.s.str
	if err := e.check(C.wl_engine_stats_json(e.h, s)); err != nil {
		return "", err
	}
	return C.GoStringN(s.ptr, C.int(s.len)), nil
}

func (e *engineHandle) exportState() (string, error) {
	s := &e.s.str
	if err := e.check(C.wl_engine_export_state(e.h, s)); err != nil {
		return "", err
	}
	return C.GoStringN(s.ptr, C.int(s.len)), nil
}

func (e *engineHandle) importState(state string) error {
	p, n := cstr(state)
	st := C.wl_engine_import_state(e.h, p, n)
	runtime.KeepAlive(state)
	return e.check(st)
}

func (e *engineHandle) policyJSON() (string, error) {
	n := &e.s.len
	st := C.wl_engine_policy_json(e.h, nil, 0, n)
	if st != C.WL_STATUS_BUFFER_TOO_SMALL {
		return "", e.check(st)
	}
	buf := (*C.char)(C.malloc(*n + 1))
	defer C.free(unsafe.Pointer(buf))
	if err := e.check(C.wl_engine_policy_json(e.h, buf, *n+1, n)); err != nil {
		return "", err
	}
	return C.GoStringN(buf, C.int(*n)), nil
}

func (e *engineHandle) setToken(t *rawToken) {
	e.s.tok = C.wl_retry_token{scope: C.uint32_t(t.scope), attempts: C.uint32_t(t.attempts), last_cost: C.uint32_t(t.lastCost),
		last_delay_ms: C.uint64_t(t.lastDelayMs), started_ms: C.uint64_t(t.startedMs)}
}

func (e *engineHandle) token() rawToken {
	c := &e.s.tok
	return rawToken{scope: uint32(c.scope), attempts: uint32(c.attempts), lastCost: uint32(c.last_cost),
		lastDelayMs: uint64(c.last_delay_ms), startedMs: uint64(c.started_ms)}
}

func (e *engineHandle) decision(d *rawDecision) {
	c := &e.s.dec
	*d = rawDecision{retry: bool(c.retry), delayMs: uint64(c.delay_ms), cost: uint32(c.cost),
		errorClass: uint32(c.error_class), refuse: uint32(c.refusal)}
}

func (e *engineHandle) retryAcquire(scope string, now uint64) (rawToken, error) {
	p, n := cstr(scope)
	st := C.wl_engine_retry_acquire(e.h, p, n, C.uint64_t(now), &e.s.tok)
	runtime.KeepAlive(scope)
	return e.token(), e.check(st)
}

func (e *engineHandle) retryRefresh(t *rawToken, f *Failure, now uint64, d *rawDecision) error {
	e.reserve(failureLen(f))
	e.s.fail = e.failure(f)
	e.setToken(t)
	if err := e.check(C.wl_engine_retry_refresh(e.h, &e.s.tok, &e.s.fail, C.uint64_t(now), &e.s.dec)); err != nil {
		return err
	}
	*t = e.token()
	e.decision(d)
	return nil
}

func (e *engineHandle) retryDelay(attempt int, f *Failure, now uint64, d *rawDecision) error {
	e.reserve(failureLen(f))
	e.s.fail = e.failure(f)
	if err := e.check(C.wl_engine_retry_delay(e.h, C.uint32_t(attempt), &e.s.fail, C.uint64_t(now), &e.s.dec)); err != nil {
		return err
	}
	e.decision(d)
	return nil
}

func (e *engineHandle) classify(f *Failure) (uint32, error) {
	e.reserve(failureLen(f))
	e.s.fail = e.failure(f)
	st := C.wl_engine_classify(e.h, &e.s.fail, &e.s.class)
	return uint32(e.s.class), e.check(st)
}

func (e *engineHandle) retrySuccess(t *rawToken) error {
	e.setToken(t)
	return e.check(C.wl_engine_retry_success(e.h, &e.s.tok))
}

func (e *engineHandle) retryCapacity(scope string) (uint32, error) {
	p, n := cstr(scope)
	st := C.wl_engine_retry_capacity(e.h, p, n, &e.s.level)
	runtime.KeepAlive(scope)
	return uint32(e.s.level), e.check(st)
}

// The free-standing functions.

// textCall runs a library call that copies text into a caller buffer, with a larger
// buffer when the library reports the one given too small.
func textCall(size int, call func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status) (string, error) {
	for {
		buf := make([]byte, size)
		var n C.size_t
		var cerr C.wl_error
		st := call((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n, &cerr)
		switch {
		case st == C.WL_STATUS_OK:
			return string(buf[:n]), nil
		case st == C.WL_STATUS_BUFFER_TOO_SMALL && int(n) >= size:
			size = int(n) + 1
			continue
		}
		le := libErrorOf(&cerr)
		return "", le.err()
	}
}

func libPolicyToken(doc string) (string, error) {
	t, err := textCall(wlPolicyTokenLen+1, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		p, l := cstr(doc)
		return C.wl_policy_token(p, l, buf, cap, n, cerr)
	})
	runtime.KeepAlive(doc)
	return t, err
}

func libLeaseRecordCheck(record []byte) (string, error) {
	t, err := textCall(len(record)+96, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		p, l := cbytes(record)
		return C.wl_lease_record_check(p, l, buf, cap, n, cerr)
	})
	runtime.KeepAlive(record)
	return t, err
}

func libOwnerID(host string, pid uint32, entropy uint64) (string, error) {
	t, err := textCall(256, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		p, l := cstr(host)
		return C.wl_owner_id(p, l, C.uint32_t(pid), C.uint64_t(entropy), buf, cap, n, cerr)
	})
	runtime.KeepAlive(host)
	return t, err
}

func libForceReleasePlan(key string, found []byte, hasFound bool, expected *uint64, entropy uint64) (bool, string, error) {
	var swap C.bool
	t, err := textCall(len(found)+len(key)+256, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		k, kl := cstr(key)
		var f *C.char
		var fl C.size_t
		if hasFound {
			f, fl = cbytes(found)
		}
		var rvn uint64
		if expected != nil {
			rvn = *expected
		}
		return C.wl_force_release_plan(k, kl, f, fl, C.bool(expected != nil), C.uint64_t(rvn), C.uint64_t(entropy), &swap, buf, cap, n, cerr)
	})
	runtime.KeepAlive(key)
	runtime.KeepAlive(found)
	return bool(swap), t, err
}

func libForceReleaseFinish(op string, reply []byte) (bool, string, error) {
	var known C.bool
	t, err := textCall(len(op)+256, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		o, ol := cstr(op)
		r, rl := cbytes(reply)
		return C.wl_force_release_finish(o, ol, r, rl, &known, buf, cap, n, cerr)
	})
	runtime.KeepAlive(op)
	runtime.KeepAlive(reply)
	return bool(known), t, err
}

func libIAMPutStatement(doc, statement string) (string, error) {
	t, err := textCall(len(doc)+len(statement)+64, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		d, dl := cstr(doc)
		s, sl := cstr(statement)
		return C.wl_iam_put_statement(d, dl, s, sl, buf, cap, n, cerr)
	})
	runtime.KeepAlive(doc)
	runtime.KeepAlive(statement)
	return t, err
}

func libIAMRemoveStatement(doc, sid string) (string, error) {
	t, err := textCall(len(doc)+64, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		d, dl := cstr(doc)
		s, sl := cstr(sid)
		return C.wl_iam_remove_statement(d, dl, s, sl, buf, cap, n, cerr)
	})
	runtime.KeepAlive(doc)
	runtime.KeepAlive(sid)
	return t, err
}

func libIAMAddTrustPrincipal(doc, sid, kind, principal string) (string, error) {
	t, err := textCall(len(doc)+len(sid)+len(principal)+128, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		d, dl := cstr(doc)
		s, sl := cstr(sid)
		k, kl := cstr(kind)
		p, pl := cstr(principal)
		return C.wl_iam_add_trust_principal(d, dl, s, sl, k, kl, p, pl, buf, cap, n, cerr)
	})
	runtime.KeepAlive(doc)
	runtime.KeepAlive(sid)
	runtime.KeepAlive(kind)
	runtime.KeepAlive(principal)
	return t, err
}

func libIAMSetTags(tags, set string) (string, error) {
	t, err := textCall(len(tags)+len(set)+64, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		d, dl := cstr(tags)
		s, sl := cstr(set)
		return C.wl_iam_set_tags(d, dl, s, sl, buf, cap, n, cerr)
	})
	runtime.KeepAlive(tags)
	runtime.KeepAlive(set)
	return t, err
}

func libIAMEntities(service, operation, params, context string) (string, error) {
	t, err := textCall(len(operation)+256, func(buf *C.char, cap C.size_t, n *C.size_t, cerr *C.wl_error) C.wl_status {
		s, sl := cstr(service)
		o, ol := cstr(operation)
		p, pl := cstr(params)
		c, cl := cstr(context)
		return C.wl_iam_entities(s, sl, o, ol, p, pl, c, cl, buf, cap, n, cerr)
	})
	runtime.KeepAlive(service)
	runtime.KeepAlive(operation)
	runtime.KeepAlive(params)
	runtime.KeepAlive(context)
	return t, err
}
