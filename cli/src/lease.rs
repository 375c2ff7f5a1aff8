//! `writelane lease`: look at and administer the lease records in a store: `show`,
//! `list`, `release [--force]` and `init`.
//!
//! `--json` prints one JSON object per run, whose shape is versioned by its `"version"`
//! field (1; a field is only ever added within a version):
//!
//! - a lease (`show`, and each item of `list`'s `"leases"`):
//!   `{"entity", "state": "free"|"held"|"invalid", "owner", "holder", "epoch", "rvn",
//!   "lease_ms", "committed_token", "age_ms", "error"}`: `owner` is `null` when free,
//!   `holder` is the holder's words (or `null`), `age_ms` is how long ago the store last
//!   wrote the record when it keeps that (S3), else `null`; `"invalid"` is a record the
//!   core refuses, with `error` naming the field and the other fields `null`. An entity
//!   with no record at all is `"free"` with every field but `entity` `null`.
//! - `show`: `{"version": 1, "store", "lease": LEASE}`.
//! - `list`: `{"version": 1, "store", "prefix", "leases": [LEASE...]}` sorted by entity.
//! - `release`: `{"version": 1, "store", "entity", "result", "evicted", "record"}` with
//!   `result` one of `released` (`evicted` the record of the holder evicted, `record` the
//!   free record written), `already_free`, `no_record`, `changed` (the record changed under
//!   us; nothing written), and `refused_live` (no `--force` and the holder renewed).
//! - `init`: `{"version": 1, "store", "created", "detail"}`.
//!
//! Records are compared against the core's rules only: liveness is judged as the lease
//! protocol judges it, by watching the record for one lease on our clock.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use writelane::store::{Entry, OpenedStore};
use writelane::{ForceReleaseResult, LeaseRecord, StoreOp, StoreReply};

use crate::args::{load_policy, parse_entity};
use crate::exit::{self, Failure, EX_TEMPFAIL, EX_UNAVAILABLE};
use crate::store::{admin_failure, open, store_url};

/// How many times a release swaps against a holding that keeps renewing under it.
const FORCE_TRIES: u32 = 5;

/// The `--json` shape's version.
pub const JSON_VERSION: u64 = 1;

