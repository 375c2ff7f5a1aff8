package writelane

import (
	"encoding/json"
	"runtime"
	"sync"
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
	// h is the library's engine in the backend (nil once closed); used under mu.
	h *engineHandle
}

// NewEngine builds an engine from a policy given as JSON text (a preset name as a JSON
// string such as `"iam"` with its quotes, or an object with "preset", "service" and
// overrides) and a seed for the jitter generator. A refused policy is a *PolicyError.
func NewEngine(policy string, seed uint64) (*Engine, error) {
	return newEngine(ctorPlain, policy, seed, "")
}

// NewEngineWithOwner builds an engine, as NewEngine does, that writes lease records as
// owner (1 to 256 bytes, unique per process, such as "host:pid:random"). A policy with
// "lanes": {"mode": "shared"} needs one: each lane holder then acquires a lease in a
// store the writers share (CommandStore commands) before it writes. An empty or
// oversized owner is a *UsageError of kind invalid_owner.
func NewEngineWithOwner(policy string, seed uint64, owner string) (*Engine, error) {
	return newEngine(ctorOwner, policy, seed, owner)
}

// NewEngineForStore builds an engine, as NewEngineWithOwner does, for a host that
// carries out its store commands with a lease store: the policy's lanes are shared
// whatever it said (a store means shared lanes; "aws-standard", whose lanes are none, and
// an explicit local mode included), a rule of the core every driver applies.
func NewEngineForStore(policy string, seed uint64, owner string) (*Engine, error) {
	return newEngine(ctorStore, policy, seed, owner)
}

func newEngine(c ctor, policy string, seed uint64, owner string) (*Engine, error) {
	h, err := newEngineHandle(c, policy, seed, owner)
	if err != nil {
		return nil, err
	}
	e := &Engine{h: h}
	runtime.SetFinalizer(e, (*Engine).Close)
	return e, nil
}

// Close frees the engine. It is idempotent; later calls return ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h != nil {
		e.h.free()
		e.h = nil
		runtime.SetFinalizer(e, nil)
	}
	return nil
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
	return e.h.submit(entity, now, &opts)
}

// InputKind says what an Input reports.
type InputKind uint32

// Input kinds.
const (
	ReadDone    InputKind = wlInputReadDone
	ReadFailed  InputKind = wlInputReadFailed
	WriteDone   InputKind = wlInputWriteDone
	WriteFailed InputKind = wlInputWriteFailed
	Cancel      InputKind = wlInputCancel
	// InputStoreReply reports what the lease store answered to a CommandStore (Reply).
	InputStoreReply InputKind = wlInputStoreReply
	// InputApplyDone answers a CommandApply (Results: one per op of the Apply, in its
	// order).
	InputApplyDone InputKind = wlInputApplyDone
)

// ApplyResult is what one update's change made of the document, in an InputApplyDone.
type ApplyResult struct {
	// Op is the update.
	Op uint64 `json:"op"`
	// Applied says the change was applied; false when the change function refused, which
	// excludes the update from the write.
	Applied bool `json:"applied"`
	// Code names why a change was refused (at most 256 bytes); the update gives up as
	// fatal with it.
	Code *string `json:"code,omitempty"`
}

// Apply is a batch's second step (CommandApply), between its read and its write: run each
// update's change, in the order of Ops, on the document the read returned (each next one
// on the previous result), and report every op applied or refused with InputApplyDone.
type Apply struct {
	// Op is the batch's leader: it carries the batch's read, apply and write.
	Op uint64 `json:"op"`
	// Ops are the updates whose changes to apply, in FIFO order.
	Ops []uint64 `json:"ops"`
}

// UpdateOptions are the options of one update (SubmitUpdate). An update always reads and
// is based on what it read, so it has neither Expected nor NoRead.
type UpdateOptions struct {
	// DeadlineMs overrides the policy's deadline (milliseconds from submission).
	DeadlineMs *uint64
	// Holder says who holds the lease in words (shared lanes; at most 1024 bytes).
	Holder *string
}

// SubmitUpdate starts one update of entity at now (group commit) and returns its
// operation id: a change the host applies to the entity's document when the engine says
// so (CommandApply), rather than an opaque write. Updates queued behind the lane holder
// join its batch: the leader reads once, the host runs every member's change in FIFO
// order, and one write carries them all. Drain with PollAction or PollActionFor, which
// also hand out the apply step. A change may run more than once, on fresher documents.
func (e *Engine) SubmitUpdate(entity string, now uint64, opts UpdateOptions) (uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return 0, ErrClosed
	}
	return e.h.submitUpdate(entity, now, &opts)
}

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
	// Results is set for InputApplyDone: one per op of the Apply, in its order.
	Results []ApplyResult
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
	var payload any
	switch {
	case in.Kind == InputApplyDone:
		results := in.Results
		if results == nil {
			results = []ApplyResult{}
		}
		payload = results
	case in.Reply != nil:
		payload = in.Reply
	}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		text := string(b)
		reply = &text
	}
	return e.h.handle(now, &in, reply)
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
	return e.h.handleTimeout(now)
}

