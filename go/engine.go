package writelane

/*
#include <stdlib.h>
#include "writelane.h"
*/
import "C"

import (
	"encoding/json"
	"runtime"
	"sync"
	"unsafe"
)

// Engine is the sans-IO write-discipline engine: the host submits writes, drains commands,
// carries them out, feeds back what it observed and calls HandleTimeout when PollTimeout
// says so. Times are milliseconds on a monotonic clock chosen by the caller. Most programs
// use Lane, which drives an Engine; Engine is for hosts with their own event loop.
//
// An Engine is safe for use by several goroutines (calls are serialised by a mutex).
// Close frees it; Close is idempotent.
type Engine struct {
	mu sync.Mutex
	h  *C.wl_engine
	// arena is C memory that optional strings of structs are copied into for one call,
	// so the structs passed to C hold no Go pointers.
	arena    unsafe.Pointer
	arenaCap int
	used     int
	// s holds the structs of one call in C memory, so calls neither allocate on the Go
	// heap nor pass Go pointers. Used under mu.
	s *scratch
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
	op    C.uint64_t
	at    C.uint64_t
	has   C.bool
	level C.uint32_t
	class C.wl_error_class
	len   C.size_t
}

// NewEngine builds an engine from a policy given as JSON text (a preset name as a JSON
// string such as `"iam"` with its quotes, or an object with "preset", "service" and
// overrides) and a seed for the jitter generator. A refused policy is a *PolicyError.
func NewEngine(policy string, seed uint64) (*Engine, error) {
	var h *C.wl_engine
	var cerr C.wl_error
	p, n := cstr(policy)
	st := Status(C.wl_engine_new(p, n, C.uint64_t(seed), &h, &cerr))
	runtime.KeepAlive(policy)
	if st != StatusOK {
		return nil, errorFrom(errorOf(&cerr))
	}
	return newEngine(h), nil
}

// NewEngineWithOwner builds an engine, as NewEngine does, that writes lease records as
// owner (1 to 256 bytes, unique per process, such as "host:pid:random"). A policy with
// "lanes": {"mode": "shared"} needs one: each lane holder then acquires a lease in a
// store the writers share (CommandStore commands) before it writes. An empty or
// oversized owner is a *UsageError of kind invalid_owner.
func NewEngineWithOwner(policy string, seed uint64, owner string) (*Engine, error) {
	var h *C.wl_engine
	var cerr C.wl_error
	p, n := cstr(policy)
	o, on := cstr(owner)
	st := Status(C.wl_engine_new_with_owner(p, n, C.uint64_t(seed), o, on, &h, &cerr))
	runtime.KeepAlive(policy)
	runtime.KeepAlive(owner)
	if st != StatusOK {
		return nil, errorFrom(errorOf(&cerr))
	}
	return newEngine(h), nil
}

// NewEngineForStore builds an engine, as NewEngineWithOwner does, for a host that
// carries out its store commands with a lease store: the policy's lanes are shared
// whatever it said (a store means shared lanes; "aws-standard", whose lanes are none, and
// an explicit local mode included), a rule of the core every driver applies.
func NewEngineForStore(policy string, seed uint64, owner string) (*Engine, error) {
	var h *C.wl_engine
	var cerr C.wl_error
	p, n := cstr(policy)
	o, on := cstr(owner)
	st := Status(C.wl_engine_new_for_store(p, n, C.uint64_t(seed), o, on, &h, &cerr))
	runtime.KeepAlive(policy)
	runtime.KeepAlive(owner)
	if st != StatusOK {
		return nil, errorFrom(errorOf(&cerr))
	}
	return newEngine(h), nil
}

func newEngine(h *C.wl_engine) *Engine {
	e := &Engine{h: h, s: (*scratch)(C.calloc(1, C.size_t(unsafe.Sizeof(scratch{}))))}
	runtime.SetFinalizer(e, (*Engine).Close)
	return e
}

// Close frees the engine. It is idempotent; later calls return ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h != nil {
		C.wl_engine_free(e.h)
		e.h = nil
		C.free(e.arena)
		e.arena, e.arenaCap = nil, 0
		C.free(unsafe.Pointer(e.s))
		e.s = nil
		runtime.SetFinalizer(e, nil)
	}
	return nil
}

