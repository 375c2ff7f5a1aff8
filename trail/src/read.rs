//! Finding the input files and reading them, file-parallel across cores.
//!
//! Each thread takes the next file, reads it whole into a buffer it reuses (decompressing
//! gzip with `flate2` on zlib-rs), and streams its records into the thread's collector. One
//! file's bytes per thread are in memory at a time; CloudTrail delivers files of a few MB.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use flate2::bufread::MultiGzDecoder;

use crate::collect::{Collector, FileScan, Filter};
use crate::record::read_records;
use crate::report::Problem;
use crate::TrailError;

/// One input as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file or a directory (read recursively).
    Path(PathBuf),
    /// `-`: standard input.
    Stdin,
    /// `s3://BUCKET/PREFIX[?region=R&endpoint=URL]`: every object under the prefix.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (may be empty).
        prefix: String,
        /// The region, overriding the standard region chain.
        region: Option<String>,
        /// The service URL (a local S3 such as moto; path-style addressing then).
        endpoint: Option<String>,
    },
}

impl Input {
    /// Read an input argument: `-`, `s3://BUCKET[/PREFIX]`, or a path.
    pub fn parse(text: &str) -> Result<Input, TrailError> {
        if text == "-" {
            return Ok(Input::Stdin);
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (mut region, mut endpoint) = (None, None);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("region", v)) if !v.is_empty() => region = Some(v.to_string()),
                    Some(("endpoint", v)) if !v.is_empty() => endpoint = Some(v.to_string()),
                    _ => {
                        return Err(TrailError::BadInput {
                            input: text.to_string(),
                            rule: format!(
                                "unknown or empty parameter {pair:?}: s3://BUCKET/PREFIX?region=R&endpoint=URL"
                            ),
                        })
                    }
                }
            }
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(TrailError::BadInput {
                    input: text.to_string(),
                    rule: "an s3:// input needs a bucket: s3://BUCKET/PREFIX".into(),
                });
            }
            return Ok(Input::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                region,
                endpoint,
            });
        }
        Ok(Input::Path(PathBuf::from(text)))
    }
}

/// One thing to read: a file, stdin, or an S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// A local file.
    File(PathBuf),
    /// Standard input.
    Stdin,
    /// An S3 object.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Which client of the [`Fetch`] reads it (one per `s3://` input).
        client: usize,
    },
}

impl Unit {
    /// The name problems are reported under.
    pub fn name(&self) -> String {
        match self {
            Unit::File(p) => p.display().to_string(),
            Unit::Stdin => "-".to_string(),
            Unit::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}

/// Directories CloudTrail fills with digest files (hash chains, not records).
const DIGEST_DIR: &str = "CloudTrail-Digest";

/// The files of the local inputs, directories walked recursively in name order (digest
/// directories skipped). A path that does not exist is an error (the arguments are
/// wrong); an unreadable directory inside a walk is a problem, and the walk goes on.
pub fn expand_paths(
    inputs: &[Input],
    problems: &mut Vec<Problem>,
) -> Result<Vec<Unit>, TrailError> {
    let mut units = Vec::new();
    for input in inputs {
        match input {
            Input::Stdin => units.push(Unit::Stdin),
            Input::S3 { .. } => {}
            Input::Path(path) => {
                let meta = std::fs::metadata(path).map_err(|e| TrailError::BadInput {
                    input: path.display().to_string(),
                    rule: format!("cannot be read: {e}"),
                })?;
                if meta.is_dir() {
                    walk(path, &mut units, problems);
                } else {
                    units.push(Unit::File(path.clone()));
                }
            }
        }
    }
    Ok(units)
}

fn walk(dir: &Path, units: &mut Vec<Unit>, problems: &mut Vec<Problem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem {
                file: dir.display().to_string(),
                reason: format!("directory not readable: {e}"),
                whole_file: true,
                records: 0,
            });
            return;
        }
    };
    let mut paths: Vec<(PathBuf, bool)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false)
                || (e.file_type().map(|t| t.is_symlink()).unwrap_or(false) && e.path().is_dir());
            (e.path(), is_dir)
        })
        .collect();
    paths.sort();
    for (path, is_dir) in paths {
        if is_dir {
            if path.file_name().and_then(|n| n.to_str()) != Some(DIGEST_DIR) {
                walk(&path, units, problems);
            }
        } else {
            units.push(Unit::File(path));
        }
    }
}

/// Where bytes of a unit come from other than the local file system.
pub trait Fetch: Sync {
    /// The whole object.
    fn fetch(&self, client: usize, bucket: &str, key: &str) -> Result<Vec<u8>, String>;
}

/// What reading all units gave.
pub struct ReadOutcome {
    /// One collector per thread.
    pub collectors: Vec<Collector>,
    /// Problems, per file.
    pub problems: Vec<Problem>,
    /// Units read to their end.
    pub files_read: u64,
    /// Units skipped whole.
    pub files_skipped: u64,
    /// Bytes of JSON read.
    pub bytes: u64,
}

/// The progress shown while reading: files, MB, records/s, on stderr when it is a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    bytes: AtomicU64,
    records: AtomicU64,
    started: Instant,
}

