//! The lease store a subcommand uses: its URL (`--store`, else `WRITELANE_STORE`), opened
//! through [`writelane::store::open`], and the exit code each store failure gets.

use writelane::store::{AdminError, OpenError, OpenOptions, OpenedStore};

use crate::exit::{Failure, EX_CONFIG, EX_NOPERM, EX_UNAVAILABLE, EX_USAGE};

/// The environment variable naming the default store.
pub const STORE_VAR: &str = "WRITELANE_STORE";

/// The store URL given, else the one in [`STORE_VAR`]; a usage error when there is none
/// (an empty value counts as none).
pub fn store_url(given: Option<String>) -> Result<String, Failure> {
    given
        .or_else(|| std::env::var(STORE_VAR).ok())
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            Failure::usage(format!(
                "no lease store: give --store URL or set {STORE_VAR} (file:///PATH, \
                 redis://HOST:PORT/DB, dynamodb://TABLE, s3://BUCKET/PREFIX)"
            ))
        })
}

/// Open the store at `url`, each request bounded by `timeout_ms` (the policy's
/// `lease.store_timeout_ms`). Nothing is sent yet.
pub async fn open(url: &str, timeout_ms: u64) -> Result<OpenedStore, Failure> {
    writelane::store::open(url, &OpenOptions { timeout_ms })
        .await
        .map_err(open_failure)
}

/// The exit code of a store URL that cannot be opened: a store not built in is a
/// configuration of this program ([`EX_CONFIG`]); anything else is the URL's fault
/// ([`EX_USAGE`]).
pub fn open_failure(err: OpenError) -> Failure {
    let code = match err {
        OpenError::FeatureNotBuilt { .. } => EX_CONFIG,
        _ => EX_USAGE,
    };
    Failure::new(code, err.to_string())
}

/// The exit code of a failed administrative request: credentials and permissions
/// [`EX_NOPERM`], a missing or unusable table or bucket [`EX_CONFIG`], no answer
/// [`EX_UNAVAILABLE`].
pub fn admin_failure(err: AdminError) -> Failure {
    let code = match err {
        AdminError::Credentials { .. }
        | AdminError::Denied { .. }
        | AdminError::NotWritable { .. } => EX_NOPERM,
        AdminError::Missing { .. } | AdminError::Incompatible { .. } => EX_CONFIG,
        AdminError::Unavailable { .. } => EX_UNAVAILABLE,
    };
    Failure::new(code, err.to_string())
}
