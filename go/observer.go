package writelane

import (
	"context"
	"errors"
	"time"
)

// Observer watches a lane's runs: the hook instrumentation plugs into, such as the
// OpenTelemetry package github.com/writelane/writelane/go/otel (a module of its own, so
// this package imports no telemetry library). Give it to New with WithObserver. The lane
// calls it outside any lock, from the goroutine of the Run that caused the call; its
// methods must be safe for concurrent use and must not call back into the lane's Run.
type Observer interface {
	// LaneOpened is called once by New with the lane built (for gauges that read
	// lane.Engine()); LaneClosed by the lane's first Close.
	LaneOpened(l *Lane)
	LaneClosed(l *Lane)
	// RunStarted is called when a Run has submitted its operation op for entity; the
	// context it returns (derived from ctx) is the one the run's read and write functions
	// get, so a span it starts is the parent of what they do.
	RunStarted(ctx context.Context, op uint64, entity string) context.Context
	// Event is called with each engine event (JSON text tagged by "type"), as a WithEvents
	// handler is; an event may concern another run than the caller's.
	Event(event string)
	// WriteDone is called when the write function of op's attempt returns: when it was
	// called, and its error.
	WriteDone(ctx context.Context, op uint64, attempt int, start time.Time, err error)
	// RunEnded is called when the Run of op returns err (nil once committed), with the
	// context RunStarted returned.
	RunEnded(ctx context.Context, op uint64, err error)
}

// WithObserver installs an Observer on the lane (see Observer). Without one the lane makes
// no observer call at all.
func WithObserver(o Observer) Option {
	return func(c *laneConfig) { c.observer = o }
}

// errPanicked is what an Observer's RunEnded is told when the run's write or read
// function panicked (the panic goes on to the caller of Run).
var errPanicked = errors.New("writelane: the run's write or read function panicked")
