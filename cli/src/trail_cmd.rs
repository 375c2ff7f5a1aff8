//! `writelane trail`: who collides with whom on IAM entities, from CloudTrail.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use writelane_cli::args::parse_duration;
use writelane_cli::exit::Failure;
use writelane_trail::{analyze, Filter, Input, Knobs, Options, TrailError};

/// sysexits `EX_NOINPUT`: inputs were given, and not one file of them could be read.
const EX_NOINPUT: u8 = 66;

/// Arguments of `writelane trail`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Inputs, mixed freely: CloudTrail log files (gzipped or plain), directories (read
recursively, as exported: AWSLogs/[ORG/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/),
`aws cloudtrail lookup-events` output, EventBridge events, JSON Lines, `-` for stdin, and
s3://BUCKET/PREFIX when built with the s3 feature.

eventTime has one-second resolution and marks when a call completed: writes in the same
second have no known order, and the report never claims one.

Exit codes: 0 when anything could be read (bad files and records are skipped and listed);
64 for wrong arguments (a path that does not exist); 66 when no input file could be read;
78 for an s3:// input in a build without the s3 feature; 69 when an S3 prefix cannot be
listed.")]
pub struct TrailArgs {
    /// Files, directories, `-` (stdin) or s3://BUCKET/PREFIX.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Print the report as JSON (schema writelane-trail/1, see trail/SCHEMA.md).
    #[arg(long)]
    pub json: bool,
    /// Writes to one entity by two or more writers within this span are an incident.
    #[arg(long, default_value = "10s", value_parser = parse_span, value_name = "DURATION")]
    pub window: Duration,
    /// This many identical calls (same writer, action, entity, parameters) within
    /// --replay-span of a conflicted one are an immediate replay.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub replay_calls: u32,
    /// The span of an immediate replay.
    #[arg(long, default_value = "2s", value_parser = parse_span, value_name = "DURATION")]
    pub replay_span: Duration,
    /// Conflict rate and incidents per bucket of this size (1h, 1d, ...), per entity and
    /// overall, to compare deployment cycles before and after a fix.
    #[arg(long, value_parser = parse_span, value_name = "DURATION")]
    pub bucket: Option<Duration>,
    /// Leave out records before this time (2026-11-30T12:00:00Z, or a date: 2026-11-30).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub since: Option<i64>,
    /// Leave out records at or after this time.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub until: Option<i64>,
    /// Keep only entities matching (`*` wildcard; on the id ACCOUNT:TYPE/NAME or the name).
    /// Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub entity: Vec<String>,
    /// Keep only entities of this account. Repeatable.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Vec<String>,
    /// Keep only writes by writers matching (`*` wildcard; on the ARN or the short name).
    /// Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub writer: Vec<String>,
    /// Analyse another service too (its eventSource, e.g. s3.amazonaws.com); its entity is
    /// taken from the record's resources[]. Repeatable.
    #[arg(long, value_name = "EVENT_SOURCE")]
    pub source: Vec<String>,
    /// Entities shown in detail in the terminal report (0: all).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Threads reading files (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    /// Also write the report as one self-contained HTML page (timelines per entity, a
    /// swimlane per writer, details on hover; no network needed to view it).
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
}

/// A duration as elsewhere in writelane (`250ms`, `30s`, `5m`, `2h`), plus whole days
/// (`1d`, `7d`, `1d12h`) for buckets.
fn parse_span(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && t[digits..].starts_with('d') {
        let days: u64 = t[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: too many days"))?;
        let rest = &t[digits + 1..];
        let more = if rest.is_empty() {
            Duration::ZERO
        } else {
            parse_duration(rest)?
        };
        return days
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .and_then(|d| d.checked_add(more))
            .ok_or_else(|| format!("{text:?}: too long"));
    }
    parse_duration(t)
}

fn parse_time(text: &str) -> Result<i64, String> {
    writelane_trail::time::parse(text.trim()).ok_or_else(|| {
        format!("{text:?} is not a time: write 2026-11-30T12:00:00Z or a date such as 2026-11-30")
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Build the analysis options from the arguments.
pub fn options(args: &TrailArgs) -> Result<Options, Failure> {
    if let (Some(s), Some(u)) = (args.since, args.until) {
        if s >= u {
            return Err(Failure::usage("--since must be before --until"));
        }
    }
    if args.bucket.is_some_and(|b| b.as_millis() == 0) {
        return Err(Failure::usage("--bucket must be longer than zero"));
    }
    let mut options = Options {
        knobs: Knobs {
            window_ms: millis(args.window),
            replay_calls: args.replay_calls,
            replay_span_ms: millis(args.replay_span),
            bucket_ms: args.bucket.map(millis),
            // Only the JSON (and the HTML page) show every write; the terminal report
            // needs no timeline, so its memory does not grow with the trail's writes.
            timeline: args.json || args.html.is_some(),
        },
        filter: Filter {
            since: args.since,
            until: args.until,
            entities: args.entity.clone(),
            accounts: args.account.clone(),
            writers: args.writer.clone(),
            extra_sources: args.source.clone(),
        },
        progress: true,
        ..Options::default()
    };
    if let Some(n) = args.threads {
        options.threads = n as usize;
    }
    Ok(options)
}

/// Run `writelane trail`: read, analyse, print the terminal report or the JSON.
pub fn run(args: TrailArgs) -> Result<ExitCode, Failure> {
    let options = options(&args)?;
    let inputs = args
        .inputs
        .iter()
        .map(|i| Input::parse(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(failure)?;
    // Buffered: stdout is line-buffered, and a large report has millions of lines.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let write_failed = |e: std::io::Error| Failure::software(format!("writing the report: {e}"));
    let report = if args.json && args.html.is_none() {
        // Streamed: every write's timeline entry is made as it is written, so memory does
        // not grow with the trail's writes.
        let report =
            writelane_trail::analyze_to_json(&inputs, &options, &mut out).map_err(failure)?;
        writeln!(out)
            .and_then(|()| out.flush())
            .map_err(write_failed)?;
        report
    } else {
        let report = analyze(&inputs, &options).map_err(failure)?;
        if args.json {
            serde_json::to_writer(&mut out, &report)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            write!(out, "{}", writelane_trail::render::text(&report, args.top))
        }
        .and_then(|()| out.flush())
        .map_err(write_failed)?;
        report
    };
    if let Some(path) = &args.html {
        std::fs::write(path, writelane_trail::html::render(&report))
            .map_err(|e| Failure::usage(format!("--html: cannot write {}: {e}", path.display())))?;
    }
    if report.reading.files_read == 0 {
        return Err(Failure::new(
            EX_NOINPUT,
            format!(
                "no input could be read ({} skipped; see the list above)",
                report.reading.files_skipped
            ),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn failure(e: TrailError) -> Failure {
    match e {
        TrailError::BadInput { .. } => Failure::usage(e.to_string()),
        TrailError::S3NotBuilt { .. } => {
            Failure::new(writelane_cli::exit::EX_CONFIG, e.to_string())
        }
        TrailError::S3 { .. } => Failure::unavailable(e.to_string()),
        TrailError::Output { .. } => Failure::software(e.to_string()),
    }
}
