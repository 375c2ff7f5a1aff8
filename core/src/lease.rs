//! Shared leases for writers on different machines: a fenced lease on one record per entity
//! in a store they share, decided sans-IO.
//!
//! The client emits store operations of three primitive kinds only — `get`,
//! `put_if_absent` and `compare_and_swap(expected_rvn)` — so an adapter for any store
//! (DynamoDB, Redis, a file, memory) implements just those three. Expiry is judged on the
//! observer's own monotonic clock: a holder is stale only after its record version number
//! (rvn) has been seen unchanged for a whole lease, so machines need no clock agreement.
//! Takeover bumps the epoch (the fence) and waits a lock-delay before the first write,
//! because the service being written cannot check a fence. Renewal and release are
//! compare-and-swap on the rvn, never read-compare-delete. A lost store reply is a state of
//! its own: the client reads the record back and sees whether it is ours.
//!
//! # What the protocol guarantees
//!
//! These are the properties the `writelane-model` crate checks exhaustively, driving real
//! [`crate::Engine`]s with shared lanes through every interleaving of store calls and entity
//! writes within its bounds, with lost requests, lost replies, an unavailable store, crashed
//! and restarted writers, clocks that jump forward or stand still, and force-releases
//! (`model/README.md` has the bounds, the states explored and the limits).
//!
//! A *holding* is one epoch granted to one writer process. A write is *in flight* from
//! when the host sends it until the entity applies it. A holding is *ended by the rule* when
//! a writer replaced its record after reading that record's rvn unchanged in at least
//! `ceil(2 × lease_ms / poll_ms) + 1` replies spanning at least `lease_ms` on the taker's
//! own clock; it is *force-released* when an operator replaced it ([`plan_force_release`]).
//! The host writes only when the engine commands it, each write lasts at most
//! `max_write_ms` and each store call at most `store_timeout_ms`.
//!
//! 1. **Exclusion.** Whenever writes of two holdings are in flight to the entity at once,
//!    the older holding had been ended by the rule (judged on the clock of the writer that
//!    took it over: the newer one, or one before it) or force-released.
//! 2. **Real-time exclusion.** When no writer's clock stood still, nobody force-released,
//!    and clocks jumped forward (by up to a lease) at most twice, writes of two holdings are
//!    never in flight at once: the poll count and the lock-delay cover the jumps. (A paused
//!    holder, whose clock stands still, may write after its lease ran out: only a fence the
//!    service checks prevents that; property 1 still holds.)
//! 3. **Epochs only grow.** The store's epoch never decreases, and a record naming a new
//!    holder carries an epoch greater than any the store held before.
//! 4. **Fenced writes.** Every write the entity accepts carries (as `Command::Write`'s
//!    `fence`) an epoch the store granted to that writer process.
//! 5. **Released tokens.** A free record (a release, a force-release) carries the token of
//!    the last write the entity accepted, or none — unless a write of an ended holding
//!    landed before (the case property 1 allows).
//! 6. **No commit without acceptance.** An operation finishes `Committed` only after the
//!    entity accepted its write.
//! 7. **Liveness.** With the store available and no crash, every submitted operation
//!    finishes, committed or with a typed give-up (checked within a bounded horizon).
//! 8. **FIFO among registered waiters** (version 2 records, below). A waiter whose ticket
//!    is in the queue gets the lease before every client that registered after it, unless
//!    its ticket was removed because it made no progress for a whole lease on the remover's
//!    clock. (Tested in `core/tests/lease_queue.rs`; the model checks it in runs without
//!    faults.)
//!
//! # Queue-like hand-off (record version 2)
//!
//! Version 1 records (the shape above, no `version` field) order nobody: waiters poll every
//! `poll_ms` and the first get after a release wins, so a waiter can be overtaken for ever
//! and every hand-off waits for somebody's next poll. Version 2 keeps a bounded FIFO queue
//! of tickets in the record itself, because the stores (DynamoDB, S3, a file) have no
//! watches: the best a store without notifications allows is a queue in the record plus
//! polling that knows when to look. This section is the design; `QUEUE-HANDOFF.md` at the
//! repository root says what is done and what is next.
//!
//! ## The record
//!
//! Version 2 adds, next to the version 1 fields (which keep their meaning):
//!
//! | field | meaning |
//! |---|---|
//! | `version` | `2`; absent means 1 |
//! | `beat` | the holding's progress counter: `0` in a record that grants the lease to a waiter (which holds it from the moment it sees the grant), bumped by every accept, claim, takeover and renewal of the holder, and by nobody else |
//! | `next_ticket` | the next ticket number to give out; only grows |
//! | `hold_ms` | the expected hold, a moving average of recent holds the holders publish (`0`: none known yet) |
//! | `queue` | at most [`MAX_QUEUE`] tickets, oldest first: `{owner, ticket, beat}`, where a ticket's `beat` is that waiter's own progress counter |
//!
//! Owners in the queue are distinct and none is the record's owner; tickets are strictly
//! increasing and below `next_ticket`. Every counter is at most [`MAX_RVN`] (53 bits, exact
//! in every language). With owner ids of [`MAX_OWNER_LEN`] bytes a full queue is about
//! 20 KB of JSON (typical owner ids of 40 bytes: about 6 KB), far from DynamoDB's 400 KB
//! item limit and nothing for an S3 object, a file or a Redis string.
//!
//! ## Progress, not the rvn
//!
//! In version 1 the rvn changes only when the holder writes, so "rvn unchanged for a whole
//! lease" means "the holder made no progress". In version 2 waiters write the record too
//! (registering, beating, removing the dead), so the rvn no longer says anything about the
//! holder. The staleness rule keeps its shape and moves to the counters: a holding is
//! stale when the observer has seen `(owner, epoch, beat)` unchanged in at least
//! `ceil(2 × lease_ms / poll_ms) + 1` replies spanning at least `lease_ms` on its own clock;
//! a waiter is dead when `(owner, ticket, beat)` of its ticket stood still for at least
//! `lease_ms` on the observer's clock, seen again in a later reply. The reply count of the
//! holder's rule is there so that a clock jumping forward cannot let two writers in; a
//! waiter judged dead wrongly only loses its place (it registers again at the tail), and
//! waiters sleep between beats, so they are not made to poll for it.
//! Only the holder changes `beat`, and it does so with every write that extends its lease,
//! so the argument for version 1 carries over word for word with `beat` for `rvn`. The
//! compare-and-swap itself stays on the rvn, which still changes with every write, so two
//! writers can never both succeed from one record.
//!
//! ## Registering (FIFO across machines)
//!
//! A client that reads a record held by someone else (or granted to someone else) and whose
//! owner is not in the queue registers: a compare-and-swap on the rvn that appends
//! `{owner, ticket: next_ticket, beat: 1}` and bumps `next_ticket`, changing nothing else.
//! A refusal returns the record found, so no extra read is needed; the client decides again
//! from it (it may be registered already: a retry of its own request landed; or it may
//! now find the record free). Many waiters arriving together contend on one record, and
//! retrying at once costs O(N²) attempts, so after `k` refusals in a row a client waits
//! `poll_ms / 2` plus a uniform delay in `0..=2^(min(k, 8) - 1) × poll_ms / 2` (the
//! window doubles until it fits the contenders: O(log N) attempts each), unless the
//! record the refusal returned lets it take the lease at once (free with no live waiter
//! ahead, or granted to it). The fixed half poll keeps refused waiters behind the holder,
//! which sends a refused renewal or release again at once: every registration that lands
//! refuses the holder's write in flight. After a delay of at most `poll_ms` the client
//! decides again from the record the refusal returned; after a longer one that record is
//! most likely stale and a swap on it would be refused, so it reads the record afresh.
//! [`LeaseClient::registration_attempts`] reports the attempts of a registration.
//!
//! A registered waiter is never overtaken by a later arrival:
//!
//! - A free record (owner empty) may be claimed only by the head of the queue, or by anyone
//!   when the queue is empty; a client not in the queue registers instead.
//! - A release hands the lease to the head (below), never leaves it free while someone is
//!   queued.
//! - A stale holder (or a granted head that died) may be taken over only by the
//!   first ticket that the taker has not itself judged dead, and the takeover removes the
//!   dead tickets ahead of the taker in the same compare-and-swap.
//! - A ticket is removed only by its owner (it is granted, or gives up), by a release that
//!   grants it, or by a client that judged it dead by the rule. So the only waiter that can
//!   be overtaken is one that made no progress for a whole lease on someone's clock (a
//!   paused or dead process); such a waiter that comes back finds its ticket gone and
//!   registers again at the tail.
//!
//! When the queue holds [`MAX_QUEUE`] tickets, an arrival falls back to polling and
//! registers as soon as it finds room; it can claim only when the queue is empty. It looks
//! again after a jittered quarter to half of the time the queue is expected to take
//! (`max(hold_ms, poll_ms)` per ticket), not every `poll_ms`: a slot opens with every
//! hand-off, and every waiter left out racing for it would refuse the holder's release.
//! Such a waiter can be overtaken.
//!
//! ## Waiting: beats and sleeping until the expected turn
//!
//! A registered waiter bumps its ticket's `beat` by compare-and-swap every `lease_ms / 2`:
//! a waiter is judged dead only after a whole lease without a beat, and every beat is a
//! write that refuses the holder's renewal or release in flight. Between beats it sleeps
//! and looks again from what it finds. The head of the queue looks again after half of
//! what is left of the current holding's expected hold (`hold_ms` less how long it has
//! seen that holding: it may have first seen it late) and from then polls at `poll_ms`
//! with jitter. A waiter further back sleeps through 7/8 of the hand-offs ahead of it at
//! `hold_ms` each and estimates again. `hold_ms` is the holders' work, not the time per
//! hand-off (the hand-off gap comes on top), so every estimate errs early, which costs a
//! look, never late, which would leave the lease idle. With no `hold_ms` known yet (the
//! first holder has not released), `poll_ms` stands for it. A beat refused because the
//! record changed is retried against the record the refusal returned, as long as its
//! ticket is still there.
//!
//! ## Release hands over in the same compare-and-swap
//!
//! A holder's release with a non-empty queue writes, in one compare-and-swap on the rvn it
//! holds: `owner` = the head's owner, `epoch` + 1 (a new holding, a new fence), `beat` 0
//! (granted, not accepted), the head removed from `queue`, `committed_token` = the token of
//! its last committed write (the hand-off carries the token: the releaser knows no write of
//! its holding is in flight), and `hold_ms` updated. With an empty queue it releases as in
//! version 1 (owner empty), with `hold_ms` updated.
//!
//! The grantee holds the lease from the moment it observes a record naming it with `beat`
//! 0, with no write of its own, and its lease runs from the send time of its *previous*
//! store operation in this acquire, the latest whose reply did not show the grant. That
//! operation was applied before the grant landed (the store applies one operation at a
//! time, and its reply would otherwise have shown the grant), and every other client sees
//! the grant only after it landed, so it counts a whole lease towards a takeover from a
//! later time on its own clock: the argument that lets a version 1 lease run from the send
//! time of its claim. Starting the clock at the get that observed the grant would not do:
//! another waiter may have observed the grant earlier. When that previous operation was
//! sent `renew_ms` or more ago (the waiter slept long) or its time is unknown, the grantee
//! *accepts* instead: it writes `beat` 1 (and its holder description) by compare-and-swap,
//! and its lease runs from the accept's send time. A grantee that holds without an accept
//! writes `beat` 1 with its first renewal. So a hand-off costs the release and the
//! grantee's get: two store operations, with no lock-delay (the releaser's writes are
//! finished) and no read of the entity (the token came with the grant).
//!
//! A granted head that is dead never renews or releases: `(owner, epoch, beat 0)` stands
//! still and the next live ticket takes over after a whole lease on its clock, exactly as
//! it would take over a dead holder, with the lock-delay and without trusting the token:
//! the grantee may have written before it died.
//!
//! ## The expected hold
//!
//! On release the holder publishes `hold_ms = (7 × hold_ms + sample) / 8` in `u64`
//! integer arithmetic, where `sample` is the time from its grant (the claim or accept
//! sent, or the grant seen) to its first release attempt on its own clock, capped at
//! `lease_ms`; the first sample is taken as it is. The time a release spends refused by
//! waiters' writes is left out: it is contention, not work, and waiters that sleep for it
//! arrive late.
//! The average is a hint for waking up, never for safety: a wrong value costs polls or
//! latency, not exclusion.
//!
//! ## What keeps its guarantees
//!
//! - **Fencing.** Every new holding (claim, takeover, grant) bumps the epoch; accepts,
//!   renewals, beats, registrations and removals keep it. Properties 3 and 4 are
//!   unchanged.
//! - **Takeover after a whole observed lease** is judged on `(owner, epoch, beat)` as
//!   above; the holder's `beat` changes exactly when its lease is extended, so the
//!   exclusion argument is the version 1 argument.
//! - **Lock-delay** after every takeover, as in version 1 (a grant's holding may have
//!   written without a store write); none after a grant.
//! - **Renewals** are a compare-and-swap on the rvn that bumps `beat`. A refusal whose
//!   record still has our owner, epoch and beat means only the queue changed (a waiter
//!   registered or beat): the renewal is sent again against that record, queue kept, and
//!   the lease runs from the send time of the attempt that lands. Any other refusal is a
//!   lost lease, as before. A release is sent again the same way (granting to the head of
//!   the queue found, which may have grown since).
//! - **Lost-reply read-backs.** The record read back may have changed since our write
//!   landed (a waiter registered after it), so "the record equals what we wrote" becomes
//!   "the record shows our write": our registration landed when our owner holds a ticket
//!   with the number we wrote (or we were already granted); our renewal, claim, takeover
//!   or accept landed when owner, epoch and `beat` are ours; our release landed when the
//!   epoch moved past ours with the owner we granted to (or empty) and our token. A release
//!   whose landing cannot be told from a takeover is reported `Lost`: either way the
//!   holding is over and no write follows, so safety does not depend on telling them
//!   apart.
//!
//! ## Mixed versions
//!
//! A version 2 client reads a version 1 record as version 2 with an empty queue, `beat` 0
//! standing for "the rvn is the progress" (it judges a version 1 holder by its rvn, as
//! version 1 clients do) and rewrites it as version 2 with its next write. A version 1
//! client refuses a version 2 record (its parser denies unknown fields), so its adapters
//! report the store unavailable and it gives up `lock_unavailable` without ever writing:
//! exclusion holds, but such a client cannot get the lease while version 2 records exist.
//! Upgrade every writer of an entity together. A record written by a version 1 client
//! after a version 2 client released it (a version 1 record again) is read as above. A
//! version 2 client never registers on a version 1 record held by someone else: that
//! would change the rvn under a version 1 holder, whose next renewal would then be refused
//! and its lease lost; it polls such a record as a version 1 client would, and writes
//! version 2 when it claims or takes it over.
//! DynamoDB adapters map record fields to attributes, so they must write the version 2
//! attributes (`version`, `beat`, `next_ticket`, `hold_ms` as numbers, `queue` as the JSON
//! text of the array, which [`LeaseRecord::from_json`] accepts in place of the array).

