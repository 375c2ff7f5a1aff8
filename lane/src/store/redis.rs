//! The Redis store (the `redis` crate on tokio), sharing keys and scripts with the Python
//! and Node bindings.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, Script, Value};
use tokio::sync::Mutex;
use writelane_core::lease::{LeaseRecord, StoreReply, DEFAULT_STORE_TIMEOUT_MS};

use super::admin::{entry_of, AdminError, Entry, InitReport, StoreAdmin};
use super::{BoxFuture, Store};

/// The key prefix every writelane binding uses, so that they share leases.
pub const DEFAULT_PREFIX: &str = "writelane:lease:";

/// Create the record if the key is empty: 1 when created, else the value found (the
/// Python binding's script).
const PUT_IF_ABSENT: &str = "
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// Replace the record if its rvn is ARGV[1]: 1 when replaced, 0 when there is no record,
/// else the value found (the Python binding's script).
const COMPARE_AND_SWAP: &str = "
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, rec = pcall(cjson.decode, cur)
if not ok or type(rec) ~= 'table' or type(rec['rvn']) ~= 'number' then
  return redis.error_reply('WLCORRUPT stored value is not a lease record')
end
if rec['rvn'] ~= tonumber(ARGV[1]) then return cur end
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

/// A lease store in Redis (7 or later; a primary, never a replica): one JSON string per
/// entity at `writelane:lease:<entity>` holding the core's record JSON, created by a Lua
/// script (GET, SET when missing, else return what was found) and replaced by a Lua
/// compare-and-swap on the stored `rvn`, the scripts of the Python binding (Node's `SET
/// NX GET` is the same operation). Records never expire: expiry is the lease protocol's,
/// judged on each reader's clock. ACL: `GET`, `SET`, `EVAL`, `EVALSHA`.
///
/// The connection is made on first use and remade after a failure; connecting and every
/// reply are bounded by the store timeout ([`RedisStore::with_timeout_ms`]; default the
/// core's [`DEFAULT_STORE_TIMEOUT_MS`]). No request is retried. A failure to connect, an
/// error reply of the server, or any failure of a `get`, is `Unavailable`; a write whose
/// reply did not come back is `Lost`; a stored value the core refuses is `Unavailable`.
///
/// [`StoreAdmin`] lists records with `SCAN ... MATCH` over the prefix (ACL: also `SCAN`,
/// `PING`).
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
    put_script: Script,
    cas_script: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

enum Failure {
    /// Surely not carried out.
    NotSent,
    /// Sent; the reply is unknown.
    NoReply,
}

impl RedisStore {
    /// A store at `url` (`redis://HOST:PORT/DB`). Fails only on a malformed URL; nothing
    /// connects until the first operation.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(RedisStore {
            client: redis::Client::open(url)?,
            prefix: DEFAULT_PREFIX.to_string(),
            timeout: Duration::from_millis(DEFAULT_STORE_TIMEOUT_MS),
            connection: Mutex::new(None),
            put_script: Script::new(PUT_IF_ABSENT),
            cas_script: Script::new(COMPARE_AND_SWAP),
        })
    }

    /// Put `prefix` before every key instead of `writelane:lease:`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound connecting and every reply by `ms` milliseconds (use the lane's
    /// `lease.store_timeout_ms`).
    pub fn with_timeout_ms(mut self, ms: u64) -> Self {
        self.timeout = Duration::from_millis(ms);
        self
    }

    async fn connection(&self) -> Result<MultiplexedConnection, Failure> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|_| Failure::NotSent)?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The failure of a request: the server's error reply did nothing; anything else may
    /// have, and the connection is remade.
    async fn failed(&self, err: RedisError) -> Failure {
        // An error reply of the server, with a known code or not (the script's WLCORRUPT).
        if let ErrorKind::Server(_) | ErrorKind::Extension = err.kind() {
            return Failure::NotSent;
        }
        *self.connection.lock().await = None;
        Failure::NoReply
    }

    /// Run a script on `key` with `args`: its raw reply.
    async fn script(&self, script: &Script, key: &str, args: &[String]) -> Result<Value, Failure> {
        let mut con = self.connection().await?;
        let mut call = script.key(format!("{}{key}", self.prefix));
        for a in args {
            call.arg(a);
        }
        match call.invoke_async(&mut con).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.failed(e).await),
        }
    }

    /// A conditional write's reply: 1 done, 0 refused with no record, a string refused
    /// with the record found (parsed by the core).
    fn written(result: Result<Value, Failure>) -> StoreReply {
        match result {
            Ok(Value::Int(1)) => StoreReply::Done,
            Ok(Value::Int(0)) => StoreReply::Refused { current: None },
            Ok(Value::BulkString(bytes)) => match LeaseRecord::from_json(&bytes) {
                Ok(r) => StoreReply::Refused { current: Some(r) },
                Err(_) => StoreReply::Unavailable,
            },
            Ok(_) | Err(Failure::NoReply) => StoreReply::Lost,
            Err(Failure::NotSent) => StoreReply::Unavailable,
        }
    }
}

