//! Store URLs: one string names a lease store, for the command line
//! (`writelane hold --store URL`, `WRITELANE_STORE`) and for Rust programs alike.
//!
//! | URL | store | feature |
//! |---|---|---|
//! | `dynamodb://TABLE?region=R&endpoint=URL` | a DynamoDB table | `dynamodb` |
//! | `s3://BUCKET/PREFIX?region=R&endpoint=URL` | objects `PREFIX + entity` in a bucket | `s3` |
//! | `redis://[:PASSWORD@]HOST:PORT/DB` (`rediss://` for TLS) | keys `writelane:lease:<entity>` | `redis` |
//! | `file:///PATH` (or `file:PATH`, relative) | one JSON file | `file` |
//!
//! `region` and `endpoint` are optional: without them the standard AWS region chain and
//! the service's own endpoint are used; with `endpoint` (a local DynamoDB, moto) S3 uses
//! path-style addressing. Query values may be percent-encoded. Parsing needs no feature;
//! opening a store whose feature is not built in is [`OpenError::FeatureNotBuilt`].

use std::path::PathBuf;
use std::sync::Arc;

use writelane_core::lease::DEFAULT_STORE_TIMEOUT_MS;
use writelane_core::Policy;

use super::admin::StoreAdmin;
use super::Store;

/// The schemes a store URL may have, as an error lists them.
pub const SCHEMES: &str =
    "dynamodb://TABLE, s3://BUCKET/PREFIX, redis://HOST:PORT/DB, file:///PATH";

/// A store URL that cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The URL is empty.
    #[error("no store URL given: expected one of {SCHEMES}")]
    Empty,
    /// The text has no `scheme:` at all.
    #[error("{url:?} is not a store URL: expected one of {SCHEMES}")]
    NotAUrl {
        /// The text given.
        url: String,
    },
    /// The scheme is none writelane knows.
    #[error("unknown store scheme {scheme:?} in {url:?}: expected one of {SCHEMES}")]
    UnknownScheme {
        /// The scheme found.
        scheme: String,
        /// The URL.
        url: String,
    },
    /// The store's cargo feature was not built in.
    #[error(
        "the {scheme}:// store is not built into this program: build it with the cargo feature \
         `{feature}` (the full writelane command: cargo install --path cli --features aws,redis, \
         or cargo build --release -p writelane-cli --features aws,redis)"
    )]
    FeatureNotBuilt {
        /// The scheme.
        scheme: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// A DynamoDB URL without a table or an S3 URL without a bucket.
    #[error("{url:?} names no {what}: write {form}")]
    MissingName {
        /// The URL.
        url: String,
        /// `table` or `bucket`.
        what: &'static str,
        /// The form expected.
        form: &'static str,
    },
    /// A query parameter that is unknown, repeated, empty or malformed.
    #[error("{url:?}: query parameter {name:?} {rule}")]
    BadParameter {
        /// The URL.
        url: String,
        /// The parameter.
        name: String,
        /// What is wrong with it.
        rule: String,
    },
    /// Any other malformed part of the URL.
    #[error("{url:?}: {rule}")]
    Malformed {
        /// The URL.
        url: String,
        /// What is wrong.
        rule: String,
    },
}

/// A parsed store URL: which store, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `dynamodb://TABLE?region=R&endpoint=URL`
    DynamoDb {
        /// The table.
        table: String,
        /// The region, overriding the standard chain's.
        region: Option<String>,
        /// The service URL, overriding the region's.
        endpoint: Option<String>,
    },
    /// `s3://BUCKET/PREFIX?region=R&endpoint=URL`
    S3 {
        /// The bucket.
        bucket: String,
        /// Put before every entity's name to make its object key (verbatim: end it with
        /// `/` for a folder).
        prefix: String,
        /// The region, overriding the standard chain's.
        region: Option<String>,
        /// The service URL, overriding the region's (path-style addressing then).
        endpoint: Option<String>,
    },
    /// `redis://HOST:PORT/DB` or `rediss://...`: the URL as the redis crate takes it.
    Redis {
        /// The URL.
        url: String,
    },
    /// `file:///PATH` or `file:PATH`.
    File {
        /// The JSON file.
        path: PathBuf,
    },
}

/// How to open a store: the bound on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// The longest one store request may take, in milliseconds: the policy's
    /// `lease.store_timeout_ms`.
    pub timeout_ms: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            timeout_ms: DEFAULT_STORE_TIMEOUT_MS,
        }
    }
}