// lastError turns a failed status into an error with the handle's details. The caller
// holds e.mu.
func (e *Engine) lastError(st C.wl_status) error {
	if Status(st) == StatusOK {
		return nil
	}
	var cerr C.wl_error
	if C.wl_engine_last_error(e.h, &cerr) != C.WL_STATUS_OK || Status(cerr.status) != Status(st) {
		return &StatusError{Status: Status(st)}
	}
	return errorFrom(errorOf(&cerr))
}

// reserve makes room for n bytes of strings in the arena and empties it. The caller
// holds e.mu.
func (e *Engine) reserve(n int) {
	if n+1 > e.arenaCap {
		C.free(e.arena)
		e.arenaCap = 2*n + 64
		e.arena = C.malloc(C.size_t(e.arenaCap))
	}
	e.used = 0
}

// put copies an optional string into the arena (reserve made room for it).
func (e *Engine) put(s *string) C.wl_str {
	if s == nil {
		return C.wl_str{}
	}
	p := unsafe.Add(e.arena, e.used)
	copy(unsafe.Slice((*byte)(p), len(*s)), *s)
	e.used += len(*s)
	return C.wl_str{ptr: (*C.char)(p), len: C.size_t(len(*s))}
}

func strLen(s *string) int {
	if s == nil {
		return 0
	}
	return len(*s)
}

func failureLen(f *Failure) int {
	if f == nil {
		return 0
	}
	return len(f.Code) + strLen(f.RetryAfterHeader) + strLen(f.IntendedToken)
}

// SubmitOptions are the options of one logical write.
type SubmitOptions struct {
	// Expected is the change token the writer based its change on; with token validation
	// on, the engine refuses to write on another revision.
	Expected *string
	// DeadlineMs overrides the policy's deadline (milliseconds from submission).
	DeadlineMs *uint64
	// Holder says who holds the lease in words (host, pipeline, run id; at most 1024
	// bytes), stored in the lease record with shared lanes for people debugging a stuck
	// lease.
	Holder *string
	// NoRead says the writer has no read function: the engine never commands a read for
	// this operation. Together with Expected it is a *UsageError (expected_needs_read).
	NoRead bool
}

// Submit starts one logical write of entity at now and returns its operation id.
func (e *Engine) Submit(entity string, now uint64, opts SubmitOptions) (uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.submitLocked(entity, now, opts)
}

func (e *Engine) submitLocked(entity string, now uint64, opts SubmitOptions) (uint64, error) {
	if e.h == nil {
		return 0, ErrClosed
	}
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
	return uint64(e.s.op), e.lastError(st)
}

// InputKind says what an Input reports.
type InputKind uint32

// Input kinds.
const (
	ReadDone    InputKind = C.WL_INPUT_KIND_READ_DONE
	ReadFailed  InputKind = C.WL_INPUT_KIND_READ_FAILED
	WriteDone   InputKind = C.WL_INPUT_KIND_WRITE_DONE
	WriteFailed InputKind = C.WL_INPUT_KIND_WRITE_FAILED
	Cancel      InputKind = C.WL_INPUT_KIND_CANCEL
	// InputStoreReply reports what the lease store answered to a CommandStore (Reply).
	InputStoreReply InputKind = C.WL_INPUT_KIND_STORE_REPLY
)

// Failure is what the host observed when a call failed. It is also an error: a write
// function may return a *Failure (or wrap one) to classify its error exactly.
type Failure struct {
	// Code is the error code as the service sent it ("" when none).
	Code string
	// HTTPStatus is the HTTP status (0 when there was no response).
	HTTPStatus int
	// RetryAfterMs is the service's retry-after hint, when given.
	RetryAfterMs *uint64
	// RetryAfterHeader is the hint as header text; text that is not a whole number of
	// milliseconds is ignored. Set at most one of the two.
	RetryAfterHeader *string
	// OutcomeUnknown says the request was sent and no reply came back.
	OutcomeUnknown bool
	// IntendedToken is the change token the write would have produced, when known.
	IntendedToken *string
}

func (f *Failure) Error() string {
	if f.Code != "" {
		return "writelane: failure " + f.Code
	}
	return "writelane: failure"
}

// Input is what the host observed, fed back with Handle.
type Input struct {
	// Kind says what is reported.
	Kind InputKind
	// Op is the operation.
	Op uint64
	// Token is the observed (read) or new (write) change token; nil when absent.
	Token *string
	// Failure is set for ReadFailed and WriteFailed.
	Failure *Failure
	// Reply is set for InputStoreReply: what the lease store answered (ApplyStoreOp
	// gives it).
	Reply *StoreReply
}

