//! OpenTelemetry (feature `otel`) with the real SDK's in-memory exporters, after runs
//! against an IAM-like role that, as the IAM lab does, answers a write overlapping another
//! write of the role with `ConcurrentModification`. Real tokio time.

#![cfg(feature = "otel")]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use writelane::otel::{entity_hash, EntityAttribute, Telemetry};
use writelane::{Attempt, Event, Failure, Lane, LaneOptions, NoRead, Policy, RunOptions};

/// The real SDK, exporting to memory.
struct Sdk {
    metrics: InMemoryMetricExporter,
    meter_provider: SdkMeterProvider,
    spans: InMemorySpanExporter,
    tracer_provider: SdkTracerProvider,
}

impl Sdk {
    fn new() -> Sdk {
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        Sdk {
            metrics,
            meter_provider,
            spans,
            tracer_provider,
        }
    }

    fn telemetry(&self) -> writelane::otel::TelemetryBuilder {
        Telemetry::builder()
            .meter_provider(&self.meter_provider)
            .tracer_provider(&self.tracer_provider)
    }

    /// The metrics collected now (the last export of a cumulative reader).
    fn collect(&self) -> ResourceMetrics {
        self.meter_provider.force_flush().unwrap();
        let mut all = self.metrics.get_finished_metrics().unwrap();
        all.pop().expect("an export")
    }

    fn runs(&self) -> Vec<SpanData> {
        self.spans
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.name == "writelane.run")
            .collect()
    }
}

fn has(attrs: &mut dyn Iterator<Item = &KeyValue>, want: &[KeyValue]) -> bool {
    let attrs: Vec<&KeyValue> = attrs.collect();
    want.iter().all(|w| attrs.contains(&w))
}

/// The sum of a counter's points whose attributes include `want`.
fn sum(rm: &ResourceMetrics, name: &str, want: &[KeyValue]) -> u64 {
    let mut total = 0;
    for sm in rm.scope_metrics() {
        assert_eq!(sm.scope().name(), "writelane");
        assert_eq!(sm.scope().version(), Some(env!("CARGO_PKG_VERSION")));
        for m in sm.metrics().filter(|m| m.name() == name) {
            let AggregatedMetrics::U64(MetricData::Sum(s)) = m.data() else {
                panic!("{name} is not a u64 sum: {:?}", m.data());
            };
            assert!(s.is_monotonic(), "{name} is a counter");
            total += s
                .data_points()
                .filter(|p| has(&mut p.attributes(), want))
                .map(|p| p.value())
                .sum::<u64>();
        }
    }
    total
}

/// (count, sum) of a histogram in seconds.
fn histogram(rm: &ResourceMetrics, name: &str) -> (u64, f64) {
    let (mut count, mut total) = (0, 0.0);
    for m in rm.scope_metrics().flat_map(|sm| sm.metrics()) {
        if m.name() != name {
            continue;
        }
        assert_eq!(m.unit(), "s");
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() else {
            panic!("{name} is not an f64 histogram");
        };
        for p in h.data_points() {
            count += p.count();
            total += p.sum();
        }
    }
    (count, total)
}

fn gauge(rm: &ResourceMetrics, name: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for m in rm.scope_metrics().flat_map(|sm| sm.metrics()) {
        if m.name() == name {
            let AggregatedMetrics::U64(MetricData::Gauge(g)) = m.data() else {
                panic!("{name} is not a u64 gauge");
            };
            out.extend(g.data_points().map(|p| p.value()));
        }
    }
    out
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn events<'a>(
    span: &'a SpanData,
    name: &'a str,
) -> impl Iterator<Item = &'a opentelemetry::trace::Event> {
    span.events.iter().filter(move |e| e.name == name)
}

/// An IAM role as the lab serves it: a write that overlaps another write of the role is
/// refused with `ConcurrentModification`; a write through the lane takes 4 ms to land, a
/// writer without a lane holds the role for 30 ms.
#[derive(Default)]
struct Role {
    busy: AtomicBool,
    /// Writes that went through the lane: accepted and refused.
    lane_writes: AtomicU32,
    lane_conflicts: AtomicU32,
    bare_conflicts: AtomicU32,
}

