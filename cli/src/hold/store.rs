//! The store a hold uses, from its URL (`--store`, else `WRITELANE_STORE`).

use std::sync::Arc;

use writelane::Store;
use writelane_cli::exit::Failure;

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

/// Open the store at `url`, each request bounded by `timeout_ms`.
pub fn open(url: &str, timeout_ms: u64) -> Result<Arc<dyn Store>, Failure> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Failure::usage(format!(
            "store URL {url:?} has no scheme: use file:///PATH, redis://HOST:PORT/DB, \
             dynamodb://TABLE or s3://BUCKET/PREFIX"
        ))
    })?;
    match scheme {
        "file" => open_file(url, rest, timeout_ms),
        "redis" | "dynamodb" | "s3" => Err(Failure::new(
            writelane_cli::exit::EX_CONFIG,
            format!("the {scheme} store is not built into this writelane"),
        )),
        other => Err(Failure::usage(format!(
            "unknown store scheme {other:?} in {url:?}: use file, redis, dynamodb or s3"
        ))),
    }
}

#[cfg(feature = "file")]
fn open_file(url: &str, rest: &str, timeout_ms: u64) -> Result<Arc<dyn Store>, Failure> {
    if !rest.starts_with('/') || rest.len() < 2 {
        return Err(Failure::usage(format!(
            "file store URL {url:?} needs an absolute path: file:///PATH"
        )));
    }
    Ok(Arc::new(
        writelane::FileStore::new(rest).with_timeout_ms(timeout_ms),
    ))
}

#[cfg(not(feature = "file"))]
fn open_file(_url: &str, _rest: &str, _timeout_ms: u64) -> Result<Arc<dyn Store>, Failure> {
    Err(Failure::new(
        writelane_cli::exit::EX_CONFIG,
        "the file store is not built into this writelane (cargo feature file)",
    ))
}
