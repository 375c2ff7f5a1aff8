package writelane

import "encoding/json"

// The values of the C ABI's enums (bindings-c/include/writelane.h) that both backends
// share. They never change (the ABI policy of bindings-c/README.md); the cgo backend's
// tests compare each with the header it compiles against, and both backends' tests replay
// the vectors through them.

const (
	wlStatusOK             = 0
	wlStatusBufferTooSmall = 5
	wlStatusPanicked       = 7
	wlStatusPoisoned       = 8

	wlCommandNone   = 0
	wlCommandRead   = 1
	wlCommandWrite  = 2
	wlCommandFinish = 3
	wlCommandStore  = 4
	wlCommandApply  = 5

	wlOutcomeCommitted = 1

	wlBudgetScopeEngine = 1
	wlBudgetScopeEntity = 2

	wlInputReadDone    = 1
	wlInputReadFailed  = 2
	wlInputWriteDone   = 3
	wlInputWriteFailed = 4
	wlInputCancel      = 5
	wlInputStoreReply  = 6
	wlInputApplyDone   = 7

	// wlABIVersion is WL_ABI_VERSION: the struct layouts both backends encode.
	wlABIVersion = 2
	// wlPolicyTokenLen is WL_POLICY_TOKEN_LEN.
	wlPolicyTokenLen = 74
	// wlErrorPathCap and wlErrorMessageCap are WL_ERROR_PATH_CAP and WL_ERROR_MESSAGE_CAP.
	wlErrorPathCap    = 256
	wlErrorMessageCap = 1024
)

// rawToken is a wl_retry_token as Go values.
type rawToken struct {
	scope, attempts, lastCost uint32
	lastDelayMs, startedMs    uint64
}

// rawDecision is a wl_retry_decision as Go values.
type rawDecision struct {
	retry              bool
	delayMs            uint64
	cost               uint32
	errorClass, refuse uint32
}

// rawCommand is a wl_command as Go values, its strings copied out of the library.
type rawCommand struct {
	kind, outcome, reason, errorClass, budgetScope uint32
	op, fence                                      uint64
	attempt, attempts                              uint32
	httpStatus                                     uint16
	hasFence                                       bool
	baseToken, token, code, expected, found        *string
	operation                                      string
}

// ctor says which wl_engine_new* function builds an engine.
type ctor int

const (
	ctorPlain ctor = iota // wl_engine_new
	ctorOwner             // wl_engine_new_with_owner
	ctorStore             // wl_engine_new_for_store
)

func decisionOf(d *rawDecision) RetryDecision {
	return RetryDecision{
		Retry:   d.retry,
		DelayMs: d.delayMs,
		Cost:    d.cost,
		Class:   className(d.errorClass),
		Refusal: refusalName(d.refuse),
	}
}

func commandOf(c *rawCommand) (*Command, error) {
	if c.kind == wlCommandNone {
		return nil, nil
	}
	cmd := &Command{Kind: CommandKind(c.kind), Op: c.op}
	switch c.kind {
	case wlCommandWrite:
		cmd.Attempt = int(c.attempt)
		cmd.BaseToken = c.baseToken
		if c.hasFence {
			f := c.fence
			cmd.Fence = &f
		}
	case wlCommandStore:
		cmd.StoreJSON = c.operation
		op, err := ParseStoreOp(cmd.StoreJSON)
		if err != nil {
			return nil, err
		}
		cmd.Store = &op
	case wlCommandApply:
		var a Apply
		if err := json.Unmarshal([]byte(c.operation), &a); err != nil {
			return nil, err
		}
		cmd.Apply = &a
	case wlCommandFinish:
		o := &Outcome{Attempts: int(c.attempts)}
		if c.outcome == wlOutcomeCommitted {
			o.Committed = true
			o.Token = c.token
		} else {
			o.Reason = reasonName(c.reason)
			o.Class = className(c.errorClass)
			switch c.budgetScope {
			case wlBudgetScopeEngine:
				o.Scope = "engine"
			case wlBudgetScopeEntity:
				o.Scope = "entity"
			}
			o.Code = c.code
			o.HTTPStatus = int(c.httpStatus)
			o.Expected = c.expected
			o.Found = c.found
		}
		cmd.Outcome = o
	}
	return cmd, nil
}

// reasonNames, classNames and refusalNames are indexed by wl_give_up_reason,
// wl_error_class and wl_refusal; index 0 (NONE) is "".
var (
	reasonNames = [...]string{"", "attempts_exhausted", "budget_exhausted", "deadline_exceeded",
		"fatal", "stale_revision", "cancelled", "lease_lost", "lock_unavailable"}
	classNames   = [...]string{"", "conflict", "throttle", "transient", "unknown", "fatal"}
	refusalNames = [...]string{"", "not_retryable", "attempts_exhausted", "budget_exhausted",
		"deadline_exceeded"}
)

func nameOf(names []string, v uint32) string {
	if int(v) < len(names) {
		return names[v]
	}
	return ""
}

func reasonName(r uint32) string  { return nameOf(reasonNames[:], r) }
func className(c uint32) string   { return nameOf(classNames[:], c) }
func refusalName(r uint32) string { return nameOf(refusalNames[:], r) }

// libError is a failed call's wl_error as Go values.
type libError struct {
	status, usage uint32
	path, message string
}

func (l *libError) err() error {
	return errorFrom(Status(l.status), usageName(l.usage), l.path, l.message)
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
