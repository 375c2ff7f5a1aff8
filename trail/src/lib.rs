//! writelane-trail: find who collides with whom on IAM entities, from CloudTrail.
//!
//! Reads CloudTrail records (log files gzipped or plain, directories, `lookup-events`
//! output, EventBridge envelopes, JSON Lines, stdin, and with the `s3` feature
//! `s3://BUCKET/PREFIX`), keeps the IAM writes, keys each by its entity (account, type,
//! name, through the same table as writelane's lanes: `writelane_core::iam`), and reports
//! per entity its writers, conflicts, overlap incidents, immediate replays and
//! policy-document fights, and per pair of writers the entities they collide on.
//!
//! ```no_run
//! use writelane_trail::{analyze, Input, Options};
//! let report = analyze(&[Input::parse("AWSLogs/").unwrap()], &Options::default()).unwrap();
//! println!("{}", writelane_trail::render::text(&report, 20));
//! ```
//!
//! `eventTime` has one-second resolution and marks when a call completed: the analysis
//! never claims an order between writes of the same second.

pub mod analyze;
pub mod collect;
pub mod extract;
pub mod html;
pub mod read;
pub mod record;
pub mod render;
pub mod report;
#[cfg(feature = "s3")]
pub mod s3;
pub mod time;

pub use analyze::Knobs;
pub use collect::Filter;
pub use read::Input;
pub use report::{Report, SCHEMA};

/// Why an analysis could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailError {
    /// An input argument is wrong: a path that does not exist, an `s3://` URL with no
    /// bucket.
    #[error("input {input}: {rule}")]
    BadInput {
        /// The input as given.
        input: String,
        /// What is wrong.
        rule: String,
    },
    /// An `s3://` input, and this build has no S3 support (the `s3` cargo feature).
    #[error("input {input}: s3:// inputs need writelane built with the s3 feature")]
    S3NotBuilt {
        /// The input as given.
        input: String,
    },
    /// Writing the report failed (a closed pipe, a full disk).
    #[error("writing the report: {reason}")]
    Output {
        /// What the system said.
        reason: String,
    },
    /// Listing an S3 prefix failed (no credentials, no such bucket, unreachable).
    #[error("input {input}: {reason}")]
    S3 {
        /// The input as given.
        input: String,
        /// What the SDK said.
        reason: String,
    },
}

/// How to analyse.
#[derive(Debug, Clone)]
pub struct Options {
    /// Incident window, replay rule, buckets.
    pub knobs: Knobs,
    /// Filters and extra sources.
    pub filter: Filter,
    /// Threads reading files (default: the machine's cores).
    pub threads: usize,
    /// Show a progress bar on stderr when it is a terminal.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            knobs: Knobs::default(),
            filter: Filter::default(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            progress: false,
        }
    }
}

/// Read `inputs` and analyse them. Bad files and records are skipped and listed in
/// [`report::Reading::problems`]; only wrong inputs fail the whole run.
pub fn analyze(inputs: &[Input], options: &Options) -> Result<Report, TrailError> {
    let (merged, settings, reading) = read_and_merge(inputs, options)?;
    Ok(analyze::report(&merged, &options.knobs, settings, reading))
}

/// [`analyze`], writing the report as compact JSON to `out` with every entity's timeline
/// (whatever `options.knobs.timeline` says), made entry by entry as it is written: the
/// timelines, which grow with the trail's writes, are never all in memory. Returns the
/// report without its timelines.
pub fn analyze_to_json(
    inputs: &[Input],
    options: &Options,
    out: &mut dyn std::io::Write,
) -> Result<Report, TrailError> {
    let (merged, settings, reading) = read_and_merge(inputs, options)?;
    let (report, marks) = analyze::report_with_marks(&merged, &options.knobs, settings, reading);
    analyze::write_json_streaming(&merged, &report, &marks, out).map_err(|e| {
        TrailError::Output {
            reason: e.to_string(),
        }
    })?;
    Ok(report)
}

fn read_and_merge(
    inputs: &[Input],
    options: &Options,
) -> Result<(analyze::Merged, report::Settings, report::Reading), TrailError> {
    let mut problems = Vec::new();
    let mut units = read::expand_paths(inputs, &mut problems)?;
    #[cfg(feature = "s3")]
    let client = {
        let has_s3 = inputs.iter().any(|i| matches!(i, Input::S3 { .. }));
        if has_s3 {
            let mut client = s3::S3Reader::new().map_err(|reason| TrailError::S3 {
                input: "s3://".into(),
                reason,
            })?;
            for input in inputs {
                if let Input::S3 {
                    bucket,
                    prefix,
                    region,
                    endpoint,
                } = input
                {
                    units.extend(client.list(
                        bucket,
                        prefix,
                        region.as_deref(),
                        endpoint.as_deref(),
                    )?);
                }
            }
            Some(client)
        } else {
            None
        }
    };
    #[cfg(not(feature = "s3"))]
    if let Some(Input::S3 { bucket, prefix, .. }) =
        inputs.iter().find(|i| matches!(i, Input::S3 { .. }))
    {
        return Err(TrailError::S3NotBuilt {
            input: format!("s3://{bucket}/{prefix}"),
        });
    }
    units.dedup();
    #[cfg(feature = "s3")]
    let fetch: Option<&dyn read::Fetch> = client.as_ref().map(|c| c as &dyn read::Fetch);
    #[cfg(not(feature = "s3"))]
    let fetch: Option<&dyn read::Fetch> = None;
    let outcome = read::read_all(
        &units,
        &options.filter,
        options.threads,
        options.progress,
        fetch,
    );
    let mut all_problems = problems;
    all_problems.extend(outcome.problems);
    let merged = analyze::merge(outcome.collectors);
    let f = &options.filter;
    let k = &options.knobs;
    let mut sources = vec![extract::IAM_SOURCE.to_string()];
    sources.extend(f.extra_sources.iter().cloned());
    let settings = report::Settings {
        window_ms: k.window_ms,
        replay_calls: k.replay_calls,
        replay_span_ms: k.replay_span_ms,
        bucket_ms: k.bucket_ms,
        since: f.since.map(time::format),
        until: f.until.map(time::format),
        entities: f.entities.clone(),
        accounts: f.accounts.clone(),
        writers: f.writers.clone(),
        sources,
    };
    let reading = report::Reading {
        inputs: inputs
            .iter()
            .map(|i| match i {
                Input::Path(p) => p.display().to_string(),
                Input::Stdin => "-".to_string(),
                Input::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            })
            .collect(),
        files_read: outcome.files_read,
        files_skipped: outcome.files_skipped,
        bytes: outcome.bytes,
        records: merged.counts.records,
        records_skipped: merged.counts.records_skipped,
        problems: all_problems,
    };
    Ok((merged, settings, reading))
}
