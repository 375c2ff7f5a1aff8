package writelane

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sync"
	"time"
)

// Lane runs logical writes under the write discipline: one writer per entity at a time,
// a re-read before every retry, jittered backoff and retry budgets, all decided by the
// engine inside. One Lane is meant to be shared by every goroutine of a process that
// writes the same entities; it is safe for concurrent use. Close it when done.
//
// The lane is a driver and nothing more: every rule (lanes and leases, backoff, budgets,
// timeouts, what a store reply means) is the engine's. Each Run carries out its own
// operation's commands; after any change, the lane hands each new command to the Run of
// its operation and wakes that Run only (or a Run whose timer moved), never every waiter.
type Lane struct {
	eng          *Engine
	clock        Clock
	start        time.Time
	events       func(string)
	observer     Observer // nil unless WithObserver
	store        Store    // carries out the engine's lease-store commands; nil without shared lanes
	storeTimeout time.Duration
	holder       *string

	// mu guards closed and runs; engine calls go through eng.mu, taken inside mu.
	mu     sync.Mutex
	closed bool
	runs   map[uint64]*run
	armed  map[uint64]int // how many sleeping runs wait for a timer at each time
	// refused keeps the error a batch's leader got from an update's change, for that
	// update's own Update to return with its finish; batchErr the error of the last
	// failed write that carried an update's change (the leader's write).
	refused  map[uint64]error
	batchErr map[uint64]error
}

// run is what one Run shares with its lane (under Lane.mu): the command the engine has
// for its operation, whether it sleeps and on which timer, and its own wake-up.
type run struct {
	op       uint64
	wake     chan struct{} // capacity 1
	cmd      *Command
	sleeping bool
	at       uint64
	timed    bool
	wakes    int // times the lane woke it (for the tests)
	// change is an update's change function, which the leader of its batch calls; nil
	// for a Run.
	change func(doc string) (string, error)
}

// New builds a Lane from a policy given as JSON text: a preset name as a JSON string
// (`"iam"`, quotes included) or an object such as `{"preset": "iam", "deadline_ms": 30000}`.
// A refused policy is a *PolicyError naming the field and the rule; so is a policy with
// shared lanes and no store.
func New(policy string, opts ...Option) (*Lane, error) {
	cfg := laneConfig{seed: randomUint64() & (1<<53 - 1), clock: systemClock{}}
	for _, o := range opts {
		o(&cfg)
	}
	var eng *Engine
	var err error
	switch {
	case cfg.store != nil:
		if cfg.owner == "" {
			host, _ := os.Hostname()
			if cfg.owner, err = OwnerID(host, uint32(os.Getpid()), randomUint64()); err != nil {
				return nil, err
			}
		}
		eng, err = NewEngineForStore(policy, cfg.seed, cfg.owner)
	case cfg.owner != "":
		eng, err = NewEngineWithOwner(policy, cfg.seed, cfg.owner)
	default:
		eng, err = NewEngine(policy, cfg.seed)
	}
	if err != nil {
		return nil, err
	}
	var p struct {
		Lanes struct{ Mode string }
		Lease struct {
			StoreTimeoutMs int64 `json:"store_timeout_ms"`
		}
	}
	text, err := eng.PolicyJSON()
	if err == nil {
		err = json.Unmarshal([]byte(text), &p)
	}
	if err == nil && cfg.store == nil && p.Lanes.Mode == "shared" {
		err = &PolicyError{Path: "lanes.mode", Message: "policy field 'lanes.mode' is \"shared\": give the lane a lease store with WithStore"}
	}
	if err != nil {
		eng.Close()
		return nil, err
	}
	l := &Lane{eng: eng, clock: cfg.clock, start: cfg.clock.Now(), events: cfg.events, observer: cfg.observer,
		store: cfg.store, storeTimeout: time.Duration(p.Lease.StoreTimeoutMs) * time.Millisecond, holder: cfg.holder,
		runs: map[uint64]*run{}, armed: map[uint64]int{}, refused: map[uint64]error{}, batchErr: map[uint64]error{}}
	if l.observer != nil {
		l.observer.LaneOpened(l)
	}
	return l, nil
}

// Engine returns the engine inside the lane (for stats, events and state export). Do not
// submit operations through it: the lane drives every operation of its engine.
func (l *Lane) Engine() *Engine { return l.eng }