use serde::{Deserialize, Serialize};

use crate::error::{PolicyError, UsageError};
use crate::limits::{MAX_DELAY_MS, MAX_TOKEN_LEN};
use crate::rng::DecisionRng;

/// The record a store keeps per entity. Version 1 records have the first six fields;
/// version 2 adds the queue and the counters of the queue-like hand-off (module docs). The
/// fields of version 2 are left out of the JSON when they are zero or empty, and `version`
/// when it is 1, so a version 1 record reads and writes exactly as before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRecord {
    /// The record's format: 1 (no field in the JSON) or 2.
    #[serde(default = "version_one", skip_serializing_if = "is_version_one")]
    pub version: u64,
    /// Who holds the lease; empty when released.
    pub owner: String,
    /// Fence: bumped by every new holder, never decreases.
    pub epoch: u64,
    /// Record version number: changes on every write of the record.
    pub rvn: u64,
    /// How long the holder may go without renewing, in milliseconds.
    pub lease_ms: u64,
    /// The last committed change token of the entity, for the next writer on any machine.
    pub committed_token: Option<String>,
    /// Who holds it in words (host, pipeline, run id, operation), for people debugging a
    /// stuck lease.
    pub holder: Option<String>,
    /// Version 2: the holding's progress counter, bumped by the holder only (accept, claim,
    /// takeover, renewal); 0 in a record that grants the lease to a waiter, until its first renewal.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub beat: u64,
    /// Version 2: the next ticket number to give out; only grows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_ticket: u64,
    /// Version 2: the expected hold in milliseconds, a moving average the holders publish
    /// (0: none known).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hold_ms: u64,
    /// Version 2: the waiters, oldest first, at most [`MAX_QUEUE`]. In JSON an array, or
    /// (as DynamoDB adapters keep it, in a string attribute) the JSON text of one.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "queue_from_array_or_text"
    )]
    pub queue: Vec<Ticket>,
}

/// One waiter in a version 2 record's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    /// The waiting process's owner id.
    pub owner: String,
    /// Its ticket number: the record's `next_ticket` when it registered.
    pub ticket: u64,
    /// Its progress counter, bumped by the waiter every renewal interval.
    pub beat: u64,
}

/// The newest record format this core writes.
pub const RECORD_VERSION: u64 = 2;

fn version_one() -> u64 {
    1
}

