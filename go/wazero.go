//go:build !(writelane_cgo && cgo)

package writelane

// The default backend: the C ABI of bindings-c compiled to WebAssembly
// (internal/wasm/writelane.wasm, built by gen-wasm.sh) and run by wazero, in pure Go. The
// module is compiled once per process; each Engine has an instance of its own (its own
// linear memory), taken from a pool of idle instances and given back by Close, and the
// free-standing functions (PolicyToken, the lease rules) borrow one from the pool for the
// call. Arguments are laid out in the instance's memory with the wasm32 layout of the
// ABI's structs (4-byte pointers and size_t), which the module reports and the package
// checks once before its first call.

import (
	"context"
	_ "embed"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

//go:embed internal/wasm/writelane.wasm
var wasmModule []byte

// backend names the backend this package was built with.
const backend = "wasm"

// The exported functions the package calls, in the order of wasmFuncNames.
const (
	fAlloc = iota
	fFree
	fLayout
	fABIVersion
	fVersion
	fStatusName
	fUsageName
	fEngineNew
	fEngineNewWithOwner
	fEngineNewForStore
	fEngineFree
	fLastError
	fSubmit
	fHandle
	fHandleTimeout
	fPollCommand
	fPollCommandFor
	fPollTimeout
	fPollTimeoutFor
	fPollTimeoutsFor
	fPollEvent
	fClearEvents
	fStatsJSON
	fExportState
	fImportState
	fPolicyJSON
	fRetryAcquire
	fRetryRefresh
	fRetryDelay
	fClassify
	fRetrySuccess
	fRetryCapacity
	fPolicyToken
	fLeaseRecordCheck
	fOwnerID
	fForceReleasePlan
	fForceReleaseFinish
	fSubmitUpdate
	fPollAction
	fPollActionFor
	fIAMPutStatement
	fIAMRemoveStatement
	fIAMAddTrustPrincipal
	fIAMSetTags
	fIAMEntities
	nFuncs
)

var wasmFuncNames = [nFuncs]string{
	"wl_wasm_alloc", "wl_wasm_free", "wl_wasm_layout", "wl_abi_version", "wl_version",
	"wl_status_name", "wl_usage_name", "wl_engine_new", "wl_engine_new_with_owner",
	"wl_engine_new_for_store", "wl_engine_free", "wl_engine_last_error", "wl_engine_submit",
	"wl_engine_handle", "wl_engine_handle_timeout", "wl_engine_poll_command",
	"wl_engine_poll_command_for", "wl_engine_poll_timeout", "wl_engine_poll_timeout_for",
	"wl_engine_poll_timeouts_for", "wl_engine_poll_event", "wl_engine_clear_events",
	"wl_engine_stats_json", "wl_engine_export_state", "wl_engine_import_state",
	"wl_engine_policy_json", "wl_engine_retry_acquire", "wl_engine_retry_refresh",
	"wl_engine_retry_delay", "wl_engine_classify", "wl_engine_retry_success",
	"wl_engine_retry_capacity", "wl_policy_token", "wl_lease_record_check", "wl_owner_id",
	"wl_force_release_plan", "wl_force_release_finish", "wl_engine_submit_update",
	"wl_engine_poll_action", "wl_engine_poll_action_for", "wl_iam_put_statement",
	"wl_iam_remove_statement", "wl_iam_add_trust_principal", "wl_iam_set_tags",
	"wl_iam_entities",
}

// The wasm32 layout of the ABI's structs: sizes and field offsets in bytes.
const (
	strSize = 8 // wl_str: ptr u32, len u32

	errStatus, errUsage, errPath, errMessage = 0, 4, 16, 272
	errSize                                  = 1296

	optExpected, optHasDeadline, optDeadline, optHolder, optNoRead = 0, 8, 16, 24, 32
	optSize                                                        = 40

	failCode, failHTTP, failHasRetryAfter, failRetryAfter  = 0, 8, 10, 16
	failRetryAfterHeader, failOutcomeUnknown, failIntended = 24, 32, 36
	failSize                                               = 48

	inKind, inOp, inToken, inFailure, inReply = 0, 8, 16, 24, 72
	inSize                                    = 80

	cmdKind, cmdOp, cmdAttempt, cmdBaseToken, cmdOutcome, cmdAttempts   = 0, 8, 16, 20, 28, 32
	cmdToken, cmdReason, cmdErrorClass, cmdBudgetScope, cmdCode         = 36, 44, 48, 52, 56
	cmdHTTP, cmdExpected, cmdFound, cmdOperation, cmdHasFence, cmdFence = 64, 68, 76, 84, 92, 96
	cmdSize                                                             = 104

	tokScope, tokAttempts, tokLastCost, tokLastDelay, tokStarted = 0, 4, 8, 16, 24
	tokSize                                                      = 32

	decRetry, decDelay, decCost, decClass, decRefusal = 0, 8, 16, 20, 24
	decSize                                           = 32
)

// wasmLayout lists the layout above in the order wl_wasm_layout reports it (bindings-c's
// src/wasm.rs): for each struct its size, then its fields' offsets.
var wasmLayout = []uint32{
	strSize, 0, 4,
	errSize, errStatus, errUsage, 8, 12, errPath, errMessage,
	optSize, optExpected, optHasDeadline, optDeadline, optHolder, optNoRead,
	failSize, failCode, failHTTP, failHasRetryAfter, failRetryAfter, failRetryAfterHeader, failOutcomeUnknown, failIntended,
	inSize, inKind, inOp, inToken, inFailure, inReply,
	cmdSize, cmdKind, cmdOp, cmdAttempt, cmdBaseToken, cmdOutcome, cmdAttempts, cmdToken, cmdReason,
	cmdErrorClass, cmdBudgetScope, cmdCode, cmdHTTP, cmdExpected, cmdFound, cmdOperation, cmdHasFence, cmdFence,
	tokSize, tokScope, tokAttempts, tokLastCost, tokLastDelay, tokStarted,
	decSize, decRetry, decDelay, decCost, decClass, decRefusal,
}

// Each instance's scratch block: the structs of one call, at fixed offsets.
const (
	sErr    = 0
	sCmd    = sErr + errSize
	sIn     = sCmd + cmdSize
	sOpts   = sIn + inSize
	sFail   = sOpts + optSize
	sDec    = sFail + failSize
	sTok    = sDec + decSize
	sStr    = sTok + tokSize
	sU64    = sStr + strSize
	sBool   = sU64 + 8
	sU32    = sBool + 4
	sLen    = sU32 + 4
	sHandle = sLen + 4
	sSize   = sHandle + 4
)

// wasmRuntime is the process's wazero runtime and the compiled module.
var wasmRuntime struct {
	once     sync.Once
	err      error
	rt       wazero.Runtime
	compiled wazero.CompiledModule
}

var wasmCtx = context.Background()

func compiledModule() (wazero.CompiledModule, error) {
	w := &wasmRuntime
	w.once.Do(func() {
		w.rt = wazero.NewRuntimeWithConfig(wasmCtx, wazero.NewRuntimeConfig())
		w.compiled, w.err = w.rt.CompileModule(wasmCtx, wasmModule)
		if w.err != nil {
			w.err = fmt.Errorf("writelane: compiling the embedded WebAssembly module: %w", w.err)
			return
		}
		var in *instance
		if in, w.err = newInstance(w.compiled); w.err != nil {
			return
		}
		w.err = in.checkLayout()
		release(in)
	})
	return w.compiled, w.err
}

// instance is one instance of the module with its scratch block and string arena.
type instance struct {
	mod      api.Module
	mem      api.Memory
	fn       [nFuncs]api.Function
	stack    [16]uint64
	buf      []byte // the memory; refreshed after every call (memory may grow)
	scratch  uint32
	arena    uint32
	arenaCap uint32
	used     uint32
	// dead is set when the module trapped (a panic inside writelane, a bug): the
	// instance is closed and never used again.
	dead error
}

func newInstance(c wazero.CompiledModule) (*instance, error) {
	mod, err := wasmRuntime.rt.InstantiateModule(wasmCtx, c, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return nil, fmt.Errorf("writelane: instantiating the WebAssembly module: %w", err)
	}
	in := &instance{mod: mod, mem: mod.Memory()}
	for i, name := range wasmFuncNames {
		if in.fn[i] = mod.ExportedFunction(name); in.fn[i] == nil {
			_ = mod.Close(wasmCtx)
			return nil, fmt.Errorf("writelane: the WebAssembly module does not export %s", name)
		}
	}
	in.refresh()
	if in.scratch, err = in.alloc(sSize); err != nil {
		_ = mod.Close(wasmCtx)
		return nil, err
	}
	return in, nil
}

func (in *instance) refresh() {
	in.buf, _ = in.mem.Read(0, in.mem.Size())
}

// call runs export f with args; a trap kills the instance and is a StatusError of
// StatusPanicked (later calls: StatusPoisoned).
func (in *instance) call(f int, args ...uint64) (uint32, error) {
	if in.dead != nil {
		return 0, &StatusError{Status: StatusPoisoned, Message: "the engine's WebAssembly instance trapped earlier: " + in.dead.Error()}
	}
	copy(in.stack[:], args)
	if err := in.fn[f].CallWithStack(wasmCtx, in.stack[:]); err != nil {
		in.dead = err
		_ = in.mod.Close(wasmCtx)
		return 0, &StatusError{Status: StatusPanicked, Message: "the WebAssembly module trapped (a bug in writelane): " + err.Error()}
	}
	in.refresh()
	return uint32(in.stack[0]), nil
}

func (in *instance) alloc(n uint32) (uint32, error) {
	p, err := in.call(fAlloc, uint64(n))
	if err == nil && p == 0 {
		err = &StatusError{Status: StatusInvalidArgument, Message: fmt.Sprintf("the WebAssembly module has no room for %d bytes", n)}
	}
	return p, err
}

// reserve makes room for n bytes in the arena and empties it.
func (in *instance) reserve(n int) error {
	if uint64(n)+1 > uint64(in.arenaCap) {
		if n > 1<<30 {
			return &StatusError{Status: StatusInvalidArgument, Message: "arguments of more than 1 GiB"}
		}
		if in.arena != 0 {
			if _, err := in.call(fFree, uint64(in.arena), uint64(in.arenaCap)); err != nil {
				return err
			}
			in.arena, in.arenaCap = 0, 0
		}
		size := uint32(2*n + 256)
		p, err := in.alloc(size)
		if err != nil {
			return err
		}
		in.arena, in.arenaCap = p, size
	}
	in.used = 0
	return nil
}

// put copies s into the arena (reserve made room) and returns its address, never 0.
func (in *instance) put(s string) uint32 {
	p := in.arena + in.used
	copy(in.buf[p:], s)
	in.used += uint32(len(s))
	return p
}

func (in *instance) putBytes(b []byte) uint32 {
	p := in.arena + in.used
	copy(in.buf[p:], b)
	in.used += uint32(len(b))
	return p
}

// take returns n bytes of the arena (reserve made room) for the library to write into.
func (in *instance) take(n int) uint32 {
	p := in.arena + in.used
	in.used += uint32(n)
	return p
}

func (in *instance) u8(p uint32) uint8   { return in.buf[p] }
func (in *instance) u16(p uint32) uint16 { return binary.LittleEndian.Uint16(in.buf[p:]) }
func (in *instance) u32(p uint32) uint32 { return binary.LittleEndian.Uint32(in.buf[p:]) }
func (in *instance) u64(p uint32) uint64 { return binary.LittleEndian.Uint64(in.buf[p:]) }
func (in *instance) set8(p uint32, v uint8) {
	in.buf[p] = v
}
func (in *instance) set16(p uint32, v uint16) { binary.LittleEndian.PutUint16(in.buf[p:], v) }
func (in *instance) set32(p uint32, v uint32) { binary.LittleEndian.PutUint32(in.buf[p:], v) }
func (in *instance) set64(p uint32, v uint64) { binary.LittleEndian.PutUint64(in.buf[p:], v) }
func (in *instance) setBool(p uint32, v bool) {
	var b uint8
	if v {
		b = 1
	}
	in.buf[p] = b
}

// setStr writes a wl_str at p for s (absent when nil), copying s into the arena.
func (in *instance) setStr(p uint32, s *string) {
	if s == nil {
		in.set64(p, 0)
		return
	}
	in.set32(p, in.put(*s))
	in.set32(p+4, uint32(len(*s)))
}

// bytes returns a copy of len bytes at ptr.
func (in *instance) text(ptr, n uint32) string {
	if uint64(ptr)+uint64(n) > uint64(len(in.buf)) {
		return ""
	}
	return string(in.buf[ptr : ptr+n])
}

// str reads the wl_str at p; nil when absent.
func (in *instance) str(p uint32) *string {
	ptr := in.u32(p)
	if ptr == 0 {
		return nil
	}
	s := in.text(ptr, in.u32(p+4))
	return &s
}

// cstring reads a NUL-terminated string at ptr.
func (in *instance) cstring(ptr uint32) string {
	if ptr == 0 || ptr >= uint32(len(in.buf)) {
		return ""
	}
	end := ptr
	for end < uint32(len(in.buf)) && in.buf[end] != 0 {
		end++
	}
	return string(in.buf[ptr:end])
}

func (in *instance) libError(p uint32) libError {
	return libError{
		status:  in.u32(p + errStatus),
		usage:   in.u32(p + errUsage),
		path:    in.cstring(p + errPath),
		message: in.cstring(p + errMessage),
	}
}

func (in *instance) checkLayout() error {
	n, err := in.call(fLayout, 0, 0)
	if err != nil {
		return err
	}
	if err := in.reserve(int(4 * n)); err != nil {
		return err
	}
	out := in.take(int(4 * n))
	if _, err := in.call(fLayout, uint64(out), uint64(n)); err != nil {
		return err
	}
	got := make([]uint32, n)
	for i := range got {
		got[i] = in.u32(out + uint32(4*i))
	}
	if fmt.Sprint(got) != fmt.Sprint(wasmLayout) {
		return fmt.Errorf("writelane: the embedded WebAssembly module lays out the ABI's structs as %v, the package as %v", got, wasmLayout)
	}
	return nil
}

// The pool of idle instances.
var pool struct {
	mu   sync.Mutex
	idle []*instance
}

// maxIdle bounds the idle instances kept for reuse; more are closed.
const maxIdle = 8

func acquire() (*instance, error) {
	c, err := compiledModule()
	if err != nil {
		return nil, err
	}
	pool.mu.Lock()
	if n := len(pool.idle); n > 0 {
		in := pool.idle[n-1]
		pool.idle = pool.idle[:n-1]
		pool.mu.Unlock()
		return in, nil
	}
	pool.mu.Unlock()
	return newInstance(c)
}

func release(in *instance) {
	if in.dead != nil {
		return
	}
	pool.mu.Lock()
	if len(pool.idle) < maxIdle {
		pool.idle = append(pool.idle, in)
		pool.mu.Unlock()
		return
	}
	pool.mu.Unlock()
	_ = in.mod.Close(wasmCtx)
}

// withInstance runs f on an idle instance.
func withInstance[T any](f func(in *instance) (T, error)) (T, error) {
	in, err := acquire()
	if err != nil {
		var zero T
		return zero, err
	}
	defer release(in)
	return f(in)
}

func b64(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// engineHandle is one wl_engine in an instance of its own.
type engineHandle struct {
	in *instance
	h  uint32
}

func newEngineHandle(c ctor, policy string, seed uint64, owner string) (*engineHandle, error) {
	in, err := acquire()
	if err != nil {
		return nil, err
	}
	if err := in.reserve(len(policy) + len(owner)); err != nil {
		release(in)
		return nil, err
	}
	p, o := in.put(policy), in.put(owner)
	s := in.scratch
	var st uint32
	switch c {
	case ctorPlain:
		st, err = in.call(fEngineNew, uint64(p), uint64(len(policy)), seed, uint64(s+sHandle), uint64(s+sErr))
	case ctorOwner:
		st, err = in.call(fEngineNewWithOwner, uint64(p), uint64(len(policy)), seed, uint64(o), uint64(len(owner)), uint64(s+sHandle), uint64(s+sErr))
	default:
		st, err = in.call(fEngineNewForStore, uint64(p), uint64(len(policy)), seed, uint64(o), uint64(len(owner)), uint64(s+sHandle), uint64(s+sErr))
	}
	if err != nil {
		return nil, err
	}
	if st != wlStatusOK {
		le := in.libError(s + sErr)
		release(in)
		return nil, le.err()
	}
	return &engineHandle{in: in, h: in.u32(s + sHandle)}, nil
}

func (e *engineHandle) free() {
	if e.in.dead != nil {
		return
	}
	if _, err := e.in.call(fEngineFree, uint64(e.h)); err == nil {
		release(e.in)
	}
}

// check turns a call's status into an error with the handle's details.
func (e *engineHandle) check(st uint32, err error) error {
	if err != nil {
		return err
	}
	if st == wlStatusOK {
		return nil
	}
	s := e.in.scratch + sErr
	if r, err := e.in.call(fLastError, uint64(e.h), uint64(s)); err != nil {
		return err
	} else if r != wlStatusOK || e.in.u32(s+errStatus) != st {
		return &StatusError{Status: Status(st)}
	}
	le := e.in.libError(s)
	return le.err()
}

func (e *engineHandle) submit(entity string, now uint64, opts *SubmitOptions) (uint64, error) {
	in := e.in
	if err := in.reserve(len(entity) + strLen(opts.Expected) + strLen(opts.Holder)); err != nil {
		return 0, err
	}
	o := in.scratch + sOpts
	in.setStr(o+optExpected, opts.Expected)
	in.setStr(o+optHolder, opts.Holder)
	in.setBool(o+optNoRead, opts.NoRead)
	in.setBool(o+optHasDeadline, opts.DeadlineMs != nil)
	var d uint64
	if opts.DeadlineMs != nil {
		d = *opts.DeadlineMs
	}
	in.set64(o+optDeadline, d)
	p := in.put(entity)
	out := in.scratch + sU64
	st, err := in.call(fSubmit, uint64(e.h), uint64(p), uint64(len(entity)), now, uint64(o), uint64(out))
	if err := e.check(st, err); err != nil {
		return 0, err
	}
	return in.u64(out), nil
}

// setFailure writes f as a wl_failure at p, its strings into the arena (reserved).
func (in *instance) setFailure(p uint32, f *Failure) {
	clear(in.buf[p : p+failSize])
	if f == nil {
		return
	}
	if f.Code != "" {
		in.setStr(p+failCode, &f.Code)
	}
	in.set16(p+failHTTP, uint16(f.HTTPStatus))
	if f.RetryAfterMs != nil {
		in.set8(p+failHasRetryAfter, 1)
		in.set64(p+failRetryAfter, *f.RetryAfterMs)
	}
	in.setStr(p+failRetryAfterHeader, f.RetryAfterHeader)
	in.setBool(p+failOutcomeUnknown, f.OutcomeUnknown)
	in.setStr(p+failIntended, f.IntendedToken)
}

func (e *engineHandle) handle(now uint64, input *Input, reply *string) error {
	in := e.in
	if err := in.reserve(strLen(input.Token) + failureLen(input.Failure) + strLen(reply)); err != nil {
		return err
	}
	p := in.scratch + sIn
	in.set32(p+inKind, uint32(input.Kind))
	in.set64(p+inOp, input.Op)
	in.setStr(p+inToken, input.Token)
	in.setFailure(p+inFailure, input.Failure)
	in.setStr(p+inReply, reply)
	return e.check(in.call(fHandle, uint64(e.h), now, uint64(p)))
}

func (e *engineHandle) handleTimeout(now uint64) error {
	return e.check(e.in.call(fHandleTimeout, uint64(e.h), now))
}

func (e *engineHandle) submitUpdate(entity string, now uint64, opts *UpdateOptions) (uint64, error) {
	in := e.in
	if err := in.reserve(len(entity) + strLen(opts.Holder)); err != nil {
		return 0, err
	}
	o := in.scratch + sOpts
	in.setStr(o+optExpected, nil)
	in.setStr(o+optHolder, opts.Holder)
	in.setBool(o+optNoRead, false)
	in.setBool(o+optHasDeadline, opts.DeadlineMs != nil)
	var d uint64
	if opts.DeadlineMs != nil {
		d = *opts.DeadlineMs
	}
	in.set64(o+optDeadline, d)
	p := in.put(entity)
	out := in.scratch + sU64
	st, err := in.call(fSubmitUpdate, uint64(e.h), uint64(p), uint64(len(entity)), now, uint64(o), uint64(out))
	if err := e.check(st, err); err != nil {
		return 0, err
	}
	return in.u64(out), nil
}

// pollCommand takes a command (action: or an apply step) of any operation, or of op.
func (e *engineHandle) pollCommand(action, forOp bool, op uint64, c *rawCommand) error {
	in := e.in
	p := in.scratch + sCmd
	var st uint32
	var err error
	switch {
	case action && forOp:
		st, err = in.call(fPollActionFor, uint64(e.h), op, uint64(p))
	case action:
		st, err = in.call(fPollAction, uint64(e.h), uint64(p))
	case forOp:
		st, err = in.call(fPollCommandFor, uint64(e.h), op, uint64(p))
	default:
		st, err = in.call(fPollCommand, uint64(e.h), uint64(p))
	}
	if err := e.check(st, err); err != nil {
		return err
	}
	*c = rawCommand{kind: in.u32(p + cmdKind), op: in.u64(p + cmdOp)}
	switch c.kind {
	case wlCommandWrite:
		c.attempt = in.u32(p + cmdAttempt)
		c.baseToken = in.str(p + cmdBaseToken)
		c.hasFence = in.u8(p+cmdHasFence) != 0
		c.fence = in.u64(p + cmdFence)
	case wlCommandStore, wlCommandApply:
		c.operation = in.text(in.u32(p+cmdOperation), in.u32(p+cmdOperation+4))
	case wlCommandFinish:
		c.outcome = in.u32(p + cmdOutcome)
		c.attempts = in.u32(p + cmdAttempts)
		c.token = in.str(p + cmdToken)
		c.reason = in.u32(p + cmdReason)
		c.errorClass = in.u32(p + cmdErrorClass)
		c.budgetScope = in.u32(p + cmdBudgetScope)
		c.code = in.str(p + cmdCode)
		c.httpStatus = in.u16(p + cmdHTTP)
		c.expected = in.str(p + cmdExpected)
		c.found = in.str(p + cmdFound)
	}
	return nil
}

func (e *engineHandle) pollTimeout(forOp bool, op uint64) (uint64, bool, error) {
	in := e.in
	has, at := in.scratch+sBool, in.scratch+sU64
	var st uint32
	var err error
	if forOp {
		st, err = in.call(fPollTimeoutFor, uint64(e.h), op, uint64(has), uint64(at))
	} else {
		st, err = in.call(fPollTimeout, uint64(e.h), uint64(has), uint64(at))
	}
	if err := e.check(st, err); err != nil {
		return 0, false, err
	}
	return in.u64(at), in.u8(has) != 0, nil
}

func (e *engineHandle) pollTimeoutsFor(ops, at []uint64) error {
	in := e.in
	if err := in.reserve(16 * len(ops)); err != nil {
		return err
	}
	// 8-aligned: the arena is, and reserve emptied it.
	po, pa := in.take(8*len(ops)), in.take(8*len(ops))
	for i, op := range ops {
		in.set64(po+uint32(8*i), op)
	}
	if err := e.check(in.call(fPollTimeoutsFor, uint64(e.h), uint64(po), uint64(len(ops)), uint64(pa))); err != nil {
		return err
	}
	for i := range ops {
		at[i] = in.u64(pa + uint32(8*i))
	}
	return nil
}

func (e *engineHandle) clearEvents() (int, error) {
	out := e.in.scratch + sU64
	if err := e.check(e.in.call(fClearEvents, uint64(e.h), uint64(out))); err != nil {
		return 0, err
	}
	return int(e.in.u64(out)), nil
}

func (e *engineHandle) strCall(f int) (*string, error) {
	s := e.in.scratch + sStr
	if err := e.check(e.in.call(f, uint64(e.h), uint64(s))); err != nil {
		return nil, err
	}
	return e.in.str(s), nil
}

func (e *engineHandle) pollEvent() (string, bool, error) {
	s, err := e.strCall(fPollEvent)
	if err != nil || s == nil {
		return "", false, err
	}
	return *s, true, nil
}

func (e *engineHandle) statsJSON() (string, error) { return e.jsonCall(fStatsJSON) }

func (e *engineHandle) exportState() (string, error) { return e.jsonCall(fExportState) }

func (e *engineHandle) jsonCall(f int) (string, error) {
	s, err := e.strCall(f)
	if err != nil || s == nil {
		return "", err
	}
	return *s, nil
}

func (e *engineHandle) importState(state string) error {
	in := e.in
	if err := in.reserve(len(state)); err != nil {
		return err
	}
	p := in.put(state)
	return e.check(in.call(fImportState, uint64(e.h), uint64(p), uint64(len(state))))
}

func (e *engineHandle) policyJSON() (string, error) {
	in := e.in
	n := in.scratch + sLen
	st, err := in.call(fPolicyJSON, uint64(e.h), 0, 0, uint64(n))
	if err != nil {
		return "", err
	}
	if st != wlStatusBufferTooSmall {
		return "", e.check(st, nil)
	}
	size := int(in.u32(n)) + 1
	if err := in.reserve(size); err != nil {
		return "", err
	}
	buf := in.take(size)
	if err := e.check(in.call(fPolicyJSON, uint64(e.h), uint64(buf), uint64(size), uint64(n))); err != nil {
		return "", err
	}
	return in.text(buf, in.u32(n)), nil
}

func (in *instance) setToken(p uint32, t *rawToken) {
	in.set32(p+tokScope, t.scope)
	in.set32(p+tokAttempts, t.attempts)
	in.set32(p+tokLastCost, t.lastCost)
	in.set32(p+12, 0)
	in.set64(p+tokLastDelay, t.lastDelayMs)
	in.set64(p+tokStarted, t.startedMs)
}

func (in *instance) token(p uint32) rawToken {
	return rawToken{
		scope: in.u32(p + tokScope), attempts: in.u32(p + tokAttempts), lastCost: in.u32(p + tokLastCost),
		lastDelayMs: in.u64(p + tokLastDelay), startedMs: in.u64(p + tokStarted),
	}
}

func (in *instance) decision(p uint32, d *rawDecision) {
	*d = rawDecision{
		retry: in.u8(p+decRetry) != 0, delayMs: in.u64(p + decDelay), cost: in.u32(p + decCost),
		errorClass: in.u32(p + decClass), refuse: in.u32(p + decRefusal),
	}
}

func (e *engineHandle) retryAcquire(scope string, now uint64) (rawToken, error) {
	in := e.in
	if err := in.reserve(len(scope)); err != nil {
		return rawToken{}, err
	}
	p := in.put(scope)
	t := in.scratch + sTok
	if err := e.check(in.call(fRetryAcquire, uint64(e.h), uint64(p), uint64(len(scope)), now, uint64(t))); err != nil {
		return rawToken{}, err
	}
	return in.token(t), nil
}

func (e *engineHandle) retryRefresh(t *rawToken, f *Failure, now uint64, d *rawDecision) error {
	in := e.in
	if err := in.reserve(failureLen(f)); err != nil {
		return err
	}
	s := in.scratch
	in.setFailure(s+sFail, f)
	in.setToken(s+sTok, t)
	if err := e.check(in.call(fRetryRefresh, uint64(e.h), uint64(s+sTok), uint64(s+sFail), now, uint64(s+sDec))); err != nil {
		return err
	}
	*t = in.token(s + sTok)
	in.decision(s+sDec, d)
	return nil
}

func (e *engineHandle) retryDelay(attempt int, f *Failure, now uint64, d *rawDecision) error {
	in := e.in
	if err := in.reserve(failureLen(f)); err != nil {
		return err
	}
	s := in.scratch
	in.setFailure(s+sFail, f)
	if err := e.check(in.call(fRetryDelay, uint64(e.h), uint64(uint32(attempt)), uint64(s+sFail), now, uint64(s+sDec))); err != nil {
		return err
	}
	in.decision(s+sDec, d)
	return nil
}

func (e *engineHandle) classify(f *Failure) (uint32, error) {
	in := e.in
	if err := in.reserve(failureLen(f)); err != nil {
		return 0, err
	}
	s := in.scratch
	in.setFailure(s+sFail, f)
	if err := e.check(in.call(fClassify, uint64(e.h), uint64(s+sFail), uint64(s+sU32))); err != nil {
		return 0, err
	}
	return in.u32(s + sU32), nil
}

func (e *engineHandle) retrySuccess(t *rawToken) error {
	s := e.in.scratch
	e.in.setToken(s+sTok, t)
	return e.check(e.in.call(fRetrySuccess, uint64(e.h), uint64(s+sTok)))
}

func (e *engineHandle) retryCapacity(scope string) (uint32, error) {
	in := e.in
	if err := in.reserve(len(scope)); err != nil {
		return 0, err
	}
	p := in.put(scope)
	out := in.scratch + sU32
	if err := e.check(in.call(fRetryCapacity, uint64(e.h), uint64(p), uint64(len(scope)), uint64(out))); err != nil {
		return 0, err
	}
	return in.u32(out), nil
}

// The free-standing functions.

func libABIVersion() uint32 {
	v, _ := withInstance(func(in *instance) (uint32, error) { return in.call(fABIVersion) })
	return v
}

func libVersion() string {
	v, _ := withInstance(func(in *instance) (string, error) {
		p, err := in.call(fVersion)
		return in.cstring(p), err
	})
	return v
}

func libStatusName(s uint32) string {
	v, _ := withInstance(func(in *instance) (string, error) {
		p, err := in.call(fStatusName, uint64(s))
		return in.cstring(p), err
	})
	return v
}

func libUsageName(u uint32) string {
	v, _ := withInstance(func(in *instance) (string, error) {
		p, err := in.call(fUsageName, uint64(u))
		return in.cstring(p), err
	})
	return v
}

// bareCall is the cheapest call into the module, for measuring the call overhead.
var bareInstance struct {
	once sync.Once
	in   *instance
}

func bareCall() uint32 {
	bareInstance.once.Do(func() { bareInstance.in, _ = acquire() })
	v, _ := bareInstance.in.call(fABIVersion)
	return v
}

// textCall runs a free-standing function whose text result is copied into a caller
// buffer (its last four arguments: buf, cap, out_len, out_error), with the strings of
// args put into the module's memory first; a larger buffer when the one given is too
// small. flag, when not nil, receives the bool the function writes at the address
// given in place of a flagSlot argument.
func textCall(f int, size int, strs []string, build func(in *instance, ptrs []uint32, flag uint32) []uint64) (string, bool, error) {
	return tupleOf(withInstance(func(in *instance) (textResult, error) {
		need := 0
		for _, s := range strs {
			need += len(s)
		}
		for {
			if err := in.reserve(need + size); err != nil {
				return textResult{}, err
			}
			ptrs := make([]uint32, len(strs))
			for i, s := range strs {
				ptrs[i] = in.put(s)
			}
			buf := in.take(size)
			s := in.scratch
			flag := s + sBool
			in.set8(flag, 0)
			args := append(build(in, ptrs, flag), uint64(buf), uint64(size), uint64(s+sLen), uint64(s+sErr))
			st, err := in.call(f, args...)
			if err != nil {
				return textResult{}, err
			}
			n := int(in.u32(s + sLen))
			switch {
			case st == wlStatusOK:
				return textResult{in.text(buf, uint32(n)), in.u8(flag) != 0}, nil
			case st == wlStatusBufferTooSmall && n >= size:
				size = n + 1
				continue
			}
			le := in.libError(s + sErr)
			return textResult{}, le.err()
		}
	}))
}

type textResult struct {
	text string
	flag bool
}

func tupleOf(r textResult, err error) (string, bool, error) { return r.text, r.flag, err }

func libPolicyToken(doc string) (string, error) {
	t, _, err := textCall(fPolicyToken, wlPolicyTokenLen+1, []string{doc}, func(in *instance, p []uint32, _ uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(doc))}
	})
	return t, err
}