// Close frees the lane. It is idempotent. Runs in progress end with ErrClosed.
func (l *Lane) Close() error {
	l.mu.Lock()
	first := !l.closed
	l.closed = true
	for _, r := range l.runs {
		signal(r)
	}
	l.mu.Unlock()
	if first && l.observer != nil {
		l.observer.LaneClosed(l)
	}
	return l.eng.Close()
}

// now is the lane's clock in milliseconds since New. Read with l.mu held, so that times
// passed to the engine never go backwards.
func (l *Lane) now() uint64 { return uint64(l.clock.Now().Sub(l.start) / time.Millisecond) }

func signal(r *run) {
	r.wakes++
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// afterChange runs with l.mu held after every engine call: it hands each new command to
// the run of its operation, wakes the sleeping runs that got one or whose timer moved
// (self, the caller, is awake), and takes the queued events.
func (l *Lane) afterChange(self *run) []string {
	for {
		cmd, err := l.eng.PollAction()
		if err != nil || cmd == nil {
			break
		}
		if r := l.runs[cmd.Op]; r != nil {
			r.cmd = cmd
			if r.sleeping && r != self {
				signal(r)
			}
		}
	}
	// A sleeping run must wake when its operation's timer moves earlier (a run granted the
	// lane into a cool-down). Then the engine's earliest timer is one no sleeper waits for;
	// while a sleeper does wait for it, that sleeper wakes then and the check runs again.
	// So read the sleepers' timers only in that case, all in one call.
	if g, ok, _ := l.eng.PollTimeout(); ok && l.armed[g] == 0 {
		var check []*run
		var ops []uint64
		for _, r := range l.runs {
			if r.sleeping && r != self && r.cmd == nil {
				check, ops = append(check, r), append(ops, r.op)
			}
		}
		at := make([]uint64, len(ops))
		err := l.eng.PollTimeoutsFor(ops, at)
		for i, r := range check {
			if err != nil || (at[i] != math.MaxUint64) != r.timed || (r.timed && at[i] != r.at) {
				signal(r)
			}
		}
	}
	if l.events == nil && l.observer == nil {
		_, _ = l.eng.ClearEvents()
		return nil
	}
	var out []string
	for {
		ev, ok, err := l.eng.PollEvent()
		if err != nil || !ok {
			return out
		}
		out = append(out, ev)
	}
}

// sleep marks r asleep on its operation's timer at, if timed, or awake (with l.mu held).
func (l *Lane) sleep(r *run, asleep, timed bool, at uint64) {
	if r.sleeping && r.timed {
		if l.armed[r.at]--; l.armed[r.at] == 0 {
			delete(l.armed, r.at)
		}
	}
	r.sleeping, r.timed, r.at = asleep, timed, at
	if asleep && timed {
		l.armed[at]++
	}
}

// step feeds in to the engine at the clock's now (nil: fire the timers that are due)
// and hands out what changed; events are delivered outside the lock.
func (l *Lane) step(r *run, in *Input) error {
	l.mu.Lock()
	l.sleep(r, false, false, 0)
	var err error
	if in == nil {
		err = l.eng.HandleTimeout(l.now())
	} else {
		err = l.eng.Handle(l.now(), *in)
	}
	l.deliver(l.afterChange(r))
	return err
}

// deliver unlocks l.mu, then hands events to the handler and the observer.
func (l *Lane) deliver(events []string) {
	l.mu.Unlock()
	for _, ev := range events {
		if l.events != nil {
			l.events(ev)
		}
		if l.observer != nil {
			l.observer.Event(ev)
		}
	}
}

// Run performs one logical write of entity: it waits for the entity's lane, calls read
// (see WithRead) and write as the engine commands, sleeps out back-offs on the lane's
// clock, and returns nil once a write succeeded. It returns a *GaveUpError (errors.Is
// ErrGaveUp) when the engine gave up; its Unwrap is the write's last error, or ctx.Err()
// when ctx was cancelled (which releases the lane at once; a call under way when ctx is
// cancelled has its result ignored).
func (l *Lane) Run(ctx context.Context, entity string, write func(ctx context.Context, a Attempt) error, opts ...RunOption) (err error) {
	cfg := runConfig{holder: l.holder}
	for _, o := range opts {
		o(&cfg)
	}
	r := &run{wake: make(chan struct{}, 1)}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	op, err := l.eng.Submit(entity, l.now(), SubmitOptions{Expected: cfg.expected, DeadlineMs: cfg.deadline,
		Holder: cfg.holder, NoRead: cfg.read == nil})
	if err != nil {
		l.mu.Unlock()
		return err
	}
	r.op, l.runs[op] = op, r
	l.deliver(l.afterChange(r))
	returned := false
	if l.observer != nil {
		ctx = l.observer.RunStarted(ctx, op, entity)
		octx := ctx
		defer func() {
			if !returned { // a user's function panicked (the panic goes on)
				l.observer.RunEnded(octx, op, errPanicked)
				return
			}
			l.observer.RunEnded(octx, op, err)
		}()
	}
	defer func() {
		if p := recover(); p != nil { // a user's function panicked: cancel, release in the background
			_ = l.step(r, &Input{Kind: Cancel, Op: op})
			go func() {
				defer func() { _ = recover() }() // a store adapter that panics again: give up quietly
				_ = l.drive(context.Background(), r, entity, nil, runConfig{}, true, nil)
			}()
			panic(p)
		}
	}()
	err = l.drive(ctx, r, entity, write, cfg, false, nil)
	returned = true
	return err
}

// updateFns are an update's read and write, and the documents its batches read and
// changed.
type updateFns struct {
	read  func(ctx context.Context) (doc string, token *string, err error)
	write func(ctx context.Context, doc string, a Attempt) error
	// doc is what the last read returned; out what the last apply made of it.
	doc, out string
	hasOut   bool
	// members are the other updates whose changes the last apply applied.
	members []uint64
}

// Update performs one update of entity (group commit): change is this writer's change
// to the entity's document (JSON text, or any text the caller's read and write agree
// on). Updates queued behind the lane holder ride in its write: the leader of the batch
// calls its read once, runs every member's change in FIFO order on the document (each on
// the previous one's result), and calls its write once with the result; every update of
// the batch ends with that write's outcome. So read and write may be called from another
// Update's goroutine (the leader's), and change may be called more than once, on fresher
// documents (after a conflict, or when a write refused as fatal is split in halves to
// find the change that breaks it): change must be a pure function of the document.
// Idempotent changes (PutStatement, AddTrustPrincipal, SetTags) are safe to re-apply.
//
// read returns the document and its change token (nil when the entity does not exist);
// write writes the document and may report the new token with Attempt.SetToken. A change
// that returns an error (or panics) excludes this update from the write: Update returns a
// *GaveUpError with Reason fatal, Code the error's code (a *Failure's Code or an
// ErrorCode() method; ChangeRefused otherwise, ChangePanicked for a panic) and Cause the
// error; the other updates of the batch go on. An update that gives up with a batch's
// write (refused as fatal, attempts or budget exhausted) has that write's error as Cause,
// whichever goroutine called write. Options: WithRunHolder, WithDeadline and
// WithOutcome apply; WithExpected and WithRead do not (an update always reads, and is
// based on what it read) and are refused as a *StatusError. Cancelling ctx cancels the
// update, as for Run.
func (l *Lane) Update(ctx context.Context, entity string, read func(ctx context.Context) (doc string, token *string, err error), change func(doc string) (string, error), write func(ctx context.Context, doc string, a Attempt) error, opts ...RunOption) (err error) {
	cfg := runConfig{holder: l.holder}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case read == nil || change == nil || write == nil:
		return &StatusError{Status: StatusInvalidArgument, Path: "read, change, write", Message: "writelane: Update needs a read, a change and a write function"}
	case cfg.expected != nil || cfg.read != nil:
		return &StatusError{Status: StatusInvalidArgument, Path: "opts", Message: "writelane: WithExpected and WithRead do not apply to Update: an update always reads, and is based on what it read"}
	}
	u := &updateFns{read: read, write: write}
	r := &run{wake: make(chan struct{}, 1), change: change}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	op, err := l.eng.SubmitUpdate(entity, l.now(), UpdateOptions{DeadlineMs: cfg.deadline, Holder: cfg.holder})
	if err != nil {
		l.mu.Unlock()
		return err
	}
	r.op, l.runs[op] = op, r
	l.deliver(l.afterChange(r))
	returned := false
	if l.observer != nil {
		ctx = l.observer.RunStarted(ctx, op, entity)
		octx := ctx
		defer func() {
			if !returned {
				l.observer.RunEnded(octx, op, errPanicked)
				return
			}
			l.observer.RunEnded(octx, op, err)
		}()
	}
	defer func() {
		if p := recover(); p != nil { // the user's read or write panicked: cancel, release in the background
			_ = l.step(r, &Input{Kind: Cancel, Op: op})
			go func() {
				defer func() { _ = recover() }()
				_ = l.drive(context.Background(), r, entity, nil, runConfig{}, true, u)
			}()
			panic(p)
		}
	}()
	err = l.drive(ctx, r, entity, nil, cfg, false, u)
	returned = true
	return err
}

