//! The store a hold uses, from its URL (`--store`, else `WRITELANE_STORE`), opened by
//! [`writelane::store::open`], and a first read that turns a missing table or bucket, or
//! missing credentials, into a one-line error before anything is acquired.

use writelane::store::{AdminError, OpenError, OpenOptions, OpenedStore};
use writelane_cli::exit::{Failure, EX_CONFIG, EX_NOPERM, EX_USAGE};

/// The environment variable naming the default store.
pub const STORE_VAR: &str = "WRITELANE_STORE";

/// The store URL given, else the one in [`STORE_VAR`]; a usage error when there is none.
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

/// Open the store at `url`, each request bounded by `timeout_ms`. Nothing is sent yet.
pub async fn open(url: &str, timeout_ms: u64) -> Result<OpenedStore, Failure> {
    writelane::store::open(url, &OpenOptions { timeout_ms })
        .await
        .map_err(|err| {
            let code = match err {
                OpenError::FeatureNotBuilt { .. } => EX_CONFIG,
                _ => EX_USAGE,
            };
            Failure::new(code, err.to_string())
        })
}

/// Read `key` once: a store that is not set up (no such table or bucket) or refuses our
/// credentials fails here, with its own code, before any lease is taken. A store that
/// does not answer is left to the lease protocol, which waits `lease.unavailable_ms`.
pub async fn preflight(store: &OpenedStore, key: &str) -> Result<(), Failure> {
    match store.admin.entry(key).await {
        Ok(_) | Err(AdminError::Unavailable { .. }) => Ok(()),
        Err(err) => {
            let code = match err {
                AdminError::Missing { .. } | AdminError::Incompatible { .. } => EX_CONFIG,
                _ => EX_NOPERM,
            };
            Err(Failure::new(code, err.to_string()))
        }
    }
}
