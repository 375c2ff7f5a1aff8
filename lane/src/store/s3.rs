//! The S3 store (aws-sdk-s3): one JSON object per entity, written with conditional puts.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use writelane_core::lease::{LeaseRecord, StoreReply};

use super::admin::{entry_of, AdminError, Entry, InitReport, StoreAdmin};
use super::aws::{cause_of, had_no_effect, sdk_config, Cause, CREDENTIALS_HINT};
use super::{BoxFuture, Store};

/// A lease store in an S3 bucket: one object per entity at `PREFIX + entity`, whose body
/// is the core's record JSON ([`LeaseRecord::to_json`]), rvn included. Every account has
/// S3, so this store needs no table.
///
/// - `get` is `GetObject` (S3 reads are strongly consistent); no object is no record.
/// - `put_if_absent` is `PutObject` with `If-None-Match: *`.
/// - `compare_and_swap(expected_rvn)` is `PutObject` with `If-Match: <etag>`, where the
///   ETag is that of the object whose body holds `expected_rvn`: the one this store last
///   read or wrote for the key, or else read now (a record at another rvn is refused
///   without writing). An ETag names the exact body, and every write draws a new rvn, so
///   the put lands only if the record still has the expected rvn. The choice: the rvn
///   lives inside the object (every binding reads the same record), the ETag is only the
///   condition.
/// - A 412 (`PreconditionFailed`) is a refusal: the adapter reads the object and reports
///   the record found; a 404 on `If-Match` is a refusal with no record.
/// - A 409 `ConditionalRequestConflict` (a concurrent conditional write) is
///   `Unavailable`: nothing was written, and the lease client retries after a poll.
/// - Nothing is ever deleted (a release is a compare-and-swap to a free record), so an
///   old holder's epoch cannot come back.
///
/// Other failures: a failed `get`, a request never sent and a 4xx are `Unavailable`; a
/// write with no reply (a timeout, a dropped connection, a 5xx) is `Lost`. IAM:
/// `s3:GetObject` and `s3:PutObject` on `arn:aws:s3:::BUCKET/PREFIX*` (and for
/// [`StoreAdmin`]: `s3:ListBucket` on the bucket for `list` and `init`, `s3:DeleteObject`
/// for `init`'s probe).
#[derive(Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    /// Per key: the rvn and ETag of the object as last read or written here.
    etags: Mutex<HashMap<String, (u64, String)>>,
}

enum Read {
    Found(Option<(LeaseRecord, Option<String>)>),
    Failed,
}

impl S3Store {
    /// A store in `bucket` under `prefix` through `client`. Build the client without SDK
    /// retries, with timeouts no longer than the lane's `lease.store_timeout_ms` and with
    /// request checksums only when required (or use [`S3Store::connect`]).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
            etags: Mutex::new(HashMap::new()),
        }
    }

    /// A store in `bucket` under `prefix` with a client from the standard credential and
    /// region chain, `endpoint` overriding the service's URL (then with path-style
    /// addressing, as local servers such as moto need), one attempt per request and every
    /// request bounded by `timeout_ms`.
    pub async fn connect(
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        endpoint: Option<&str>,
        timeout_ms: u64,
    ) -> Self {
        Self::new(client(None, endpoint, timeout_ms).await, bucket, prefix)
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn remember(&self, key: &str, rvn: u64, etag: Option<&str>) {
        let mut etags = self.etags.lock().unwrap_or_else(|e| e.into_inner());
        match etag {
            Some(etag) => etags.insert(key.to_string(), (rvn, etag.to_string())),
            None => etags.remove(key),
        };
    }

    fn cached(&self, key: &str, rvn: u64) -> Option<String> {
        let etags = self.etags.lock().unwrap_or_else(|e| e.into_inner());
        etags
            .get(key)
            .filter(|(r, _)| *r == rvn)
            .map(|(_, e)| e.clone())
    }

    /// The record at `key` and its ETag, parsed by the core.
    async fn read(&self, key: &str) -> Read {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Read::Found(None)
            }
            Err(_) => return Read::Failed,
        };
        let etag = out.e_tag().map(str::to_string);
        let Ok(body) = out.body.collect().await else {
            return Read::Failed;
        };
        match LeaseRecord::from_json(&body.into_bytes()) {
            Ok(record) => {
                self.remember(key, record.rvn, etag.as_deref());
                Read::Found(Some((record, etag)))
            }
            Err(_) => Read::Failed,
        }
    }

    /// A refused write: the record found now.
    async fn refused(&self, key: &str) -> StoreReply {
        match self.read(key).await {
            Read::Found(found) => StoreReply::Refused {
                current: found.map(|(r, _)| r),
            },
            // The condition failed, so nothing was written; only the record is unknown.
            Read::Failed => StoreReply::Unavailable,
        }
    }

    /// Put `record` at `key` under one condition.
    async fn put(&self, key: &str, record: &LeaseRecord, if_match: Option<String>) -> StoreReply {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .content_type("application/json")
            .body(ByteStream::from(record.to_json().into_bytes()));
        let request = match if_match {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        };
        let err = match request.send().await {
            Ok(out) => {
                self.remember(key, record.rvn, out.e_tag());
                return StoreReply::Done;
            }
            Err(err) => err,
        };
        let status = err.raw_response().map(|r| r.status().as_u16());
        match (status, err.code()) {
            (Some(412), _) | (_, Some("PreconditionFailed")) => self.refused(key).await,
            (Some(404), _) | (_, Some("NoSuchKey")) => StoreReply::Refused { current: None },
            (_, Some("ConditionalRequestConflict")) => StoreReply::Unavailable,
            _ if had_no_effect(&err, status) => StoreReply::Unavailable,
            _ => StoreReply::Lost,
        }
    }
}