fn is_version_one(v: &u64) -> bool {
    *v == 1
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn queue_from_array_or_text<'de, D>(deserializer: D) -> Result<Vec<Ticket>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Array(Vec<Ticket>),
        Text(String),
    }
    match Form::deserialize(deserializer)? {
        Form::Array(queue) => Ok(queue),
        Form::Text(text) => serde_json::from_str(&text).map_err(|e| {
            serde::de::Error::custom(format!("queue is text that is not a queue: {e}"))
        }),
    }
}

impl Default for LeaseRecord {
    /// A version 1 record with every field zero or empty (not valid as it is: set the
    /// owner, epoch, rvn and lease).
    fn default() -> Self {
        LeaseRecord {
            version: 1,
            owner: String::new(),
            epoch: 0,
            rvn: 0,
            lease_ms: 0,
            committed_token: None,
            holder: None,
            beat: 0,
            next_ticket: 0,
            hold_ms: 0,
            queue: Vec::new(),
        }
    }
}

/// Longest owner id accepted in a lease record.
pub const MAX_OWNER_LEN: usize = 256;
/// Longest holder description accepted in a lease record or submit options.
pub const MAX_HOLDER_LEN: usize = 1024;
/// Most tickets a version 2 record's queue holds; arrivals beyond it poll without a ticket.
pub const MAX_QUEUE: usize = 64;
/// Largest record version number the core draws: 53 bits, so that every language (a
/// JavaScript number included) holds an rvn exactly.
pub const MAX_RVN: u64 = (1 << 53) - 1;

/// A lease record a store returned that is not one writelane wrote: the field and the
/// rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid lease record: {field} {rule}")]
pub struct RecordError {
    /// The field at fault (`$` for the whole record).
    pub field: String,
    /// What is wrong with it.
    pub rule: String,
}

impl RecordError {
    fn new(field: &str, rule: impl Into<String>) -> Self {
        RecordError {
            field: field.to_string(),
            rule: rule.into(),
        }
    }
}

impl LeaseRecord {
    /// Parse and validate a record as a store adapter read it (the JSON text the Redis,
    /// file and memory stores keep; DynamoDB adapters build the same object from the
    /// item's attributes). Adapters never interpret a record: they pass its bytes here.
    pub fn from_json(bytes: &[u8]) -> Result<LeaseRecord, RecordError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| RecordError::new("$", format!("is not UTF-8: {e}")))?;
        let record: LeaseRecord = serde_json::from_str(text)
            .map_err(|e| RecordError::new("$", format!("does not parse: {e}")))?;
        record.validate()?;
        Ok(record)
    }

    /// The record as the JSON text stores keep.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a lease record always serialises")
    }

    /// Check the record's fields: owner at most [`MAX_OWNER_LEN`] bytes, epoch and rvn
    /// positive, rvn at most [`MAX_RVN`], lease in `1..=MAX_DELAY_MS`, token at most
    /// [`crate::MAX_TOKEN_LEN`] bytes, holder at most [`MAX_HOLDER_LEN`] bytes, and the
    /// version 2 rules (`validate_version_2`): `version` 1 or 2, no version 2 field in a
    /// version 1 record, counters at most [`MAX_RVN`], `hold_ms` at most a day, at most
    /// [`MAX_QUEUE`] tickets whose owners are 1 to [`MAX_OWNER_LEN`] bytes, distinct and not
    /// the record's owner, with ticket numbers strictly increasing and below
    /// `next_ticket`. The error names the field (`queue[3].owner`).
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.owner.len() > MAX_OWNER_LEN {
            return Err(RecordError::new(
                "owner",
                format!("is {} bytes, over {MAX_OWNER_LEN}", self.owner.len()),
            ));
        }
        if self.epoch == 0 {
            return Err(RecordError::new("epoch", "must be at least 1"));
        }
        if !(1..=MAX_RVN).contains(&self.rvn) {
            return Err(RecordError::new(
                "rvn",
                format!("must be in 1..={MAX_RVN}, found {}", self.rvn),
            ));
        }
        if !(1..=MAX_DELAY_MS).contains(&self.lease_ms) {
            return Err(RecordError::new(
                "lease_ms",
                format!("must be in 1..={MAX_DELAY_MS}, found {}", self.lease_ms),
            ));
        }
        if let Some(t) = self
            .committed_token
            .as_ref()
            .filter(|t| t.len() > MAX_TOKEN_LEN)
        {
            return Err(RecordError::new(
                "committed_token",
                format!("is {} bytes, over {}", t.len(), MAX_TOKEN_LEN),
            ));
        }
        if let Some(h) = self.holder.as_ref().filter(|h| h.len() > MAX_HOLDER_LEN) {
            return Err(RecordError::new(
                "holder",
                format!("is {} bytes, over {MAX_HOLDER_LEN}", h.len()),
            ));
        }
        self.validate_version_2()
    }

    /// The rules of the version 2 fields: none of them in a version 1 record; counters at
    /// most [`MAX_RVN`], `hold_ms` at most `MAX_DELAY_MS`; at most [`MAX_QUEUE`] tickets with
    /// owners of 1 to [`MAX_OWNER_LEN`] bytes, distinct and none the record's owner, ticket
    /// numbers strictly increasing and below `next_ticket`.
    fn validate_version_2(&self) -> Result<(), RecordError> {
        if !(1..=RECORD_VERSION).contains(&self.version) {
            return Err(RecordError::new(
                "version",
                format!("must be in 1..={RECORD_VERSION}, found {}", self.version),
            ));
        }
        if self.version == 1 {
            for (name, set) in [
                ("beat", self.beat != 0),
                ("next_ticket", self.next_ticket != 0),
                ("hold_ms", self.hold_ms != 0),
                ("queue", !self.queue.is_empty()),
            ] {
                if set {
                    return Err(RecordError::new(
                        name,
                        "is a version 2 field in a version 1 record",
                    ));
                }
            }
            return Ok(());
        }
        for (name, v) in [("beat", self.beat), ("next_ticket", self.next_ticket)] {
            if v > MAX_RVN {
                return Err(RecordError::new(
                    name,
                    format!("must be at most {MAX_RVN}, found {v}"),
                ));
            }
        }
        if self.hold_ms > MAX_DELAY_MS {
            return Err(RecordError::new(
                "hold_ms",
                format!("must be at most {MAX_DELAY_MS}, found {}", self.hold_ms),
            ));
        }
        if self.queue.len() > MAX_QUEUE {
            return Err(RecordError::new(
                "queue",
                format!("holds {} tickets, over {MAX_QUEUE}", self.queue.len()),
            ));
        }
        for (i, t) in self.queue.iter().enumerate() {
            let field = |name: &str| format!("queue[{i}].{name}");
            if t.owner.is_empty() || t.owner.len() > MAX_OWNER_LEN {
                return Err(RecordError::new(
                    &field("owner"),
                    format!("is {} bytes, outside 1..={MAX_OWNER_LEN}", t.owner.len()),
                ));
            }
            if t.owner == self.owner {
                return Err(RecordError::new(&field("owner"), "is the record's owner"));
            }
            if self.queue[..i].iter().any(|u| u.owner == t.owner) {
                return Err(RecordError::new(&field("owner"), "is queued twice"));
            }
            if t.ticket >= self.next_ticket {
                return Err(RecordError::new(
                    &field("ticket"),
                    format!(
                        "must be below next_ticket ({} >= {})",
                        t.ticket, self.next_ticket
                    ),
                ));
            }
            if let Some(prev) = i.checked_sub(1).map(|j| &self.queue[j]) {
                if t.ticket <= prev.ticket {
                    return Err(RecordError::new(
                        &field("ticket"),
                        format!(
                            "must be greater than the ticket before it ({} <= {})",
                            t.ticket, prev.ticket
                        ),
                    ));
                }
            }
            if t.beat > MAX_RVN {
                return Err(RecordError::new(
                    &field("beat"),
                    format!("must be at most {MAX_RVN}, found {}", t.beat),
                ));
            }
        }
        Ok(())
    }

    /// The queue as JSON text: the form DynamoDB adapters keep in the item's `queue`
    /// string attribute (the record parser takes it in place of the array).
    pub fn queue_json(&self) -> String {
        serde_json::to_string(&self.queue).unwrap_or_else(|_| "[]".to_string())
    }
}

/// A record version number drawn from host entropy (any `u64`): never 0, at most
/// [`MAX_RVN`]. Tools outside an engine (force-release) use it; engines draw their own.
pub fn rvn_from(entropy: u64) -> u64 {
    (entropy & MAX_RVN).max(1)
}

/// The owner id of one process in lease records: `HOST:PID:ENTROPY` with the entropy as 16
/// hex digits. The host supplies its name, process id and 64 random bits; the core formats
/// them, so every binding writes the same shape. Characters of the host name outside
/// printable ASCII, and `:`, become `_`; the name is cut to 200 bytes.
pub fn owner_id(host: &str, pid: u32, entropy: u64) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != ':' {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    let host = if host.is_empty() {
        "host".to_string()
    } else {
        host
    };
    format!("{host}:{pid}:{entropy:016x}")
}