impl Role {
    async fn write(&self, through_lane: bool) -> Result<(), Failure> {
        if through_lane {
            self.lane_writes.fetch_add(1, Ordering::SeqCst);
        }
        if self.busy.swap(true, Ordering::SeqCst) {
            let refused = if through_lane {
                &self.lane_conflicts
            } else {
                &self.bare_conflicts
            };
            refused.fetch_add(1, Ordering::SeqCst);
            return Err(Failure::code("ConcurrentModification").with_status(409));
        }
        let service = if through_lane { 4 } else { 30 };
        tokio::time::sleep(Duration::from_millis(service)).await;
        self.busy.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// The spans current while a write function ran.
type Seen = Arc<std::sync::Mutex<std::collections::HashSet<opentelemetry::trace::SpanId>>>;

async fn run(
    lane: &Lane,
    role: &Arc<Role>,
    entity: &str,
    seen: &Seen,
) -> writelane::RunReport<Failure> {
    let (role, seen) = (Arc::clone(role), Arc::clone(seen));
    lane.run(
        entity,
        move |_a: Attempt| {
            let (role, seen) = (Arc::clone(&role), Arc::clone(&seen));
            async move {
                let current = Context::current().span().span_context().span_id();
                seen.lock().unwrap().insert(current);
                role.write(true).await
            }
        },
        None::<NoRead<Failure>>,
        RunOptions::default(),
    )
    .await
    .unwrap()
}

/// A conflict storm: three writers without a lane hammer the role (until six lane writes
/// were refused) while four tasks write
/// it through one lane (spike threshold 2). The counters match the role's own counts, a
/// spike is raised, and every run has its span with the entity, its attempts, conflicts
/// and backoffs, under the caller's span; the write functions run in that span.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_storm_is_counted_and_raises_a_spike() {
    let sdk = Sdk::new();
    let policy = Policy::from_json(
        r#"{"preset": "iam", "retry": {"conflict": {"base_ms": 2, "cap_ms": 10, "max_attempts": 100}},
            "spike": {"threshold": 2, "window_ms": 60000, "cooldown_ms": 20}}"#,
    )
    .unwrap();
    let lane = Lane::new(policy, LaneOptions::default())
        .unwrap()
        .with_telemetry(sdk.telemetry().build());
    let role = Arc::new(Role::default());
    let stop = Arc::new(AtomicBool::new(false));
    let storm: Vec<_> = (0..3)
        .map(|_| {
            let (role, stop) = (Arc::clone(&role), Arc::clone(&stop));
            tokio::spawn(async move {
                // Until the lane's writes met six conflicts (a bounded storm, so that the
                // runs commit), or the runs are done.
                while !stop.load(Ordering::SeqCst) && role.lane_conflicts.load(Ordering::SeqCst) < 6
                {
                    let _ = role.write(false).await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    let tracer = sdk.tracer_provider.tracer("test");
    let root = tracer.start("deploy");
    let root_id = root.span_context().span_id();
    let parent = Context::current_with_span(root);
    let seen = Seen::default();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (lane, role, parent) = (lane.clone(), Arc::clone(&role), parent.clone());
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                for _ in 0..3 {
                    // The run's span starts in its first poll, a child of the current context.
                    let report = run(&lane, &role, "role/storm", &seen)
                        .with_context(parent.clone())
                        .await;
                    let outcome = report.outcome;
                    assert!(
                        matches!(outcome, writelane::Outcome::Committed { .. }),
                        "{outcome:?}"
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for t in storm {
        t.await.unwrap();
    }
    drop(parent);

    let (writes, conflicts) = (
        role.lane_writes.load(Ordering::SeqCst),
        role.lane_conflicts.load(Ordering::SeqCst),
    );
    assert!(conflicts >= 6, "the storm refused {conflicts} lane writes");
    let rm = sdk.collect();
    assert_eq!(sum(&rm, "writelane.writes", &[]), u64::from(writes));
    assert_eq!(sum(&rm, "writelane.conflicts", &[]), u64::from(conflicts));
    assert_eq!(sum(&rm, "writelane.retries", &[]), u64::from(conflicts));
    assert_eq!(sum(&rm, "writelane.give_ups", &[]), 0);
    assert!(sum(&rm, "writelane.spikes", &[]) >= 1, "no spike counted");
    assert_eq!(
        histogram(&rm, "writelane.write.duration").0,
        u64::from(writes)
    );
    let (waits, waited) = histogram(&rm, "writelane.lane.wait.duration");
    assert_eq!(waits, 12, "one lane wait per run");
    assert!(waited > 0.0, "four tasks on one lane never waited");
    let budget = gauge(&rm, "writelane.budget.level");
    assert!(
        budget.len() == 1 && budget[0] > 0,
        "budget gauge {budget:?}"
    );
    for m in rm.scope_metrics().flat_map(|sm| sm.metrics()) {
        if let AggregatedMetrics::U64(MetricData::Sum(s)) = m.data() {
            for p in s.data_points() {
                assert!(
                    p.attributes()
                        .all(|kv| !kv.key.as_str().starts_with("writelane.entity")),
                    "{} carries the entity by default",
                    m.name()
                );
            }
        }
    }

    let runs = sdk.runs();
    assert_eq!(runs.len(), 12);
    let (mut attempts, mut conflict_events, mut backoffs, mut spikes) = (0, 0, 0, 0);
    for span in &runs {
        assert_eq!(span.span_kind, SpanKind::Internal);
        assert_eq!(
            span.parent_span_id, root_id,
            "a run's span is a child of the caller's"
        );
        assert_eq!(attr(span, "writelane.entity"), Some("role/storm".into()));
        let n = events(span, "writelane.attempt").count();
        assert_eq!(attr(span, "writelane.attempts"), Some(Value::I64(n as i64)));
        assert_eq!(span.status, Status::Unset);
        attempts += n;
        conflict_events += events(span, "writelane.conflict").count();
        for b in events(span, "writelane.backoff") {
            assert!(b
                .attributes
                .iter()
                .any(|kv| kv.key.as_str() == "writelane.backoff.delay_ms"));
            backoffs += 1;
        }
        spikes += events(span, "writelane.spike_started").count();
    }
    assert_eq!(attempts as u32, writes);
    assert_eq!(conflict_events as u32, conflicts);
    assert_eq!(backoffs as u32, conflicts);
    assert!(spikes >= 1, "no span has writelane.spike_started");
    // The write functions ran in their run's span.
    let ids: std::collections::HashSet<_> = runs.iter().map(|s| s.span_context.span_id()).collect();
    assert_eq!(*seen.lock().unwrap(), ids);
    // Lane::events still has the events with telemetry on.
    let events = lane.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Committed { .. }))
            .count(),
        12
    );
}

/// Conflicts past the attempt limit: the give-up is counted by reason, and the span ends in
/// error with the reason and the message of the run's `GaveUp` error.
#[tokio::test]
async fn a_give_up_is_the_spans_error() {
    let sdk = Sdk::new();
    let policy = Policy::from_json(
        r#"{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 2, "max_attempts": 2}}}"#,
    )
    .unwrap();
    let lane = Lane::new(policy, LaneOptions::default())
        .unwrap()
        .with_telemetry(sdk.telemetry().build());
    let report = lane
        .run(
            "role/refused",
            |_a: Attempt| async { Err(Failure::code("ConcurrentModification").with_status(409)) },
            None::<NoRead<Failure>>,
            RunOptions::default(),
        )
        .await
        .unwrap();
    let error = report.into_result().unwrap_err();
    let rm = sdk.collect();
    let reason = KeyValue::new("error.type", "attempts_exhausted");
    assert_eq!(sum(&rm, "writelane.give_ups", &[reason]), 1);
    assert_eq!(sum(&rm, "writelane.writes", &[]), 2);
    let runs = sdk.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, Status::error(error.to_string()));
    assert_eq!(
        attr(&runs[0], "error.type"),
        Some("attempts_exhausted".into())
    );
    assert_eq!(attr(&runs[0], "writelane.attempts"), Some(Value::I64(2)));
}

/// The entity on metrics: a hash, or the name for an entity on the allow-list.
#[tokio::test]
async fn entity_attributes_follow_the_mode() {
    let sdk = Sdk::new();
    let telemetry = sdk
        .telemetry()
        .entity_attribute(EntityAttribute::Hash)
        .allow_entity("role/named")
        .build();
    let policy = Policy::from_json(
        r#"{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 1}}}"#,
    )
    .unwrap();
    let lane = Lane::new(policy, LaneOptions::default())
        .unwrap()
        .with_telemetry(telemetry);
    for entity in ["role/hashed", "role/named"] {
        let first = Arc::new(AtomicBool::new(true));
        let report = lane
            .run(
                entity,
                move |_a: Attempt| {
                    let conflict = first.swap(false, Ordering::SeqCst);
                    async move {
                        match conflict {
                            true => Err(Failure::code("ConcurrentModification").with_status(409)),
                            false => Ok(()),
                        }
                    }
                },
                None::<NoRead<Failure>>,
                RunOptions::default(),
            )
            .await
            .unwrap();
        assert!(report.into_result().is_ok());
    }
    // printf role/hashed | sha256sum
    assert_eq!(entity_hash("role/hashed"), "c776664c699eeedd");
    let rm = sdk.collect();
    let hashed = KeyValue::new("writelane.entity.hash", "c776664c699eeedd");
    let named = KeyValue::new("writelane.entity", "role/named");
    for (name, want) in [("writelane.writes", 2), ("writelane.conflicts", 1)] {
        assert_eq!(
            sum(&rm, name, std::slice::from_ref(&hashed)),
            want,
            "{name}"
        );
        assert_eq!(sum(&rm, name, std::slice::from_ref(&named)), want, "{name}");
    }
}

/// With a lease store the lane wait ends with the lease: one value per run, the second
/// writer's covering the first one's hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_wait_with_a_store() {
    let sdk = Sdk::new();
    let options = LaneOptions {
        store: Some(Arc::new(writelane::MemoryStore::new())),
        ..LaneOptions::default()
    };
    let lane = Lane::new(Policy::preset("iam").unwrap(), options)
        .unwrap()
        .with_telemetry(sdk.telemetry().build());
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let lane = lane.clone();
            tokio::spawn(async move {
                let report = lane
                    .run(
                        "role/leased",
                        |_a: Attempt| async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<(), Failure>(())
                        },
                        None::<NoRead<Failure>>,
                        RunOptions::default(),
                    )
                    .await
                    .unwrap();
                assert!(report.into_result().is_ok());
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rm = sdk.collect();
    let (count, total) = histogram(&rm, "writelane.lane.wait.duration");
    assert_eq!(count, 2, "one lease wait per run");
    assert!(
        total >= 0.04,
        "the second writer waited {total}s, want about the first one's 50 ms"
    );
    assert_eq!(sum(&rm, "writelane.writes", &[]), 2);
}

/// Updates (group commit) have a span each; the writes counted are the write calls the
/// batches made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_have_spans() {
    let sdk = Sdk::new();
    let lane = Lane::new(Policy::preset("iam").unwrap(), LaneOptions::default())
        .unwrap()
        .with_telemetry(sdk.telemetry().build());
    let doc = Arc::new(std::sync::Mutex::new(String::new()));
    let writes = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (lane, doc, writes) = (lane.clone(), Arc::clone(&doc), Arc::clone(&writes));
            tokio::spawn(async move {
                let read_doc = Arc::clone(&doc);
                let report = lane
                    .update(
                        "role/batched",
                        move || {
                            let d = read_doc.lock().unwrap().clone();
                            async move { Ok::<_, Failure>((d, None)) }
                        },
                        move |d: &String| Ok(format!("{d}{i}")),
                        move |d: String, _a: Attempt| {
                            let (doc, writes) = (Arc::clone(&doc), Arc::clone(&writes));
                            async move {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                writes.fetch_add(1, Ordering::SeqCst);
                                *doc.lock().unwrap() = d;
                                Ok::<(), Failure>(())
                            }
                        },
                        writelane::UpdateOptions::default(),
                    )
                    .await
                    .unwrap();
                assert!(report.into_result().is_ok());
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(doc.lock().unwrap().len(), 4, "the four changes landed");
    let rm = sdk.collect();
    assert_eq!(
        sum(&rm, "writelane.writes", &[]),
        u64::from(writes.load(Ordering::SeqCst))
    );
    let runs = sdk.runs();
    assert_eq!(runs.len(), 4, "one span per update");
    for span in &runs {
        assert_eq!(attr(span, "writelane.entity"), Some("role/batched".into()));
    }
}