impl Store for S3Store {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreReply> {
        Box::pin(async move {
            match self.read(key).await {
                Read::Found(found) => StoreReply::Found {
                    record: found.map(|(r, _)| r),
                },
                Read::Failed => StoreReply::Unavailable,
            }
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        Box::pin(self.put(key, record, None))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        Box::pin(async move {
            let etag = match self.cached(key, expected_rvn) {
                Some(etag) => etag,
                None => match self.read(key).await {
                    Read::Found(Some((cur, Some(etag)))) if cur.rvn == expected_rvn => etag,
                    Read::Found(Some((cur, _))) if cur.rvn != expected_rvn => {
                        return StoreReply::Refused { current: Some(cur) }
                    }
                    Read::Found(None) => return StoreReply::Refused { current: None },
                    // No ETag came back, or the read failed: nothing was written.
                    _ => return StoreReply::Unavailable,
                },
            };
            self.put(key, record, Some(etag)).await
        })
    }
}

/// A client from the standard credential and region chain, `region` and `endpoint`
/// overriding the chain's region and the service's URL (path-style addressing then, as
/// local servers such as moto need), request checksums only when required, one attempt
/// per request and every request bounded by `timeout_ms`.
pub(crate) async fn client(
    region: Option<&str>,
    endpoint: Option<&str>,
    timeout_ms: u64,
) -> Client {
    let mut config = aws_sdk_s3::config::Builder::from(&sdk_config(timeout_ms, region).await)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired);
    if let Some(url) = endpoint {
        config = config.endpoint_url(url).force_path_style(true);
    }
    Client::from_conf(config.build())
}

/// Milliseconds from `then` to now on our clock (0 when `then` is ahead of it).
fn ms_since(then: &aws_sdk_s3::primitives::DateTime) -> Option<u64> {
    let then_ms = then.to_millis().ok()?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    let now_ms = i64::try_from(now_ms).ok()?;
    Some(u64::try_from(now_ms.saturating_sub(then_ms)).unwrap_or(0))
}

impl S3Store {
    /// An administrative request's failure, for an operator: `needs` names the IAM
    /// actions the request takes.
    fn admin_error<E, R>(
        &self,
        err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
        status: Option<u16>,
        needs: &str,
    ) -> AdminError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code();
        let store = self.describe();
        // HeadBucket has no body, so its 404 comes as a bare `NotFound`.
        if matches!(code, Some("NoSuchBucket" | "NotFound"))
            || (code.is_none() && status == Some(404))
        {
            return AdminError::Missing {
                store,
                hint: format!(
                    "writelane does not create buckets: create it (aws s3 mb s3://{}) or fix the \
                     name or region (?region=R)",
                    self.bucket
                ),
            };
        }
        let (cause, detail) = cause_of(err, code);
        match cause {
            Cause::Credentials => AdminError::Credentials {
                store,
                detail,
                hint: CREDENTIALS_HINT.into(),
            },
            Cause::Other if status != Some(403) => AdminError::Unavailable { store, detail },
            _ => AdminError::Denied {
                store,
                detail,
                hint: format!("the caller needs {needs}"),
            },
        }
    }

