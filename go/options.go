package writelane

import (
	"context"
	"time"
)

// The options of New and Run, and the Attempt a write function receives.

// Option configures New.
type Option func(*laneConfig)

type laneConfig struct {
	seed     uint64
	events   func(event string)
	store    Store
	owner    string
	holder   *string
	clock    Clock
	observer Observer
}

// WithStore makes the lane share its entities with writers in other processes and on
// other machines through a lease store: before it writes, each lane holder acquires a
// fenced lease on the entity's record in store. A store means shared lanes whatever the
// policy says (the core's rule: "aws-standard", whose lanes are none, and an explicit
// local mode included). Without it the lane serialises the writers of this process only.
func WithStore(store Store) Option {
	return func(c *laneConfig) { c.store = store }
}

// WithOwner names this process in the lease records it writes (1 to 256 bytes, unique
// per process). The default is OwnerID(host name, pid, 64 random bits).
func WithOwner(owner string) Option {
	return func(c *laneConfig) { c.owner = owner }
}

// WithHolder says who holds the leases of this lane in words (a pipeline, a run id), at
// most 1024 bytes; it is stored in the lease record for people debugging a stuck lease.
// A run may give its own with WithRunHolder.
func WithHolder(holder string) Option {
	return func(c *laneConfig) { c.holder = &holder }
}

// WithSeed fixes the jitter generator's seed (the default is random), for reproducible
// decisions.
func WithSeed(seed uint64) Option {
	return func(c *laneConfig) { c.seed = seed }
}

// WithEvents delivers the engine's telemetry events (JSON text tagged by "type":
// submitted, lane_wait_started, conflict, retry_scheduled, committed, gave_up, ...) to
// handler, called from the goroutine of the Run that caused them, outside any lock.
// Without it the lane discards events as they come.
func WithEvents(handler func(event string)) Option {
	return func(c *laneConfig) { c.events = handler }
}

// RunOption configures one Run.
type RunOption func(*runConfig)

type runConfig struct {
	expected *string
	deadline *uint64
	holder   *string
	read     func(ctx context.Context) (token string, exists bool, err error)
	outcome  *Outcome
}

// WithRunHolder says who holds the lease during this run (overriding WithHolder), stored
// in the lease record with shared lanes.
func WithRunHolder(holder string) RunOption {
	return func(c *runConfig) { c.holder = &holder }
}

// WithExpected names the change token the caller based its change on: the write is
// refused with ErrStaleRevision if a read finds the entity at another revision. It needs
// WithRead (without a read function the revision cannot be checked: a *UsageError of
// kind expected_needs_read).
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
// false when the entity does not exist); the engine calls it before writes and after
// failures it cannot judge. Without it the engine never asks for a read: writes go ahead
// on no known revision (or on the token the last writer handed on).
func WithRead(read func(ctx context.Context) (token string, exists bool, err error)) RunOption {
	return func(c *runConfig) { c.read = read }
}

// WithOutcome fills *o with how the write ended when Run returns after the engine
// finished it: the committed token and the attempts, or the give-up reason.
func WithOutcome(o *Outcome) RunOption {
	return func(c *runConfig) { c.outcome = o }
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
