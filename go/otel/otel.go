// Package otel sends the telemetry of a writelane Lane to OpenTelemetry: counters and
// histograms through a MeterProvider, one span per Run through a TracerProvider.
//
// It is a module of its own, so the writelane package itself imports no OpenTelemetry.
// Switch it on with one option when building the lane:
//
//	lane, err := writelane.New(`"iam"`, writelane.WithObserver(otel.NewObserver()))
//
// NewObserver uses the global providers (otel.GetMeterProvider, otel.GetTracerProvider)
// unless given WithMeterProvider and WithTracerProvider. Give each Lane an Observer of its
// own. The names are the same in every writelane binding:
//
//   - counters writelane.writes, writelane.conflicts, writelane.retries,
//     writelane.give_ups (attribute error.type: the reason), writelane.budget.refusals,
//     writelane.spikes;
//   - histograms writelane.lane.wait.duration and writelane.write.duration (seconds);
//   - the observable gauge writelane.budget.level (the engine's retry budget, when the
//     policy has budgets);
//   - a span writelane.run per Run (attributes writelane.entity, writelane.attempts; events
//     writelane.attempt, writelane.conflict, writelane.backoff, writelane.spike_started,
//     writelane.spike_ended; on give-up status Error with error.type the reason).
//
// Metrics carry no entity by default (entities are unbounded): WithEntityAttribute adds
// the name or a hash of it, WithEntityAllowList names the entities that get their name
// whatever the mode.
package otel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	writelane "github.com/writelane/writelane/go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and the tracer (its version is
// writelane.PackageVersion).
const ScopeName = "writelane"

// EntityAttribute says whether metrics carry the entity.
type EntityAttribute int

const (
	// EntityNone puts no entity on metrics (the default).
	EntityNone EntityAttribute = iota
	// EntityName puts the entity name on metrics as writelane.entity.
	EntityName
	// EntityHash puts writelane.entity.hash on metrics: the first 16 hex digits of the
	// SHA-256 of the name.
	EntityHash
)

// Option configures NewObserver.
type Option func(*config)

type config struct {
	mp    metric.MeterProvider
	tp    trace.TracerProvider
	mode  EntityAttribute
	allow map[string]bool
}

// WithMeterProvider sets the MeterProvider (default: otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithTracerProvider sets the TracerProvider (default: otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithEntityAttribute says whether metrics carry the entity (default EntityNone).
func WithEntityAttribute(mode EntityAttribute) Option { return func(c *config) { c.mode = mode } }

// WithEntityAllowList names entities whose metrics carry writelane.entity whatever the
// EntityAttribute mode.
func WithEntityAllowList(entities ...string) Option {
	return func(c *config) {
		if c.allow == nil {
			c.allow = map[string]bool{}
		}
		for _, e := range entities {
			c.allow[e] = true
		}
	}
}

// Observer is a writelane.Observer that records to OpenTelemetry. Build it with
// NewObserver and give it to writelane.New with writelane.WithObserver.
type Observer struct {
	cfg    config
	tracer trace.Tracer
	meter  metric.Meter

	writes, conflicts, retries, giveUps, refusals, spikes metric.Int64Counter
	laneWait, writeDuration                               metric.Float64Histogram
	budget                                                metric.Int64ObservableGauge

	mu     sync.Mutex
	lane   *writelane.Lane // the lane it serves (one: operation ids are per lane)
	shared bool            // the lane has shared lanes (leases): its wait ends with the lease
	runs   map[uint64]*runState
	reg    metric.Registration
}

// runState is what the observer knows of one operation.
type runState struct {
	entity    string
	span      trace.Span // nil until RunStarted
	submitAt  uint64     // engine milliseconds
	submitted bool
	waiting   bool // a lane wait started
	waitDone  bool // the wait was recorded
	attempts  int  // write attempts seen
	final     int  // attempts of the engine's committed or gave_up event (-1: none yet)
	terminal  bool // committed or gave_up seen
	runEnded  bool
}