// fillFailure converts f, copying its strings into the arena (reserved by the caller).
func (e *Engine) fillFailure(f *Failure) C.wl_failure {
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

// Handle feeds what the host observed for one operation at now. Misuse is a *UsageError
// and changes nothing.
func (e *Engine) Handle(now uint64, in Input) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.handleLocked(now, in)
}

func (e *Engine) handleLocked(now uint64, in Input) error {
	if e.h == nil {
		return ErrClosed
	}
	var reply *string
	if in.Reply != nil {
		b, err := json.Marshal(in.Reply)
		if err != nil {
			return err
		}
		text := string(b)
		reply = &text
	}
	e.reserve(strLen(in.Token) + failureLen(in.Failure) + strLen(reply))
	ci := &e.s.in
	ci.kind = C.uint32_t(in.Kind)
	ci.op = C.uint64_t(in.Op)
	ci.token = e.put(in.Token)
	ci.failure = e.fillFailure(in.Failure)
	ci.reply = e.put(reply)
	return e.lastError(C.wl_engine_handle(e.h, C.uint64_t(now), ci))
}

// HandleTimeout fires every timer due at or before now.
func (e *Engine) HandleTimeout(now uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.handleTimeoutLocked(now)
}

func (e *Engine) handleTimeoutLocked(now uint64) error {
	if e.h == nil {
		return ErrClosed
	}
	return e.lastError(C.wl_engine_handle_timeout(e.h, C.uint64_t(now)))
}

// CommandKind says what a Command asks for.
type CommandKind uint32

// Command kinds.
const (
	CommandRead   CommandKind = C.WL_COMMAND_KIND_READ
	CommandWrite  CommandKind = C.WL_COMMAND_KIND_WRITE
	CommandFinish CommandKind = C.WL_COMMAND_KIND_FINISH
	// CommandStore asks for a lease-store operation (shared lanes): carry out Store with
	// the adapter (ApplyStoreOp) and report InputStoreReply.
	CommandStore CommandKind = C.WL_COMMAND_KIND_STORE
)

// Command is something the host must do now.
type Command struct {
	// Kind: read the entity, write it, or the operation finished.
	Kind CommandKind
	// Op is the operation.
	Op uint64
	// Attempt is the write attempt number, from 1 (CommandWrite).
	Attempt int
	// BaseToken is the revision the write must be based on (CommandWrite; nil when unknown).
	BaseToken *string
	// Fence is the lease epoch the write is made under (CommandWrite with shared lanes;
	// nil otherwise), for services that can check a fence.
	Fence *uint64
	// Store is the lease-store operation (CommandStore).
	Store *StoreOp
	// StoreJSON is the same operation as the JSON text the library handed out.
	StoreJSON string
	// Outcome says how the operation ended (CommandFinish).
	Outcome *Outcome
}

// Outcome is how a logical write ended.
type Outcome struct {
	// Committed is true when the write landed.
	Committed bool
	// Token is the committed change token, when known.
	Token *string
	// Attempts is the number of write attempts made.
	Attempts int
	// Reason says why it gave up (attempts_exhausted, budget_exhausted,
	// deadline_exceeded, fatal, stale_revision, cancelled, and with shared lanes
	// lease_lost, lock_unavailable); "" when committed.
	Reason string
	// Class is the class of the last failure (attempts_exhausted, budget_exhausted).
	Class string
	// Scope is the budget that refused (budget_exhausted): engine or entity.
	Scope string
	// Code is the last error code (attempts_exhausted, budget_exhausted,
	// deadline_exceeded, fatal), nil when absent.
	Code *string
	// HTTPStatus is the HTTP status of a fatal failure (0 when absent).
	HTTPStatus int
	// Expected and Found are the tokens of a stale revision.
	Expected, Found *string
}