// CommandKind says what a Command asks for.
type CommandKind uint32

// Command kinds.
const (
	CommandRead   CommandKind = wlCommandRead
	CommandWrite  CommandKind = wlCommandWrite
	CommandFinish CommandKind = wlCommandFinish
	// CommandStore asks for a lease-store operation (shared lanes): carry out Store with
	// the adapter (ApplyStoreOp) and report InputStoreReply.
	CommandStore CommandKind = wlCommandStore
	// CommandApply (only from PollAction and PollActionFor) asks the batch's leader to
	// run its members' changes (Apply) and report InputApplyDone.
	CommandApply CommandKind = wlCommandApply
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
	// Apply is the batch's apply step (CommandApply).
	Apply *Apply
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

// PollCommand takes the next command for any operation; nil when none is pending.
func (e *Engine) PollCommand() (*Command, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return nil, ErrClosed
	}
	var c rawCommand
	if err := e.h.pollCommand(false, false, 0, &c); err != nil {
		return nil, err
	}
	return commandOf(&c)
}

// PollAction takes the next command or apply step (CommandApply) for any operation; nil
// when none is pending. Hosts that submit updates drain with it; PollCommand never hands
// out an apply step.
func (e *Engine) PollAction() (*Command, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return nil, ErrClosed
	}
	var c rawCommand
	if err := e.h.pollCommand(true, false, 0, &c); err != nil {
		return nil, err
	}
	return commandOf(&c)
}

// PollActionFor takes the pending command or apply step of one operation; nil when none.
func (e *Engine) PollActionFor(op uint64) (*Command, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return nil, ErrClosed
	}
	var c rawCommand
	if err := e.h.pollCommand(true, true, op, &c); err != nil {
		return nil, err
	}
	return commandOf(&c)
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
	var c rawCommand
	if err := e.h.pollCommand(false, true, op, &c); err != nil {
		return nil, err
	}
	return commandOf(&c)
}

// PollTimeout says when HandleTimeout must next be called; ok is false when nothing
// waits on time.
func (e *Engine) PollTimeout() (at uint64, ok bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return 0, false, ErrClosed
	}
	return e.h.pollTimeout(false, 0)
}

func (e *Engine) pollTimeoutForLocked(op uint64) (at uint64, ok bool, err error) {
	if e.h == nil {
		return 0, false, ErrClosed
	}
	return e.h.pollTimeout(true, op)
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
	return e.h.pollTimeoutsFor(ops, at)
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
	return e.h.clearEvents()
}

// PollEvent takes the next telemetry event as JSON text (tagged by "type"); ok is false
// when none is queued.
func (e *Engine) PollEvent() (event string, ok bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return "", false, ErrClosed
	}
	return e.h.pollEvent()
}

// StatsJSON returns the counters, globally and per entity, as JSON text.
func (e *Engine) StatsJSON() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return "", ErrClosed
	}
	return e.h.statsJSON()
}

// ExportState returns what the engine learned (committed tokens, budget levels) as JSON.
func (e *Engine) ExportState() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return "", ErrClosed
	}
	return e.h.exportState()
}

// ImportState restores state from ExportState of an earlier engine.
func (e *Engine) ImportState(state string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return ErrClosed
	}
	return e.h.importState(state)
}

// PolicyJSON returns the effective policy as JSON text.
func (e *Engine) PolicyJSON() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return "", ErrClosed
	}
	return e.h.policyJSON()
}

// RetryToken is the state of one logical call under the retry strategy; keep it between
// decisions and pass it back unchanged.
type RetryToken struct {
	t rawToken
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
	var err error
	t.t, err = e.h.retryAcquire(scope, now)
	return t, err
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
	tok := t.t
	var d rawDecision
	if err := e.h.retryRefresh(&tok, f, now, &d); err != nil {
		return RetryDecision{}, err
	}
	t.t = tok
	return decisionOf(&d), nil
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
	return e.h.retrySuccess(&t.t)
}

// RetryCapacity returns the tokens left in scope's budget.
func (e *Engine) RetryCapacity(scope string) (uint32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h == nil {
		return 0, ErrClosed
	}
	return e.h.retryCapacity(scope)
}

func (e *Engine) retryDelayLocked(attempt int, f *Failure, now uint64) (RetryDecision, error) {
	if e.h == nil {
		return RetryDecision{}, ErrClosed
	}
	var d rawDecision
	if err := e.h.retryDelay(attempt, f, now, &d); err != nil {
		return RetryDecision{}, err
	}
	return decisionOf(&d), nil
}

func (e *Engine) classifyLocked(f *Failure) (string, error) {
	if e.h == nil {
		return "", ErrClosed
	}
	c, err := e.h.classify(f)
	return className(c), err
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
	return libPolicyToken(doc)
}
