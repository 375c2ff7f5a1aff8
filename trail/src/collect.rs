//! Turning records into compact write events, one collector per reading thread.
//!
//! A write is kept as an [`Event`] of integers (64 bytes) with its strings interned
//! per thread, so memory grows with the number of writes, not with the bytes read. Each
//! file's events are held apart until the file has been read to its end, so a file that
//! fails half-way is skipped whole, as its problem report says.

use std::collections::{BTreeMap, HashMap};

use writelane_core::{canonical_policy, policy_token};

use crate::extract::{self, Entities, IAM_SOURCE};
use crate::record::{RecordIn, Sink};

/// The filters and the analysed sources, as the collectors apply them.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Keep writes at or after this time (epoch seconds).
    pub since: Option<i64>,
    /// Keep writes before this time (epoch seconds).
    pub until: Option<i64>,
    /// Entity patterns (`*` wildcard) matched on the entity id and name.
    pub entities: Vec<String>,
    /// Accounts kept.
    pub accounts: Vec<String>,
    /// Writer patterns matched on the writer id and its short name.
    pub writers: Vec<String>,
    /// Event sources analysed besides IAM.
    pub extra_sources: Vec<String>,
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Strings of one collector, each with a small id; 0 is "none".
#[derive(Debug)]
pub struct Interner {
    map: HashMap<Box<str>, u32>,
    /// The strings by id.
    pub strings: Vec<Box<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            map: HashMap::new(),
            strings: vec!["".into()],
        }
    }
}

impl Interner {
    /// The id of `s`, added if new.
    pub fn id(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        self.strings.push(s.into());
        self.map.insert(s.into(), id);
        id
    }
}

/// A write's outcome.
pub const OK: u8 = 0;
/// A write that failed with a conflict.
pub const CONFLICT: u8 = 1;
/// A write that failed otherwise.
pub const ERROR: u8 = 2;

/// One write to one entity. Field order is the sort order once ids are ranked by their
/// strings, so the analysis sees the same sequence whatever order files were read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    /// The entity id (`ACCOUNT:TYPE/NAME`).
    pub entity: u32,
    /// `eventTime`, seconds since the epoch.
    pub t: i64,
    /// The writer id.
    pub writer: u32,
    /// The action.
    pub action: u32,
    /// [`OK`], [`CONFLICT`] or [`ERROR`].
    pub outcome: u8,
    /// The error code (0 when none).
    pub error: u32,
    /// A hash of the request parameters' text: equal calls have equal hashes.
    pub params: u64,
    /// The policy-document slot written (0 when none).
    pub slot: u32,
    /// The policy token of the document written (0 when none).
    pub token: u32,
    /// A hash of `eventID` (0 when absent), to drop duplicate deliveries.
    pub event_id: u64,
    /// The run (session name; 0 when none).
    pub run: u32,
    /// The tool.
    pub tool: u32,
    /// The retry mode (0 when none).
    pub retry: u32,
    /// 1 on the record's first entity, so per-record counts count each record once.
    pub primary: u8,
}

/// Counts that add up across files and threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records read.
    pub records: u64,
    /// Bad records skipped.
    pub records_skipped: u64,
    /// Reads of analysed sources.
    pub reads: u64,
    /// Records of other sources.
    pub other_sources: u64,
    /// Writes left out by filters.
    pub filtered_out: u64,
    /// Writes with no entity, per action.
    pub unmapped: BTreeMap<String, u64>,
    /// Bad records, per reason.
    pub bad: BTreeMap<String, u64>,
}

impl Counts {
    /// Add `other` into `self`.
    pub fn add(&mut self, other: Counts) {
        self.records += other.records;
        self.records_skipped += other.records_skipped;
        self.reads += other.reads;
        self.other_sources += other.other_sources;
        self.filtered_out += other.filtered_out;
        for (k, v) in other.unmapped {
            *self.unmapped.entry(k).or_default() += v;
        }
        for (k, v) in other.bad {
            *self.bad.entry(k).or_default() += v;
        }
    }
}

/// What one thread collected.
#[derive(Debug, Default)]
pub struct Collector {
    /// Its strings.
    pub strings: Interner,
    /// Its events.
    pub events: Vec<Event>,
    /// Its counts.
    pub counts: Counts,
    /// Canonical statements of each policy token seen (by token id).
    pub statements: HashMap<u32, Vec<String>>,
}

/// FNV-1a: a fixed hash, so equal parameters hash alike in every thread and run.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The canonical statements of a policy document, each as canonical JSON text.
pub fn canonical_statements(document: &str) -> Vec<String> {
    let Ok(canonical) = canonical_policy(document) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&canonical) else {
        return Vec::new();
    };
    let mut out: Vec<String> = match value.get("Statement") {
        Some(serde_json::Value::Array(list)) => list.iter().map(|s| s.to_string()).collect(),
        Some(one) => vec![one.to_string()],
        None => Vec::new(),
    };
    out.sort();
    out
}

/// One file being read into a collector: its events and counts stay apart until
/// [`FileScan::commit`].
pub struct FileScan<'c> {
    collector: &'c mut Collector,
    filter: &'c Filter,
    events: Vec<Event>,
    counts: Counts,
}