impl OpenOptions {
    /// The options a lane with `policy` needs: its `lease.store_timeout_ms`.
    pub fn from_policy(policy: &Policy) -> Self {
        OpenOptions {
            timeout_ms: policy.lease.store_timeout_ms,
        }
    }
}

/// An opened store: the same adapter as a [`Store`] for lanes and as a [`StoreAdmin`].
#[derive(Clone)]
pub struct OpenedStore {
    /// The three operations, for a lane.
    pub store: Arc<dyn Store>,
    /// Listing, reading with age, and `init`.
    pub admin: Arc<dyn StoreAdmin>,
    /// Where it is.
    pub location: StoreLocation,
}

impl std::fmt::Debug for OpenedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedStore")
            .field("store", &self.admin.describe())
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl std::str::FromStr for StoreLocation {
    type Err = OpenError;

    fn from_str(url: &str) -> Result<Self, OpenError> {
        StoreLocation::parse(url)
    }
}

impl StoreLocation {
    /// Parse a store URL (no feature needed; nothing is connected).
    pub fn parse(url: &str) -> Result<Self, OpenError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(OpenError::Empty);
        }
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(OpenError::NotAUrl { url: url.into() });
        };
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(OpenError::NotAUrl { url: url.into() });
        }
        match scheme.to_ascii_lowercase().as_str() {
            "dynamodb" => {
                let (name, path, query) = authority(url, rest)?;
                if !path.is_empty() && path != "/" {
                    return Err(OpenError::Malformed {
                        url: url.into(),
                        rule: format!(
                            "a DynamoDB URL has no path ({path:?}): write dynamodb://TABLE?region=R"
                        ),
                    });
                }
                let mut params = Params::parse(url, query, &["region", "endpoint"])?;
                if name.is_empty() {
                    return Err(OpenError::MissingName {
                        url: url.into(),
                        what: "table",
                        form: "dynamodb://TABLE?region=R&endpoint=URL",
                    });
                }
                Ok(StoreLocation::DynamoDb {
                    table: decode(url, "table", name)?,
                    region: params.take("region"),
                    endpoint: params.take("endpoint"),
                })
            }
            "s3" => {
                let (name, path, query) = authority(url, rest)?;
                let mut params = Params::parse(url, query, &["region", "endpoint"])?;
                if name.is_empty() {
                    return Err(OpenError::MissingName {
                        url: url.into(),
                        what: "bucket",
                        form: "s3://BUCKET/PREFIX?region=R&endpoint=URL",
                    });
                }
                let prefix = path.strip_prefix('/').unwrap_or(path);
                Ok(StoreLocation::S3 {
                    bucket: decode(url, "bucket", name)?,
                    prefix: decode(url, "prefix", prefix)?,
                    region: params.take("region"),
                    endpoint: params.take("endpoint"),
                })
            }
            "redis" | "rediss" | "redis+unix" | "unix" => {
                if !rest.starts_with("//") {
                    return Err(OpenError::Malformed {
                        url: url.into(),
                        rule: "write redis://HOST:PORT/DB".into(),
                    });
                }
                Ok(StoreLocation::Redis { url: url.into() })
            }
            "file" => {
                let path =
                    match rest.strip_prefix("//") {
                        // file:///PATH, or file://localhost/PATH.
                        Some(after) => match after.find('/') {
                            Some(0) => &after[0..],
                            Some(i) if &after[..i] == "localhost" => &after[i..],
                            _ => return Err(OpenError::Malformed {
                                url: url.into(),
                                rule: "a file URL names a local path: write file:///ABSOLUTE/PATH \
                                       or file:RELATIVE/PATH"
                                    .into(),
                            }),
                        },
                        None => rest,
                    };
                if path.contains('?') {
                    return Err(OpenError::BadParameter {
                        url: url.into(),
                        name: path.split_once('?').map_or("", |(_, q)| q).into(),
                        rule: "is not taken: a file URL has no parameters".into(),
                    });
                }
                let path = decode(url, "path", path)?;
                if path.is_empty() || path.ends_with('/') {
                    return Err(OpenError::Malformed {
                        url: url.into(),
                        rule:
                            "a file store is a file, not a directory: write file:///DIR/leases.json"
                                .into(),
                    });
                }
                Ok(StoreLocation::File { path: path.into() })
            }
            other => Err(OpenError::UnknownScheme {
                scheme: other.into(),
                url: url.into(),
            }),
        }
    }

    /// The URL's scheme.
    pub fn scheme(&self) -> &'static str {
        match self {
            StoreLocation::DynamoDb { .. } => "dynamodb",
            StoreLocation::S3 { .. } => "s3",
            StoreLocation::Redis { .. } => "redis",
            StoreLocation::File { .. } => "file",
        }
    }

    /// The cargo feature of the writelane crate that brings this store.
    pub fn feature(&self) -> &'static str {
        // The feature is named after the scheme.
        self.scheme()
    }

    /// Open the store: build its adapter with requests bounded by `options.timeout_ms`.
    /// Nothing is sent yet (an AWS store loads its credential chain lazily); the first
    /// request tells whether the store is there.
    pub async fn open(&self, options: &OpenOptions) -> Result<OpenedStore, OpenError> {
        let location = self.clone();
        match self {
            #[cfg(feature = "dynamodb")]
            StoreLocation::DynamoDb {
                table,
                region,
                endpoint,
            } => {
                let client = super::dynamodb::client(
                    region.as_deref(),
                    endpoint.as_deref(),
                    options.timeout_ms,
                )
                .await;
                let store = Arc::new(super::dynamodb::DynamoDbStore::new(client, table.clone()));
                Ok(opened(store, location))
            }
            #[cfg(feature = "s3")]
            StoreLocation::S3 {
                bucket,
                prefix,
                region,
                endpoint,
            } => {
                let client =
                    super::s3::client(region.as_deref(), endpoint.as_deref(), options.timeout_ms)
                        .await;
                let store = Arc::new(super::s3::S3Store::new(
                    client,
                    bucket.clone(),
                    prefix.clone(),
                ));
                Ok(opened(store, location))
            }
            #[cfg(feature = "redis")]
            StoreLocation::Redis { url } => {
                let store = super::redis::RedisStore::new(url)
                    .map_err(|e| OpenError::Malformed {
                        url: url.clone(),
                        rule: format!("not a Redis URL ({e}): write redis://HOST:PORT/DB"),
                    })?
                    .with_timeout_ms(options.timeout_ms);
                Ok(opened(Arc::new(store), location))
            }
            #[cfg(all(unix, feature = "file"))]
            StoreLocation::File { path } => {
                let store =
                    super::file::FileStore::new(path.clone()).with_timeout_ms(options.timeout_ms);
                Ok(opened(Arc::new(store), location))
            }
            #[allow(unreachable_patterns)]
            other => Err(OpenError::FeatureNotBuilt {
                scheme: other.scheme(),
                feature: other.feature(),
            }),
        }
    }
}