func libLeaseRecordCheck(record []byte) (string, error) {
	t, _, err := textCall(fLeaseRecordCheck, len(record)+96, []string{string(record)}, func(in *instance, p []uint32, _ uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(record))}
	})
	return t, err
}

func libOwnerID(host string, pid uint32, entropy uint64) (string, error) {
	t, _, err := textCall(fOwnerID, 256, []string{host}, func(in *instance, p []uint32, _ uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(host)), uint64(pid), entropy}
	})
	return t, err
}

func libForceReleasePlan(key string, found []byte, hasFound bool, expected *uint64, entropy uint64) (bool, string, error) {
	var rvn uint64
	if expected != nil {
		rvn = *expected
	}
	t, swap, err := textCall(fForceReleasePlan, len(found)+len(key)+256, []string{key, string(found)}, func(in *instance, p []uint32, flag uint32) []uint64 {
		fp := uint64(p[1])
		if !hasFound {
			fp = 0
		}
		return []uint64{uint64(p[0]), uint64(len(key)), fp, uint64(len(found)), b64(expected != nil), rvn, entropy, uint64(flag)}
	})
	return swap, t, err
}

func libForceReleaseFinish(op string, reply []byte) (bool, string, error) {
	t, known, err := textCall(fForceReleaseFinish, len(op)+256, []string{op, string(reply)}, func(in *instance, p []uint32, flag uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(op)), uint64(p[1]), uint64(len(reply)), uint64(flag)}
	})
	return known, t, err
}