impl<'c> FileScan<'c> {
    /// Start reading one file.
    pub fn new(collector: &'c mut Collector, filter: &'c Filter) -> Self {
        FileScan {
            collector,
            filter,
            events: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// The records seen so far in this file.
    pub fn records(&self) -> u64 {
        self.counts.records
    }

    /// The file was read to its end: keep what it gave. Returns its bad-record counts.
    pub fn commit(self) -> BTreeMap<String, u64> {
        let bad = self.counts.bad.clone();
        self.collector.events.extend(self.events);
        self.collector.counts.add(self.counts);
        bad
    }

    fn bad(&mut self, reason: String) {
        self.counts.records_skipped += 1;
        *self.counts.bad.entry(reason).or_default() += 1;
    }

    fn analysed(&self, source: &str) -> bool {
        source == IAM_SOURCE || self.filter.extra_sources.iter().any(|s| s == source)
    }
}

impl Sink for FileScan<'_> {
    fn bad_record(&mut self, reason: String) {
        self.counts.records += 1;
        self.bad(reason);
    }

    fn record(&mut self, r: &RecordIn<'_>) {
        self.counts.records += 1;
        let Some(time_text) = r.event_time.as_deref() else {
            return self.bad("record without eventTime".into());
        };
        let Some(source) = r.event_source.as_deref() else {
            return self.bad("record without eventSource".into());
        };
        if let Some(version) = r.event_version.as_deref() {
            let major = version.split('.').next().unwrap_or("");
            if major != "1" {
                return self.bad(format!("unknown major eventVersion {major:?}"));
            }
        }
        let Some(t) = crate::time::parse(time_text) else {
            return self.bad("eventTime is not a time".into());
        };
        if !self.analysed(source) {
            self.counts.other_sources += 1;
            return;
        }
        let action = r.event_name.as_deref().unwrap_or("");
        let read = match r.read_only {
            Some(read_only) => read_only,
            // Without readOnly, IAM's naming rule decides; another service's record is
            // not taken for a write.
            None => {
                source != IAM_SOURCE
                    || matches!(
                        writelane_core::iam::IAM.access(action),
                        writelane_core::iam::Access::Read
                    )
            }
        };
        if read {
            self.counts.reads += 1;
            return;
        }
        let account = r
            .recipient_account_id
            .as_deref()
            .or_else(|| {
                r.user_identity
                    .as_ref()
                    .and_then(|u| u.account_id.as_deref())
            })
            .filter(|a| !a.is_empty())
            .unwrap_or("unknown");
        let keys = match extract::entities_of(r, account, source) {
            Entities::Keys(keys) => keys,
            Entities::Read => {
                self.counts.reads += 1;
                return;
            }
            Entities::Unmapped => {
                let name = if action.is_empty() {
                    "(no eventName)"
                } else {
                    action
                };
                *self.counts.unmapped.entry(name.to_string()).or_default() += 1;
                return;
            }
        };
        let writer = extract::writer_of(r);
        let f = self.filter;
        let time_kept = f.since.is_none_or(|s| t >= s) && f.until.is_none_or(|u| t < u);
        let writer_kept = f.writers.is_empty() || {
            let (name, _, _, _) = extract::describe_writer(&writer.id);
            f.writers
                .iter()
                .any(|p| glob(p, &writer.id) || glob(p, &name))
        };
        let kept: Vec<_> = keys
            .into_iter()
            .filter(|k| {
                time_kept
                    && writer_kept
                    && (f.accounts.is_empty() || f.accounts.iter().any(|a| a == &k.account))
                    && (f.entities.is_empty()
                        || f.entities
                            .iter()
                            .any(|p| glob(p, &k.id()) || glob(p, &k.name)))
            })
            .collect();
        if kept.is_empty() {
            self.counts.filtered_out += 1;
            return;
        }
        let error_code = r.error_code.as_deref().filter(|c| !c.is_empty());
        let outcome = match error_code {
            None => OK,
            Some(code) if extract::is_conflict(code) => CONFLICT,
            Some(_) => ERROR,
        };
        let user_agent = r.user_agent.as_deref().unwrap_or("");
        let tool = extract::tool_of(user_agent, writer.id.ends_with("#cloudformation"));
        let retry = extract::retry_mode_of(user_agent);
        let c = &mut *self.collector;
        let (slot, token) = match extract::document_of(action, r.request_parameters) {
            Some(doc) if outcome == OK => match policy_token(&doc.document) {
                Ok(token_text) => {
                    let token = c.strings.id(&token_text);
                    c.statements
                        .entry(token)
                        .or_insert_with(|| canonical_statements(&doc.document));
                    (c.strings.id(&doc.slot), token)
                }
                Err(_) => (0, 0),
            },
            _ => (0, 0),
        };
        let base = Event {
            entity: 0,
            t,
            writer: c.strings.id(&writer.id),
            action: c.strings.id(action),
            outcome,
            error: error_code.map_or(0, |code| c.strings.id(code)),
            params: r.request_parameters.map_or(0, |p| fnv(p.get().as_bytes())),
            slot,
            token,
            event_id: r.event_id.as_deref().map_or(0, |id| fnv(id.as_bytes())),
            run: writer.run.as_deref().map_or(0, |run| c.strings.id(run)),
            tool: c.strings.id(tool),
            retry: retry.map_or(0, |m| c.strings.id(m)),
            primary: 1,
        };
        for (i, key) in kept.iter().enumerate() {
            self.events.push(Event {
                entity: c.strings.id(&key.id()),
                primary: u8::from(i == 0),
                ..base
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_only() {
        assert!(glob("deploy", "deploy"));
        assert!(!glob("deploy", "deploy2"));
        assert!(glob("*:role/deploy*", "1:role/deploy-x"));
        assert!(glob("*remed*", "drift-remediator"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("*", ""));
    }

    #[test]
    fn statements_are_canonical_and_sorted() {
        let a = canonical_statements(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},{"Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#,
        );
        let b = canonical_statements(
            "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Deny%22%2C%22Action%22%3A%22iam%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%2C%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D",
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a, b);
    }
}