impl Store for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreReply> {
        Box::pin(async move {
            let Ok(mut con) = self.connection().await else {
                return StoreReply::Unavailable;
            };
            let found: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
                .arg(format!("{}{key}", self.prefix))
                .query_async(&mut con)
                .await;
            match found {
                Ok(None) => StoreReply::Found { record: None },
                Ok(Some(bytes)) => match LeaseRecord::from_json(&bytes) {
                    Ok(r) => StoreReply::Found { record: Some(r) },
                    Err(_) => StoreReply::Unavailable,
                },
                Err(e) => {
                    self.failed(e).await;
                    StoreReply::Unavailable
                }
            }
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        Box::pin(async move {
            let args = [record.to_json()];
            Self::written(self.script(&self.put_script, key, &args).await)
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        Box::pin(async move {
            let args = [expected_rvn.to_string(), record.to_json()];
            Self::written(self.script(&self.cas_script, key, &args).await)
        })
    }
}

/// Keys fetched per `SCAN` step of a listing.
const SCAN_COUNT: usize = 500;

/// `text` with Redis glob characters escaped, to match it literally in `SCAN MATCH`.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisStore {
    /// A connection for an administrative request, its failure kept for the operator.
    async fn admin_connection(&self) -> Result<MultiplexedConnection, AdminError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.admin_error(&e))
    }

    /// An administrative request's failure, for an operator.
    fn admin_error(&self, err: &RedisError) -> AdminError {
        let store = self.describe();
        let detail = err.to_string().replace(['\n', '\r'], " ");
        match err.code() {
            Some("NOAUTH" | "WRONGPASS") => AdminError::Credentials {
                store,
                detail,
                hint: "give the password in the URL: redis://:PASSWORD@HOST:PORT/DB, or \
                       redis://USER:PASSWORD@HOST:PORT/DB for an ACL user"
                    .into(),
            },
            Some("NOPERM") => AdminError::Denied {
                store,
                detail,
                hint: "the ACL user needs GET, SET, EVAL, EVALSHA, SCAN and PING on the \
                       writelane:lease:* keys"
                    .into(),
            },
            _ => AdminError::Unavailable { store, detail },
        }
    }

    async fn admin_get(
        &self,
        con: &mut MultiplexedConnection,
        key: &str,
    ) -> Result<Option<Entry>, AdminError> {
        let found: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("{}{key}", self.prefix))
            .query_async(con)
            .await
            .map_err(|e| self.admin_error(&e))?;
        Ok(found.map(|bytes| entry_of(key, &bytes, None)))
    }

    async fn admin_entry(&self, key: &str) -> Result<Option<Entry>, AdminError> {
        let mut con = self.admin_connection().await?;
        self.admin_get(&mut con, key).await
    }

    async fn admin_list(&self, prefix: &str) -> Result<Vec<Entry>, AdminError> {
        let mut con = self.admin_connection().await?;
        let pattern = format!("{}*", glob_literal(&format!("{}{prefix}", self.prefix)));
        let mut keys = std::collections::BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut con)
                .await
                .map_err(|e| self.admin_error(&e))?;
            // SCAN may return a key twice; the set keeps it once.
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut entries = Vec::new();
        for full in keys {
            let Some(key) = full.strip_prefix(&self.prefix) else {
                continue;
            };
            // A key deleted between the scan and the read is no record.
            if let Some(entry) = self.admin_get(&mut con, key).await? {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    async fn admin_init(&self) -> Result<InitReport, AdminError> {
        let mut con = self.admin_connection().await?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .map_err(|e| self.admin_error(&e))?;
        Ok(InitReport {
            created: false,
            detail: format!(
                "{} answers PING ({pong}); records live at {}<entity>",
                self.describe(),
                self.prefix
            ),
        })
    }
}

impl StoreAdmin for RedisStore {
    fn describe(&self) -> String {
        // The address only: the URL may hold a password.
        format!("Redis at {}", self.client.get_connection_info().addr())
    }

    fn entry<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, AdminError>> {
        Box::pin(self.admin_entry(key))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Entry>, AdminError>> {
        Box::pin(self.admin_list(prefix))
    }

    fn init(&self) -> BoxFuture<'_, Result<InitReport, AdminError>> {
        Box::pin(self.admin_init())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_matched_literally() {
        assert_eq!(
            glob_literal("writelane:lease:role/a"),
            "writelane:lease:role/a"
        );
        assert_eq!(glob_literal("a*b?[c]\\d"), "a\\*b\\?\\[c\\]\\\\d");
    }

    #[test]
    fn the_description_hides_the_password() {
        let store = RedisStore::new("redis://:s3cret@127.0.0.1:6390/2").expect("url");
        let text = store.describe();
        assert!(text.contains("127.0.0.1:6390"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