/// Check an owner id supplied by a host instead of [`owner_id`]: 1 to [`MAX_OWNER_LEN`]
/// bytes.
pub fn check_owner(owner: &str) -> Result<(), UsageError> {
    if owner.is_empty() || owner.len() > MAX_OWNER_LEN {
        return Err(UsageError::InvalidOwner {
            reason: format!(
                "length {} is outside 1..={MAX_OWNER_LEN} bytes",
                owner.len()
            ),
        });
    }
    Ok(())
}

/// What an operator's force-release of a stuck lease comes to. One shape in every binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ForceReleaseResult {
    /// The store holds no record for the key: nothing to release.
    NoRecord,
    /// The record has no owner already; it was left unchanged.
    AlreadyFree {
        /// The record found.
        record: LeaseRecord,
    },
    /// The record was replaced by a free one with the epoch bumped; a holder that still
    /// runs finds out at its next renewal and stops.
    Released {
        /// The record written.
        record: LeaseRecord,
    },
    /// The record is not at the rvn the operator expected, or changed between the read and
    /// the compare-and-swap: nothing was written. Read it again and decide again.
    Changed {
        /// The record found, if any.
        current: Option<LeaseRecord>,
    },
}

/// The next step of a force-release, decided by [`plan_force_release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceReleasePlan {
    /// Nothing to write: this is the result.
    Done(ForceReleaseResult),
    /// Carry out this compare-and-swap and pass the reply to [`finish_force_release`].
    Swap(StoreOp),
}

/// Decide a force-release of `key` from the record a `get` returned. With `expected_rvn`,
/// release only the holding the operator inspected. The replacement keeps nothing of the
/// holder: owner empty, epoch plus one (never reused, so an old holder's fence cannot come
/// back), a new rvn from `entropy`, no token (the holder may have written after storing
/// it, so the next writer reads first), and the record is never deleted.
pub fn plan_force_release(
    key: &str,
    found: Option<LeaseRecord>,
    expected_rvn: Option<u64>,
    entropy: u64,
) -> ForceReleasePlan {
    let Some(current) = found else {
        return ForceReleasePlan::Done(ForceReleaseResult::NoRecord);
    };
    if expected_rvn.is_some_and(|rvn| rvn != current.rvn) {
        return ForceReleasePlan::Done(ForceReleaseResult::Changed {
            current: Some(current),
        });
    }
    if current.owner.is_empty() {
        return ForceReleasePlan::Done(ForceReleaseResult::AlreadyFree { record: current });
    }
    let mut rvn = rvn_from(entropy);
    if rvn == current.rvn {
        rvn = rvn % MAX_RVN + 1;
    }
    let record = LeaseRecord {
        owner: String::new(),
        epoch: current.epoch.saturating_add(1),
        rvn,
        lease_ms: current.lease_ms,
        committed_token: None,
        holder: None,
        // A version 2 record keeps its queue: the head claims the freed record next.
        beat: 0,
        ..current.clone()
    };
    ForceReleasePlan::Swap(StoreOp::CompareAndSwap {
        key: key.to_string(),
        expected_rvn: current.rvn,
        record,
    })
}

/// The result of a force-release's compare-and-swap (`swap` is what
/// [`plan_force_release`] returned). `Done`, or a refusal whose record is the one we
/// wrote (a retried request whose first try landed), is `Released`; any other refusal is
/// `Changed`. `Lost` and `Unavailable` return `None`: the outcome is unknown, read the
/// record again.
pub fn finish_force_release(swap: &StoreOp, reply: StoreReply) -> Option<ForceReleaseResult> {
    let StoreOp::CompareAndSwap { record, .. } = swap else {
        return None;
    };
    match reply {
        StoreReply::Done => Some(ForceReleaseResult::Released {
            record: record.clone(),
        }),
        StoreReply::Refused { current } if current.as_ref() == Some(record) => {
            Some(ForceReleaseResult::Released {
                record: record.clone(),
            })
        }
        StoreReply::Refused { current } | StoreReply::Found { record: current } => {
            Some(ForceReleaseResult::Changed { current })
        }
        StoreReply::Lost | StoreReply::Unavailable => None,
    }
}

/// A store operation for the host's adapter to carry out on `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreOp {
    /// Read the record (consistently). Reply `Found`.
    Get {
        /// The record's key.
        key: String,
    },
    /// Create the record if there is none. Reply `Done`, or `Refused` with the record found.
    PutIfAbsent {
        /// The record's key.
        key: String,
        /// The record to create.
        record: LeaseRecord,
    },
    /// Replace the record if its rvn is `expected_rvn`. Reply `Done`, or `Refused` with the
    /// record found (or none).
    CompareAndSwap {
        /// The record's key.
        key: String,
        /// The rvn the record must have.
        expected_rvn: u64,
        /// The replacement.
        record: LeaseRecord,
    },
}

/// What the adapter observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum StoreReply {
    /// A `Get` returned this record, or none.
    Found {
        /// The record.
        record: Option<LeaseRecord>,
    },
    /// A conditional write succeeded.
    Done,
    /// A conditional write's condition failed; the record found instead.
    Refused {
        /// The record.
        current: Option<LeaseRecord>,
    },
    /// The request was sent and no reply came back.
    Lost,
    /// The store could not be reached or refused the request outright.
    Unavailable,
}

/// A lease store in memory: the reference for the three primitives every adapter
/// implements, for tests and for a single process's hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    records: std::collections::BTreeMap<String, LeaseRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record at `key`, if any.
    pub fn record(&self, key: &str) -> Option<&LeaseRecord> {
        self.records.get(key)
    }

    /// Put `record` at `key` directly (for tests that stage another holder).
    pub fn set(&mut self, key: &str, record: Option<LeaseRecord>) {
        match record {
            Some(r) => self.records.insert(key.to_string(), r),
            None => self.records.remove(key),
        };
    }

    /// Carry out one operation, as a consistent store would.
    pub fn apply(&mut self, op: StoreOp) -> StoreReply {
        match op {
            StoreOp::Get { key } => StoreReply::Found {
                record: self.records.get(&key).cloned(),
            },
            StoreOp::PutIfAbsent { key, record } => match self.records.get(&key) {
                None => {
                    self.records.insert(key, record);
                    StoreReply::Done
                }
                Some(current) => StoreReply::Refused {
                    current: Some(current.clone()),
                },
            },
            StoreOp::CompareAndSwap {
                key,
                expected_rvn,
                record,
            } => match self.records.get(&key) {
                Some(current) if current.rvn == expected_rvn => {
                    self.records.insert(key, record);
                    StoreReply::Done
                }
                current => StoreReply::Refused {
                    current: current.cloned(),
                },
            },
        }
    }
}

/// Lease timing, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRule {
    /// How long a holder may go without renewing.
    pub lease_ms: u64,
    /// How often the holder renews; at most half the lease.
    pub renew_ms: u64,
    /// Wait after a takeover before the first write.
    pub lock_delay_ms: u64,
    /// How often a waiting client polls a held record.
    pub poll_ms: u64,
    /// How long a client keeps trying to reach an unavailable store before giving up.
    pub unavailable_ms: u64,
    /// The longest a write may take: a holder never starts a write that would outlive its
    /// lease, and renews first when the lease runs shorter than this.
    pub max_write_ms: u64,
    /// The longest one store operation may take. A driver that has no reply by then
    /// reports it `Lost` (sent, no answer) and the client reads the record back; every
    /// driver and adapter honours this one bound.
    #[serde(default = "default_store_timeout_ms")]
    pub store_timeout_ms: u64,
}

/// The store timeout of the presets' leases.
pub const DEFAULT_STORE_TIMEOUT_MS: u64 = 2_000;

fn default_store_timeout_ms() -> u64 {
    DEFAULT_STORE_TIMEOUT_MS
}

impl Default for LeaseRule {
    fn default() -> Self {
        LeaseRule {
            lease_ms: 10_000,
            renew_ms: 3_000,
            lock_delay_ms: 1_000,
            poll_ms: 100,
            unavailable_ms: 30_000,
            max_write_ms: 2_000,
            store_timeout_ms: DEFAULT_STORE_TIMEOUT_MS,
        }
    }
}

impl LeaseRule {
    /// The store timeout a policy gets when it does not set one: 2 s, or half of what a
    /// lease leaves after a renewal interval when that is shorter (short test leases), so
    /// a renewal is always answered or given up well before the lease it renews runs out.
    pub fn default_store_timeout_ms(&self) -> u64 {
        let room = self.lease_ms.saturating_sub(self.renew_ms) / 2;
        room.clamp(1, DEFAULT_STORE_TIMEOUT_MS)
    }

