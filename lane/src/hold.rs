//! Leases held across work of any length: the driver of the core's [`LeaseClient`] for a
//! writer that is not a sequence of engine-commanded attempts but one piece of work whose
//! length nobody knows (a command such as `terraform apply`, run by `writelane hold`).
//!
//! The protocol is the core's, unchanged: the same records, keys and rules as the shared
//! lanes of every binding's `Lane`, so a hold and a `Lane` on the same store serialise
//! against each other. What differs is the host's side of it:
//!
//! - the work is one write of unknown length, so no `max_write_ms` bounds it and no
//!   deadline cuts it short: the lease is renewed every `lease.renew_ms` until it is
//!   released or lost;
//! - several entities are acquired one at a time in sorted order (duplicates dropped), so
//!   two holders of {A, B} and {B, A} cannot each hold one and wait for the other;
//! - while acquiring, each record found held by someone else is reported (for progress
//!   lines), with how long that holding has been seen on our own clock;
//! - a lost lease (a refused renewal, or the store unreachable past the lease) is reported
//!   as soon as the core decides it, so the host can stop the work;
//! - the release stores no change token: the work may have written anything, so the next
//!   holder reads first.
//!
//! Each entity's lease is kept by a task of its own on the current tokio runtime. Dropping
//! a [`Holding`], or an [`LeaseHolder::acquire`] future before it resolves, releases every
//! lease acquired so far in the background.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use writelane_core::lease::{
    check_owner, LeaseClient, LeaseEvent, LeaseRecord, LeaseRule, StoreOp, StoreReply,
    MAX_HOLDER_LEN,
};
use writelane_core::{Policy, UsageError, MAX_ENTITY_LEN};

use crate::clock::{Clock, TokioClock};
use crate::store::{apply, Store};
use crate::types::{default_owner, entropy};

/// How a [`LeaseHolder`] is built. Every field is optional.
#[derive(Clone, Default)]
pub struct HoldOptions {
    /// This process in lease records; default [`default_owner`].
    pub owner: Option<String>,
    /// Who holds the leases, in words (host, user, CI run, command), stored in each record
    /// for people looking at a stuck lease; at most `MAX_HOLDER_LEN` bytes.
    pub holder: Option<String>,
    /// The clock; default [`TokioClock`].
    pub clock: Option<Arc<dyn Clock>>,
    /// Seed of the record versions drawn; default random.
    pub seed: Option<u64>,
}

/// Where one entity's lease stands, as its keeper reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Acquiring. `current` is the record found held by someone else, and `held_for_ms`
    /// how long that holding (its owner and epoch) has been seen on our clock; `None`
    /// (and 0) when the store did not answer the read.
    Waiting {
        /// The other holder's record.
        current: Option<LeaseRecord>,
        /// Milliseconds since this holding was first seen.
        held_for_ms: u64,
    },
    /// Held, under this fence.
    Held {
        /// The epoch of our holding.
        epoch: u64,
    },
    /// The lease was lost while held: a renewal was refused (someone took it over or an
    /// operator force-released it), or the store stayed unreachable past the lease.
    Lost,
    /// The store stayed unreachable for `lease.unavailable_ms` while acquiring.
    Unavailable,
    /// Released (or never acquired, when the acquire was abandoned).
    Released,
}

/// Why leases could not be acquired, kept or released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    /// An entity, the owner or the holder text is malformed. Nothing was acquired.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The store stayed unreachable for the policy's `lease.unavailable_ms` while
    /// acquiring this entity's lease.
    #[error("the lease store did not answer for {entity:?}")]
    Unavailable {
        /// The entity.
        entity: String,
    },
    /// This entity's lease was lost while held: a refused renewal or release (taken over,
    /// or force-released), or the store unreachable past the lease.
    #[error("the lease of {entity:?} was lost")]
    Lost {
        /// The entity.
        entity: String,
    },
}

/// Acquires the leases of entities for work of any length, under one policy's lease rule
/// on one store. Cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use writelane::{HoldOptions, LeaseHolder, LeaseStatus, MemoryStore, Policy, Store};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let options = HoldOptions { holder: Some("ci job 7".into()), ..HoldOptions::default() };
/// let holder = LeaseHolder::new(store, &Policy::preset("iam")?, options)?;
/// let mut holding = holder.holding(&["role/b", "role/a"])?;
/// let wait = holding.acquire(|entity, status| {
///     if let LeaseStatus::Waiting { current: Some(r), held_for_ms } = status {
///         eprintln!("waiting for {entity}: held by {:?} for {held_for_ms} ms", r.holder);
///     }
/// });
/// if tokio::time::timeout(Duration::from_secs(60), wait).await.is_err() {
///     holding.release().await?; // gave up: free what was acquired
///     return Ok(());
/// }
/// assert_eq!(holding.fences(), [("role/a".to_string(), 1), ("role/b".to_string(), 1)]);
/// let ended = tokio::select! {
///     () = tokio::time::sleep(Duration::from_millis(10)) => Ok(()), // the work
///     lost = holding.lost() => Err(lost), // stop the work: another holder may write now
/// };
/// assert!(ended.is_ok());
/// holding.release().await?; // compare-and-swap, epoch kept, no token
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct LeaseHolder {
    store: Arc<dyn Store>,
    rule: LeaseRule,
    owner: String,
    holder: Option<String>,
    clock: Arc<dyn Clock>,
    seed: u64,
}

