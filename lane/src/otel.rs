//! OpenTelemetry for a [`Lane`](crate::Lane) (feature `otel`): counters and histograms
//! through a meter, one span per [`Lane::run`](crate::Lane::run) and
//! [`Lane::update`](crate::Lane::update) through a tracer. Switch it on with one call,
//! [`Lane::with_telemetry`](crate::Lane::with_telemetry):
//!
//! ```
//! use writelane::otel::{EntityAttribute, Telemetry};
//! use writelane::{Lane, LaneOptions, Policy};
//! # fn main() -> Result<(), writelane::Error> {
//! let lane = Lane::new(Policy::preset("iam")?, LaneOptions::default())?
//!     .with_telemetry(Telemetry::global()); // the global meter and tracer providers
//! let hashed = Telemetry::builder() // .meter_provider(&mp).tracer_provider(&tp)
//!     .entity_attribute(EntityAttribute::Hash)
//!     .build();
//! # drop((lane, hashed)); Ok(()) }
//! ```
//!
//! The names are the same in every writelane binding (instrumentation scope `writelane`,
//! version the crate's): counters `writelane.writes`, `writelane.conflicts`,
//! `writelane.retries`, `writelane.give_ups` (attribute `error.type`: the reason),
//! `writelane.budget.refusals`, `writelane.spikes`; histograms
//! `writelane.lane.wait.duration` and `writelane.write.duration` (seconds); the observable
//! gauge `writelane.budget.level` (the engine's retry budget, when the policy has one).
//! Each run is a span `writelane.run` (kind internal, a child of
//! [`Context::current()`](opentelemetry::Context::current) when the run starts) with
//! `writelane.entity` and, at the end, `writelane.attempts`; its events are
//! `writelane.attempt`, `writelane.conflict`, `writelane.backoff`
//! (`writelane.backoff.delay_ms`), `writelane.spike_started` and `writelane.spike_ended`;
//! a give-up sets status Error with the [`GaveUp`](crate::GaveUp) message and `error.type`.
//!
//! Metrics carry no entity by default (entities are unbounded):
//! [`TelemetryBuilder::entity_attribute`] adds the name or a hash of it,
//! [`TelemetryBuilder::allow_entity`] names entities that get their name whatever the mode.
//!
//! With telemetry on, the lane takes the engine's events as they come;
//! [`Lane::events`](crate::Lane::events) still returns them (the last
//! [`MAX_QUEUED_EVENTS`] kept).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider};
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use sha2::{Digest, Sha256};
use writelane_core::{Event, OpId, MAX_QUEUED_EVENTS};

/// The instrumentation scope's name.
pub const SCOPE_NAME: &str = "writelane";

/// Bucket bounds of the duration histograms, in seconds (OpenTelemetry's advice for
/// durations in seconds).
const DURATION_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// Whether metrics carry the entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EntityAttribute {
    /// No entity on metrics (the default: entities are unbounded).
    #[default]
    None,
    /// `writelane.entity` = the entity name.
    Name,
    /// `writelane.entity.hash` = the first 16 hex digits of the SHA-256 of the name.
    Hash,
}

