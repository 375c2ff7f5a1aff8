package writelane

import (
	"context"
	"encoding/json"
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
		runs: map[uint64]*run{}, armed: map[uint64]int{}}
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
		cmd, err := l.eng.PollCommand()
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
				_ = l.drive(context.Background(), r, entity, nil, runConfig{}, true)
			}()
			panic(p)
		}
	}()
	err = l.drive(ctx, r, entity, write, cfg, false)
	returned = true
	return err
}

// drive carries out the commands of r's operation until it finishes.
func (l *Lane) drive(ctx context.Context, r *run, entity string, write func(context.Context, Attempt) error, cfg runConfig, cancelled bool) error {
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
		default:
			var done func(time.Time, error)
			if l.observer != nil && cmd.Kind == CommandWrite {
				done = func(start time.Time, err error) { l.observer.WriteDone(ctx, r.op, cmd.Attempt, start, err) }
			}
			if in = call(ctx, cmd, write, cfg.read, &lastErr, done); in.Kind == Cancel {
				cancelled = true
			}
		}
		if err := l.step(r, in); err != nil && (in == nil || in.Kind != Cancel) {
			return err
		}
	}
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
