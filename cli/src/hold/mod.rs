//! `writelane hold ENTITY... -- COMMAND`: run a command while holding the leases of
//! entities, so commands (`terraform apply`, `aws iam ...`) and programs using a `Lane` on
//! the same store write one at a time.
//!
//! The leases are the `writelane` crate's [`LeaseHolder`]: the core's lease protocol,
//! entities acquired in sorted order, renewed until the command exits. This module is the
//! process side: arguments, progress lines, the child in its own process group, signals,
//! and exit codes.
//!
//! No process of the command outlives hold: when hold exits it has stopped the command,
//! and when hold is killed (`kill -9`, OOM) a reaper process, hold's own binary run with
//! the hidden flag `--internal-reaper` (not shown in `--help`), sends SIGKILL to the
//! command's whole process group, grandchildren included. See [`reaper`].

mod child;
mod holder;
mod reaper;
mod store;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use writelane::{HoldError, HoldOptions, Holding, LeaseHolder, LeaseStatus};
use writelane_cli::args::{load_policy, parse_duration, parse_entity};
use writelane_cli::exit::{Failure, EX_LEASE_LOST, EX_TEMPFAIL, EX_UNAVAILABLE};

/// How often a progress line is printed while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The text after `writelane hold --help`'s options: the child's environment, then the
/// exit codes.
const AFTER_HELP: &str = "\
The command runs in a process group of its own, with these variables added:
  WRITELANE_ENTITIES   the entities held, sorted, one per line
  WRITELANE_ENTITY_<n> the n-th entity (n from 1)
  WRITELANE_FENCE_<n>  the epoch (fence) of our lease on it: it grows with every holder
  WRITELANE_HOLDER     the holder text stored in the lease records
SIGINT, SIGTERM and SIGHUP sent to hold are forwarded to the command's group. Run from a
terminal, the command's group gets the terminal while it runs (it can prompt; Ctrl-C
reaches it). If hold dies (kill -9, OOM), the command's whole group, grandchildren
included, gets SIGKILL from a small reaper process hold starts with it. If a lease is lost
while the command runs, its group gets SIGTERM, then SIGKILL after --grace, and hold
exits 76.

hold exits with the command's exit code, or 128+n when signal n ended it; 126 when the
command cannot be run, 127 when it is not found.

Exit codes of hold itself (sysexits):
  64  usage: bad option or value, no command after --, an empty entity, unknown store
      scheme, no store given, policy error (its field path is named)
  69  the lease store did not answer; nothing was run
  70  internal error (a bug: please report it)
  75  not all leases were acquired within --wait (or one was taken over while
      waiting for the next); nothing was run
  76  a lease was lost while the command ran (refused renewal, a force-release, or
      the store unreachable past the lease); the command was stopped
  78  the store is not set up, or its cargo feature is not built in";

/// The arguments of `writelane hold`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct HoldArgs {
    /// The lease store: file:///PATH, redis://HOST:PORT/DB,
    /// dynamodb://TABLE?region=R&endpoint=URL or s3://BUCKET/PREFIX?region=R&endpoint=URL.
    /// Default: $WRITELANE_STORE.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Who holds the leases, in words, shown to whoever waits for them. Default: user@host,
    /// the CI run (GITHUB_RUN_ID, CI_JOB_ID, BUILDKITE_BUILD_ID, CODEBUILD_BUILD_ID, ...)
    /// and the command.
    #[arg(long, value_name = "TEXT")]
    holder: Option<String>,
    /// Give up, exit 75, if the leases are not all held within this long (30s, 5m).
    /// Default: wait as long as it takes.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    wait: Option<Duration>,
    /// After a lost lease: how long the command has between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    grace: Duration,
    /// The policy whose `lease` section times the leases: JSON text, or a file holding it.
    /// Default: the iam preset (a 10 s lease renewed every 3 s).
    #[arg(long, value_name = "JSON|FILE")]
    policy: Option<String>,
    /// The entities to hold (lease keys, such as role ARNs), acquired in sorted order.
    #[arg(
        value_name = "ENTITY",
        required_unless_present = "internal_reaper",
        value_parser = parse_entity
    )]
    entities: Vec<String>,
    /// The command to run while holding them, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// Run as the reaper of another hold's command, reading its pipe on stdin: started by
    /// hold itself, never by people, so hidden from `--help`.
    #[arg(long = reaper::FLAG, hide = true, exclusive = true)]
    internal_reaper: bool,
}