    /// Check the timings: every field positive and at most a day, the lease at least twice
    /// the renewal interval (so one lost renewal does not lose the lease), and the
    /// lock-delay shorter than the lease.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |path: &str, rule: String| PolicyError {
            path: format!("lease.{path}"),
            rule,
        };
        for (name, v) in [
            ("lease_ms", self.lease_ms),
            ("renew_ms", self.renew_ms),
            ("poll_ms", self.poll_ms),
            ("unavailable_ms", self.unavailable_ms),
            ("max_write_ms", self.max_write_ms),
            ("store_timeout_ms", self.store_timeout_ms),
        ] {
            if !(1..=MAX_DELAY_MS).contains(&v) {
                return Err(err(
                    name,
                    format!("must be in 1..={MAX_DELAY_MS}, found {v}"),
                ));
            }
        }
        if self.lease_ms < 2 * self.renew_ms {
            return Err(err(
                "lease_ms",
                format!(
                    "must be at least twice renew_ms ({} < 2 x {})",
                    self.lease_ms, self.renew_ms
                ),
            ));
        }
        if self.max_write_ms >= self.lease_ms - self.renew_ms {
            return Err(err(
                "max_write_ms",
                format!(
                    "must be shorter than lease_ms - renew_ms ({} >= {})",
                    self.max_write_ms,
                    self.lease_ms - self.renew_ms
                ),
            ));
        }
        // A renewal must be answered (or given up as lost) before the lease it renews runs
        // out, or a slow store could let a holder write on an expired lease.
        if self.store_timeout_ms >= self.lease_ms - self.renew_ms {
            return Err(err(
                "store_timeout_ms",
                format!(
                    "must be shorter than lease_ms - renew_ms ({} >= {})",
                    self.store_timeout_ms,
                    self.lease_ms - self.renew_ms
                ),
            ));
        }
        if self.lock_delay_ms >= self.lease_ms {
            return Err(err(
                "lock_delay_ms",
                format!(
                    "must be shorter than lease_ms ({} >= {})",
                    self.lock_delay_ms, self.lease_ms
                ),
            ));
        }
        Ok(())
    }
}

/// What the lease client reports to its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LeaseEvent {
    /// The lease is held; writes may start.
    Acquired {
        /// The fence of this holding.
        epoch: u64,
        /// The committed token the record carried.
        committed_token: Option<String>,
        /// Whether a stale holder was taken over.
        takeover: bool,
    },
    /// The lease was lost (another client took it over, or a renewal failed): stop writing.
    Lost,
    /// The store stayed unavailable: give up without writing.
    Unavailable,
    /// The lease was released with the committed token stored.
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// A `get` is outstanding (or, with `Some`, will be sent at the time).
    Reading,
    /// A write of the record is outstanding; `intended` is what we tried to write.
    Writing {
        intended: LeaseRecord,
        purpose: Purpose,
    },
    /// After a lost reply: reading back whether `intended` landed.
    Verifying {
        intended: LeaseRecord,
        purpose: Purpose,
    },
    /// Waiting before the next `get`: polling a held record, or retrying an unavailable
    /// store; `verify` when the `get` checks whether an unanswered write landed.
    Waiting {
        until: u64,
        verify: Option<(LeaseRecord, Purpose)>,
    },
    /// Waiting out the lock-delay after a takeover.
    Delaying {
        until: u64,
    },
    /// Holding the lease.
    Held,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Claim a free record, take over a stale holding (`takeover`), or accept a grant;
    /// `delay`: wait the lock-delay before writing (a write of the holding taken over may
    /// be in flight).
    Acquire {
        takeover: bool,
        delay: bool,
    },
    Renew,
    Release,
    /// Append our ticket to the queue (version 2).
    Register,
    /// Bump our ticket's progress counter (version 2).
    Beat,
}

/// Most registration refusals in a row that widen the backoff; beyond it the window stays.
const MAX_REFUSAL_STEPS: u64 = 8;

/// What a client watches to tell a dead party from a live one: the rvn of a version 1
/// record, the owner, epoch and beat of a version 2 holding.
fn progress(r: &LeaseRecord) -> (String, u64, u64) {
    if r.version < 2 {
        (String::new(), 0, r.rvn)
    } else {
        (r.owner.clone(), r.epoch, r.beat)
    }
}

/// Watching one party for progress: what it showed, since when, in how many replies.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Watch<K> {
    shown: K,
    since: u64,
    replies: u64,
}

impl<K: PartialEq> Watch<K> {
    fn new(shown: K, now: u64) -> Self {
        Watch {
            shown,
            since: now,
            replies: 0,
        }
    }

    /// Count one more reply showing `shown`; start again if it changed.
    fn see(&mut self, shown: K, now: u64) {
        if self.shown == shown {
            self.replies += 1;
        } else {
            *self = Watch::new(shown, now);
        }
    }

    /// The staleness rule: unchanged for a whole lease on our clock, across enough replies
    /// to fill a lease even at the shortest poll interval.
    fn stale(&self, now: u64, lease_ms: u64, poll_ms: u64) -> bool {
        let replies_needed = (2 * lease_ms).div_ceil(poll_ms.max(1));
        now.saturating_sub(self.since) >= lease_ms && self.replies >= replies_needed
    }
}

/// A sans-IO client of one entity's lease.
#[derive(Debug)]
pub struct LeaseClient {
    key: String,
    owner: String,
    holder: Option<String>,
    rule: LeaseRule,
    rng: DecisionRng,
    state: State,
    pending: Option<StoreOp>,
    events: Vec<LeaseEvent>,
    /// The record as we hold it (the latest we know: waiters change the queue under us).
    held: Option<LeaseRecord>,
    /// When our hold expires on our own clock: the send time of the last successful
    /// acquire or renewal plus the lease.
    expires_at: u64,
    renew_at: u64,
    /// The holding we watch for progress while waiting (owner, epoch, beat; or the rvn of
    /// a version 1 record).
    observed: Option<Watch<(String, u64, u64)>>,
    /// The holding (owner, epoch) we saw last, and when we first saw it: how long the
    /// current holder has held, for the expected turn.
    holding_seen: Option<((String, u64), u64)>,
    /// The queued waiters we watch for progress, by owner: (ticket, beat).
    waiters: std::collections::BTreeMap<String, Watch<(u64, u64)>>,
    unavailable_since: Option<u64>,
    /// When the last write of the record was sent: a lease runs from there, even when a
    /// lost reply made us read it back later.
    write_sent_at: u64,
    /// When our holding began (the send time of the claim, takeover or accept, or when we saw our grant): the start of the hold we publish.
    granted_at: u64,
    /// When our ticket's next beat is due.
    beat_at: u64,
    /// Registration refusals in a row, and the attempts of the last registration.
    refusals: u64,
    attempts: u64,
    /// A record to decide from after a backoff, instead of reading it again.
    decide_again: Option<LeaseRecord>,
    /// When the outstanding store operation was sent (`None`: unknown, the first read of
    /// an acquire, whose time the host does not pass).
    sent_at: Option<u64>,
    /// The send time of our latest operation in this acquire whose reply did not grant us
    /// the lease: it was applied before any grant to us landed, so a lease counted from it
    /// ends no later than a lease counted by anyone who saw the grant.
    before_grant: Option<u64>,
    /// When our release was first sent (a refused one is sent again).
    release_sent: Option<u64>,
}

impl LeaseClient {
    /// A client for `key`, owned by `owner` (unique per process), with an optional holder
    /// description, drawing record versions from a generator seeded with `seed`.
    pub fn new(key: &str, owner: &str, holder: Option<String>, rule: LeaseRule, seed: u64) -> Self {
        LeaseClient {
            key: key.to_string(),
            owner: owner.to_string(),
            holder,
            rule,
            rng: DecisionRng::new(seed),
            state: State::Idle,
            pending: None,
            events: Vec::new(),
            held: None,
            expires_at: 0,
            renew_at: 0,
            observed: None,
            holding_seen: None,
            waiters: std::collections::BTreeMap::new(),
            unavailable_since: None,
            write_sent_at: 0,
            granted_at: 0,
            beat_at: 0,
            refusals: 0,
            attempts: 0,
            decide_again: None,
            sent_at: None,
            before_grant: None,
            release_sent: None,
        }
    }

    fn new_rvn(&mut self) -> u64 {
        self.rng.uniform(1, MAX_RVN)
    }

    fn send(&mut self, op: StoreOp) {
        self.pending = Some(op);
    }

    fn get(&mut self, now: Option<u64>) {
        self.sent_at = now;
        self.state = State::Reading;
        let key = self.key.clone();
        self.send(StoreOp::Get { key });
    }

