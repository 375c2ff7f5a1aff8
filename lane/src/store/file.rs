//! The file store: one JSON file of `{key: record}` for writers in several processes on
//! one host, shared with the Python (`FileStore`) and Go (`NewFileStore`) bindings.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use writelane_core::lease::{LeaseRecord, StoreReply, DEFAULT_STORE_TIMEOUT_MS};

use super::admin::{entry_of, AdminError, Entry, InitReport, StoreAdmin};
use super::{BoxFuture, Store};

/// A lease store in the JSON file `path`: `{key: record, ...}`, keys sorted, each record
/// the core's JSON ([`LeaseRecord::to_json`]), other keys' records kept as the file holds
/// them. Every operation holds an `flock` of `PATH.lock` (shared for `get`, exclusive for
/// writes) and a changed store is written to a temporary file in the same directory,
/// synced and renamed over `path`, so a process killed mid-write leaves the old or the
/// new store, never half of one. This is the layout and locking of the Python and Go file
/// stores, so processes in all three languages share one file.
///
/// Waiting for the lock is bounded by the store timeout (default the core's
/// [`DEFAULT_STORE_TIMEOUT_MS`]; [`FileStore::with_timeout_ms`]): the store is then
/// unavailable. A failure to sync the directory after the rename is `Lost` (the write
/// happened; whether it is durable is unknown); any other failure is `Unavailable`, and so
/// is a record the core refuses. New files get mode 0600 ([`FileStore::with_mode`]).
/// Every process needs read and write access to the directory. `flock` is not
/// dependable over NFS.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    lock_path: PathBuf,
    timeout: Duration,
    mode: u32,
}

/// Why an operation failed: the reply it comes to.
struct Failed(Box<StoreReply>);

type Records = BTreeMap<String, Box<RawValue>>;

fn unavailable<E>(_: E) -> Failed {
    Failed(Box::new(StoreReply::Unavailable))
}