// changeCode is the code a refused change gives up with: the error's code, or
// ChangeRefused; cut to the engine's 256 bytes.
func changeCode(err error) string {
	code := FailureOf(err).Code
	if code == "" {
		code = "ChangeRefused"
	}
	if len(code) > 256 {
		code = code[:256]
	}
	return code
}

// ChangePanic is the error an Update returns when its change function panicked (the
// panic is recovered on the goroutine of the batch's leader, which ran the change).
type ChangePanic struct {
	// Value is what the change panicked with.
	Value any
}

func (e *ChangePanic) Error() string { return fmt.Sprintf("writelane: change panicked: %v", e.Value) }

// ErrorCode is the code the update gives up with.
func (e *ChangePanic) ErrorCode() string { return "ChangePanicked" }

// runChange calls one change, turning a panic into a *ChangePanic.
func runChange(change func(string) (string, error), doc string) (out string, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = "", &ChangePanic{Value: p}
		}
	}()
	return change(doc)
}

// apply runs the changes of a batch's apply step on the document the leader last read,
// in order, and keeps the result for the write; refused changes' errors go to their
// updates.
func (l *Lane) apply(u *updateFns, a *Apply) *Input {
	changes := make([]func(string) (string, error), len(a.Ops))
	l.mu.Lock()
	for i, m := range a.Ops {
		if r := l.runs[m]; r != nil {
			changes[i] = r.change
		}
	}
	l.mu.Unlock()
	doc := u.doc
	results := make([]ApplyResult, len(a.Ops))
	refused := map[uint64]error{}
	var members []uint64
	for i, m := range a.Ops {
		results[i].Op = m
		if changes[i] == nil { // an update gone from the lane (cancelled)
			code := "ChangeGone"
			results[i].Code = &code
			continue
		}
		next, err := runChange(changes[i], doc)
		if err != nil {
			code := changeCode(err)
			results[i].Code = &code
			refused[m] = err
			continue
		}
		doc, results[i].Applied = next, true
		if m != a.Op {
			members = append(members, m)
		}
	}
	u.out, u.hasOut, u.members = doc, true, members
	if len(refused) > 0 {
		l.mu.Lock()
		for m, err := range refused {
			if l.runs[m] != nil {
				l.refused[m] = err
			}
		}
		l.mu.Unlock()
	}
	return &Input{Kind: InputApplyDone, Op: a.Op, Results: results}
}