/// Run `writelane hold`.
pub fn run(args: HoldArgs) -> Result<ExitCode, Failure> {
    if args.internal_reaper {
        return Ok(reaper::serve());
    }
    if args.command.is_empty() {
        return Err(Failure::usage(
            "no command after --: write the command to run last, as in \
             `writelane hold role/deploy -- terraform apply`",
        ));
    }
    let policy = load_policy(args.policy.as_deref())?;
    let url = writelane_cli::store::store_url(args.store)?;
    let holder_text = match args.holder {
        Some(text) if text.len() > writelane::MAX_HOLDER_LEN => {
            return Err(Failure::usage(format!(
                "--holder is {} bytes; the limit is {}",
                text.len(),
                writelane::MAX_HOLDER_LEN
            )))
        }
        Some(text) => text,
        None => holder::default_holder(&args.command, |k| std::env::var(k).ok()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::software(format!("cannot start the async runtime: {e}")))?;
    let job = Job {
        command: args.command,
        holder: holder_text,
        wait: args.wait,
        grace: args.grace,
    };
    runtime.block_on(async move {
        let opened = writelane_cli::store::open(&url, policy.lease.store_timeout_ms).await?;
        let options = HoldOptions {
            holder: Some(job.holder.clone()),
            ..HoldOptions::default()
        };
        let leases = LeaseHolder::new(opened.store.clone(), &policy, options)
            .map_err(|e| Failure::usage(e.to_string()))?;
        let holding = leases
            .holding(&args.entities)
            .map_err(|e| Failure::usage(e.to_string()))?;
        if let Some(first) = holding.entities().first() {
            store::preflight(&opened, first).await?;
        }
        job.run(holding).await
    })
}

struct Job {
    command: Vec<String>,
    holder: String,
    wait: Option<Duration>,
    grace: Duration,
}

/// How waiting for the leases ended.
enum Acquired {
    Done(Result<(), HoldError>),
    TimedOut,
    Signalled(libc::c_int),
}

impl Job {
    async fn run(self, mut holding: Holding) -> Result<ExitCode, Failure> {
        let mut signals =
            Signals::new().map_err(|e| Failure::software(format!("cannot catch signals: {e}")))?;
        let mut progress = Progress::new();
        let acquired = {
            let wait = self.wait;
            let deadline = async move {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = holding.acquire(|e, s| progress.waiting(e, s)) => Acquired::Done(result),
                () = deadline => Acquired::TimedOut,
                sig = signals.recv() => Acquired::Signalled(sig),
            }
        };
        if let Some(failure) = self.not_acquired(acquired, &progress) {
            // Whatever was acquired is released before exiting; the failure stands.
            let _ = holding.release().await;
            return Err(failure);
        }
        let fences = holding.fences();
        if progress.printed {
            let held: Vec<String> = fences
                .iter()
                .map(|(e, epoch)| format!("{e} (epoch {epoch})"))
                .collect();
            eprintln!(
                "writelane hold: holding {} after {}",
                held.join(", "),
                format_ms(progress.started.elapsed().as_millis() as u64)
            );
        }
        let mut env = vec![
            (
                "WRITELANE_ENTITIES".to_string(),
                fences
                    .iter()
                    .map(|(e, _)| e.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            ("WRITELANE_HOLDER".to_string(), self.holder.clone()),
        ];
        for (n, (entity, epoch)) in fences.iter().enumerate() {
            env.push((format!("WRITELANE_ENTITY_{}", n + 1), entity.clone()));
            env.push((format!("WRITELANE_FENCE_{}", n + 1), epoch.to_string()));
        }
        let reaper = match reaper::start() {
            Ok(reaper) => reaper,
            Err(e) => {
                let _ = holding.release().await;
                return Err(Failure::software(format!(
                    "cannot start the process that stops the command if hold dies: {e}; \
                     nothing was run"
                )));
            }
        };
        let mut child = match child::spawn(&self.command, &env, reaper.announce_fd()) {
            Ok(child) => child,
            Err(e) => {
                reaper.finish().await;
                let _ = holding.release().await;
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                return Err(Failure::new(
                    code,
                    format!("cannot run {:?}: {e}", self.command[0]),
                ));
            }
        };
        let ended = loop {
            tokio::select! {
                status = child.wait() => break Ok(status),
                lost = holding.lost() => break Err(lost),
                sig = signals.recv() => child.signal_group(sig),
            }
        };
        if ended.is_ok() {
            child.take_terminal();
        }
        let result = match ended {
            Ok(Ok(status)) => {
                // Anything the command left running in its group would outlive the lease.
                child.signal_group(libc::SIGTERM);
                let code = child::exit_code(status);
                match holding.release().await {
                    Ok(()) => Ok(ExitCode::from(code)),
                    Err(e) => Err(Failure::new(
                        EX_LEASE_LOST,
                        format!(
                            "{} before the release (the command exited {code}): it may have \
                             overlapped another holder",
                            lost_text(&e)
                        ),
                    )),
                }
            }
            Ok(Err(e)) => {
                child.signal_group(libc::SIGKILL);
                let _ = holding.release().await;
                Err(Failure::software(format!(
                    "cannot wait for the command: {e}"
                )))
            }
            Err(lost) => {
                eprintln!(
                    "writelane hold: {} while the command ran; stopping it (SIGTERM, then \
                     SIGKILL after {})",
                    lost_text(&lost),
                    format_ms(self.grace.as_millis() as u64)
                );
                let (status, killed) = child.stop(self.grace).await;
                child.take_terminal();
                let _ = holding.release().await;
                let how = match (status, killed) {
                    (_, true) => "it was killed after the grace period".to_string(),
                    (Ok(s), false) => format!("it exited {}", child::exit_code(s)),
                    (Err(e), false) => format!("waiting for it failed: {e}"),
                };
                Err(Failure::new(
                    EX_LEASE_LOST,
                    format!("{}; the command was stopped: {how}", lost_text(&lost)),
                ))
            }
        };
        // Only now, with the command's group dealt with and the leases released: were hold
        // killed before this point, the reaper would kill the group.
        reaper.finish().await;
        result
    }

    /// The failure that ends a hold whose leases were not all acquired, if any.
    fn not_acquired(&self, acquired: Acquired, progress: &Progress) -> Option<Failure> {
        match acquired {
            Acquired::Done(Ok(())) => None,
            Acquired::Done(Err(HoldError::Unavailable { entity })) => Some(Failure::new(
                EX_UNAVAILABLE,
                format!(
                    "the lease store did not answer for {entity} (lease.unavailable_ms); \
                     nothing was run"
                ),
            )),
            Acquired::Done(Err(HoldError::Lost { entity })) => Some(Failure::new(
                EX_TEMPFAIL,
                format!(
                    "the lease of {entity} was taken over while waiting for the others; \
                     nothing was run"
                ),
            )),
            Acquired::Done(Err(e @ HoldError::Usage(_))) => Some(Failure::usage(e.to_string())),
            Acquired::TimedOut => {
                let wait = format_ms(self.wait.unwrap_or_default().as_millis() as u64);
                let held_by_someone = matches!(
                    &progress.last,
                    Some((
                        _,
                        LeaseStatus::Waiting {
                            current: Some(_),
                            ..
                        }
                    ))
                );
                Some(match &progress.last {
                    Some((entity, status)) if held_by_someone => Failure::new(
                        EX_TEMPFAIL,
                        format!(
                            "not all leases were held within --wait {wait}: {}; nothing was run",
                            describe(entity, status)
                        ),
                    ),
                    // The last read got no answer (or none was ever reported).
                    _ => Failure::new(
                        EX_UNAVAILABLE,
                        format!(
                            "the lease store did not answer within --wait {wait}; nothing was run"
                        ),
                    ),
                })
            }
            Acquired::Signalled(sig) => Some(Failure::new(
                (128 + sig).clamp(0, 255) as u8,
                format!(
                    "interrupted by signal {sig} while waiting for the leases; nothing was run"
                ),
            )),
        }
    }
}

fn lost_text(e: &HoldError) -> String {
    match e {
        HoldError::Lost { entity } | HoldError::Unavailable { entity } => format!(
            "the lease of {entity} was lost (taken over, force-released, or the store \
             unreachable past the lease)"
        ),
        HoldError::Usage(u) => u.to_string(),
    }
}

/// Progress lines while waiting: the first report at once, then one every
/// [`PROGRESS_EVERY`].
struct Progress {
    started: Instant,
    last_print: Option<Instant>,
    last: Option<(String, LeaseStatus)>,
    printed: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            started: Instant::now(),
            last_print: None,
            last: None,
            printed: false,
        }
    }

    fn waiting(&mut self, entity: &str, status: &LeaseStatus) {
        let due = match self.last_print {
            None => true,
            Some(t) => t.elapsed() >= PROGRESS_EVERY,
        };
        if due {
            eprintln!("writelane hold: {}", describe(entity, status));
            self.last_print = Some(Instant::now());
            self.printed = true;
        }
        self.last = Some((entity.to_string(), status.clone()));
    }
}

/// `waiting for ENTITY: held by HOLDER for 12s on our clock (epoch 3)`.
fn describe(entity: &str, status: &LeaseStatus) -> String {
    match status {
        LeaseStatus::Waiting {
            current: Some(record),
            held_for_ms,
        } => {
            let who = record.holder.as_deref().unwrap_or(record.owner.as_str());
            format!(
                "waiting for {entity}: held by {who:?} for {} on our clock (epoch {})",
                format_ms(*held_for_ms),
                record.epoch
            )
        }
        _ => format!("waiting for {entity}: the lease store does not answer"),
    }
}

/// `350ms`, `12s`, `4m05s`.
fn format_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=119_999 => format!("{}s", ms / 1000),
        _ => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
    }
}

/// The signals hold forwards to its command: SIGINT, SIGTERM, SIGHUP.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal received. Cancel-safe.
    async fn recv(&mut self) -> libc::c_int {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(format_ms(250), "250ms");
        assert_eq!(format_ms(12_400), "12s");
        assert_eq!(format_ms(245_000), "4m05s");
    }
}
