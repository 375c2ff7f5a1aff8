package writelane

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// Lane runs logical writes under the write discipline: one writer per entity at a time,
// a re-read before every retry, jittered backoff and retry budgets, all decided by the
// engine inside. One Lane is meant to be shared by every goroutine of a process that
// writes the same entities; it is safe for concurrent use. Close it when done.
type Lane struct {
	eng    *Engine
	start  time.Time
	events func(string)

	// mu guards changed; engine calls go through eng.mu, taken inside mu.
	mu      sync.Mutex
	closed  bool
	changed chan struct{}
}

// Option configures New.
type Option func(*laneConfig)

type laneConfig struct {
	seed    uint64
	hasSeed bool
	events  func(event string)
}

// WithSeed fixes the jitter generator's seed (the default is random), for reproducible
// decisions.
func WithSeed(seed uint64) Option {
	return func(c *laneConfig) { c.seed, c.hasSeed = seed, true }
}

// WithEvents delivers the engine's telemetry events (JSON text tagged by "type":
// submitted, lane_wait_started, conflict, retry_scheduled, committed, gave_up, ...) to
// handler, called from the goroutine of the Run that caused them, outside any lock.
// Without it the lane discards events as they come.
func WithEvents(handler func(event string)) Option {
	return func(c *laneConfig) { c.events = handler }
}

// New builds a Lane from a policy given as JSON text: a preset name as a JSON string
// (`"iam"`, quotes included) or an object such as `{"preset": "iam", "deadline_ms": 30000}`.
// A refused policy is a *PolicyError naming the field and the rule.
func New(policy string, opts ...Option) (*Lane, error) {
	var cfg laneConfig
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.hasSeed {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.seed = binary.LittleEndian.Uint64(b[:]) & (1<<53 - 1)
	}
	eng, err := NewEngine(policy, cfg.seed)
	if err != nil {
		return nil, err
	}
	return &Lane{eng: eng, start: time.Now(), events: cfg.events, changed: make(chan struct{})}, nil
}

// Engine returns the engine inside the lane (for stats, events and state export).
func (l *Lane) Engine() *Engine { return l.eng }

// Close frees the lane. It is idempotent. Runs in progress end with ErrClosed.
func (l *Lane) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.changed)
	}
	l.mu.Unlock()
	return l.eng.Close()
}

// now is the lane's clock: milliseconds since New, monotonic. Called with l.mu held so
// that times passed to the engine never go backwards.
func (l *Lane) now() uint64 { return uint64(time.Since(l.start) / time.Millisecond) }