// drive carries out the commands of r's operation until it finishes (u: an update's).
func (l *Lane) drive(ctx context.Context, r *run, entity string, write func(context.Context, Attempt) error, cfg runConfig, cancelled bool, u *updateFns) error {
	var lastErr error

	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		cmd, now := r.cmd, l.now()
		r.cmd = nil
		l.sleep(r, false, false, 0)
		var err error
		if cmd == nil {
			var at uint64
			var timed bool
			at, timed, err = l.eng.PollTimeoutFor(r.op)
			l.sleep(r, err == nil, timed, at)
		}
		l.mu.Unlock()
		if err != nil {
			return err
		}
		var in *Input
		switch {
		case cmd == nil: // sleep until the operation's timer, a command, or cancellation
			var fire <-chan time.Time
			if r.timed {
				fire = l.clock.After(time.Duration(max(r.at, now)-now) * time.Millisecond)
			}
			done := ctx.Done()
			if cancelled {
				done = nil
			}
			select {
			case <-done:
				cancelled, lastErr = true, ctx.Err()
				in = &Input{Kind: Cancel, Op: r.op}
			case <-r.wake:
				continue
			case <-fire:
			}
		case cmd.Kind == CommandFinish:
			l.mu.Lock()
			delete(l.runs, r.op)
			if refused, ok := l.refused[r.op]; ok {
				lastErr = refused
			} else if batch, ok := l.batchErr[r.op]; ok && lastErr == nil {
				lastErr = batch // a member of a batch whose write failed: that write's error
			}
			delete(l.refused, r.op)
			delete(l.batchErr, r.op)
			l.mu.Unlock()
			if cfg.outcome != nil {
				*cfg.outcome = *cmd.Outcome
			}
			return outcomeError(r.op, entity, cmd.Outcome, lastErr)
		case cmd.Kind == CommandStore: // bounded by the store timeout, even once cancelled (a release must land)
			sctx, stop := context.WithTimeout(context.WithoutCancel(ctx), l.storeTimeout)
			reply := ApplyStoreOp(sctx, l.store, *cmd.Store)
			stop()
			if reply.Err != nil && !cancelled {
				lastErr = reply.Err
			}
			in = &Input{Kind: InputStoreReply, Op: r.op, Reply: &reply}
		case cmd.Kind == CommandApply && u != nil:
			in = l.apply(u, cmd.Apply)
		default:
			var done func(time.Time, error)
			if l.observer != nil && cmd.Kind == CommandWrite {
				done = func(start time.Time, err error) { l.observer.WriteDone(ctx, r.op, cmd.Attempt, start, err) }
			}
			read := cfg.read
			if u != nil {
				write, read = u.bind()
			}
			if in = call(ctx, cmd, write, read, &lastErr, done); in.Kind == Cancel {
				cancelled = true
			}
			if u != nil && in.Kind == WriteFailed && len(u.members) > 0 {
				l.mu.Lock()
				for _, m := range u.members {
					if l.runs[m] != nil {
						l.batchErr[m] = lastErr
					}
				}
				l.mu.Unlock()
			}
		}
		if err := l.step(r, in); err != nil && (in == nil || in.Kind != Cancel) {
			return err
		}
	}
}