func libIAMPutStatement(doc, statement string) (string, error) {
	t, _, err := textCall(fIAMPutStatement, len(doc)+len(statement)+64, []string{doc, statement}, func(in *instance, p []uint32, _ uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(doc)), uint64(p[1]), uint64(len(statement))}
	})
	return t, err
}

func libIAMRemoveStatement(doc, sid string) (string, error) {
	t, _, err := textCall(fIAMRemoveStatement, len(doc)+64, []string{doc, sid}, func(in *instance, p []uint32, _ uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(doc)), uint64(p[1]), uint64(len(sid))}
	})
	return t, err
}

func libIAMAddTrustPrincipal(doc, sid, kind, principal string) (string, error) {
	t, _, err := textCall(fIAMAddTrustPrincipal, len(doc)+len(sid)+len(principal)+128, []string{doc, sid, kind, principal}, func(in *instance, p []uint32, _ uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(doc)), uint64(p[1]), uint64(len(sid)), uint64(p[2]), uint64(len(kind)), uint64(p[3]), uint64(len(principal))}
	})
	return t, err
}

func libIAMSetTags(tags, set string) (string, error) {
	t, _, err := textCall(fIAMSetTags, len(tags)+len(set)+64, []string{tags, set}, func(in *instance, p []uint32, _ uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(tags)), uint64(p[1]), uint64(len(set))}
	})
	return t, err
}

func libIAMEntities(service, operation, params, context string) (string, error) {
	t, _, err := textCall(fIAMEntities, len(operation)+256, []string{service, operation, params, context}, func(in *instance, p []uint32, _ uint32) []uint64 {
		return []uint64{uint64(p[0]), uint64(len(service)), uint64(p[1]), uint64(len(operation)), uint64(p[2]), uint64(len(params)), uint64(p[3]), uint64(len(context))}
	})
	return t, err
}