// NewObserver builds an Observer. Errors creating instruments go to otel.Handle (the
// instrument is then a no-op), as in the OpenTelemetry contrib instrumentations.
func NewObserver(opts ...Option) *Observer {
	o := &Observer{runs: map[uint64]*runState{}}
	for _, opt := range opts {
		opt(&o.cfg)
	}
	if o.cfg.mp == nil {
		o.cfg.mp = otel.GetMeterProvider()
	}
	if o.cfg.tp == nil {
		o.cfg.tp = otel.GetTracerProvider()
	}
	o.meter = o.cfg.mp.Meter(ScopeName, metric.WithInstrumentationVersion(writelane.PackageVersion))
	o.tracer = o.cfg.tp.Tracer(ScopeName, trace.WithInstrumentationVersion(writelane.PackageVersion))
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := o.meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		handle(err)
		return c
	}
	o.writes = counter("writelane.writes", "{write}", "Entity writes the engine commanded (every attempt)")
	o.conflicts = counter("writelane.conflicts", "{conflict}", "Writes refused as conflicts")
	o.retries = counter("writelane.retries", "{retry}", "Retries scheduled")
	o.giveUps = counter("writelane.give_ups", "{operation}", "Operations that gave up, by reason (error.type)")
	o.refusals = counter("writelane.budget.refusals", "{retry}", "Retries the retry budget refused")
	o.spikes = counter("writelane.spikes", "{spike}", "Conflict spikes started")
	var err error
	o.laneWait, err = o.meter.Float64Histogram("writelane.lane.wait.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from submit to the lane or lease granted"), metric.WithExplicitBucketBoundaries(buckets...))
	handle(err)
	o.writeDuration, err = o.meter.Float64Histogram("writelane.write.duration", metric.WithUnit("s"),
		metric.WithDescription("One entity write, sent to reply"), metric.WithExplicitBucketBoundaries(buckets...))
	handle(err)
	o.budget, err = o.meter.Int64ObservableGauge("writelane.budget.level", metric.WithUnit("{token}"),
		metric.WithDescription("Tokens in the engine's retry budget"))
	handle(err)
	return o
}

// buckets are the duration histograms' bounds in seconds (OpenTelemetry's advice for
// durations in seconds).
var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

func handle(err error) {
	if err != nil {
		otel.Handle(err)
	}
}

// errSecondLane is handed to otel.Handle when an Observer is given to a second Lane.
var errSecondLane = errors.New("writelane/otel: an Observer serves one Lane; give each Lane its own (NewObserver)")

// LaneOpened registers the budget gauge's callback for l (writelane.Observer). An Observer
// serves one Lane: given to a second one, it reports errSecondLane to otel.Handle and
// records nothing of that lane's budget (its runs would mix with the first lane's).
func (o *Observer) LaneOpened(l *writelane.Lane) {
	o.mu.Lock()
	if o.lane != nil {
		o.mu.Unlock()
		handle(errSecondLane)
		return
	}
	o.lane = l
	o.mu.Unlock()
	eng := l.Engine()
	var p struct{ Lanes struct{ Mode string } }
	if text, err := eng.PolicyJSON(); err == nil && json.Unmarshal([]byte(text), &p) == nil {
		o.mu.Lock()
		o.shared = p.Lanes.Mode == "shared"
		o.mu.Unlock()
	}
	reg, err := o.meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		text, err := eng.StatsJSON()
		if err != nil {
			return nil // closed: nothing to observe
		}
		var s struct{ Budget *int64 }
		if err := json.Unmarshal([]byte(text), &s); err != nil {
			return err
		}
		if s.Budget != nil {
			obs.ObserveInt64(o.budget, *s.Budget)
		}
		return nil
	}, o.budget)
	handle(err)
	o.mu.Lock()
	o.reg = reg
	o.mu.Unlock()
}

// LaneClosed unregisters the budget gauge's callback (writelane.Observer).
func (o *Observer) LaneClosed(l *writelane.Lane) {
	o.mu.Lock()
	if l != o.lane {
		o.mu.Unlock()
		return
	}
	reg := o.reg
	o.reg = nil
	o.mu.Unlock()
	if reg != nil {
		handle(reg.Unregister())
	}
}

// state returns op's state, created if new (with o.mu held).
func (o *Observer) state(op uint64, entity string) *runState {
	s := o.runs[op]
	if s == nil {
		s = &runState{entity: entity, final: -1}
		o.runs[op] = s
	}
	return s
}

// forget drops op's state once its run ended and the engine finished it (with o.mu held).
func (o *Observer) forget(op uint64, s *runState) {
	if s.runEnded && s.terminal {
		delete(o.runs, op)
	}
}

