//! Test doubles shared by the test files: a virtual clock that can cancel a run when a
//! sleep reaches a time, and a store that injects the lane vectors' faults.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::Notify;
use writelane::{BoxFuture, Clock, LeaseRecord, MemoryStore, Store, StoreOp, StoreReply};

/// A virtual clock: sleeps return at once with the clock moved to their end. With
/// `cancel_at`, the first sleep reaching that time moves the clock there, fires
/// `cancelled` and never returns.
#[derive(Default)]
pub struct FakeClock {
    state: Mutex<(u64, Option<u64>)>,
    /// Notified when a sleep reached the cancel time.
    pub cancelled: Notify,
    /// Every time a sleep was asked to end at.
    pub sleeps: Mutex<Vec<u64>>,
}

impl FakeClock {
    pub fn new(cancel_at: Option<u64>) -> Arc<Self> {
        let clock = FakeClock::default();
        clock.state.lock().unwrap().1 = cancel_at;
        Arc::new(clock)
    }

    pub fn now(&self) -> u64 {
        self.state.lock().unwrap().0
    }

    pub fn advance_to(&self, t: u64) {
        let mut s = self.state.lock().unwrap();
        s.0 = s.0.max(t);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.now()
    }

    fn sleep_until(&self, ms: u64) -> BoxFuture<'_, ()> {
        self.sleeps.lock().unwrap().push(ms);
        let mut s = self.state.lock().unwrap();
        if let Some(at) = s.1.filter(|&at| at <= ms) {
            s.0 = s.0.max(at);
            s.1 = None;
            self.cancelled.notify_one();
            return Box::pin(std::future::pending());
        }
        s.0 = s.0.max(ms);
        Box::pin(std::future::ready(()))
    }
}

/// A memory store that records every call (with the clock's time) and applies the lane
/// vectors' faults by 0-based call index.
pub struct FaultStore {
    pub inner: MemoryStore,
    pub faults: BTreeMap<usize, String>,
    pub count: Mutex<usize>,
    pub calls: Arc<Mutex<Vec<Value>>>,
    pub clock: Arc<FakeClock>,
}

impl FaultStore {
    fn carry(&self, op: StoreOp) -> BoxFuture<'_, StoreReply> {
        self.calls
            .lock()
            .unwrap()
            .push(json!({"at": self.clock.now(), "call": "store", "operation": op}));
        let index = {
            let mut c = self.count.lock().unwrap();
            *c += 1;
            *c - 1
        };
        let key = match &op {
            StoreOp::Get { key }
            | StoreOp::PutIfAbsent { key, .. }
            | StoreOp::CompareAndSwap { key, .. } => key.clone(),
        };
        let is_get = matches!(op, StoreOp::Get { .. });
        let fault = self.faults.get(&index).map(String::as_str);
        Box::pin(async move {
            let apply = |op: StoreOp| async move {
                match op {
                    StoreOp::Get { key } => self.inner.get(&key).await,
                    StoreOp::PutIfAbsent { key, record } => {
                        self.inner.put_if_absent(&key, &record).await
                    }
                    StoreOp::CompareAndSwap {
                        key,
                        expected_rvn,
                        record,
                    } => {
                        self.inner
                            .compare_and_swap(&key, expected_rvn, &record)
                            .await
                    }
                }
            };
            match fault {
                None => apply(op).await,
                Some("lost") => {
                    apply(op).await;
                    StoreReply::Lost
                }
                Some("dropped") => StoreReply::Lost,
                Some("unavailable") => StoreReply::Unavailable,
                Some("retried") if is_get => apply(op).await,
                Some("retried") => {
                    apply(op).await;
                    StoreReply::Refused {
                        current: self.inner.record(&key),
                    }
                }
                Some(other) => panic!("unknown fault {other}"),
            }
        })
    }
}

impl Store for FaultStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreReply> {
        self.carry(StoreOp::Get {
            key: key.to_string(),
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        self.carry(StoreOp::PutIfAbsent {
            key: key.to_string(),
            record: record.clone(),
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        self.carry(StoreOp::CompareAndSwap {
            key: key.to_string(),
            expected_rvn,
            record: record.clone(),
        })
    }
}

/// Every `*.json` vector in `dir` (relative to the workspace root), by file name.
pub fn vectors(dir: &str) -> Vec<(String, Value)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Run `f` to completion on a fresh current-thread runtime with time enabled.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}