impl Progress {
    fn new(files: usize, show: bool) -> Progress {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(files as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            bytes: AtomicU64::new(0),
            records: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn file_done(&self, bytes: u64, records: u64) {
        let total_bytes = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let total_records = self.records.fetch_add(records, Ordering::Relaxed) + records;
        if let Some(bar) = &self.bar {
            let ms = self.started.elapsed().as_millis().max(1) as u64;
            bar.set_message(format!(
                "{} MB  {} records/s",
                total_bytes / 1_000_000,
                total_records * 1000 / ms
            ));
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Read every unit into collectors, on up to `threads` threads.
pub fn read_all(
    units: &[Unit],
    filter: &Filter,
    threads: usize,
    show_progress: bool,
    fetch: Option<&dyn Fetch>,
) -> ReadOutcome {
    let progress = Progress::new(units.len(), show_progress);
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    let files_read = AtomicU64::new(0);
    let files_skipped = AtomicU64::new(0);
    let threads = threads.clamp(1, units.len().max(1));
    let collectors: Vec<Collector> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut collector = Collector::default();
                    let mut raw = Vec::new();
                    let mut text = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(unit) = units.get(i) else { break };
                        let outcome =
                            read_unit(unit, filter, fetch, &mut collector, &mut raw, &mut text);
                        let mut found = Vec::new();
                        match outcome {
                            Ok((records, bad)) => {
                                files_read.fetch_add(1, Ordering::Relaxed);
                                for (reason, n) in bad {
                                    found.push(Problem {
                                        file: unit.name(),
                                        reason,
                                        whole_file: false,
                                        records: n,
                                    });
                                }
                                progress.file_done(text.len() as u64, records);
                            }
                            Err((reason, records)) => {
                                files_skipped.fetch_add(1, Ordering::Relaxed);
                                found.push(Problem {
                                    file: unit.name(),
                                    reason,
                                    whole_file: true,
                                    records,
                                });
                                progress.file_done(text.len() as u64, 0);
                            }
                        }
                        if !found.is_empty() {
                            if let Ok(mut p) = problems.lock() {
                                p.extend(found);
                            }
                        }
                        // A large file's buffer is not kept for the next, small ones.
                        if text.capacity() > 64 << 20 {
                            text = Vec::new();
                        }
                        if raw.capacity() > 64 << 20 {
                            raw = Vec::new();
                        }
                    }
                    collector
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    progress.finish();
    let mut problems = problems.into_inner().unwrap_or_default();
    problems.sort_by(|a, b| (&a.file, &a.reason).cmp(&(&b.file, &b.reason)));
    ReadOutcome {
        collectors,
        problems,
        files_read: files_read.into_inner(),
        files_skipped: files_skipped.into_inner(),
        bytes: progress.bytes.into_inner(),
    }
}

/// Read one unit. `Ok((records, bad record counts))`, or `Err((reason, records seen))`
/// when the unit is skipped whole.
#[allow(clippy::type_complexity)]
fn read_unit(
    unit: &Unit,
    filter: &Filter,
    fetch: Option<&dyn Fetch>,
    collector: &mut Collector,
    raw: &mut Vec<u8>,
    text: &mut Vec<u8>,
) -> Result<(u64, std::collections::BTreeMap<String, u64>), (String, u64)> {
    raw.clear();
    text.clear();
    match unit {
        Unit::File(path) => {
            let mut file =
                std::fs::File::open(path).map_err(|e| (format!("not readable: {e}"), 0))?;
            file.read_to_end(raw)
                .map_err(|e| (format!("not readable: {e}"), 0))?;
        }
        Unit::Stdin => {
            std::io::stdin()
                .lock()
                .read_to_end(raw)
                .map_err(|e| (format!("stdin not readable: {e}"), 0))?;
        }
        Unit::S3 {
            bucket,
            key,
            client,
        } => {
            let fetch = fetch.ok_or_else(|| ("S3 object, and no S3 client".to_string(), 0))?;
            *raw = fetch
                .fetch(*client, bucket, key)
                .map_err(|e| (format!("unreadable S3 object: {e}"), 0))?;
        }
    }
    let bytes: &[u8] = if raw.starts_with(&[0x1f, 0x8b]) {
        // The buffered decoder reads the compressed bytes in place (no copy into a
        // reader's buffer first).
        MultiGzDecoder::new(&raw[..])
            .read_to_end(text)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    ("truncated gzip".to_string(), 0)
                } else {
                    (format!("bad gzip: {e}"), 0)
                }
            })?;
        text
    } else {
        std::mem::swap(raw, text);
        text
    };
    let mut scan = FileScan::new(collector, filter);
    match read_records(bytes, &mut scan) {
        Ok(()) => {
            let records = scan.records();
            Ok((records, scan.commit()))
        }
        Err(e) => {
            let reason = match e.classify() {
                serde_json::error::Category::Syntax => format!("not JSON: {e}"),
                serde_json::error::Category::Eof => format!("JSON ends early: {e}"),
                serde_json::error::Category::Data => format!("not CloudTrail records: {e}"),
                serde_json::error::Category::Io => format!("not readable: {e}"),
            };
            Err((reason, scan.records()))
        }
    }
}