func commandOf(c *C.wl_command) (*Command, error) {
	if c.kind == C.WL_COMMAND_KIND_NONE {
		return nil, nil
	}
	cmd := &Command{Kind: CommandKind(c.kind), Op: uint64(c.op)}
	switch cmd.Kind {
	case CommandWrite:
		cmd.Attempt = int(c.attempt)
		cmd.BaseToken = gostr(c.base_token)
		if c.has_fence {
			f := uint64(c.fence)
			cmd.Fence = &f
		}
	case CommandStore:
		cmd.StoreJSON = C.GoStringN(c.operation.ptr, C.int(c.operation.len))
		op, err := ParseStoreOp(cmd.StoreJSON)
		if err != nil {
			return nil, err
		}
		cmd.Store = &op
	case CommandFinish:
		o := &Outcome{Attempts: int(c.attempts)}
		if c.outcome == C.WL_OUTCOME_COMMITTED {
			o.Committed = true
			o.Token = gostr(c.token)
		} else {
			o.Reason = reasonName(c.reason)
			if c.error_class != C.WL_ERROR_CLASS_NONE {
				o.Class = className(c.error_class)
			}
			switch c.budget_scope {
			case C.WL_BUDGET_SCOPE_ENGINE:
				o.Scope = "engine"
			case C.WL_BUDGET_SCOPE_ENTITY:
				o.Scope = "entity"
			}
			o.Code = gostr(c.code)
			o.HTTPStatus = int(c.http_status)
			o.Expected = gostr(c.expected)
			o.Found = gostr(c.found)
		}
		cmd.Outcome = o
	}
	return cmd, nil
}

func reasonName(r C.wl_give_up_reason) string {
	switch r {
	case C.WL_GIVE_UP_REASON_ATTEMPTS_EXHAUSTED:
		return "attempts_exhausted"
	case C.WL_GIVE_UP_REASON_BUDGET_EXHAUSTED:
		return "budget_exhausted"
	case C.WL_GIVE_UP_REASON_DEADLINE_EXCEEDED:
		return "deadline_exceeded"
	case C.WL_GIVE_UP_REASON_FATAL:
		return "fatal"
	case C.WL_GIVE_UP_REASON_STALE_REVISION:
		return "stale_revision"
	case C.WL_GIVE_UP_REASON_CANCELLED:
		return "cancelled"
	case C.WL_GIVE_UP_REASON_LEASE_LOST:
		return "lease_lost"
	case C.WL_GIVE_UP_REASON_LOCK_UNAVAILABLE:
		return "lock_unavailable"
	}
	return ""
}

func className(c C.wl_error_class) string {
	switch c {
	case C.WL_ERROR_CLASS_CONFLICT:
		return "conflict"
	case C.WL_ERROR_CLASS_THROTTLE:
		return "throttle"
	case C.WL_ERROR_CLASS_TRANSIENT:
		return "transient"
	case C.WL_ERROR_CLASS_UNKNOWN:
		return "unknown"
	case C.WL_ERROR_CLASS_FATAL:
		return "fatal"
	}
	return ""
}

func refusalName(r C.wl_refusal) string {
	switch r {
	case C.WL_REFUSAL_NOT_RETRYABLE:
		return "not_retryable"
	case C.WL_REFUSAL_ATTEMPTS_EXHAUSTED:
		return "attempts_exhausted"
	case C.WL_REFUSAL_BUDGET_EXHAUSTED:
		return "budget_exhausted"
	case C.WL_REFUSAL_DEADLINE_EXCEEDED:
		return "deadline_exceeded"
	}
	return ""
}

// PollCommand takes the next command for any operation; nil when none is pending.
func (e *Engine) PollCommand() (*Command, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return nil, ErrClosed
	}
	c := &e.s.cmd
	if err := e.lastError(C.wl_engine_poll_command(e.h, c)); err != nil {
		return nil, err
	}
	return commandOf(c)
}

// PollCommandFor takes the pending command of one operation; nil when none.
func (e *Engine) PollCommandFor(op uint64) (*Command, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pollCommandForLocked(op)
}

func (e *Engine) pollCommandForLocked(op uint64) (*Command, error) {
	if e.h == nil {
		return nil, ErrClosed
	}
	c := &e.s.cmd
	if err := e.lastError(C.wl_engine_poll_command_for(e.h, C.uint64_t(op), c)); err != nil {
		return nil, err
	}
	return commandOf(c)
}

// PollTimeout says when HandleTimeout must next be called; ok is false when nothing
// waits on time.
func (e *Engine) PollTimeout() (at uint64, ok bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return 0, false, ErrClosed
	}
	err = e.lastError(C.wl_engine_poll_timeout(e.h, &e.s.has, &e.s.at))
	return uint64(e.s.at), bool(e.s.has), err
}

func (e *Engine) pollTimeoutForLocked(op uint64) (at uint64, ok bool, err error) {
	if e.h == nil {
		return 0, false, ErrClosed
	}
	err = e.lastError(C.wl_engine_poll_timeout_for(e.h, C.uint64_t(op), &e.s.has, &e.s.at))
	return uint64(e.s.at), bool(e.s.has), err
}