// attrs is the attribute option of a metric of entity, by the entity mode.
func (o *Observer) attrs(entity string, extra ...attribute.KeyValue) metric.MeasurementOption {
	if len(extra) == 0 && o.cfg.mode == EntityNone && len(o.cfg.allow) == 0 {
		return noAttrs
	}
	kv := extra
	switch {
	case o.cfg.mode == EntityName || o.cfg.allow[entity]:
		kv = append(kv, attribute.String("writelane.entity", entity))
	case o.cfg.mode == EntityHash:
		kv = append(kv, attribute.String("writelane.entity.hash", EntityHash16(entity)))
	}
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}

var noAttrs = metric.WithAttributeSet(*attribute.EmptySet())

// EntityHash16 is the value of writelane.entity.hash for entity: the first 16 hex digits
// of the SHA-256 of its name.
func EntityHash16(entity string) string {
	sum := sha256.Sum256([]byte(entity))
	return hex.EncodeToString(sum[:8])
}

// RunStarted starts the run's span, a child of ctx's (writelane.Observer).
func (o *Observer) RunStarted(ctx context.Context, op uint64, entity string) context.Context {
	ctx, span := o.tracer.Start(ctx, "writelane.run", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("writelane.entity", entity)))
	o.mu.Lock()
	s := o.state(op, entity)
	s.span = span
	zeroWait := !o.shared && !s.waiting && !s.waitDone
	if zeroWait {
		s.waitDone = true
	}
	o.mu.Unlock()
	if zeroWait { // granted the lane on submit
		o.laneWait.Record(ctx, 0, o.attrs(entity))
	}
	return ctx
}

// WriteDone counts the write, times it and adds the attempt event (writelane.Observer).
func (o *Observer) WriteDone(ctx context.Context, op uint64, attempt int, start time.Time, _ error) {
	took := time.Since(start)
	o.mu.Lock()
	s := o.runs[op]
	var span trace.Span
	entity := ""
	if s != nil {
		s.attempts++
		span, entity = s.span, s.entity
	}
	o.mu.Unlock()
	at := o.attrs(entity)
	o.writes.Add(ctx, 1, at)
	o.writeDuration.Record(ctx, took.Seconds(), at)
	if span != nil {
		span.AddEvent("writelane.attempt", trace.WithTimestamp(start),
			trace.WithAttributes(attribute.Int("writelane.attempt", attempt)))
	}
}

// RunEnded ends the run's span: attempts, and on give-up the reason (writelane.Observer).
func (o *Observer) RunEnded(_ context.Context, op uint64, err error) {
	o.mu.Lock()
	s := o.runs[op]
	if s == nil {
		o.mu.Unlock()
		return
	}
	s.runEnded = true
	span, attempts := s.span, s.attempts
	if s.final >= 0 {
		attempts = s.final
	}
	o.forget(op, s)
	o.mu.Unlock()
	if span == nil {
		return
	}
	var gaveUp *writelane.GaveUpError
	switch {
	case errors.As(err, &gaveUp):
		attempts = gaveUp.Attempts
		span.SetAttributes(attribute.String("error.type", gaveUp.Reason))
		span.SetStatus(codes.Error, err.Error())
	case err != nil:
		span.SetAttributes(attribute.String("error.type", "_OTHER"))
		span.SetStatus(codes.Error, err.Error())
	}
	span.SetAttributes(attribute.Int("writelane.attempts", attempts))
	span.End()
}

// event is the union of the engine events' fields this package reads.
type event struct {
	Type      string
	Op        uint64
	HasOp     bool
	Entity    string
	At        uint64
	WaitedMs  uint64
	Attempt   int
	Attempts  int
	DelayMs   uint64
	Reason    string
	Conflicts int
	Until     uint64
}

// parse reads an engine event's fields without encoding/json's reflection (the events
// are flat objects of numbers and strings; a key's pattern "key": cannot occur inside a
// JSON string, where every quote is escaped).
func parse(text string) (ev event, ok bool) {
	ev.Type, ok = str(text, "type")
	ev.Op, ev.HasOp = num(text, "op")
	ev.Entity, _ = str(text, "entity")
	ev.At, _ = num(text, "at")
	switch ev.Type {
	case "lane_wait_ended":
		ev.WaitedMs, _ = num(text, "waited_ms")
	case "conflict":
		n, _ := num(text, "attempt")
		ev.Attempt = int(n)
	case "committed":
		n, _ := num(text, "attempts")
		ev.Attempts = int(n)
	case "gave_up":
		n, _ := num(text, "attempts")
		ev.Attempts = int(n)
		ev.Reason, _ = str(text, "reason")
	case "retry_scheduled":
		ev.DelayMs, _ = num(text, "delay_ms")
	case "spike_started":
		n, _ := num(text, "conflicts")
		ev.Conflicts = int(n)
		ev.Until, _ = num(text, "until")
	}
	return ev, ok
}

