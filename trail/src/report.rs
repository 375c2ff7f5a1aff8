//! The report: what `writelane trail` found, as plain data.
//!
//! These structs are the `--json` output (schema [`SCHEMA`], documented in `trail/SCHEMA.md`)
//! and the input of every renderer (the terminal report, the HTML page). Within one schema
//! version fields are only ever added, never renamed, removed or given another meaning; a
//! reader should ignore fields it does not know.
//!
//! Times are RFC 3339 strings in UTC with one-second resolution (`2026-12-06T00:12:24Z`),
//! because CloudTrail's `eventTime` has that resolution and marks when a call completed:
//! two writes in the same second have no known order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema name and major version written in [`Report::schema`].
pub const SCHEMA: &str = "writelane-trail/1";

/// Everything one run of the analysis found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`]; a reader refuses a major version it does not know.
    pub schema: String,
    /// The writelane version that wrote the report.
    pub writelane_version: String,
    /// The settings the analysis ran with.
    pub settings: Settings,
    /// What was read and what was skipped, per input file.
    pub reading: Reading,
    /// Counts over the whole trail after the filters.
    pub totals: Totals,
    /// Every entity written, the most contended first (see [`EntityReport`] for the order).
    pub entities: Vec<EntityReport>,
    /// Every writer seen writing, the one with the most conflicts first.
    pub writers: Vec<WriterReport>,
    /// Pairs of writers that overlapped on at least one entity, the most incidents first.
    pub pairs: Vec<PairReport>,
    /// Per time bucket over all entities (empty unless a bucket size was given).
    pub buckets: Vec<Bucket>,
}

/// The settings of the analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Writes by two or more writers to one entity within this span form an incident.
    pub window_ms: u64,
    /// This many identical calls (same writer, action, entity and parameters) ...
    pub replay_calls: u32,
    /// ... within this span from a conflicted call are an immediate replay.
    pub replay_span_ms: u64,
    /// The bucket size for conflict rates over time, if one was asked for.
    pub bucket_ms: Option<u64>,
    /// Records before this time were left out.
    pub since: Option<String>,
    /// Records at or after this time were left out.
    pub until: Option<String>,
    /// Entity patterns (`*` matches any run of characters); empty keeps every entity.
    pub entities: Vec<String>,
    /// Accounts kept; empty keeps every account.
    pub accounts: Vec<String>,
    /// Writer patterns (`*` wildcard, matched on the writer's id and name); empty keeps all.
    pub writers: Vec<String>,
    /// Event sources analysed: always `iam.amazonaws.com`, plus any `--source`.
    pub sources: Vec<String>,
}

/// What was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// The inputs as given (paths, `-`, `s3://` URLs).
    pub inputs: Vec<String>,
    /// Files (or objects, or stdin) read to the end.
    pub files_read: u64,
    /// Files skipped whole (see `problems`).
    pub files_skipped: u64,
    /// Bytes of JSON read (after decompression), skipped files included up to where they failed.
    pub bytes: u64,
    /// Records read (every record of every file read, before any exclusion).
    pub records: u64,
    /// Records skipped as bad (no `eventTime`, no `eventSource`, unknown major version).
    pub records_skipped: u64,
    /// Each problem, per file and reason, in file order.
    pub problems: Vec<Problem>,
}

/// One reason something in one file was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file, object or `-`.
    pub file: String,
    /// Why, for example `truncated gzip`, `not JSON: ...`, `record without eventTime`.
    pub reason: String,
    /// `true` when the whole file was skipped; `false` when single records were.
    pub whole_file: bool,
    /// How many records this reason skipped (0 for a whole file that never yielded one).
    pub records: u64,
}

