//! Administration of a lease store, apart from the three operations a lane uses: list the
//! records under a key prefix, read one record with what the store knows of its age, and
//! set the store up (`init`).

use writelane_core::lease::{LeaseRecord, RecordError};

use super::BoxFuture;

/// One record as an administrative read finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The record's key (the entity's name, without the store's own prefix).
    pub key: String,
    /// The record, or why the core refuses what the store holds at the key (a listing
    /// reports a malformed record rather than skipping it).
    pub record: Result<LeaseRecord, RecordError>,
    /// How long ago the store last wrote the record, in milliseconds, when the store
    /// keeps that (S3's `Last-Modified`, whole seconds on the store's clock, set against
    /// ours). `None` for the other stores.
    pub modified_ms_ago: Option<u64>,
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// Whether `init` created something (the DynamoDB table, the file's directory).
    pub created: bool,
    /// What was checked or created, in words.
    pub detail: String,
}

/// An administrative request that failed, naming the store and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No credentials were found, or the store refused them as invalid.
    #[error("{store}: credentials missing or refused ({detail}); {hint}")]
    Credentials {
        /// The store, in words (`DynamoDB table "leases"`).
        store: String,
        /// The store's or the SDK's error.
        detail: String,
        /// What to do.
        hint: String,
    },
    /// The caller may not do this.
    #[error("{store}: access denied ({detail}); {hint}")]
    Denied {
        /// The store, in words.
        store: String,
        /// The store's error.
        detail: String,
        /// The permissions needed.
        hint: String,
    },
    /// The table or bucket does not exist.
    #[error("{store} does not exist; {hint}")]
    Missing {
        /// The store, in words.
        store: String,
        /// What to do.
        hint: String,
    },
    /// The store exists in a shape writelane cannot use (a DynamoDB table whose key is
    /// not `key` of type S).
    #[error("{store} cannot hold leases: {detail}")]
    Incompatible {
        /// The store, in words.
        store: String,
        /// What is wrong.
        detail: String,
    },
    /// The store was reached but refused a write it should take (`init`'s probe).
    #[error("{store} is not writable: {detail}")]
    NotWritable {
        /// The store, in words.
        store: String,
        /// What happened.
        detail: String,
    },
    /// The store did not answer (unreachable, timed out, throttled, a server error).
    #[error("{store} did not answer: {detail}")]
    Unavailable {
        /// The store, in words.
        store: String,
        /// The error.
        detail: String,
    },
}

/// Administrative operations on a lease store, beside the three of [`super::Store`]. Each
/// adapter implements both; [`super::open`] returns both for a store URL. Requests are
/// bounded by the timeout the adapter was built with; a listing pages through the whole
/// prefix.
pub trait StoreAdmin: Send + Sync {
    /// The store in words for messages: `DynamoDB table "leases"`,
    /// `S3 bucket "b" under "locks/"`, `Redis at redis://127.0.0.1:6379/0`,
    /// `file store /var/lib/writelane/leases.json`.
    fn describe(&self) -> String;

    /// The record at `key` (`None`: there is none).
    fn entry<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, AdminError>>;

    /// Every record whose key starts with `prefix`, sorted by key.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Entry>, AdminError>>;

    /// Set the store up and check it can be used: DynamoDB creates the table (on-demand,
    /// the layout the adapter uses) if it is missing and waits until it is active; S3
    /// checks that the bucket exists and takes a conditional put and a conditional delete
    /// of a probe object under the prefix; Redis answers `PING`; the file store creates
    /// its directory and checks that it can take the lock.
    fn init(&self) -> BoxFuture<'_, Result<InitReport, AdminError>>;
}

/// A record read as raw JSON text, parsed by the core.
pub(crate) fn entry_of(key: &str, bytes: &[u8], modified_ms_ago: Option<u64>) -> Entry {
    Entry {
        key: key.to_string(),
        record: LeaseRecord::from_json(bytes),
        modified_ms_ago,
    }
}
