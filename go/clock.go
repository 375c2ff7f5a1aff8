package writelane

import "time"

// Clock is a Lane's time: Now gives the engine's milliseconds (since New, monotonic), and
// After is every wait of a Run (back-offs, waits for a lane or a lease, lease renewals).
// The default is the system clock. Tests inject a virtual clock (WithClock) whose After
// moves its Now forward, so a minute-long back-off takes no real time. A Clock must be
// safe for concurrent use, and Now must never go backwards.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// WithClock makes the lane read time from c and wait with c.After (default: the system
// clock). Store operations are still bounded by context deadlines in real time
// (lease.store_timeout_ms).
func WithClock(c Clock) Option {
	return func(cfg *laneConfig) { cfg.clock = c }
}
