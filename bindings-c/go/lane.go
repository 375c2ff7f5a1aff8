package writelane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
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
	// store carries out the engine's lease-store commands (shared lanes); nil otherwise.
	store        Store
	storeTimeout time.Duration
	holder       *string

	// mu guards changed; engine calls go through eng.mu, taken inside mu.
	mu      sync.Mutex
	closed  bool
	changed chan struct{}
}

// Option configures New.
type Option func(*laneConfig)

type laneConfig struct {
	seed         uint64
	hasSeed      bool
	events       func(event string)
	store        Store
	owner        string
	holder       *string
	storeTimeout time.Duration
}

// WithStore makes the lane share its entities with writers in other processes and on
// other machines through a lease store (shared lanes): before it writes, each lane
// holder acquires a fenced lease on the entity's record in store. It implies
// "lanes": {"mode": "shared"} (a policy that sets another mode is refused). Without it
// the lane serialises the writers of this process only.
func WithStore(store Store) Option {
	return func(c *laneConfig) { c.store = store }
}

// WithOwner names this process in the lease records it writes (1 to 256 bytes, unique
// per process). The default is "host:pid:random".
func WithOwner(owner string) Option {
	return func(c *laneConfig) { c.owner = owner }
}

// WithHolder says who holds the leases of this lane in words (a pipeline, a run id), at
// most 1024 bytes; it is stored in the lease record for people debugging a stuck lease.
// A run may give its own with WithRunHolder.
func WithHolder(holder string) Option {
	return func(c *laneConfig) { c.holder = &holder }
}

// WithStoreTimeout bounds each lease-store operation (default 5s); an operation that
// runs out is a lost reply, which the engine resolves by reading the record back.
func WithStoreTimeout(d time.Duration) Option {
	return func(c *laneConfig) { c.storeTimeout = d }
}

// defaultOwner is "host:pid:random".
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	owner := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	if len(owner) > 256 {
		owner = owner[len(owner)-256:]
	}
	return owner
}

// decodeJSON decodes text keeping numbers exact.
func decodeJSON(text string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// sharedPolicy returns policy with "lanes": {"mode": "shared"} set. Text that is not a
// preset name or an object is returned as it is, for the engine to refuse by name.
func sharedPolicy(policy string) (string, error) {
	v, err := decodeJSON(policy)
	if err != nil {
		return policy, nil
	}
	var doc map[string]any
	switch t := v.(type) {
	case string:
		doc = map[string]any{"preset": t}
	case map[string]any:
		doc = t
	default:
		return policy, nil
	}
	lanes, ok := doc["lanes"].(map[string]any)
	if !ok {
		if _, present := doc["lanes"]; present {
			return policy, nil
		}
		lanes = map[string]any{}
		doc["lanes"] = lanes
	}
	if mode, present := lanes["mode"]; present && mode != "shared" {
		return "", &PolicyError{Path: "lanes.mode", Message: fmt.Sprintf("policy field 'lanes.mode' is %v, but a lane with a lease store (WithStore) needs \"shared\"", mode)}
	}
	lanes["mode"] = "shared"
	b, err := json.Marshal(doc)
	return string(b), err
}

// laneMode reads lanes.mode from the engine's effective policy.
func laneMode(e *Engine) string {
	text, err := e.PolicyJSON()
	if err != nil {
		return ""
	}
	var p struct {
		Lanes struct {
			Mode string `json:"mode"`
		} `json:"lanes"`
	}
	_ = json.Unmarshal([]byte(text), &p)
	return p.Lanes.Mode
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
	var eng *Engine
	var err error
	if cfg.store != nil {
		if policy, err = sharedPolicy(policy); err != nil {
			return nil, err
		}
		if cfg.owner == "" {
			cfg.owner = defaultOwner()
		}
	}
	if cfg.owner != "" {
		eng, err = NewEngineWithOwner(policy, cfg.seed, cfg.owner)
	} else {
		eng, err = NewEngine(policy, cfg.seed)
	}
	if err != nil {
		return nil, err
	}
	if cfg.store == nil && laneMode(eng) == "shared" {
		eng.Close()
		return nil, &PolicyError{Path: "lanes.mode", Message: "policy field 'lanes.mode' is \"shared\": give the lane a lease store with WithStore"}
	}
	if cfg.storeTimeout <= 0 {
		cfg.storeTimeout = 5 * time.Second
	}
	return &Lane{eng: eng, start: time.Now(), events: cfg.events, store: cfg.store,
		storeTimeout: cfg.storeTimeout, holder: cfg.holder, changed: make(chan struct{})}, nil
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
	// Fence is the lease epoch this write is made under (shared lanes; nil otherwise):
	// it only grows, so a service that can check a fence may refuse a smaller one.
	Fence     *uint64
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
	holder   *string
	read     func(ctx context.Context) (token string, exists bool, err error)
}

// WithRunHolder says who holds the lease during this run (overriding WithHolder), stored
// in the lease record with shared lanes.
func WithRunHolder(holder string) RunOption {
	return func(c *runConfig) { c.holder = &holder }
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
	cfg := runConfig{holder: l.holder}
	for _, o := range opts {
		o(&cfg)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	op, err := l.eng.Submit(entity, l.now(), SubmitOptions{Expected: cfg.expected, DeadlineMs: cfg.deadline, Holder: cfg.holder})
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
	// done is ctx.Done() until the operation has been cancelled once; after that the
	// run only carries out what the engine still asks (a lease release) and waits for
	// its Finish.
	done := ctx.Done()
	cancel := func() {
		lastErr = ctx.Err()
		done = nil
	}
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
			case CommandStore:
				in = l.storeOp(ctx, op, cmd, done != nil, &lastErr)
			}
			if in.Kind == Cancel {
				cancel()
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
		case <-done:
			cancel()
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
	err := write(ctx, Attempt{Op: op, Number: cmd.Attempt, BaseToken: cmd.BaseToken, Fence: cmd.Fence, result: &token, hasResult: &has})
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

// storeOp carries out a lease-store command with the lane's store. The operation runs
// even when ctx is cancelled once the run has been cancelled (a release must reach the
// store), bounded by the store timeout; before that, a cancelled ctx cancels the run.
func (l *Lane) storeOp(ctx context.Context, op uint64, cmd *Command, cancellable bool, lastErr *error) Input {
	if cancellable && ctx.Err() != nil {
		return Input{Kind: Cancel, Op: op}
	}
	if l.store == nil {
		reply := StoreReply{Reply: ReplyUnavailable, Err: fmt.Errorf("%w: the lane has no lease store", ErrStoreUnavailable)}
		*lastErr = reply.Err
		return Input{Kind: InputStoreReply, Op: op, Reply: &reply}
	}
	sctx, stop := context.WithTimeout(context.WithoutCancel(ctx), l.storeTimeout)
	defer stop()
	defer l.releaseOnPanic(op)
	reply := ApplyStoreOp(sctx, l.store, *cmd.Store)
	if reply.Err != nil {
		*lastErr = reply.Err
	}
	return Input{Kind: InputStoreReply, Op: op, Reply: &reply}
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