/// The first 16 hex digits of the SHA-256 of `entity`: the value of
/// `writelane.entity.hash`.
pub fn entity_hash(entity: &str) -> String {
    Sha256::digest(entity.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The instruments and the tracer a lane records to; cheap to clone. Build it with
/// [`Telemetry::global`] or [`Telemetry::builder`] and give it to
/// [`Lane::with_telemetry`](crate::Lane::with_telemetry).
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Instruments>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("entity_attribute", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

struct Instruments {
    meter: Meter,
    tracer: BoxedTracer,
    writes: Counter<u64>,
    conflicts: Counter<u64>,
    retries: Counter<u64>,
    give_ups: Counter<u64>,
    refusals: Counter<u64>,
    spikes: Counter<u64>,
    lane_wait: Histogram<f64>,
    write_duration: Histogram<f64>,
    mode: EntityAttribute,
    allow: HashSet<String>,
}

/// Builds a [`Telemetry`]: the providers default to the global ones.
#[derive(Default)]
pub struct TelemetryBuilder {
    meter: Option<Meter>,
    tracer: Option<BoxedTracer>,
    mode: EntityAttribute,
    allow: HashSet<String>,
}

impl Telemetry {
    /// Telemetry through the global meter and tracer providers, no entity on metrics.
    pub fn global() -> Telemetry {
        Telemetry::builder().build()
    }

    /// A builder for other providers or an entity attribute.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }
}

impl TelemetryBuilder {
    /// Record metrics through `provider` (default: the global one).
    pub fn meter_provider(mut self, provider: &impl MeterProvider) -> Self {
        self.meter = Some(provider.meter_with_scope(scope()));
        self
    }

    /// Record spans through `provider` (default: the global one).
    pub fn tracer_provider<P, T, S>(mut self, provider: &P) -> Self
    where
        P: TracerProvider<Tracer = T>,
        T: Tracer<Span = S> + Send + Sync + 'static,
        S: Span + Send + Sync + 'static,
    {
        self.tracer = Some(BoxedTracer::new(Box::new(
            provider.tracer_with_scope(scope()),
        )));
        self
    }

    /// Whether metrics carry the entity (default [`EntityAttribute::None`]).
    pub fn entity_attribute(mut self, mode: EntityAttribute) -> Self {
        self.mode = mode;
        self
    }

    /// Metrics of `entity` carry `writelane.entity` whatever the mode.
    pub fn allow_entity(mut self, entity: impl Into<String>) -> Self {
        self.allow.insert(entity.into());
        self
    }

    /// The telemetry.
    pub fn build(self) -> Telemetry {
        let meter = self
            .meter
            .unwrap_or_else(|| opentelemetry::global::meter_with_scope(scope()));
        let tracer = self
            .tracer
            .unwrap_or_else(|| opentelemetry::global::tracer_with_scope(scope()));
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build()
        };
        let inner = Instruments {
            writes: counter(
                "writelane.writes",
                "{write}",
                "Entity writes the engine commanded (every attempt)",
            ),
            conflicts: counter(
                "writelane.conflicts",
                "{conflict}",
                "Writes refused as conflicts",
            ),
            retries: counter("writelane.retries", "{retry}", "Retries scheduled"),
            give_ups: counter(
                "writelane.give_ups",
                "{operation}",
                "Operations that gave up, by reason (error.type)",
            ),
            refusals: counter(
                "writelane.budget.refusals",
                "{retry}",
                "Retries the retry budget refused",
            ),
            spikes: counter("writelane.spikes", "{spike}", "Conflict spikes started"),
            lane_wait: seconds(
                "writelane.lane.wait.duration",
                "Time from submit to the lane or lease granted",
            ),
            write_duration: seconds(
                "writelane.write.duration",
                "One entity write, sent to reply",
            ),
            meter,
            tracer,
            mode: self.mode,
            allow: self.allow,
        };
        Telemetry {
            inner: Arc::new(inner),
        }
    }
}

impl Telemetry {
    /// The metric attributes of `entity`, by the mode.
    fn attrs(&self, entity: &str, mut extra: Vec<KeyValue>) -> Vec<KeyValue> {
        let t = &self.inner;
        if t.mode == EntityAttribute::Name || t.allow.contains(entity) {
            extra.push(KeyValue::new("writelane.entity", entity.to_string()));
        } else if t.mode == EntityAttribute::Hash {
            extra.push(KeyValue::new("writelane.entity.hash", entity_hash(entity)));
        }
        extra
    }

    /// Register the budget gauge, reading the level with `budget` at each collection; the
    /// returned handle keeps it.
    pub(crate) fn budget_gauge(
        &self,
        budget: impl Fn() -> Option<u32> + Send + Sync + 'static,
    ) -> opentelemetry::metrics::ObservableGauge<u64> {
        self.inner
            .meter
            .u64_observable_gauge("writelane.budget.level")
            .with_unit("{token}")
            .with_description("Tokens in the engine's retry budget")
            .with_callback(move |observer| {
                if let Some(level) = budget() {
                    observer.observe(u64::from(level), &[]);
                }
            })
            .build()
    }
}

/// When a write was called.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteStart {
    at: Instant,
    wall: SystemTime,
}

impl WriteStart {
    pub(crate) fn now() -> WriteStart {
        WriteStart {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// One lane's recorder, kept in its state (under its lock): the spans of live runs, and
/// the events taken from the engine for [`Lane::events`](crate::Lane::events).
pub(crate) struct Recorder {
    telemetry: Telemetry,
    /// Shared lanes: a run's wait ends with the lease, not the local lane.
    shared: bool,
    runs: HashMap<OpId, RunSpan>,
    kept: VecDeque<Event>,
    /// Keeps the budget gauge's callback registered.
    pub(crate) gauge: Option<opentelemetry::metrics::ObservableGauge<u64>>,
}

struct RunSpan {
    entity: String,
    /// The context with the run's span: its parent's, and the span the run's read and
    /// write functions run in.
    cx: Context,
    submitted_at: Option<u64>,
    waiting: bool,
    wait_recorded: bool,
}

impl Recorder {
    pub(crate) fn new(telemetry: Telemetry, shared: bool) -> Recorder {
        Recorder {
            telemetry,
            shared,
            runs: HashMap::new(),
            kept: VecDeque::new(),
            gauge: None,
        }
    }

    /// A run submitted `op`: its span starts, a child of the current context.
    pub(crate) fn started(&mut self, op: OpId, entity: &str) {
        let t = &self.telemetry.inner;
        let parent = Context::current();
        let span = t
            .tracer
            .span_builder("writelane.run")
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new("writelane.entity", entity.to_string())])
            .start_with_context(&t.tracer, &parent);
        self.runs.insert(
            op,
            RunSpan {
                entity: entity.to_string(),
                cx: parent.with_span(span),
                submitted_at: None,
                waiting: false,
                wait_recorded: false,
            },
        );
    }

    /// The context with `op`'s span, for its read and write functions.
    pub(crate) fn context(&self, op: OpId) -> Option<Context> {
        self.runs.get(&op).map(|run| run.cx.clone())
    }

    /// A local lane granted at once: a wait of zero, recorded once.
    fn no_wait(&mut self, op: OpId) {
        let shared = self.shared;
        if let Some(run) = self.runs.get_mut(&op) {
            if !shared && !run.waiting && !run.wait_recorded {
                run.wait_recorded = true;
                let attrs = self.telemetry.attrs(&run.entity, Vec::new());
                self.telemetry.inner.lane_wait.record(0.0, &attrs);
            }
        }
    }

    /// The write of `op`'s attempt returned.
    pub(crate) fn write_done(&mut self, op: OpId, attempt: u32, start: WriteStart) {
        let took = start.at.elapsed().as_secs_f64();
        self.no_wait(op);
        let entity = self.runs.get(&op).map(|r| r.entity.as_str()).unwrap_or("");
        let attrs = self.telemetry.attrs(entity, Vec::new());
        let t = &self.telemetry.inner;
        t.writes.add(1, &attrs);
        t.write_duration.record(took, &attrs);
        if let Some(run) = self.runs.get_mut(&op) {
            run.cx.span().add_event_with_timestamp(
                "writelane.attempt",
                start.wall,
                vec![KeyValue::new("writelane.attempt", i64::from(attempt))],
            );
        }
    }

    /// The events kept for [`Lane::events`](crate::Lane::events), drained.
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        self.kept.drain(..).collect()
    }

    /// An engine event: metrics, span events, and the span's end with the run's finish.
    pub(crate) fn event(&mut self, event: Event) {
        let t = Arc::clone(&self.telemetry.inner);
        let tel = self.telemetry.clone();
        match &event {
            Event::Submitted { op, at, .. } => {
                if let Some(run) = self.runs.get_mut(op) {
                    run.submitted_at = Some(*at);
                }
            }
            Event::LaneWaitStarted { op, .. } => {
                if let Some(run) = self.runs.get_mut(op) {
                    run.waiting = true;
                }
            }
            Event::LaneWaitEnded {
                op,
                entity,
                waited_ms,
                ..
            } => {
                if let Some(run) = self.runs.get_mut(op) {
                    if !self.shared && !run.wait_recorded {
                        run.wait_recorded = true;
                        t.lane_wait
                            .record(*waited_ms as f64 / 1000.0, &tel.attrs(entity, Vec::new()));
                    }
                }
            }
            Event::LeaseAcquired { op, entity, at, .. } => {
                if let Some(run) = self.runs.get_mut(op) {
                    if let (true, false, Some(submitted)) =
                        (self.shared, run.wait_recorded, run.submitted_at)
                    {
                        run.wait_recorded = true;
                        let waited = at.saturating_sub(submitted) as f64 / 1000.0;
                        t.lane_wait.record(waited, &tel.attrs(entity, Vec::new()));
                    }
                }
            }
            Event::Conflict {
                op,
                entity,
                attempt,
                ..
            } => {
                t.conflicts.add(1, &tel.attrs(entity, Vec::new()));
                if let Some(run) = self.runs.get_mut(op) {
                    run.cx.span().add_event(
                        "writelane.conflict",
                        vec![KeyValue::new("writelane.attempt", i64::from(*attempt))],
                    );
                }
            }
            Event::RetryScheduled {
                op,
                entity,
                delay_ms,
                ..
            } => {
                t.retries.add(1, &tel.attrs(entity, Vec::new()));
                if let Some(run) = self.runs.get_mut(op) {
                    run.cx.span().add_event(
                        "writelane.backoff",
                        vec![KeyValue::new(
                            "writelane.backoff.delay_ms",
                            i64::try_from(*delay_ms).unwrap_or(i64::MAX),
                        )],
                    );
                }
            }
            Event::BudgetRefused { entity, .. } => {
                t.refusals.add(1, &tel.attrs(entity, Vec::new()));
            }
            Event::SpikeStarted { entity, .. } => {
                t.spikes.add(1, &tel.attrs(entity, Vec::new()));
                for run in self.runs.values().filter(|r| *r.entity == **entity) {
                    run.cx
                        .span()
                        .add_event("writelane.spike_started", Vec::new());
                }
            }
            Event::SpikeEnded { entity, .. } => {
                for run in self.runs.values().filter(|r| *r.entity == **entity) {
                    run.cx.span().add_event("writelane.spike_ended", Vec::new());
                }
            }
            Event::Committed { op, attempts, .. } => {
                self.no_wait(*op);
                if let Some(run) = self.runs.remove(op) {
                    run.cx
                        .span()
                        .set_attribute(KeyValue::new("writelane.attempts", i64::from(*attempts)));
                    run.cx.span().end();
                }
            }
            Event::GaveUp {
                op,
                entity,
                attempts,
                reason,
                ..
            } => {
                t.give_ups.add(
                    1,
                    &tel.attrs(entity, vec![KeyValue::new("error.type", reason.clone())]),
                );
                if let Some(run) = self.runs.remove(op) {
                    run.cx
                        .span()
                        .set_attribute(KeyValue::new("writelane.attempts", i64::from(*attempts)));
                    run.cx
                        .span()
                        .set_attribute(KeyValue::new("error.type", reason.clone()));
                    // The message of crate::GaveUp.
                    run.cx.span().set_status(Status::error(format!(
                        "gave up after {attempts} attempts: {reason}"
                    )));
                    run.cx.span().end();
                }
            }
            _ => {}
        }
        if self.kept.len() >= MAX_QUEUED_EVENTS {
            self.kept.pop_front();
        }
        self.kept.push_back(event);
    }
}