/// Counts over the trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Writes analysed (after the filters).
    pub writes: u64,
    /// Of those, failed with `ConcurrentModification[Exception]` or
    /// `EntityTemporarilyUnmodifiable[Exception]`.
    pub conflicts: u64,
    /// Of those, failed with any other error code, counted per code.
    pub other_errors: BTreeMap<String, u64>,
    /// Read-only records of the analysed sources (never counted as writes).
    pub reads: u64,
    /// Records of other event sources (not analysed unless `--source` adds them).
    pub other_sources: u64,
    /// Writes whose entity could not be told from the record (counted per action).
    pub unmapped: BTreeMap<String, u64>,
    /// Writes left out by `--since`, `--until`, `--entity`, `--account` or `--writer`.
    pub filtered_out: u64,
    /// Overlap incidents over all entities.
    pub incidents: u64,
    /// Immediate replays over all entities.
    pub replays: u64,
    /// Policy fights over all entities.
    pub fights: u64,
}

/// One entity: an account, a type and a name. Accounts are never merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityReport {
    /// `ACCOUNT:TYPE/NAME`, for example `111122223333:role/deploy`; unique in the report.
    pub id: String,
    /// The 12-digit account (or what the record named as its account).
    pub account: String,
    /// `role`, `user`, `group`, `policy`, `instance-profile`, `oidc-provider`,
    /// `saml-provider`, `server-certificate`, ... (for `--source` services, the resource type).
    pub kind: String,
    /// The entity's name (for a managed policy or a provider: its ARN).
    pub name: String,
    /// Writes to it.
    pub writes: u64,
    /// Of those, conflicts.
    pub conflicts: u64,
    /// Of those, other failures, per error code.
    pub other_errors: BTreeMap<String, u64>,
    /// The first write's time.
    pub first_seen: String,
    /// The last write's time.
    pub last_seen: String,
    /// Writers of this entity, the most writes first.
    pub writers: Vec<EntityWriter>,
    /// Overlap incidents, in time order.
    pub incidents: Vec<Incident>,
    /// Immediate replays, in time order.
    pub replays: Vec<Replay>,
    /// Policy-document fights, one per document slot that has one.
    pub fights: Vec<Fight>,
    /// Per bucket (empty unless a bucket size was given).
    pub buckets: Vec<Bucket>,
    /// Every write, in time order (same-second writes in a fixed but meaningless order).
    /// Empty when the report was made without timelines (the terminal report).
    pub timeline: Vec<TimelineEvent>,
}

/// One writer's share of one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityWriter {
    /// The writer's id (see [`WriterReport::id`]).
    pub writer: String,
    /// Its writes to the entity.
    pub writes: u64,
    /// Of those, conflicts.
    pub conflicts: u64,
    /// Of those, other failures.
    pub other_errors: u64,
    /// Its first write's time.
    pub first_seen: String,
    /// Its last write's time.
    pub last_seen: String,
}

/// Writes to one entity by two or more writers within the window: from the first write of
/// the incident, every write at most `window_ms` later belongs to it; the next incident
/// can start only after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The first write's time.
    pub start: String,
    /// The last write's time.
    pub end: String,
    /// The writers involved (ids, sorted).
    pub writers: Vec<String>,
    /// Writes in the incident.
    pub writes: u64,
    /// Of those, conflicts.
    pub conflicts: u64,
}

/// A writer repeating the same call (action and parameters) on the entity right after a
/// conflict: at least `replay_calls` calls within `replay_span_ms` of a conflicted one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// The writer's id.
    pub writer: String,
    /// The action (`eventName`), such as `PutRolePolicy`.
    pub action: String,
    /// Calls in the burst, the conflicted one included.
    pub calls: u64,
    /// Of those, conflicts.
    pub conflicts: u64,
    /// The conflicted call's time.
    pub start: String,
    /// The last call's time.
    pub end: String,
    /// The tool the calls came from (see [`ToolUse::tool`]).
    pub tool: String,
    /// The SDK's retry mode from the user agent (`legacy`, `standard`, `adaptive`), if given.
    pub retry_mode: Option<String>,
}