/// Open the store at `url` (see the module's table), its requests bounded by
/// `options.timeout_ms` ([`OpenOptions::from_policy`] takes the policy's
/// `lease.store_timeout_ms`).
///
/// ```
/// # async fn demo() {
/// let err = writelane::store::open("ftp://x", &Default::default()).await.unwrap_err();
/// assert!(err.to_string().contains("unknown store scheme"));
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo());
/// ```
pub async fn open(url: &str, options: &OpenOptions) -> Result<OpenedStore, OpenError> {
    StoreLocation::parse(url)?.open(options).await
}

#[allow(dead_code)] // unused when no store feature is built
fn opened<S: Store + StoreAdmin + 'static>(store: Arc<S>, location: StoreLocation) -> OpenedStore {
    OpenedStore {
        store: store.clone(),
        admin: store,
        location,
    }
}

/// Split `//NAME/PATH?QUERY` into its parts.
fn authority<'a>(url: &str, rest: &'a str) -> Result<(&'a str, &'a str, &'a str), OpenError> {
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(OpenError::Malformed {
            url: url.into(),
            rule: "expected // after the scheme".into(),
        });
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (name, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    Ok((name, path, query))
}

/// The query parameters of a URL, checked against the names it may take.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(url: &str, query: &str, allowed: &[&str]) -> Result<Params, OpenError> {
        let mut found: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(url, "parameter name", name)?;
            let bad = |rule: String| OpenError::BadParameter {
                url: url.into(),
                name: name.clone(),
                rule,
            };
            if !allowed.contains(&name.as_str()) {
                return Err(bad(format!("is unknown: expected {}", allowed.join(", "))));
            }
            if found.iter().any(|(n, _)| *n == name) {
                return Err(bad("is given twice".into()));
            }
            let value = decode(url, &name, value)?;
            if value.is_empty() {
                return Err(bad("is empty: give a value or leave it out".into()));
            }
            if name == "endpoint"
                && !(value.starts_with("http://") || value.starts_with("https://"))
            {
                return Err(bad(format!(
                    "is {value:?}: expected an http:// or https:// URL such as http://127.0.0.1:5000"
                )));
            }
            found.push((name, value));
        }
        Ok(Params(found))
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }
}