// PollTimeoutsFor writes when each of ops's timers fires to at (len(ops) entries;
// math.MaxUint64 for an operation that waits on no timer), in one call into the library.
func (e *Engine) PollTimeoutsFor(ops, at []uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(at) < len(ops) {
		return &StatusError{Status: StatusInvalidArgument, Path: "at", Message: "at is shorter than ops"}
	}
	if e.h == nil {
		return ErrClosed
	}
	if len(ops) == 0 {
		return nil
	}
	st := C.wl_engine_poll_timeouts_for(e.h, (*C.uint64_t)(unsafe.Pointer(&ops[0])), C.size_t(len(ops)), (*C.uint64_t)(unsafe.Pointer(&at[0])))
	return e.lastError(st)
}

// PollTimeoutFor says when one operation's timer fires; ok is false when it waits on none.
func (e *Engine) PollTimeoutFor(op uint64) (at uint64, ok bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pollTimeoutForLocked(op)
}

// ClearEvents drops every queued telemetry event without reading it and returns how
// many were dropped.
func (e *Engine) ClearEvents() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return 0, ErrClosed
	}
	st := C.wl_engine_clear_events(e.h, &e.s.op)
	return int(e.s.op), e.lastError(st)
}

// PollEvent takes the next telemetry event as JSON text (tagged by "type"); ok is false
// when none is queued.
func (e *Engine) PollEvent() (event string, ok bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return "", false, ErrClosed
	}
	s := &e.s.str
	if err := e.lastError(C.wl_engine_poll_event(e.h, s)); err != nil {
		return "", false, err
	}
	if s.ptr == nil {
		return "", false, nil
	}
	return C.GoStringN(s.ptr, C.int(s.len)), true, nil
}

func (e *Engine) jsonCall(f func(*C.wl_engine, *C.wl_str) C.wl_status) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return "", ErrClosed
	}
	s := &e.s.str
	if err := e.lastError(f(e.h, s)); err != nil {
		return "", err
	}
	return C.GoStringN(s.ptr, C.int(s.len)), nil
}

// StatsJSON returns the counters, globally and per entity, as JSON text.
func (e *Engine) StatsJSON() (string, error) {
	return e.jsonCall(func(h *C.wl_engine, s *C.wl_str) C.wl_status { return C.wl_engine_stats_json(h, s) })
}

// ExportState returns what the engine learned (committed tokens, budget levels) as JSON.
func (e *Engine) ExportState() (string, error) {
	return e.jsonCall(func(h *C.wl_engine, s *C.wl_str) C.wl_status { return C.wl_engine_export_state(h, s) })
}

// ImportState restores state from ExportState of an earlier engine.
func (e *Engine) ImportState(state string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return ErrClosed
	}
	p, n := cstr(state)
	st := C.wl_engine_import_state(e.h, p, n)
	runtime.KeepAlive(state)
	return e.lastError(st)
}

// PolicyJSON returns the effective policy as JSON text.
func (e *Engine) PolicyJSON() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return "", ErrClosed
	}
	n := &e.s.len
	st := C.wl_engine_policy_json(e.h, nil, 0, n)
	if Status(st) != StatusBufferTooSmall {
		return "", e.lastError(st)
	}
	buf := (*C.char)(C.malloc(*n + 1))
	defer C.free(unsafe.Pointer(buf))
	if err := e.lastError(C.wl_engine_policy_json(e.h, buf, *n+1, n)); err != nil {
		return "", err
	}
	return C.GoStringN(buf, C.int(*n)), nil
}

// RetryToken is the state of one logical call under the retry strategy; keep it between
// decisions and pass it back unchanged.
type RetryToken struct {
	c C.wl_retry_token
}

// RetryDecision is the strategy's decision after a failure.
type RetryDecision struct {
	// Retry says whether to retry after DelayMs.
	Retry bool
	// DelayMs is the wait before the next attempt.
	DelayMs uint64
	// Cost is the budget tokens the retry took.
	Cost uint32
	// Class is the failure's class.
	Class string
	// Refusal says why not (not_retryable, attempts_exhausted, budget_exhausted,
	// deadline_exceeded) when Retry is false.
	Refusal string
}