impl FileStore {
    /// A store in the file at `path` (created on first write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        FileStore {
            inner: Arc::new(Inner {
                path,
                lock_path: lock_path.into(),
                timeout: Duration::from_millis(DEFAULT_STORE_TIMEOUT_MS),
                mode: 0o600,
            }),
        }
    }

    /// Bound the wait for the lock by `ms` milliseconds (use the lane's
    /// `lease.store_timeout_ms`).
    pub fn with_timeout_ms(self, ms: u64) -> Self {
        self.rebuild(|i| i.timeout = Duration::from_millis(ms))
    }

    /// The permission bits new files get (0600 by default; 0660 for a group-shared store).
    pub fn with_mode(self, mode: u32) -> Self {
        self.rebuild(|i| i.mode = mode)
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            path: self.inner.path.clone(),
            lock_path: self.inner.lock_path.clone(),
            timeout: self.inner.timeout,
            mode: self.inner.mode,
        };
        change(&mut inner);
        FileStore {
            inner: Arc::new(inner),
        }
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` on a blocking thread; a panic there (a bug) counts as no reply.
    fn run<F>(&self, f: F) -> BoxFuture<'static, StoreReply>
    where
        F: FnOnce(&Inner) -> Result<StoreReply, Failed> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || f(&inner)).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(Failed(reply))) => *reply,
                Err(_) => StoreReply::Lost,
            }
        })
    }
}

impl Inner {
    /// Open the lock file and take the lock, waiting at most the store timeout.
    fn lock(&self, how: libc::c_int) -> Result<File, Failed> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.mode)
            .open(&self.lock_path)
            .map_err(unavailable)?;
        let deadline = Instant::now() + self.timeout;
        let mut wait = Duration::from_micros(500);
        loop {
            // SAFETY: flock on a descriptor this function owns; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } == 0 {
                return Ok(file);
            }
            let err = std::io::Error::last_os_error();
            if !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
                return Err(Failed(Box::new(StoreReply::Unavailable)));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failed(Box::new(StoreReply::Unavailable)));
            }
            std::thread::sleep(wait.min(deadline - now));
            wait = (wait * 2).min(Duration::from_millis(20));
        }
    }

    /// The store's records as the file holds them; a missing or blank file is empty.
    fn read(&self) -> Result<Records, Failed> {
        let bytes = match std::fs::read(&self.path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Records::new()),
            other => other.map_err(unavailable)?,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Records::new());
        }
        serde_json::from_slice(&bytes).map_err(unavailable)
    }

    /// The record at `key`, parsed by the core (`null` is none).
    fn record(records: &Records, key: &str) -> Result<Option<LeaseRecord>, Failed> {
        match records.get(key).map(|raw| raw.get()) {
            None | Some("null") => Ok(None),
            Some(text) => LeaseRecord::from_json(text.as_bytes())
                .map(Some)
                .map_err(unavailable),
        }
    }

    /// Replace the file atomically: temporary file, sync, rename, sync the directory.
    fn write(&self, records: &Records) -> Result<(), Failed> {
        let text = serde_json::to_vec(records).map_err(unavailable)?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.tmp{:016x}", crate::types::entropy()));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.mode)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Failed(Box::new(StoreReply::Unavailable)));
        }
        // The rename happened; whether it is durable is unknown if this fails.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|_| Failed(Box::new(StoreReply::Lost)))
    }

    fn update(
        &self,
        key: &str,
        record: &LeaseRecord,
        ok: impl FnOnce(Option<&LeaseRecord>) -> bool,
    ) -> Result<StoreReply, Failed> {
        let _lock = self.lock(libc::LOCK_EX)?;
        let mut records = self.read()?;
        let current = Self::record(&records, key)?;
        if !ok(current.as_ref()) {
            return Ok(StoreReply::Refused { current });
        }
        let raw = RawValue::from_string(record.to_json()).map_err(unavailable)?;
        records.insert(key.to_string(), raw);
        self.write(&records)?;
        Ok(StoreReply::Done)
    }
}

impl Store for FileStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreReply> {
        let key = key.to_string();
        self.run(move |inner| {
            let _lock = inner.lock(libc::LOCK_SH)?;
            let record = Inner::record(&inner.read()?, &key)?;
            Ok(StoreReply::Found { record })
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        let (key, record) = (key.to_string(), record.clone());
        self.run(move |inner| inner.update(&key, &record, |cur| cur.is_none()))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        let (key, record) = (key.to_string(), record.clone());
        self.run(move |inner| {
            inner.update(&key, &record, |cur| {
                cur.is_some_and(|c| c.rvn == expected_rvn)
            })
        })
    }
}

impl FileStore {
    /// Run an administrative `f` on a blocking thread.
    async fn admin<T, F>(&self, f: F) -> Result<T, AdminError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, String) -> Result<T, AdminError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let store = self.describe();
        let failed = store.clone();
        tokio::task::spawn_blocking(move || f(&inner, store))
            .await
            .unwrap_or_else(|e| {
                Err(AdminError::Unavailable {
                    store: failed,
                    detail: format!("the file operation stopped: {e}"),
                })
            })
    }
}

impl Inner {
    /// The records under a shared lock, for an administrative read; an error names the
    /// file and what to do.
    fn admin_read(&self, store: &str) -> Result<Records, AdminError> {
        let unavailable = |detail: String| AdminError::Unavailable {
            store: store.to_string(),
            detail,
        };
        let _lock = self.lock(libc::LOCK_SH).map_err(|_| {
            unavailable(format!(
                "cannot take the lock {}: check the directory exists and is writable \
                 (`writelane lease init` creates it), or another process holds the lock",
                self.lock_path.display()
            ))
        })?;
        let bytes = match std::fs::read(&self.path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Records::new()),
            Err(e) => return Err(unavailable(format!("cannot read it: {e}"))),
            Ok(b) => b,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Records::new());
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            unavailable(format!(
                "it is not a JSON object of records ({e}): restore it or point the store elsewhere"
            ))
        })
    }

    fn admin_entry(records: &Records, key: &str) -> Option<Entry> {
        match records.get(key).map(|raw| raw.get()) {
            None | Some("null") => None,
            Some(text) => Some(entry_of(key, text.as_bytes(), None)),
        }
    }
}

impl StoreAdmin for FileStore {
    fn describe(&self) -> String {
        format!("file store {}", self.inner.path.display())
    }

    fn entry<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, AdminError>> {
        let key = key.to_string();
        Box::pin(
            self.admin(move |inner, store| {
                Ok(Inner::admin_entry(&inner.admin_read(&store)?, &key))
            }),
        )
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Entry>, AdminError>> {
        let prefix = prefix.to_string();
        Box::pin(self.admin(move |inner, store| {
            let records = inner.admin_read(&store)?;
            // The map is sorted, so the entries are too.
            Ok(records
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .filter_map(|k| Inner::admin_entry(&records, k))
                .collect())
        }))
    }

    fn init(&self) -> BoxFuture<'_, Result<InitReport, AdminError>> {
        Box::pin(self.admin(|inner, store| {
            let dir = match inner.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let created = !dir.is_dir();
            std::fs::create_dir_all(&dir).map_err(|e| AdminError::NotWritable {
                store: store.clone(),
                detail: format!("cannot create the directory {}: {e}", dir.display()),
            })?;
            // Taking the exclusive lock creates the lock file: the check that writers can.
            inner
                .lock(libc::LOCK_EX)
                .map_err(|_| AdminError::NotWritable {
                    store: store.clone(),
                    detail: format!(
                        "cannot create or lock {}: every process needs read and write access \
                     to {}",
                        inner.lock_path.display(),
                        dir.display()
                    ),
                })?;
            let records = inner.admin_read(&store)?;
            let detail = format!(
                "{}{} holds {} record(s)",
                if created {
                    format!("created the directory {}; ", dir.display())
                } else {
                    String::new()
                },
                store,
                records.len()
            );
            Ok(InitReport { created, detail })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(owner: &str, rvn: u64) -> LeaseRecord {
        LeaseRecord {
            owner: owner.into(),
            epoch: 1,
            rvn,
            lease_ms: 1_000,
            committed_token: None,
            holder: None,
            ..Default::default()
        }
    }

    #[test]
    fn admin_lists_under_a_prefix_and_reports_unreadable_records() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!(
            "writelane-file-admin-{}-{:x}",
            std::process::id(),
            crate::types::entropy()
        ));
        let store = FileStore::new(dir.join("sub/leases.json"));
        let report = rt.block_on(store.init()).expect("init");
        assert!(report.created, "{report:?}");
        assert!(dir.join("sub").is_dir());
        assert!(!rt.block_on(store.init()).expect("init again").created);
        for (key, rvn) in [("role/b", 2), ("role/a", 1), ("user/c", 3)] {
            assert_eq!(
                rt.block_on(store.put_if_absent(key, &record("o", rvn))),
                StoreReply::Done
            );
        }
        let listed = rt.block_on(store.list("role/")).expect("list");
        let keys: Vec<&str> = listed.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["role/a", "role/b"]);
        assert_eq!(listed[1].record.as_ref().map(|r| r.rvn), Ok(2));
        assert_eq!(rt.block_on(store.list("")).expect("all").len(), 3);
        assert!(rt.block_on(store.entry("none")).expect("entry").is_none());

        // A record the core refuses is listed with the reason, not dropped.
        std::fs::write(
            dir.join("sub/leases.json"),
            r#"{"bad":{"owner":"o","epoch":0,"rvn":1,"lease_ms":1,"committed_token":null,"holder":null}}"#,
        )
        .unwrap();
        let listed = rt.block_on(store.list("")).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].record.as_ref().unwrap_err().field, "epoch");

        // A file that is not a JSON object of records names the file and what to do.
        std::fs::write(dir.join("sub/leases.json"), "[1,2]").unwrap();
        let err = rt.block_on(store.list("")).unwrap_err();
        assert!(
            matches!(&err, AdminError::Unavailable { detail, .. } if detail.contains("not a JSON object")),
            "{err}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