// raw is the text after "key": in an event.
func raw(text, key string) (string, bool) {
	i := strings.Index(text, `"`+key+`":`)
	if i < 0 {
		return "", false
	}
	return text[i+len(key)+3:], true
}

func num(text, key string) (uint64, bool) {
	v, ok := raw(text, key)
	if !ok {
		return 0, false
	}
	end := strings.IndexAny(v, ",}")
	if end < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[:end], 10, 64)
	return n, err == nil
}

func str(text, key string) (string, bool) {
	v, ok := raw(text, key)
	if !ok || !strings.HasPrefix(v, `"`) {
		return "", false
	}
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\': // escapes: let encoding/json read the string
			var out string
			dec := json.NewDecoder(strings.NewReader(v))
			if dec.Decode(&out) != nil {
				return "", false
			}
			return out, true
		case '"':
			return v[1:i], true
		}
	}
	return "", false
}

// Event turns an engine event into metrics and span events (writelane.Observer).
func (o *Observer) Event(text string) {
	ev, ok := parse(text)
	if !ok {
		return
	}
	ctx := context.Background()
	switch ev.Type {
	case "spike_started", "spike_ended":
		o.spike(ctx, ev)
		return
	}
	if !ev.HasOp {
		return
	}
	op := ev.Op
	terminal := ev.Type == "committed" || ev.Type == "gave_up"
	o.mu.Lock()
	s := o.runs[op]
	if s == nil && !terminal {
		s = o.state(op, ev.Entity)
	}
	var span trace.Span
	var wait float64 = -1
	if s != nil {
		span = s.span
		switch ev.Type {
		case "submitted":
			s.submitAt, s.submitted = ev.At, true
		case "lane_wait_started":
			s.waiting = true
		case "lane_wait_ended":
			if !o.shared && !s.waitDone {
				s.waitDone, wait = true, float64(ev.WaitedMs)/1000
			}
		case "lease_acquired":
			if o.shared && !s.waitDone && s.submitted {
				s.waitDone, wait = true, float64(ev.At-min(ev.At, s.submitAt))/1000
			}
		case "committed", "gave_up":
			s.terminal, s.final = true, ev.Attempts
			o.forget(op, s)
		}
	}
	o.mu.Unlock()
	if wait >= 0 {
		o.laneWait.Record(ctx, wait, o.attrs(ev.Entity))
	}
	switch ev.Type {
	case "conflict":
		o.conflicts.Add(ctx, 1, o.attrs(ev.Entity))
		if span != nil {
			span.AddEvent("writelane.conflict", trace.WithAttributes(attribute.Int("writelane.attempt", ev.Attempt)))
		}
	case "retry_scheduled":
		o.retries.Add(ctx, 1, o.attrs(ev.Entity))
		if span != nil {
			span.AddEvent("writelane.backoff", trace.WithAttributes(attribute.Int64("writelane.backoff.delay_ms", int64(ev.DelayMs))))
		}
	case "budget_refused":
		o.refusals.Add(ctx, 1, o.attrs(ev.Entity))
	case "gave_up":
		o.giveUps.Add(ctx, 1, o.attrs(ev.Entity, attribute.String("error.type", ev.Reason)))
	}
}

// spike counts a spike's start and adds its start or end to the spans of the entity's
// live runs.
func (o *Observer) spike(ctx context.Context, ev event) {
	name := "writelane." + ev.Type
	if ev.Type == "spike_started" {
		o.spikes.Add(ctx, 1, o.attrs(ev.Entity))
	}
	o.mu.Lock()
	var spans []trace.Span
	for _, s := range o.runs {
		if s.entity == ev.Entity && s.span != nil && !s.runEnded {
			spans = append(spans, s.span)
		}
	}
	o.mu.Unlock()
	for _, span := range spans {
		span.AddEvent(name)
	}
}

var _ writelane.Observer = (*Observer)(nil)