/// The `--json` output, as `writelane lease --help` describes it.
const JSON_HELP: &str = "\
JSON output (--json): one object per run, versioned by its \"version\" field (1; fields are
only ever added within a version).
  LEASE   {\"entity\", \"state\": \"free\"|\"held\"|\"invalid\", \"owner\", \"holder\", \"epoch\",
           \"rvn\", \"lease_ms\", \"committed_token\", \"age_ms\", \"error\"}
          owner is null when free; age_ms is how long ago the store last wrote the record
          where it keeps that (S3), else null; \"invalid\" is a record writelane cannot
          read, named in \"error\". No record at all: \"free\", the other fields null.
  show    {\"version\", \"store\", \"lease\": LEASE}
  list    {\"version\", \"store\", \"prefix\", \"leases\": [LEASE...]} sorted by entity
  release {\"version\", \"store\", \"entity\", \"result\", \"evicted\", \"record\"}: result is
          released (evicted: the holder's record; record: the free record written),
          already_free, no_record, changed (nothing written) or refused_live (exit 75)
  init    {\"version\", \"store\", \"created\", \"detail\"}";

/// `writelane lease`: the lease records in a store.
#[derive(Debug, clap::Args)]
#[command(
    after_help = exit::HELP,
    after_long_help = format!("{JSON_HELP}\n\n{}", exit::HELP)
)]
pub struct LeaseArgs {
    #[command(subcommand)]
    command: LeaseCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LeaseCommand {
    /// Show one entity's lease: free or held, holder, owner, epoch, rvn, lease, age.
    #[command(after_help = exit::HELP)]
    Show {
        /// The entity (the lease key), such as arn:aws:iam::123456789012:role/deploy.
        #[arg(value_parser = parse_entity)]
        entity: String,
        #[command(flatten)]
        common: Common,
    },
    /// List the leases whose entity starts with a prefix (all by default).
    #[command(after_help = exit::HELP)]
    List {
        /// Only entities starting with this text.
        #[arg(long, default_value = "")]
        prefix: String,
        #[command(flatten)]
        common: Common,
    },
    /// Free an entity's lease by compare-and-swap to a free record with epoch + 1.
    ///
    /// Without --force, a held lease is watched for one lease period: a holder that renews
    /// is alive and is not evicted (exit 75); one that does not has expired and is
    /// released. With --force the holder is evicted at once: a running `writelane hold`
    /// learns it at its next renewal and stops its command (exit 76).
    #[command(after_help = exit::HELP)]
    Release {
        /// The entity (the lease key).
        #[arg(value_parser = parse_entity)]
        entity: String,
        /// Evict a live holder.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Set a store up: create the DynamoDB table (on-demand) if missing and wait until it
    /// is active; check that an S3 bucket exists and takes conditional writes; PING Redis;
    /// create the file store's directory.
    #[command(after_help = exit::HELP)]
    Init {
        /// The store URL (else --store, else $WRITELANE_STORE).
        url: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

/// The options every `lease` subcommand takes.
#[derive(Debug, clap::Args)]
struct Common {
    /// The lease store: dynamodb://TABLE?region=R&endpoint=URL, s3://BUCKET/PREFIX,
    /// redis://HOST:PORT/DB or file:///PATH. Default: $WRITELANE_STORE.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// The policy (JSON text or a file) whose lease.store_timeout_ms bounds each store
    /// request. Default: the iam preset.
    #[arg(long, value_name = "JSON|FILE")]
    policy: Option<String>,
    /// Print one JSON object (see `writelane lease --help` for its shape).
    #[arg(long)]
    json: bool,
}

impl LeaseArgs {
    /// The subcommand's name for messages: `writelane lease show`.
    pub fn context(&self) -> &'static str {
        match self.command {
            LeaseCommand::Show { .. } => "writelane lease show",
            LeaseCommand::List { .. } => "writelane lease list",
            LeaseCommand::Release { .. } => "writelane lease release",
            LeaseCommand::Init { .. } => "writelane lease init",
        }
    }
}

/// Run a `writelane lease` subcommand.
pub fn run(args: LeaseArgs) -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::software(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        match args.command {
            LeaseCommand::Show { entity, common } => {
                let (store, _) = connect(common.store, common.policy.as_deref()).await?;
                show(&store, &entity, common.json).await
            }
            LeaseCommand::List { prefix, common } => {
                let (store, _) = connect(common.store, common.policy.as_deref()).await?;
                list(&store, &prefix, common.json).await
            }
            LeaseCommand::Release {
                entity,
                force,
                common,
            } => {
                let (store, timeout_ms) = connect(common.store, common.policy.as_deref()).await?;
                release(&store, &entity, force, common.json, timeout_ms).await
            }
            LeaseCommand::Init { url, common } => {
                let (store, _) = connect(url.or(common.store), common.policy.as_deref()).await?;
                init(&store, common.json).await
            }
        }
    })
}

/// The store and the bound on each of its requests.
async fn connect(url: Option<String>, policy: Option<&str>) -> Result<(OpenedStore, u64), Failure> {
    // The policy first: a bad --policy is reported before any store is touched.
    let policy = load_policy(policy)?;
    let url = store_url(url)?;
    let timeout_ms = policy.lease.store_timeout_ms;
    Ok((open(&url, timeout_ms).await?, timeout_ms))
}

/// A lease as `--json` shows it (see the module's doc).
fn lease_json(entity: &str, entry: Option<&Entry>) -> Value {
    let (record, error, age) = match entry {
        None => (None, None, None),
        Some(e) => match &e.record {
            Ok(r) => (Some(r), None, e.modified_ms_ago),
            Err(err) => (None, Some(err.to_string()), e.modified_ms_ago),
        },
    };
    let state = match (record, &error) {
        (_, Some(_)) => "invalid",
        (Some(r), None) if !r.owner.is_empty() => "held",
        _ => "free",
    };
    json!({
        "entity": entity,
        "state": state,
        "owner": record.map(|r| &r.owner).filter(|o| !o.is_empty()),
        "holder": record.and_then(|r| r.holder.as_ref()),
        "epoch": record.map(|r| r.epoch),
        "rvn": record.map(|r| r.rvn),
        "lease_ms": record.map(|r| r.lease_ms),
        "committed_token": record.and_then(|r| r.committed_token.as_ref()),
        "age_ms": age,
        "error": error,
    })
}

/// Milliseconds as people read them: `850ms`, `12.3s`, `4m05s`, `2h03m`.
fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// Who holds a record, in words: `holder text (owner OWNER, epoch N)`.
fn who(record: &LeaseRecord) -> String {
    match &record.holder {
        Some(h) => format!("{h:?} (owner {}, epoch {})", record.owner, record.epoch),
        None => format!("owner {} (epoch {})", record.owner, record.epoch),
    }
}

fn print_json(value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::software(format!("cannot encode the JSON output: {e}")))?;
    println!("{text}");
    Ok(())
}

async fn show(store: &OpenedStore, entity: &str, json: bool) -> Result<ExitCode, Failure> {
    let entry = store.admin.entry(entity).await.map_err(admin_failure)?;
    if json {
        print_json(&json!({
            "version": JSON_VERSION,
            "store": store.admin.describe(),
            "lease": lease_json(entity, entry.as_ref()),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("entity  {entity}");
    let Some(entry) = entry else {
        println!("state   free (no record)");
        return Ok(ExitCode::SUCCESS);
    };
    match &entry.record {
        Err(e) => println!("state   invalid: {e}"),
        Ok(r) => {
            if r.owner.is_empty() {
                println!("state   free");
            } else {
                println!("state   held");
                println!("holder  {}", r.holder.as_deref().unwrap_or("-"));
                println!("owner   {}", r.owner);
            }
            println!("epoch   {}", r.epoch);
            println!("rvn     {}", r.rvn);
            println!("lease   {}", human_ms(r.lease_ms));
            if let Some(t) = &r.committed_token {
                println!("token   {t}");
            }
        }
    }
    if let Some(age) = entry.modified_ms_ago {
        println!("age     {} since the store last wrote it", human_ms(age));
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(store: &OpenedStore, prefix: &str, json: bool) -> Result<ExitCode, Failure> {
    let entries = store.admin.list(prefix).await.map_err(admin_failure)?;
    if json {
        let leases: Vec<Value> = entries
            .iter()
            .map(|e| lease_json(&e.key, Some(e)))
            .collect();
        print_json(&json!({
            "version": JSON_VERSION,
            "store": store.admin.describe(),
            "prefix": prefix,
            "leases": leases,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        // To stderr: stdout stays a table (empty) for scripts.
        eprintln!(
            "writelane lease list: no records{} in {}",
            if prefix.is_empty() {
                String::new()
            } else {
                format!(" under {prefix:?}")
            },
            store.admin.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<7} {:>6} {:>16} {:>8} {:>8}  {:<40} HOLDER",
        "STATE", "EPOCH", "RVN", "LEASE", "AGE", "ENTITY"
    );
    for e in &entries {
        let age = e.modified_ms_ago.map_or_else(|| "-".to_string(), human_ms);
        match &e.record {
            Ok(r) => println!(
                "{:<7} {:>6} {:>16} {:>8} {:>8}  {:<40} {}",
                if r.owner.is_empty() { "free" } else { "held" },
                r.epoch,
                r.rvn,
                human_ms(r.lease_ms),
                age,
                e.key,
                if r.owner.is_empty() {
                    "-".to_string()
                } else {
                    r.holder.clone().unwrap_or_else(|| r.owner.clone())
                }
            ),
            Err(err) => println!(
                "{:<7} {:>6} {:>16} {:>8} {:>8}  {:<40} {err}",
                "invalid", "-", "-", "-", age, e.key
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What watching a held record for one lease showed.
enum Watched {
    /// The record did not change for a whole lease: its holder has expired.
    Expired(LeaseRecord),
    /// The holder renewed (or another took over): alive.
    Renewed(LeaseRecord),
    /// The record became free or went away meanwhile.
    Freed(Option<LeaseRecord>),
}

/// Watch the held `record` at `entity` for one lease on our clock, as a waiting lease
/// client does before it takes over.
async fn watch(
    store: &OpenedStore,
    entity: &str,
    record: LeaseRecord,
    timeout_ms: u64,
) -> Result<Watched, Failure> {
    let lease = Duration::from_millis(record.lease_ms);
    let step = Duration::from_millis((record.lease_ms / 10).clamp(10, 1_000));
    let started = Instant::now();
    loop {
        let elapsed = started.elapsed();
        if elapsed >= lease {
            return Ok(Watched::Expired(record));
        }
        tokio::time::sleep(step.min(lease - elapsed)).await;
        let get = StoreOp::Get {
            key: entity.to_string(),
        };
        match writelane::apply(store.store.as_ref(), get, timeout_ms).await {
            StoreReply::Found { record: now } => match now {
                Some(now) if now.rvn == record.rvn => continue,
                Some(now) if !now.owner.is_empty() => return Ok(Watched::Renewed(now)),
                other => return Ok(Watched::Freed(other)),
            },
            _ => {
                return Err(Failure::unavailable(format!(
                    "{} stopped answering while {entity:?} was watched: nothing was written; \
                     run the release again",
                    store.admin.describe()
                )))
            }
        }
    }
}

async fn release(
    store: &OpenedStore,
    entity: &str,
    force: bool,
    json: bool,
    timeout_ms: u64,
) -> Result<ExitCode, Failure> {
    let describe = store.admin.describe();
    let report = |result: &str, evicted: Option<&LeaseRecord>, record: Option<&LeaseRecord>| {
        json!({
            "version": JSON_VERSION,
            "store": describe,
            "entity": entity,
            "result": result,
            "evicted": evicted,
            "record": record,
        })
    };
    let entry = store.admin.entry(entity).await.map_err(admin_failure)?;
    let current = match entry.map(|e| e.record) {
        None => {
            if json {
                print_json(&report("no_record", None, None))?;
            } else {
                println!("{entity}: no record, nothing to release");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(Err(e)) => {
            return Err(Failure::new(
                exit::EX_DATAERR,
                format!(
                    "{describe} holds a record for {entity:?} that writelane cannot read ({e}): \
                     nothing was written; fix or remove it by hand"
                ),
            ))
        }
        Some(Ok(r)) if r.owner.is_empty() => {
            if json {
                print_json(&report("already_free", None, Some(&r)))?;
            } else {
                println!("{entity}: already free (epoch {})", r.epoch);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(Ok(r)) => r,
    };
    let (target, expired) = if force {
        (current, false)
    } else {
        if !json {
            eprintln!(
                "writelane lease release: {entity:?} is held by {}; watching it for one lease ({}) to see whether its holder renews",
                who(&current),
                human_ms(current.lease_ms)
            );
        }
        match watch(store, entity, current, timeout_ms).await? {
            Watched::Expired(r) => (r, true),
            Watched::Renewed(r) => {
                if json {
                    print_json(&report("refused_live", None, Some(&r)))?;
                }
                return Err(Failure::new(
                    EX_TEMPFAIL,
                    format!(
                        "{entity:?} is held by {}, which renewed its lease: it is alive, so it \
                         was not evicted; to evict it anyway run `writelane lease release {entity} --force`",
                        who(&r)
                    ),
                ));
            }
            Watched::Freed(r) => {
                if json {
                    let result = if r.is_some() {
                        "already_free"
                    } else {
                        "no_record"
                    };
                    print_json(&report(result, None, r.as_ref()))?;
                } else {
                    println!("{entity}: its holder released it meanwhile; nothing to do");
                }
                return Ok(ExitCode::SUCCESS);
            }
        }
    };
    let mut target = target;
    let mut tries = 0;
    let result = loop {
        let result = writelane::force_release(
            store.store.as_ref(),
            entity,
            Some(target.rvn),
            None,
            timeout_ms,
        )
        .await
        .map_err(|e| Failure::new(EX_UNAVAILABLE, format!("{describe}: {e}")))?;
        tries += 1;
        match result {
            // The same holding renewed between our read and our swap (same owner, same
            // epoch): the operator's choice still stands, so swap against the renewal.
            ForceReleaseResult::Changed { current: Some(now) }
                if tries < FORCE_TRIES
                    && !now.owner.is_empty()
                    && now.owner == target.owner
                    && now.epoch == target.epoch =>
            {
                target = now;
            }
            other => break other,
        }
    };
    match result {
        ForceReleaseResult::Released { record } => {
            if json {
                print_json(&report("released", Some(&target), Some(&record)))?;
            } else {
                println!(
                    "{entity}: released; evicted {}{}; the record is free at epoch {}",
                    who(&target),
                    if expired {
                        ", whose lease had expired"
                    } else {
                        ""
                    },
                    record.epoch
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ForceReleaseResult::Changed { current } => {
            if json {
                print_json(&report("changed", None, current.as_ref()))?;
            }
            let now = match &current {
                Some(r) if !r.owner.is_empty() => format!("now held by {}", who(r)),
                Some(_) => "now free".to_string(),
                None => "now gone".to_string(),
            };
            Err(Failure::new(
                EX_TEMPFAIL,
                format!("{entity:?} changed while it was released ({now}): nothing was written; run the release again"),
            ))
        }
        ForceReleaseResult::AlreadyFree { record } => {
            if json {
                print_json(&report("already_free", None, Some(&record)))?;
            } else {
                println!("{entity}: already free (epoch {})", record.epoch);
            }
            Ok(ExitCode::SUCCESS)
        }
        ForceReleaseResult::NoRecord => {
            if json {
                print_json(&report("no_record", None, None))?;
            } else {
                println!("{entity}: no record, nothing to release");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn init(store: &OpenedStore, json: bool) -> Result<ExitCode, Failure> {
    let report = store.admin.init().await.map_err(admin_failure)?;
    if json {
        print_json(&json!({
            "version": JSON_VERSION,
            "store": store.admin.describe(),
            "created": report.created,
            "detail": report.detail,
        }))?;
    } else {
        println!("{}", report.detail);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_people_read_them() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(12_345), "12.3s");
        assert_eq!(human_ms(245_000), "4m05s");
        assert_eq!(human_ms(7_380_000), "2h03m");
    }

    #[test]
    fn a_lease_as_json_says_free_held_or_invalid() {
        let record = LeaseRecord {
            owner: "h:1:a".into(),
            epoch: 3,
            rvn: 9,
            lease_ms: 10_000,
            committed_token: None,
            holder: Some("ci run 7".into()),
            ..Default::default()
        };
        let held = Entry {
            key: "e".into(),
            record: Ok(record.clone()),
            modified_ms_ago: Some(1_500),
        };
        let v = lease_json("e", Some(&held));
        assert_eq!(v["state"], "held");
        assert_eq!(v["owner"], "h:1:a");
        assert_eq!(v["holder"], "ci run 7");
        assert_eq!(v["epoch"], 3);
        assert_eq!(v["age_ms"], 1_500);
        let free = Entry {
            record: Ok(LeaseRecord {
                owner: String::new(),
                holder: None,
                ..record
            }),
            ..held.clone()
        };
        let v = lease_json("e", Some(&free));
        assert_eq!(v["state"], "free");
        assert_eq!(v["owner"], Value::Null);
        assert_eq!(v["epoch"], 3);
        let v = lease_json("e", None);
        assert_eq!(v["state"], "free");
        assert_eq!(v["epoch"], Value::Null);
        let bad = Entry {
            record: LeaseRecord::from_json(br#"{"owner":"x"}"#),
            ..held
        };
        let v = lease_json("e", Some(&bad));
        assert_eq!(v["state"], "invalid");
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("invalid lease record"));
    }
}
