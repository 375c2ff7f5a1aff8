//! What one uncontended `Lane::run` costs (submit, one write, finish: lane bookkeeping and
//! engine calls), with telemetry off and, built with `--features otel`, on (the real SDK:
//! every span sampled and exported to memory, metrics aggregated for a periodic reader).
//!
//! ```sh
//! cargo run --release -p writelane --example run_overhead                  # off
//! cargo run --release -p writelane --example run_overhead --features otel  # off and on
//! ```

use std::time::Instant;

use writelane::{Attempt, Failure, Lane, LaneOptions, NoRead, Policy, RunOptions};

const RUNS: u32 = 200_000;

/// The policy of the Go package's BenchmarkLaneRun.
const POLICY: &str = r#"{"preset":"iam","retry":{"conflict":{"base_ms":1,"cap_ms":1,"jitter":"none"}},
    "spike":{"enabled":false},"budget":{"enabled":false},"tokens":{"handoff":false}}"#;

async fn measure(lane: &Lane) -> f64 {
    let start = Instant::now();
    for _ in 0..RUNS {
        let report = lane
            .run(
                "role/a",
                |_a: Attempt| async { Ok::<(), Failure>(()) },
                None::<NoRead<Failure>>,
                RunOptions::default(),
            )
            .await
            .expect("a run");
        assert!(report.into_result().is_ok());
    }
    start.elapsed().as_nanos() as f64 / f64::from(RUNS)
}

fn lane() -> Lane {
    let options = LaneOptions {
        seed: Some(1),
        ..LaneOptions::default()
    };
    Lane::new(Policy::from_json(POLICY).expect("the policy"), options).expect("a lane")
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let off = lane();
        measure(&off).await; // warm-up
        println!("telemetry off: {:.0} ns per run", measure(&off).await);
        #[cfg(feature = "otel")]
        {
            use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader};
            use opentelemetry_sdk::trace::InMemorySpanExporter;
            let spans = InMemorySpanExporter::default();
            let tp = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_simple_exporter(spans.clone())
                .build();
            let mp = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
                .build();
            let telemetry = writelane::otel::Telemetry::builder()
                .meter_provider(&mp)
                .tracer_provider(&tp)
                .build();
            let on = lane().with_telemetry(telemetry);
            measure(&on).await;
            spans.reset();
            let ns = measure(&on).await;
            let exported = spans.get_finished_spans().expect("spans").len();
            println!("telemetry on:  {ns:.0} ns per run ({exported} spans exported)");
        }
    });
}