func decisionOf(d *C.wl_retry_decision) RetryDecision {
	return RetryDecision{
		Retry:   bool(d.retry),
		DelayMs: uint64(d.delay_ms),
		Cost:    uint32(d.cost),
		Class:   className(d.error_class),
		Refusal: refusalName(d.refusal),
	}
}

// RetryAcquire starts a logical call in scope (a budget partition) at now.
func (e *Engine) RetryAcquire(scope string, now uint64) (RetryToken, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.retryAcquireLocked(scope, now)
}

func (e *Engine) retryAcquireLocked(scope string, now uint64) (RetryToken, error) {
	var t RetryToken
	if e.h == nil {
		return t, ErrClosed
	}
	p, n := cstr(scope)
	st := C.wl_engine_retry_acquire(e.h, p, n, C.uint64_t(now), &e.s.tok)
	runtime.KeepAlive(scope)
	t.c = e.s.tok
	return t, e.lastError(st)
}

// RetryRefresh decides whether the call holding t, which just failed with f at now, may
// be retried; t is updated on a retry.
func (e *Engine) RetryRefresh(t *RetryToken, f *Failure, now uint64) (RetryDecision, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.retryRefreshLocked(t, f, now)
}

func (e *Engine) retryRefreshLocked(t *RetryToken, f *Failure, now uint64) (RetryDecision, error) {
	if e.h == nil {
		return RetryDecision{}, ErrClosed
	}
	e.reserve(failureLen(f))
	e.s.fail = e.fillFailure(f)
	e.s.tok = t.c
	st := C.wl_engine_retry_refresh(e.h, &e.s.tok, &e.s.fail, C.uint64_t(now), &e.s.dec)
	if err := e.lastError(st); err != nil {
		return RetryDecision{}, err
	}
	t.c = e.s.tok
	return decisionOf(&e.s.dec), nil
}

// RetrySuccess records that the call holding t succeeded (refunding the last retry's cost).
func (e *Engine) RetrySuccess(t *RetryToken) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.retrySuccessLocked(t)
}

func (e *Engine) retrySuccessLocked(t *RetryToken) error {
	if e.h == nil {
		return ErrClosed
	}
	e.s.tok = t.c
	return e.lastError(C.wl_engine_retry_success(e.h, &e.s.tok))
}

// RetryCapacity returns the tokens left in scope's budget.
func (e *Engine) RetryCapacity(scope string) (uint32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return 0, ErrClosed
	}
	p, n := cstr(scope)
	st := C.wl_engine_retry_capacity(e.h, p, n, &e.s.level)
	runtime.KeepAlive(scope)
	return uint32(e.s.level), e.lastError(st)
}

func (e *Engine) retryDelayLocked(attempt int, f *Failure, now uint64) (RetryDecision, error) {
	if e.h == nil {
		return RetryDecision{}, ErrClosed
	}
	e.reserve(failureLen(f))
	e.s.fail = e.fillFailure(f)
	st := C.wl_engine_retry_delay(e.h, C.uint32_t(attempt), &e.s.fail, C.uint64_t(now), &e.s.dec)
	if err := e.lastError(st); err != nil {
		return RetryDecision{}, err
	}
	return decisionOf(&e.s.dec), nil
}

func (e *Engine) classifyLocked(f *Failure) (string, error) {
	if e.h == nil {
		return "", ErrClosed
	}
	e.reserve(failureLen(f))
	e.s.fail = e.fillFailure(f)
	st := C.wl_engine_classify(e.h, &e.s.fail, &e.s.class)
	return className(e.s.class), e.lastError(st)
}

// Classify returns the class the policy puts f in (conflict, throttle, transient,
// unknown or fatal).
func (e *Engine) Classify(f *Failure) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.classifyLocked(f)
}

// PolicyToken returns the canonical change token of an IAM policy document (JSON text,
// possibly URL-encoded). Semantically equal documents give equal tokens. A refused
// document is a *DocumentError naming the path inside it.
func PolicyToken(doc string) (string, error) {
	var buf [C.WL_POLICY_TOKEN_LEN + 1]C.char
	var n C.size_t
	var cerr C.wl_error
	p, l := cstr(doc)
	st := C.wl_policy_token(p, l, &buf[0], C.size_t(len(buf)), &n, &cerr)
	runtime.KeepAlive(doc)
	if Status(st) != StatusOK {
		return "", errorFrom(errorOf(&cerr))
	}
	return C.GoStringN(&buf[0], C.int(n)), nil
}