    /// The object at `object` (a full object key) as an entry for `key`.
    async fn admin_object(&self, key: &str, object: &str) -> Result<Option<Entry>, AdminError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None)
            }
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // A missing key of an existing bucket is NoSuchKey (above); a bare 404
                // here is the bucket.
                return Err(self.admin_error(&e, status, "s3:GetObject on the prefix"));
            }
        };
        let age = out.last_modified().and_then(ms_since);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| AdminError::Unavailable {
                store: self.describe(),
                detail: format!("reading the object {object:?}: {e}"),
            })?;
        Ok(Some(entry_of(key, &body.into_bytes(), age)))
    }

    async fn admin_list(&self, prefix: &str) -> Result<Vec<Entry>, AdminError> {
        let full = format!("{}{prefix}", self.prefix);
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await;
            let page = page.map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                self.admin_error(&e, status, "s3:ListBucket on the bucket")
            })?;
            objects.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        let mut entries = Vec::new();
        for object in objects {
            let Some(key) = object.strip_prefix(&self.prefix) else {
                continue;
            };
            // An object deleted between the listing and the read is no record.
            if let Some(entry) = self.admin_object(key, &object).await? {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    async fn admin_init(&self) -> Result<InitReport, AdminError> {
        if let Err(e) = self.client.head_bucket().bucket(&self.bucket).send().await {
            let status = e.raw_response().map(|r| r.status().as_u16());
            return Err(self.admin_error(&e, status, "s3:ListBucket on the bucket"));
        }
        // A probe object of our own name: a conditional create, then a conditional delete
        // of exactly what we wrote, so no record is ever touched.
        let probe = format!(
            "{}.writelane-init-probe-{:016x}",
            self.prefix,
            crate::types::entropy()
        );
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&probe)
            .if_none_match("*")
            .body(ByteStream::from_static(b"{}"))
            .send()
            .await;
        let etag = match put {
            Ok(out) => out.e_tag().map(str::to_string),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                return Err(
                    match self.admin_error(&e, status, "s3:PutObject on the prefix") {
                        AdminError::Unavailable { store, detail } => AdminError::NotWritable {
                            store,
                            detail: format!("a conditional put of {probe:?} failed: {detail}"),
                        },
                        other => other,
                    },
                );
            }
        };
        let Some(etag) = etag else {
            return Err(AdminError::NotWritable {
                store: self.describe(),
                detail: format!(
                    "the put of {probe:?} returned no ETag, so conditional writes cannot work; \
                     the probe object is left behind"
                ),
            });
        };
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&probe)
            .if_match(etag)
            .send()
            .await;
        let detail = match deleted {
            Ok(_) => format!(
                "{} exists and takes conditional writes (probe {probe:?} written and deleted)",
                self.describe()
            ),
            Err(e) => format!(
                "{} exists and takes conditional writes; the probe {probe:?} could not be \
                 deleted ({}): delete it by hand (the store itself never deletes)",
                self.describe(),
                cause_of(&e, e.code()).1
            ),
        };
        Ok(InitReport {
            created: false,
            detail,
        })
    }
}

impl StoreAdmin for S3Store {
    fn describe(&self) -> String {
        format!("S3 bucket {:?} under prefix {:?}", self.bucket, self.prefix)
    }

    fn entry<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, AdminError>> {
        Box::pin(async move { self.admin_object(key, &self.object(key)).await })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Entry>, AdminError>> {
        Box::pin(self.admin_list(prefix))
    }

    fn init(&self) -> BoxFuture<'_, Result<InitReport, AdminError>> {
        Box::pin(self.admin_init())
    }
}