/// Writers reverting each other's revisions of one policy document (A, then B, then A).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fight {
    /// The document: `inline policy NAME`, `trust policy`, or `policy version` (managed).
    pub document: String,
    /// The writers taking part (ids, sorted).
    pub writers: Vec<String>,
    /// How many times a revision was replaced by one that came before it, by a writer other
    /// than the one that replaced it.
    pub reverts: u64,
    /// The first revision change's time.
    pub start: String,
    /// The last revision change's time.
    pub end: String,
    /// Each successful write of the document, in time order, with its revision token.
    pub revisions: Vec<Revision>,
    /// The statement-level difference of each pair of revisions the writers alternated.
    pub diffs: Vec<RevisionDiff>,
}

/// One successful write of a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// When.
    pub time: String,
    /// By whom (id).
    pub writer: String,
    /// `writelane_core::policy_token` of the document.
    pub token: String,
}

/// What one revision has that another lacks, statement by statement (canonical form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionDiff {
    /// The revision replaced.
    pub from: String,
    /// The writer whose revision that was (the first to write it).
    pub from_writer: String,
    /// The revision written instead.
    pub to: String,
    /// The writer that wrote it (the first to).
    pub to_writer: String,
    /// Statements in `to` that are not in `from` (canonical JSON text).
    pub added: Vec<String>,
    /// Statements in `from` that are not in `to` (canonical JSON text).
    pub removed: Vec<String>,
}

/// One write on an entity's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// When (completion, one-second resolution).
    pub time: String,
    /// The same time as seconds since the Unix epoch.
    pub epoch_s: i64,
    /// The writer's id.
    pub writer: String,
    /// The session name of an assumed role (the run), if any.
    pub run: Option<String>,
    /// The action (`eventName`).
    pub action: String,
    /// `ok`, `conflict` or `error`.
    pub outcome: String,
    /// The error code of a failed write.
    pub error_code: Option<String>,
    /// The write belongs to an immediate replay.
    pub replay: bool,
    /// The policy token of the document written, for policy-document writes.
    pub revision: Option<String>,
}

/// A writer: an assumed role's issuing role, an IAM user, the root user, or a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterReport {
    /// Unique id: the issuing role's or user's ARN, with `#cloudformation` appended when
    /// CloudFormation made the calls on its behalf.
    pub id: String,
    /// A short name for tables: the role or user name (`deploy-pipeline`), with
    /// ` (CloudFormation)` when CloudFormation acted for it.
    pub name: String,
    /// The writer's account.
    pub account: String,
    /// `role`, `user`, `root`, `service`, `federated` or `unknown`.
    pub kind: String,
    /// CloudFormation made the calls on the writer's behalf.
    pub via_cloudformation: bool,
    /// Writes by this writer.
    pub writes: u64,
    /// Of those, conflicts.
    pub conflicts: u64,
    /// Entities it wrote.
    pub entities: u64,
    /// Distinct runs (assumed-role session names) seen.
    pub runs: u64,
    /// The tools its calls came from, the most writes first.
    pub tools: Vec<ToolUse>,
}

/// Writes from one tool and retry mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUse {
    /// `terraform`, `aws-cli`, `boto3`, `botocore`, `aws-sdk-js-v3`, `aws-sdk-js-v2`,
    /// `aws-sdk-go-v2`, `aws-sdk-go`, `aws-sdk-java`, `cloudformation`, `console`, or
    /// `other`.
    pub tool: String,
    /// The retry mode from `cfg/retry-mode#...`, if the user agent gives one.
    pub retry_mode: Option<String>,
    /// Writes.
    pub writes: u64,
}

/// Two writers that overlapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairReport {
    /// One writer's id (the smaller of the two).
    pub a: String,
    /// The other's.
    pub b: String,
    /// Incidents that involved both.
    pub incidents: u64,
    /// The entities (ids, sorted) they overlapped on.
    pub entities: Vec<String>,
}

/// One time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// The bucket's start (buckets are aligned to the Unix epoch).
    pub start: String,
    /// Writes in it.
    pub writes: u64,
    /// Conflicts in it.
    pub conflicts: u64,
    /// Conflicts per thousand writes, rounded down.
    pub conflict_permille: u64,
    /// Incidents that started in it.
    pub incidents: u64,
}