// bind gives an update's read and write the shapes of a Run's: the read keeps the
// document, the write writes what the last apply made of it.
func (u *updateFns) bind() (func(context.Context, Attempt) error, func(context.Context) (string, bool, error)) {
	write := func(ctx context.Context, a Attempt) error {
		doc := u.doc
		if u.hasOut {
			doc = u.out
		}
		return u.write(ctx, doc, a)
	}
	read := func(ctx context.Context) (string, bool, error) {
		doc, token, err := u.read(ctx)
		if err != nil {
			return "", false, err
		}
		u.doc, u.out, u.hasOut = doc, "", false
		if token == nil {
			return "", false, nil
		}
		return *token, true, nil
	}
	return write, read
}

// call runs the user's read or write for cmd. If ctx is cancelled before or during the
// call the operation is cancelled, and the call's result is never seen.
// done, if not nil, is told when the write function was called and what it returned.
func call(ctx context.Context, cmd *Command, write func(context.Context, Attempt) error, read func(context.Context) (string, bool, error), lastErr *error, done func(time.Time, error)) *Input {
	in := &Input{Kind: ReadDone, Op: cmd.Op}
	var token string
	var has bool
	var err error
	if ctx.Err() == nil {
		if cmd.Kind == CommandRead {
			token, has, err = read(ctx)
		} else {
			in.Kind = WriteDone
			var start time.Time
			if done != nil {
				start = time.Now()
			}
			err = write(ctx, Attempt{Op: cmd.Op, Number: cmd.Attempt, BaseToken: cmd.BaseToken, Fence: cmd.Fence, result: &token, hasResult: &has})
			if done != nil {
				done(start, err)
			}
		}
	}
	switch {
	case ctx.Err() != nil:
		*lastErr = ctx.Err()
		return &Input{Kind: Cancel, Op: cmd.Op}
	case err != nil:
		*lastErr = err
		in.Kind, in.Failure = ReadFailed, FailureOf(err)
		if cmd.Kind == CommandWrite {
			in.Kind = WriteFailed
		}
	case has:
		in.Token = &token
	}
	return in
}