// notify wakes every Run waiting for progress. Called with l.mu held.
func (l *Lane) notify() {
	if !l.closed {
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// changed is called with l.mu held after the engine changed: it wakes the waiting Runs
// and takes the queued events (dropping them when nobody listens).
func (l *Lane) afterChange() []string {
	l.notify()
	if l.events == nil {
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

// deliver hands events to the handler; called without l.mu.
func (l *Lane) deliver(events []string) {
	for _, ev := range events {
		l.events(ev)
	}
}

// Attempt describes one write attempt handed to the write function.
type Attempt struct {
	// Op is the operation id.
	Op uint64
	// Number is the attempt number, from 1.
	Number int
	// BaseToken is the revision the write must be based on, when known (with WithRead:
	// the token the read just returned).
	BaseToken *string
	result    *string
	hasResult *bool
}

// SetToken records the change token of the revision this write produced, when the write
// function knows it; the engine hands it to the next writer of the entity.
func (a Attempt) SetToken(token string) {
	*a.result = token
	*a.hasResult = true
}

// RunOption configures one Run.
type RunOption func(*runConfig)

type runConfig struct {
	expected *string
	deadline *uint64
	read     func(ctx context.Context) (token string, exists bool, err error)
}

// WithExpected names the change token the caller based its change on: the write is
// refused with ErrStaleRevision if a read finds the entity at another revision.
func WithExpected(token string) RunOption {
	return func(c *runConfig) { c.expected = &token }
}

// WithDeadline overrides the policy's deadline for this write.
func WithDeadline(d time.Duration) RunOption {
	return func(c *runConfig) {
		ms := uint64(d / time.Millisecond)
		c.deadline = &ms
	}
}

// WithRead gives the function that reads the entity's current change token (exists is
// false when the entity does not exist). Without it, reads report "no token", so writes
// go ahead without revision checks.
func WithRead(read func(ctx context.Context) (token string, exists bool, err error)) RunOption {
	return func(c *runConfig) { c.read = read }
}

// Run performs one logical write of entity: it waits for the entity's lane, calls read
// (see WithRead) and write as the engine commands, sleeps out back-offs with timers, and
// returns nil once a write succeeded. It returns a *GaveUpError (errors.Is ErrGaveUp) when
// the engine gave up; its Unwrap is the write's last error, or ctx.Err() when ctx was
// cancelled (which releases the lane at once).
func (l *Lane) Run(ctx context.Context, entity string, write func(ctx context.Context, a Attempt) error, opts ...RunOption) error {
	var cfg runConfig
	for _, o := range opts {
		o(&cfg)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	op, err := l.eng.Submit(entity, l.now(), SubmitOptions{Expected: cfg.expected, DeadlineMs: cfg.deadline})
	evs := l.afterChange()
	l.mu.Unlock()
	l.deliver(evs)
	if err != nil {
		return err
	}
	var lastErr error
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		cmd, err := l.eng.PollCommandFor(op)
		var at uint64
		var hasTimer bool
		var wake <-chan struct{}
		now := l.now()
		if err == nil && cmd == nil {
			at, hasTimer, err = l.eng.PollTimeoutFor(op)
			wake = l.changed
		}
		l.mu.Unlock()
		if err != nil {
			return err
		}
		if cmd != nil {
			var in Input
			switch cmd.Kind {
			case CommandFinish:
				return outcomeError(op, entity, cmd.Outcome, lastErr)
			case CommandRead:
				in = l.read(ctx, op, cfg.read, &lastErr)
			case CommandWrite:
				in = l.write(ctx, op, cmd, write, &lastErr)
			}
			if in.Kind == Cancel {
				lastErr = ctx.Err()
			}
			l.mu.Lock()
			err := l.eng.Handle(l.now(), in)
			evs := l.afterChange()
			l.mu.Unlock()
			l.deliver(evs)
			if err != nil {
				return err
			}
			continue
		}
		var fire <-chan time.Time
		if hasTimer {
			d := time.Duration(0)
			if at > now {
				d = time.Duration(at-now) * time.Millisecond
			}
			timer.Reset(d)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			lastErr = ctx.Err()
			l.mu.Lock()
			// Refused only if the op finished meanwhile; the next poll returns its Finish.
			_ = l.eng.Handle(l.now(), Input{Kind: Cancel, Op: op})
			evs := l.afterChange()
			l.mu.Unlock()
			l.deliver(evs)
		case <-wake:
		case <-fire:
			l.mu.Lock()
			err := l.eng.HandleTimeout(l.now())
			evs := l.afterChange()
			l.mu.Unlock()
			l.deliver(evs)
			if err != nil {
				return err
			}
		}
		if hasTimer && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// releaseOnPanic cancels op if the user's function panics, so the lane is not held
// forever, then lets the panic go on.
func (l *Lane) releaseOnPanic(op uint64) {
	if p := recover(); p != nil {
		l.mu.Lock()
		_ = l.eng.Handle(l.now(), Input{Kind: Cancel, Op: op})
		_, _ = l.eng.PollCommandFor(op)
		_ = l.afterChange()
		l.mu.Unlock()
		panic(p)
	}
}

func (l *Lane) read(ctx context.Context, op uint64, read func(context.Context) (string, bool, error), lastErr *error) Input {
	if ctx.Err() != nil {
		return Input{Kind: Cancel, Op: op}
	}
	if read == nil {
		return Input{Kind: ReadDone, Op: op}
	}
	defer l.releaseOnPanic(op)
	token, exists, err := read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return Input{Kind: Cancel, Op: op}
		}
		*lastErr = err
		return Input{Kind: ReadFailed, Op: op, Failure: FailureOf(err)}
	}
	if !exists {
		return Input{Kind: ReadDone, Op: op}
	}
	return Input{Kind: ReadDone, Op: op, Token: &token}
}

func (l *Lane) write(ctx context.Context, op uint64, cmd *Command, write func(context.Context, Attempt) error, lastErr *error) Input {
	if ctx.Err() != nil {
		return Input{Kind: Cancel, Op: op}
	}
	var token string
	var has bool
	defer l.releaseOnPanic(op)
	err := write(ctx, Attempt{Op: op, Number: cmd.Attempt, BaseToken: cmd.BaseToken, result: &token, hasResult: &has})
	if err != nil {
		if ctx.Err() != nil {
			return Input{Kind: Cancel, Op: op}
		}
		*lastErr = err
		return Input{Kind: WriteFailed, Op: op, Failure: FailureOf(err)}
	}
	if has {
		return Input{Kind: WriteDone, Op: op, Token: &token}
	}
	return Input{Kind: WriteDone, Op: op}
}

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