/// Percent-decode one part of a URL.
fn decode(url: &str, part: &str, text: &str) -> Result<String, OpenError> {
    let bad = || OpenError::Malformed {
        url: url.into(),
        rule: format!("the {part} holds a malformed percent-escape"),
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| OpenError::Malformed {
        url: url.into(),
        rule: format!("the {part} is not UTF-8 once decoded"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_locations() {
        assert_eq!(
            StoreLocation::parse(
                "dynamodb://leases?region=eu-west-1&endpoint=http://127.0.0.1:5000"
            ),
            Ok(StoreLocation::DynamoDb {
                table: "leases".into(),
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:5000".into()),
            })
        );
        assert_eq!(
            StoreLocation::parse("s3://bucket/locks/iam/?endpoint=http%3A%2F%2Fh%3A1"),
            Ok(StoreLocation::S3 {
                bucket: "bucket".into(),
                prefix: "locks/iam/".into(),
                region: None,
                endpoint: Some("http://h:1".into()),
            })
        );
        assert_eq!(
            StoreLocation::parse("s3://bucket"),
            Ok(StoreLocation::S3 {
                bucket: "bucket".into(),
                prefix: String::new(),
                region: None,
                endpoint: None,
            })
        );
        assert_eq!(
            StoreLocation::parse("redis://127.0.0.1:6379/2"),
            Ok(StoreLocation::Redis {
                url: "redis://127.0.0.1:6379/2".into()
            })
        );
        for (url, path) in [
            ("file:///var/lib/wl/leases.json", "/var/lib/wl/leases.json"),
            ("file://localhost/tmp/l.json", "/tmp/l.json"),
            ("file:leases.json", "leases.json"),
            ("FILE:///a%20b.json", "/a b.json"),
        ] {
            assert_eq!(
                StoreLocation::parse(url),
                Ok(StoreLocation::File { path: path.into() }),
                "{url}"
            );
        }
    }

    #[test]
    fn bad_urls_name_what_is_wrong() {
        let err = StoreLocation::parse("ftp://x").unwrap_err();
        assert!(matches!(err, OpenError::UnknownScheme { ref scheme, .. } if scheme == "ftp"));
        assert!(err.to_string().contains("dynamodb://TABLE"), "{err}");
        assert_eq!(StoreLocation::parse(""), Err(OpenError::Empty));
        assert!(matches!(
            StoreLocation::parse("leases"),
            Err(OpenError::NotAUrl { .. })
        ));
        assert!(matches!(
            StoreLocation::parse("dynamodb://?region=x"),
            Err(OpenError::MissingName { what: "table", .. })
        ));
        assert!(matches!(
            StoreLocation::parse("s3:///prefix"),
            Err(OpenError::MissingName { what: "bucket", .. })
        ));
        for (url, name) in [
            ("dynamodb://t?regoin=x", "regoin"),
            ("dynamodb://t?region=", "region"),
            ("dynamodb://t?region=a&region=b", "region"),
            ("s3://b/p?endpoint=localhost:5000", "endpoint"),
        ] {
            match StoreLocation::parse(url) {
                Err(OpenError::BadParameter { name: n, .. }) => assert_eq!(n, name, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        for url in [
            "dynamodb:t",
            "dynamodb://t/extra",
            "file://host/x.json",
            "file:///dir/",
            "s3://b/%zz",
            "redis:host",
        ] {
            assert!(
                matches!(StoreLocation::parse(url), Err(OpenError::Malformed { .. })),
                "{url}: {:?}",
                StoreLocation::parse(url)
            );
        }
    }

    #[cfg(not(feature = "dynamodb"))]
    #[test]
    fn a_store_not_built_in_names_its_feature() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let err = rt
            .block_on(open("dynamodb://t", &OpenOptions::default()))
            .unwrap_err();
        assert_eq!(
            err,
            OpenError::FeatureNotBuilt {
                scheme: "dynamodb",
                feature: "dynamodb"
            }
        );
        assert!(err.to_string().contains("--features aws,redis"), "{err}");
    }
}