impl LeaseHolder {
    /// A holder on `store` with `policy`'s lease rule (`policy.lease`; the policy was
    /// validated when it was built). Refuses a malformed owner or a holder text over
    /// `MAX_HOLDER_LEN` bytes.
    pub fn new(
        store: Arc<dyn Store>,
        policy: &Policy,
        options: HoldOptions,
    ) -> Result<LeaseHolder, HoldError> {
        let HoldOptions {
            owner,
            holder,
            clock,
            seed,
        } = options;
        let owner = owner.unwrap_or_else(default_owner);
        check_owner(&owner)?;
        if holder.as_ref().is_some_and(|h| h.len() > MAX_HOLDER_LEN) {
            return Err(HoldError::Usage(UsageError::InvalidOwner {
                reason: format!("holder is over {MAX_HOLDER_LEN} bytes"),
            }));
        }
        Ok(LeaseHolder {
            store,
            rule: policy.lease,
            owner,
            holder,
            clock: clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
            seed: seed.unwrap_or_else(entropy),
        })
    }

    /// The owner id written in our records.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The lease rule in force.
    pub fn rule(&self) -> LeaseRule {
        self.rule
    }

    /// Acquire the lease of every entity, one at a time in sorted order (duplicates
    /// dropped), keeping those already held renewed while waiting for the next: the same
    /// as [`LeaseHolder::holding`] then [`Holding::acquire`]. Dropping the future releases
    /// what was acquired, in the background; to wait for that release, use the two steps
    /// and [`Holding::release`].
    pub async fn acquire<S: AsRef<str>>(
        &self,
        entities: &[S],
        on_wait: impl FnMut(&str, &LeaseStatus),
    ) -> Result<Holding, HoldError> {
        let mut holding = self.holding(entities)?;
        holding.acquire(on_wait).await?;
        Ok(holding)
    }

    /// A holding of `entities` (sorted, duplicates dropped), nothing acquired yet. Refuses
    /// an empty entity or one over `MAX_ENTITY_LEN` bytes.
    pub fn holding<S: AsRef<str>>(&self, entities: &[S]) -> Result<Holding, HoldError> {
        let mut names: Vec<String> = Vec::with_capacity(entities.len());
        for entity in entities {
            let entity = entity.as_ref();
            if entity.is_empty() || entity.len() > MAX_ENTITY_LEN {
                return Err(HoldError::Usage(UsageError::InvalidEntity {
                    reason: format!(
                        "length {} is outside 1..={MAX_ENTITY_LEN} bytes",
                        entity.len()
                    ),
                }));
            }
            names.push(entity.to_string());
        }
        names.sort();
        names.dedup();
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Holding {
            holder: self.clone(),
            entities: names,
            acquired: 0,
            leases: Vec::new(),
            sender: tx,
            reports: rx,
        })
    }

    fn spawn(
        &self,
        index: usize,
        entity: &str,
        reports: mpsc::UnboundedSender<(usize, LeaseStatus)>,
    ) -> Lease {
        let seed = self
            .seed
            .wrapping_add(index as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let keeper = Keeper {
            client: LeaseClient::new(entity, &self.owner, self.holder.clone(), self.rule, seed),
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            timeout_ms: self.rule.store_timeout_ms,
            owner: self.owner.clone(),
            index,
            reports,
            now: 0,
            seen: None,
            uncertain: false,
            held: false,
        };
        let (release, release_rx) = oneshot::channel();
        Lease {
            entity: entity.to_string(),
            epoch: 0,
            release: Some(release),
            task: Some(tokio::spawn(keeper.run(release_rx))),
        }
    }
}

/// The leases of a set of entities: acquired in sorted order by [`Holding::acquire`],
/// renewed in the background until [`Holding::release`] or a drop.
pub struct Holding {
    holder: LeaseHolder,
    /// Sorted, without duplicates.
    entities: Vec<String>,
    /// How many of `entities` are held (a prefix).
    acquired: usize,
    /// One per entity whose acquisition started.
    leases: Vec<Lease>,
    sender: mpsc::UnboundedSender<(usize, LeaseStatus)>,
    reports: mpsc::UnboundedReceiver<(usize, LeaseStatus)>,
}