    fn write(&mut self, now: u64, expected: Option<u64>, record: LeaseRecord, purpose: Purpose) {
        let key = self.key.clone();
        self.write_sent_at = now;
        self.sent_at = Some(now);
        self.state = State::Writing {
            intended: record.clone(),
            purpose,
        };
        let op = match expected {
            None => StoreOp::PutIfAbsent { key, record },
            Some(expected_rvn) => StoreOp::CompareAndSwap {
                key,
                expected_rvn,
                record,
            },
        };
        self.send(op);
    }

    /// Start acquiring the lease.
    pub fn acquire(&mut self) {
        self.observed = None;
        self.holding_seen = None;
        self.waiters.clear();
        self.unavailable_since = None;
        self.refusals = 0;
        self.attempts = 0;
        self.decide_again = None;
        self.before_grant = None;
        self.release_sent = None;
        self.get(None);
    }

    /// Compare-and-swap attempts of the last registration in the queue (0: none yet).
    pub fn registration_attempts(&self) -> u64 {
        self.attempts
    }

    /// Our release of `current` (the record as we hold it): with waiters queued, the lease
    /// goes to the head in the same write (a new epoch, `beat` 0, the token carried);
    /// otherwise the record is left free. Either way the expected hold is updated.
    fn release_of(
        &mut self,
        now: u64,
        current: &LeaseRecord,
        token: Option<String>,
    ) -> LeaseRecord {
        // The hold ends when the release is first sent: the time a release spends
        // refused by waiters' writes is contention, not work, and a waiter that sleeps
        // for it arrives late.
        let ended = *self.release_sent.get_or_insert(now);
        let sample = ended
            .saturating_sub(self.granted_at)
            .clamp(1, current.lease_ms.max(1));
        let hold_ms = if current.hold_ms == 0 {
            sample
        } else {
            (current.hold_ms.saturating_mul(7).saturating_add(sample)) / 8
        };
        let mut queue = current.queue.clone();
        let (owner, epoch) = if queue.is_empty() {
            (String::new(), current.epoch)
        } else {
            let head = queue.remove(0);
            (head.owner, current.epoch.saturating_add(1))
        };
        LeaseRecord {
            version: RECORD_VERSION,
            owner,
            epoch,
            rvn: self.new_rvn(),
            lease_ms: current.lease_ms,
            committed_token: token,
            holder: None,
            beat: 0,
            next_ticket: current.next_ticket,
            hold_ms: hold_ms.min(MAX_DELAY_MS),
            queue,
        }
    }

    /// Release the lease. `written` is `None` when no write was attempted under it (the
    /// record keeps its committed token), or `Some(token)` when one was: the token of the
    /// revision it committed, or `None` when that is unknown, so the next holder reads
    /// before writing instead of trusting a token that may be stale. With waiters queued
    /// (a version 2 record) the release grants the lease to the head of the queue. Without
    /// a lease held this does nothing.
    pub fn release(&mut self, now: u64, written: Option<Option<String>>) {
        let Some(held) = self.held.clone() else {
            return;
        };
        let committed_token = match written {
            None => held.committed_token.clone(),
            Some(token) => token,
        };
        let record = self.release_of(now, &held, committed_token);
        self.write(now, Some(held.rvn), record, Purpose::Release);
    }

    /// Whether a write expected to take `duration_ms` may start now: the lease is held and
    /// will not run out before the write ends.
    pub fn may_write(&self, now: u64, duration_ms: u64) -> bool {
        self.state == State::Held && now.saturating_add(duration_ms) < self.expires_at
    }

    /// Whether the lease is held and usable now (acquired, any lock-delay over, no store
    /// operation outstanding).
    pub fn holding(&self) -> bool {
        self.state == State::Held
    }

    /// Renew at once (before a write the lease might not outlast). Does nothing unless the
    /// lease is held.
    pub fn renew_now(&mut self, now: u64) {
        if self.state == State::Held {
            self.renew_at = now;
            self.handle_timeout(now);
        }
    }

    /// The fence of the current holding.
    pub fn epoch(&self) -> Option<u64> {
        self.held.as_ref().map(|h| h.epoch)
    }

    /// When the current holding runs out on our clock (the send time of the last acquire
    /// or renewal that landed, plus the lease), or `None` when nothing is held. A host
    /// whose work is not a sequence of commanded writes (a command run under the lease)
    /// stops that work at this time if no renewal has landed since: from then on another
    /// client may take the lease over, and the reply that would tell this client so may
    /// still be on its way.
    pub fn expires_at(&self) -> Option<u64> {
        self.held.as_ref().map(|_| self.expires_at)
    }

