//! A first read of the store before any lease is taken, so a missing table or bucket, or
//! missing credentials, is a one-line error with its own code rather than a wait.

use writelane::store::{AdminError, OpenedStore, StoreLocation};
use writelane_cli::exit::{Failure, EX_CONFIG};
use writelane_cli::store::admin_failure;

/// Read `key` once: a store that is not set up (no such table or bucket, 78) or refuses
/// our credentials (77) fails here, before any lease is taken. A store that does not
/// answer is left to the lease protocol, which waits `lease.unavailable_ms` (or `--wait`).
pub async fn preflight(store: &OpenedStore, key: &str) -> Result<(), Failure> {
    // The file store creates its file, not its directory: reading a file in a missing
    // directory looks like a store that does not answer.
    if let StoreLocation::File { path } = &store.location {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if dir.is_some_and(|d| !d.is_dir()) {
            return Err(Failure::new(
                EX_CONFIG,
                format!(
                    "the directory of the file store {} does not exist: create it, or run \
                     `writelane lease init file://{}`",
                    path.display(),
                    path.display()
                ),
            ));
        }
    }
    match store.admin.entry(key).await {
        Ok(_) | Err(AdminError::Unavailable { .. }) => Ok(()),
        Err(err) => Err(admin_failure(err)),
    }
}