impl std::fmt::Debug for Holding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holding")
            .field("entities", &self.entities)
            .field("acquired", &self.acquired)
            .field("fences", &self.fences())
            .finish()
    }
}

#[derive(Debug)]
struct Lease {
    entity: String,
    epoch: u64,
    /// Dropped or fired: the keeper releases.
    release: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<LeaseStatus>>,
}

impl Holding {
    /// The entities of this holding, sorted, without duplicates.
    pub fn entities(&self) -> &[String] {
        &self.entities
    }

    /// Acquire every lease not yet held, in order, keeping those already held renewed.
    /// `on_wait(entity, status)` is called with each [`LeaseStatus::Waiting`] report of
    /// the entity being acquired (one per poll of a record held by someone else).
    /// Cancel-safe: dropped (under a timeout that bounds the wait, say), it can be called
    /// again to go on, and [`Holding::release`] releases whatever was acquired, the lease
    /// being acquired included. Needs a tokio runtime.
    pub async fn acquire(
        &mut self,
        mut on_wait: impl FnMut(&str, &LeaseStatus),
    ) -> Result<(), HoldError> {
        while self.acquired < self.entities.len() {
            let index = self.acquired;
            if self.leases.len() == index {
                let lease = self
                    .holder
                    .spawn(index, &self.entities[index], self.sender.clone());
                self.leases.push(lease);
            }
            let (from, status) = self.next_report().await;
            let entity = &self.entities[from];
            match status {
                LeaseStatus::Held { epoch } if from == index => {
                    self.leases[index].epoch = epoch;
                    self.acquired += 1;
                }
                LeaseStatus::Waiting { .. } if from == index => on_wait(entity, &status),
                LeaseStatus::Unavailable => {
                    return Err(HoldError::Unavailable {
                        entity: entity.clone(),
                    })
                }
                LeaseStatus::Lost | LeaseStatus::Released => {
                    return Err(HoldError::Lost {
                        entity: entity.clone(),
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Each entity held so far, in acquisition (sorted) order, with the epoch (fence) of
    /// our holding.
    pub fn fences(&self) -> Vec<(String, u64)> {
        self.leases[..self.acquired]
            .iter()
            .map(|l| (l.entity.clone(), l.epoch))
            .collect()
    }

    /// Resolves when a lease is lost (or its store gave out): the error names the entity.
    /// Cancel-safe; never resolves while every lease is kept.
    pub async fn lost(&mut self) -> HoldError {
        loop {
            let (from, status) = self.next_report().await;
            let entity = self.leases[from].entity.clone();
            match status {
                LeaseStatus::Lost | LeaseStatus::Released => return HoldError::Lost { entity },
                LeaseStatus::Unavailable => return HoldError::Unavailable { entity },
                _ => {}
            }
        }
    }

    /// Release every lease by compare-and-swap (epoch kept, owner and token cleared) and
    /// wait for the store's answers; a lease still being acquired stops being acquired
    /// (or is released, if it was just granted). The error names the first lease that
    /// could not be released cleanly (lost before or during the release).
    pub async fn release(mut self) -> Result<(), HoldError> {
        for lease in &mut self.leases {
            if let Some(release) = lease.release.take() {
                let _ = release.send(());
            }
        }
        let mut first_error = None;
        for lease in &mut self.leases {
            let end = match lease.task.take() {
                Some(task) => task.await.unwrap_or(LeaseStatus::Lost),
                None => LeaseStatus::Released,
            };
            if end != LeaseStatus::Released && first_error.is_none() {
                first_error = Some(HoldError::Lost {
                    entity: lease.entity.clone(),
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The next report of any keeper. The keepers hold a sender each until they end, and
    /// we hold their handles, so the channel closes only if every keeper ended, each
    /// after reporting its end.
    async fn next_report(&mut self) -> (usize, LeaseStatus) {
        match self.reports.recv().await {
            Some(report) => report,
            None => std::future::pending().await,
        }
    }
}

/// Drives one entity's [`LeaseClient`]: carries out its store operations, fires its
/// timers, reports its status, and releases when told (or when the [`Lease`] is dropped).
struct Keeper {
    client: LeaseClient,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    timeout_ms: u64,
    owner: String,
    index: usize,
    reports: mpsc::UnboundedSender<(usize, LeaseStatus)>,
    now: u64,
    /// The foreign holding last seen while acquiring: owner, epoch, first seen at.
    seen: Option<(String, u64, u64)>,
    /// A write of the record got no answer and the client has not yet read back whether
    /// it landed: we may hold the lease without knowing it.
    uncertain: bool,
    /// `Held` was reported.
    held: bool,
}

impl Keeper {
    fn now(&mut self) -> u64 {
        self.now = self.now.max(self.clock.now_ms());
        self.now
    }

    fn report(&self, status: LeaseStatus) {
        // The receiver is gone only once the holding was dropped; the keeper then releases.
        let _ = self.reports.send((self.index, status));
    }

    async fn run(mut self, mut release: oneshot::Receiver<()>) -> LeaseStatus {
        self.client.acquire();
        let mut releasing = false;
        let mut release_sent = false;
        loop {
            if let Some(end) = self.pump().await {
                self.report(end.clone());
                return end;
            }
            if releasing {
                if self.client.holding() && !release_sent {
                    // The work may have written anything: no token, the next holder reads.
                    let now = self.now();
                    self.client.release(now, Some(None));
                    release_sent = true;
                    continue;
                }
                if self.client.epoch().is_none() && !self.uncertain {
                    // Never held (or no longer): nothing to release.
                    self.report(LeaseStatus::Released);
                    return LeaseStatus::Released;
                }
                // Held but not settled (a lock-delay, or a renewal being verified), or an
                // acquire write unanswered: drive the client until it settles.
            } else if self.client.holding() && !self.held {
                self.held = true;
                let epoch = self.client.epoch().unwrap_or(0);
                self.report(LeaseStatus::Held { epoch });
            }
            // Wake at the client's next timer, or when the holding runs out if that is
            // sooner (a renewal being retried may not be answered before it).
            let at = match (self.client.poll_timeout(), self.client.expires_at()) {
                (Some(t), Some(e)) => Some(t.min(e)),
                (t, e) => t.or(e),
            };
            let clock = Arc::clone(&self.clock);
            let timer = async move {
                match at {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut release, if !releasing => releasing = true,
                () = timer => {
                    let now = self.now();
                    if self.expired(now) {
                        self.report(LeaseStatus::Lost);
                        return LeaseStatus::Lost;
                    }
                    self.client.handle_timeout(now);
                }
            }
        }
    }

    /// Carry out the client's store operations until it waits on a timer; the end of the
    /// lease (lost, unavailable, released) if the client reported one.
    async fn pump(&mut self) -> Option<LeaseStatus> {
        loop {
            while let Some(event) = self.client.poll_event() {
                match event {
                    // Usable once `holding()`: a takeover first waits out the lock-delay.
                    LeaseEvent::Acquired { .. } => {}
                    LeaseEvent::Lost => return Some(LeaseStatus::Lost),
                    LeaseEvent::Unavailable => return Some(LeaseStatus::Unavailable),
                    LeaseEvent::Released => return Some(LeaseStatus::Released),
                }
            }
            let op = self.client.poll_op()?;
            let is_write = !matches!(op, StoreOp::Get { .. });
            let call = apply(self.store.as_ref(), op, self.timeout_ms);
            let reply = match self.client.expires_at() {
                // Holding: a reply that comes after the holding ran out is too late.
                Some(at) => {
                    tokio::select! {
                        reply = call => reply,
                        () = self.clock.sleep_until(at) => return Some(LeaseStatus::Lost),
                    }
                }
                None => call.await,
            };
            let now = self.now();
            self.observe(now, is_write, &reply);
            self.client.handle(now, reply);
            if self.expired(now) {
                return Some(LeaseStatus::Lost);
            }
        }
    }

    /// Whether our holding has run out on our clock with no renewal landed: another
    /// client may take the lease over from now on, so the work must stop whatever the
    /// store says later.
    fn expired(&self, now: u64) -> bool {
        self.client.expires_at().is_some_and(|at| now >= at)
    }

    /// Note what a reply shows: whether a write's fate is unknown, and, while acquiring,
    /// the record of whoever holds the lease.
    fn observe(&mut self, now: u64, is_write: bool, reply: &StoreReply) {
        let found = match reply {
            StoreReply::Lost | StoreReply::Unavailable => {
                self.uncertain |= is_write;
                if !self.held && self.client.epoch().is_none() {
                    // Waiting on a store that does not answer: said so, with no record.
                    self.report(LeaseStatus::Waiting {
                        current: None,
                        held_for_ms: 0,
                    });
                }
                return;
            }
            StoreReply::Done => None,
            StoreReply::Found { record } => record.as_ref(),
            StoreReply::Refused { current } => current.as_ref(),
        };
        self.uncertain = false;
        if self.held {
            return;
        }
        let Some(record) = found.filter(|r| !r.owner.is_empty() && r.owner != self.owner) else {
            return;
        };
        let since = match &self.seen {
            Some((owner, epoch, since)) if *owner == record.owner && *epoch == record.epoch => {
                *since
            }
            _ => {
                self.seen = Some((record.owner.clone(), record.epoch, now));
                now
            }
        };
        self.report(LeaseStatus::Waiting {
            current: Some(record.clone()),
            held_for_ms: now - since,
        });
    }
}