    /// The next store operation to carry out.
    pub fn poll_op(&mut self) -> Option<StoreOp> {
        self.pending.take()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LeaseEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// When [`LeaseClient::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Waiting { until, .. } | State::Delaying { until } => Some(until),
            State::Held => Some(self.renew_at),
            _ => None,
        }
    }

    /// Our renewal of `current`: the holding's beat bumped and our holder description (a
    /// grant held without an accept carries none yet), everything else as found.
    fn renewal_of(&mut self, current: &LeaseRecord) -> LeaseRecord {
        LeaseRecord {
            version: RECORD_VERSION,
            rvn: self.new_rvn(),
            holder: self.holder.clone(),
            beat: current.beat.saturating_add(1).min(MAX_RVN),
            ..current.clone()
        }
    }

    /// Fire due timers: polls, the end of a lock-delay, renewals.
    pub fn handle_timeout(&mut self, now: u64) {
        match self.state.clone() {
            State::Waiting { until, verify } if now >= until => match verify {
                None => match self.decide_again.take() {
                    Some(record) => self.decide(now, Some(record), false),
                    None => self.get(Some(now)),
                },
                Some((intended, purpose)) => {
                    self.state = State::Verifying { intended, purpose };
                    let key = self.key.clone();
                    self.sent_at = Some(now);
                    self.send(StoreOp::Get { key });
                }
            },
            State::Delaying { until } if now >= until => self.state = State::Held,
            State::Held if now >= self.renew_at => {
                let Some(held) = self.held.clone() else {
                    return self.lost();
                };
                let record = self.renewal_of(&held);
                self.write(now, Some(held.rvn), record, Purpose::Renew);
            }
            _ => {}
        }
    }

    /// Our holding begins: `record` shows it (what we wrote, or the record read back).
    /// `delay` is false when no write of an earlier holding can be in flight.
    fn granted(&mut self, now: u64, record: LeaseRecord, takeover: bool, delay: bool) {
        self.expires_at = self.write_sent_at.saturating_add(record.lease_ms);
        self.renew_at = self.write_sent_at.saturating_add(self.rule.renew_ms);
        self.granted_at = self.write_sent_at;
        self.events.push(LeaseEvent::Acquired {
            epoch: record.epoch,
            committed_token: record.committed_token.clone(),
            takeover,
        });
        self.held = Some(record);
        self.decide_again = None;
        if delay && self.rule.lock_delay_ms > 0 {
            self.state = State::Delaying {
                until: now.saturating_add(self.rule.lock_delay_ms),
            };
        } else {
            self.state = State::Held;
        }
    }

    fn lost(&mut self) {
        self.held = None;
        self.state = State::Done;
        self.events.push(LeaseEvent::Lost);
    }

    /// Our record claiming the lease after `previous` (none: the first holder ever), with
    /// the tickets in `queue`. The epoch is bumped. The committed token is carried over from
    /// a released record only: a holder that never released (taken over, or this owner's own leftover
    /// after a crash) may have landed a write after the token was stored, so the next
    /// holder must read.
    fn claim(&mut self, previous: Option<&LeaseRecord>, queue: Vec<Ticket>) -> LeaseRecord {
        let token_trusted = previous.is_some_and(|r| r.owner.is_empty());
        LeaseRecord {
            version: RECORD_VERSION,
            owner: self.owner.clone(),
            epoch: previous.map_or(1, |r| r.epoch.saturating_add(1)),
            rvn: self.new_rvn(),
            lease_ms: self.rule.lease_ms,
            committed_token: previous
                .filter(|_| token_trusted)
                .and_then(|r| r.committed_token.clone()),
            holder: self.holder.clone(),
            beat: 1,
            next_ticket: previous.map_or(0, |r| r.next_ticket),
            hold_ms: previous.map_or(0, |r| r.hold_ms),
            queue,
        }
    }

    /// Whether `r` grants us the lease by a release (version 2, our owner, `beat` 0).
    fn grants_us(&self, r: &LeaseRecord) -> bool {
        r.version >= 2 && r.owner == self.owner && r.beat == 0
    }

    /// Watch the queued waiters of `r` for progress (one more reply).
    fn watch_waiters(&mut self, now: u64, r: &LeaseRecord) {
        self.waiters
            .retain(|owner, _| r.queue.iter().any(|t| &t.owner == owner));
        for t in r.queue.iter().filter(|t| t.owner != self.owner) {
            let shown = (t.ticket, t.beat);
            match self.waiters.get_mut(&t.owner) {
                Some(w) => w.see(shown, now),
                None => {
                    self.waiters.insert(t.owner.clone(), Watch::new(shown, now));
                }
            }
        }
    }

    /// Whether we judged the waiter holding `t` dead: its ticket unchanged for a whole
    /// lease on our clock, seen again in a later reply. The holder's rule also asks for
    /// enough replies to fill a lease at the shortest poll interval, so that a clock
    /// jumping forward cannot let two writers in; a waiter judged dead wrongly loses its
    /// place (it registers again at the tail), never exclusion, so waiters, who sleep
    /// between beats, are not made to poll for it.
    fn dead(&self, now: u64, t: &Ticket, lease_ms: u64) -> bool {
        self.waiters.get(&t.owner).is_some_and(|w| {
            w.shown == (t.ticket, t.beat)
                && now.saturating_sub(w.since) >= lease_ms
                && w.replies >= 1
        })
    }

    /// The queue of `r` without the tickets we judged dead.
    fn live_queue(&self, now: u64, r: &LeaseRecord) -> Vec<Ticket> {
        r.queue
            .iter()
            .filter(|t| t.owner == self.owner || !self.dead(now, t, r.lease_ms))
            .cloned()
            .collect()
    }

    /// A version 2 record like `r` with `queue` and a new rvn, for a waiter's write.
    fn with_queue(&mut self, r: &LeaseRecord, queue: Vec<Ticket>) -> LeaseRecord {
        LeaseRecord {
            version: RECORD_VERSION,
            rvn: self.new_rvn(),
            queue,
            ..r.clone()
        }
    }

    /// Decide from the record found what to do next while acquiring. `fresh` when the
    /// record is a store reply just received (it counts towards the staleness rule), not
    /// one kept over a backoff.
    fn decide(&mut self, now: u64, record: Option<LeaseRecord>, fresh: bool) {
        let Some(r) = record else {
            let mine = self.claim(None, Vec::new());
            return self.write(
                now,
                None,
                mine,
                Purpose::Acquire {
                    takeover: false,
                    delay: false,
                },
            );
        };
        if fresh && r.version >= 2 {
            self.watch_waiters(now, &r);
        }
        let queue = self.live_queue(now, &r);
        let mine_at = queue.iter().position(|t| t.owner == self.owner);
        // The live tickets ahead of us (all of them when we hold none).
        let ahead = mine_at.unwrap_or(queue.len());
        let without_me: Vec<Ticket> = queue
            .iter()
            .filter(|t| t.owner != self.owner)
            .cloned()
            .collect();

        if r.owner == self.owner {
            if self.grants_us(&r) {
                // Granted to us by a release. Our last operation that did not show the
                // grant was applied before it landed, so a lease counted from that
                // operation's send time ends before anyone who saw the grant counts a
                // whole lease: hold at once, with no write. When that leaves less than
                // the renewal interval, accept by compare-and-swap instead: the lease then
                // runs from the accept, as it runs from a claim.
                if let Some(since) = self
                    .before_grant
                    .filter(|&t| now < t.saturating_add(self.rule.renew_ms))
                {
                    self.write_sent_at = since;
                    self.granted(now, r, false, false);
                    // The expected hold measures the hold from here, not how late we looked.
                    self.granted_at = now;
                    return;
                }
                let accept = LeaseRecord {
                    holder: self.holder.clone(),
                    beat: 1,
                    ..self.with_queue(&r, without_me)
                };
                return self.write(
                    now,
                    Some(r.rvn),
                    accept,
                    Purpose::Acquire {
                        takeover: false,
                        delay: false,
                    },
                );
            }
            // Left behind by this owner (an interrupted release): the engine runs one
            // operation per entity and owner at a time, so it is free for us.
            let mine = self.claim(Some(&r), without_me);
            return self.write(
                now,
                Some(r.rvn),
                mine,
                Purpose::Acquire {
                    takeover: false,
                    delay: false,
                },
            );
        }
        if r.owner.is_empty() {
            if ahead == 0 {
                let mine = self.claim(Some(&r), without_me);
                return self.write(
                    now,
                    Some(r.rvn),
                    mine,
                    Purpose::Acquire {
                        takeover: false,
                        delay: false,
                    },
                );
            }
            return self.wait_or_register(now, &r, queue, mine_at);
        }
        // Held (or granted) by someone else: stale only once its progress has stood still
        // for a whole lease on our own clock, and across enough polls to fill a lease even
        // at the shortest poll interval, so a clock jumping forward cannot make a live
        // holder look stale.
        let holding = (r.owner.clone(), r.epoch);
        if self
            .holding_seen
            .as_ref()
            .map_or(true, |(h, _)| *h != holding)
        {
            self.holding_seen = Some((holding, now));
        }
        let shown = progress(&r);
        let stale = if fresh {
            match &mut self.observed {
                Some(w) => w.see(shown, now),
                None => self.observed = Some(Watch::new(shown, now)),
            }
            self.observed
                .as_ref()
                .is_some_and(|w| w.stale(now, r.lease_ms, self.rule.poll_ms))
        } else {
            false
        };
        if stale && ahead == 0 {
            // A grantee holds from the moment it sees its grant, so a grant (beat 0) may
            // have writes in flight like any holding: the lock-delay applies.
            let mine = self.claim(Some(&r), without_me);
            return self.write(
                now,
                Some(r.rvn),
                mine,
                Purpose::Acquire {
                    takeover: true,
                    delay: true,
                },
            );
        }
        self.wait_or_register(now, &r, queue, mine_at)
    }

    /// Not our turn: register, beat, or wait (until our expected turn, or a poll).
    fn wait_or_register(
        &mut self,
        now: u64,
        r: &LeaseRecord,
        queue: Vec<Ticket>,
        mine_at: Option<usize>,
    ) {
        // A version 1 record is polled as a version 1 client would: registering would
        // change its rvn under a version 1 holder, which would lose its lease.
        let queued_record = r.version >= 2;
        let dropped_dead = queue.len() != r.queue.len();
        match mine_at {
            None if queued_record && queue.len() < MAX_QUEUE => {
                let mut queue = queue;
                let ticket = r.next_ticket;
                queue.push(Ticket {
                    owner: self.owner.clone(),
                    ticket,
                    beat: 1,
                });
                let mut record = self.with_queue(r, queue);
                record.next_ticket = ticket.saturating_add(1).min(MAX_RVN);
                self.attempts = self.attempts.saturating_add(1);
                return self.write(now, Some(r.rvn), record, Purpose::Register);
            }
            Some(i) if now >= self.beat_at || dropped_dead => {
                let mut queue = queue;
                queue[i].beat = queue[i].beat.saturating_add(1).min(MAX_RVN);
                let record = self.with_queue(r, queue);
                return self.write(now, Some(r.rvn), record, Purpose::Beat);
            }
            _ => {}
        }
        let poll = self.rule.poll_ms / 2 + self.rng.uniform(0, self.rule.poll_ms / 2);
        let mut until = now.saturating_add(poll);
        if mine_at.is_none() && queued_record {
            // The queue is full: a slot opens with every hand-off, and every waiter left
            // out racing for it would refuse the holder's release. Look again when about
            // a quarter to a half of the queue has drained (jittered, so the arrivals
            // spread), well before it is empty.
            let cycle = r.hold_ms.max(self.rule.poll_ms);
            let drain = cycle.saturating_mul(queue.len() as u64);
            until = until.max(now.saturating_add(self.rng.uniform(drain / 4, drain / 2)));
        }
        if let Some(i) = mine_at {
            // Sleep until our expected turn: the rest of the current hold, then a whole
            // expected hold per waiter ahead; poll at the normal interval after it.
            let held_for = self
                .holding_seen
                .as_ref()
                .filter(|((owner, _), _)| !owner.is_empty())
                .map_or(0, |(_, since)| now.saturating_sub(*since));
            // The holders' published hold: a lower bound on the time per hand-off (the
            // hand-off gap comes on top), so an estimate from it errs early, which costs a
            // look, never late, which would leave the lease idle. With none known yet (the
            // first holder has not released) a poll interval per place spreads the looks.
            let cycle = if r.hold_ms == 0 {
                self.rule.poll_ms
            } else {
                r.hold_ms
            };

            let turn = if i == 0 {
                // Next in line: look again halfway through what is left of the current
                // holding's expected hold (we may have first seen it late), then poll.
                now.saturating_add(cycle.saturating_sub(held_for) / 2)
            } else {
                // Further back: sleep through 7/8 of the hand-offs ahead at the published
                // hold and estimate again from what we find then, so a wrong estimate
                // costs a look, and polling is left to the head.
                now.saturating_add(cycle.saturating_mul(i as u64).saturating_mul(7) / 8)
            };
            until = until.max(turn).min(self.beat_at.max(now.saturating_add(1)));
        }
        self.state = State::Waiting {
            until,
            verify: None,
        };
    }

    /// Whether `r` shows our write `intended` for `purpose`: the record may have changed
    /// since it landed (a waiter registered after it), so equality would be too strict.
    fn shows(&self, r: &LeaseRecord, intended: &LeaseRecord, purpose: Purpose) -> bool {
        if r == intended {
            return true;
        }
        if r.version < 2 || intended.version < 2 {
            return false;
        }
        let my_ticket = |rec: &LeaseRecord| {
            rec.queue
                .iter()
                .find(|t| t.owner == self.owner)
                .map(|t| (t.ticket, t.beat))
        };
        match purpose {
            // Only we write our owner with a beat of 1 or more under this epoch.
            Purpose::Acquire { .. } | Purpose::Renew => {
                r.owner == self.owner && r.epoch == intended.epoch && r.beat == intended.beat
            }
            Purpose::Release => {
                r.owner == intended.owner
                    && r.epoch == intended.epoch
                    && r.beat == 0
                    && r.committed_token == intended.committed_token
            }
            Purpose::Register => match (my_ticket(r), my_ticket(intended)) {
                (Some((t, _)), Some((want, _))) => t == want,
                _ => false,
            },
            Purpose::Beat => match (my_ticket(r), my_ticket(intended)) {
                (Some((t, b)), Some((want_t, want_b))) => t == want_t && b >= want_b,
                _ => false,
            },
        }
    }

    /// Our write landed; `current` is the record that shows it (what we wrote, or what a
    /// refusal or read-back returned since).
    fn on_written(&mut self, now: u64, current: LeaseRecord, purpose: Purpose) {
        self.unavailable_since = None;
        match purpose {
            Purpose::Acquire { takeover, delay } => self.granted(now, current, takeover, delay),
            Purpose::Renew => {
                self.expires_at = self.write_sent_at.saturating_add(current.lease_ms);
                self.renew_at = self.write_sent_at.saturating_add(self.rule.renew_ms);
                self.held = Some(current);
                self.state = State::Held;
            }
            Purpose::Release => {
                self.held = None;
                self.state = State::Done;
                self.events.push(LeaseEvent::Released);
            }
            Purpose::Register | Purpose::Beat => {
                self.refusals = 0;
                // Half a lease between beats: a waiter is judged dead only after a whole
                // lease without one, and every beat is a write that can refuse the
                // holder's renewal or release.
                self.beat_at = self.write_sent_at.saturating_add(self.rule.lease_ms / 2);
                // Not a fresh observation of the holder: our own write's reply.
                self.decide(now, Some(current), false)
            }
        }
    }

    /// A refusal (or a read-back) showing `current`, not our write.
    fn on_refused(
        &mut self,
        now: u64,
        current: Option<LeaseRecord>,
        intended: &LeaseRecord,
        purpose: Purpose,
    ) {
        match purpose {
            Purpose::Acquire { .. } => self.decide(now, current, true),
            Purpose::Register | Purpose::Beat => {
                // Contention on the record: back off in a window sized to the refusals
                // seen, then decide again from the record the refusal returned.
                self.refusals = self.refusals.saturating_add(1);
                // Exponential in the refusals: contenders that arrived together spread
                // over a window that doubles until it fits them, O(log N) attempts each.
                let steps = self.refusals.min(MAX_REFUSAL_STEPS);
                let window = (self.rule.poll_ms / 2).saturating_mul(1 << (steps - 1));
                // At least half a poll: the holder sends its refused renewal or release
                // again at once, so it is ahead of the waiters refused with it.
                let delay = self.rule.poll_ms / 2 + self.rng.uniform(0, window);
                // No backoff when the record found lets us take the lease (free with no
                // live waiter ahead, or granted to us): contention is over for us.
                let ours = current.as_ref().is_some_and(|r| {
                    r.owner == self.owner
                        || (r.owner.is_empty()
                            && self
                                .live_queue(now, r)
                                .first()
                                .map_or(true, |t| t.owner == self.owner))
                });
                match current {
                    Some(r) if delay > 0 && !ours => {
                        if r.version >= 2 {
                            self.watch_waiters(now, &r);
                        }
                        // After a backoff longer than a poll the record found is most
                        // likely stale and a swap on it refused: read it afresh instead.
                        self.decide_again = (delay <= self.rule.poll_ms).then_some(r);
                        self.state = State::Waiting {
                            until: now.saturating_add(delay),
                            verify: None,
                        };
                    }
                    other => self.decide(now, other, true),
                }
            }
            // Still our holding and only the queue changed: write again on the record
            // found. Otherwise our holding is gone: never write without it.
            Purpose::Renew | Purpose::Release => match (current, self.held.clone()) {
                (Some(c), Some(h))
                    if c.version >= 2
                        && c.owner == self.owner
                        && c.epoch == h.epoch
                        && c.beat == h.beat =>
                {
                    self.held = Some(c.clone());
                    let record = match purpose {
                        Purpose::Renew => self.renewal_of(&c),
                        _ => self.release_of(now, &c, intended.committed_token.clone()),
                    };
                    self.write(now, Some(c.rvn), record, purpose);
                }
                _ => self.lost(),
            },
        }
    }

    /// Feed the adapter's reply to the last store operation.
    pub fn handle(&mut self, now: u64, reply: StoreReply) {
        // A reply that does not grant us the lease shows the store before any grant to us
        // landed: a lease may be counted from its request's send time.
        let answered = match &reply {
            StoreReply::Found { record } | StoreReply::Refused { current: record } => {
                Some(!record.as_ref().is_some_and(|r| self.grants_us(r)))
            }
            StoreReply::Done => Some(true),
            StoreReply::Lost | StoreReply::Unavailable => None,
        };
        if answered == Some(true) && self.held.is_none() {
            if let Some(sent) = self.sent_at {
                self.before_grant = Some(sent);
            }
        }
        let state = std::mem::replace(&mut self.state, State::Idle);
        match (state, reply) {
            (State::Reading, StoreReply::Found { record }) => {
                self.unavailable_since = None;
                self.decide(now, record, true)
            }
            (State::Writing { intended, purpose }, StoreReply::Done) => {
                self.on_written(now, intended, purpose)
            }
            // A refusal that shows our own write means it landed: an adapter (or its SDK)
            // retried a request whose first try succeeded, and the retry found the record
            // already written (perhaps changed since by a waiter). The rvn is 53 random bits
            // drawn for this one write, and the counters `shows` checks are written by us
            // alone, so no other writer produces such a record.
            (State::Writing { intended, purpose }, StoreReply::Refused { current: Some(c) })
                if self.shows(&c, &intended, purpose) =>
            {
                self.on_written(now, c, purpose)
            }
            (State::Writing { intended, purpose }, StoreReply::Refused { current }) => {
                self.on_refused(now, current, &intended, purpose)
            }
            (State::Writing { intended, purpose }, StoreReply::Lost) => {
                self.state = State::Verifying { intended, purpose };
                let key = self.key.clone();
                self.sent_at = Some(now);
                self.send(StoreOp::Get { key });
            }
            (State::Verifying { intended, purpose }, StoreReply::Found { record }) => {
                self.unavailable_since = None;
                let unchanged = record.is_some() && record == self.held;
                match record {
                    Some(r) if self.shows(&r, &intended, purpose) => {
                        self.on_written(now, r, purpose)
                    }
                    record if unchanged && matches!(purpose, Purpose::Renew | Purpose::Release) => {
                        // The request never landed and the record is still the one we hold:
                        // nobody took the lease over, so send the same write again.
                        let expected = record.map(|h| h.rvn);
                        self.write(now, expected, intended, purpose)
                    }
                    record => self.on_refused(now, record, &intended, purpose),
                }
            }
            (state, StoreReply::Unavailable | StoreReply::Lost)
                if matches!(
                    state,
                    State::Reading | State::Writing { .. } | State::Verifying { .. }
                ) =>
            {
                let since = *self.unavailable_since.get_or_insert(now);
                let verify = match state {
                    State::Writing { intended, purpose }
                    | State::Verifying { intended, purpose } => Some((intended, purpose)),
                    _ => None,
                };
                let holding = matches!(verify, Some((_, Purpose::Renew | Purpose::Release)));
                if holding && now >= self.expires_at {
                    self.lost();
                } else if !holding && now.saturating_sub(since) >= self.rule.unavailable_ms {
                    self.state = State::Done;
                    self.events.push(LeaseEvent::Unavailable);
                } else {
                    // Wait a poll interval, then read back what is there.
                    self.state = State::Waiting {
                        until: now.saturating_add(self.rule.poll_ms),
                        verify,
                    };
                }
            }
            (state, _) => self.state = state,
        }
    }
}
