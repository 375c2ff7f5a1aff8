//! `LeaseHolder`: leases held across work of any length, several entities in sorted
//! order, the lost-lease signal, release by compare-and-swap, and cancellation. Memory
//! store on tokio's paused clock, so minutes of holding take no time.

use std::sync::Arc;
use std::time::Duration;

use writelane::{
    force_release, ForceReleaseResult, HoldError, HoldOptions, LeaseHolder, LeaseRecord,
    LeaseStatus, MemoryStore, Policy, Store,
};

fn holder(store: &Arc<MemoryStore>, text: &str) -> LeaseHolder {
    let store: Arc<dyn Store> = Arc::clone(store) as Arc<dyn Store>;
    let options = HoldOptions {
        holder: Some(text.to_string()),
        ..HoldOptions::default()
    };
    LeaseHolder::new(store, &Policy::preset("iam").unwrap(), options).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_hold_outlives_max_write_and_the_deadline_and_releases_without_a_token() {
    let store = Arc::new(MemoryStore::new());
    // A token left by an earlier writer: a hold's work may change anything, so its
    // release must not hand this token on.
    store.set(
        "role/b",
        Some(LeaseRecord {
            owner: String::new(),
            epoch: 4,
            rvn: 77,
            lease_ms: 10_000,
            committed_token: Some("v9".into()),
            holder: None,
            ..Default::default()
        }),
    );
    let h = holder(&store, "ci run 17");
    let held = h.acquire(&["role/b", "role/a"], |_, _| {}).await.unwrap();
    assert_eq!(
        held.fences(),
        vec![("role/a".to_string(), 1), ("role/b".to_string(), 5)]
    );
    let a = store.record("role/a").unwrap();
    assert_eq!(a.owner, h.owner());
    assert_eq!(a.holder.as_deref(), Some("ci run 17"));
    // Ten minutes: far past the iam preset's max_write_ms (2 s) and deadline (120 s).
    let mut rvns = std::collections::BTreeSet::new();
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rec = store.record("role/a").unwrap();
        assert_eq!(rec.owner, h.owner(), "still ours");
        rvns.insert(rec.rvn);
    }
    assert!(rvns.len() > 100, "renewed throughout: {} rvns", rvns.len());
    held.release().await.unwrap();
    for (key, epoch) in [("role/a", 1), ("role/b", 5)] {
        let rec = store.record(key).unwrap();
        assert_eq!(rec.owner, "", "{key} free");
        assert_eq!(rec.epoch, epoch, "{key} keeps its epoch");
        assert_eq!(rec.committed_token, None, "{key} keeps no token");
        assert_eq!(rec.holder, None);
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiter_sees_the_holder_then_takes_over_on_release() {
    let store = Arc::new(MemoryStore::new());
    let first = holder(&store, "deploy pipeline");
    let held = first.acquire(&["role/x"], |_, _| {}).await.unwrap();
    let second = holder(&store, "remediator");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let waiter = tokio::spawn(async move {
        second
            .acquire(&["role/x"], move |entity, status| {
                if let LeaseStatus::Waiting {
                    current: Some(r),
                    held_for_ms,
                } = status
                {
                    log.lock().unwrap().push((
                        entity.to_string(),
                        r.holder.clone(),
                        r.epoch,
                        *held_for_ms,
                    ));
                }
            })
            .await
    });
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(!waiter.is_finished(), "held for 20 s: still waiting");
    let reports = seen.lock().unwrap().clone();
    assert!(reports.len() > 10, "{} reports", reports.len());
    let last = reports.last().unwrap();
    assert_eq!(last.0, "role/x");
    assert_eq!(last.1.as_deref(), Some("deploy pipeline"));
    assert_eq!(last.2, 1);
    assert!(
        (19_000..=20_000).contains(&last.3),
        "seen held for {} ms",
        last.3
    );
    held.release().await.unwrap();
    let second_held = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("acquired within a poll")
        .unwrap()
        .unwrap();
    // Released, not taken over: no lock-delay, the epoch grows by one.
    assert_eq!(second_held.fences(), vec![("role/x".to_string(), 2)]);
    second_held.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_force_release_is_reported_as_lost() {
    let store = Arc::new(MemoryStore::new());
    let h = holder(&store, "apply");
    let mut held = h.acquire(&["a", "b"], |_, _| {}).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let evicted = force_release(store.as_ref(), "b", None, Some(1), 1_000)
        .await
        .unwrap();
    assert!(matches!(evicted, ForceReleaseResult::Released { .. }));
    let lost = tokio::time::timeout(Duration::from_secs(10), held.lost())
        .await
        .expect("the next renewal finds out");
    assert_eq!(lost, HoldError::Lost { entity: "b".into() });
    // The release still frees "a", and reports "b" as not released by us.
    assert_eq!(
        held.release().await,
        Err(HoldError::Lost { entity: "b".into() })
    );
    assert_eq!(store.record("a").unwrap().owner, "");
    assert_eq!(
        store.record("b").unwrap().epoch,
        2,
        "the operator's epoch stands"
    );
}

#[tokio::test(start_paused = true)]
async fn crossed_entity_orders_do_not_deadlock() {
    let store = Arc::new(MemoryStore::new());
    let mut tasks = Vec::new();
    for (i, order) in [["A", "B"], ["B", "A"], ["A", "B"], ["B", "A"]]
        .into_iter()
        .enumerate()
    {
        let h = holder(&store, &format!("job {i}"));
        tasks.push(tokio::spawn(async move {
            let held = h.acquire(&order, |_, _| {}).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            held.release().await.unwrap();
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("no deadlock")
            .unwrap();
    }
    // Four holdings of each, one after another.
    assert_eq!(store.record("A").unwrap().epoch, 4);
    assert_eq!(store.record("B").unwrap().epoch, 4);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_acquire_releases_what_it_held() {
    let store = Arc::new(MemoryStore::new());
    let other = holder(&store, "other");
    let blocker = other.acquire(&["z"], |_, _| {}).await.unwrap();
    let h = holder(&store, "mine");
    // Holds "a", waits on "z" for 3 s, then gives up (as `--wait 3s` does).
    let gave_up =
        tokio::time::timeout(Duration::from_secs(3), h.acquire(&["z", "a"], |_, _| {})).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = store.record("a").unwrap();
    assert_eq!(a.owner, "", "released in the background");
    assert_eq!(store.record("z").unwrap().owner, other.owner());
    blocker.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dead_holder_is_taken_over_after_its_lease() {
    let store = Arc::new(MemoryStore::new());
    // A holder that stopped renewing (its process was killed).
    store.set(
        "role/y",
        Some(LeaseRecord {
            owner: "gone:1:00".into(),
            epoch: 3,
            rvn: 5,
            lease_ms: 10_000,
            committed_token: None,
            holder: Some("killed".into()),
            ..Default::default()
        }),
    );
    let h = holder(&store, "next");
    let start = tokio::time::Instant::now();
    let held = h.acquire(&["role/y"], |_, _| {}).await.unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(11) && waited <= Duration::from_secs(21),
        "at least a lease (10 s) and enough polls to fill two (200 polls of 50 to 100 ms), \
         then the lock-delay (1 s): {waited:?}"
    );
    assert_eq!(held.fences(), vec![("role/y".to_string(), 4)]);
    held.release().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_written() {
    let store = Arc::new(MemoryStore::new());
    let h = holder(&store, "x");
    let err = h.acquire(&["a", ""], |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HoldError::Usage(_)), "{err}");
    assert_eq!(store.record("a"), None);
    let long = "e".repeat(writelane_core::MAX_ENTITY_LEN + 1);
    assert!(h.acquire(&[long], |_, _| {}).await.is_err());
    let too_long = HoldOptions {
        holder: Some("h".repeat(writelane::MAX_HOLDER_LEN + 1)),
        ..HoldOptions::default()
    };
    let store: Arc<dyn Store> = store;
    assert!(LeaseHolder::new(store, &Policy::preset("iam").unwrap(), too_long).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_wait_cut_short_then_released_leaves_every_record_free() {
    let store = Arc::new(MemoryStore::new());
    let other = holder(&store, "other");
    let blocker = other.acquire(&["m"], |_, _| {}).await.unwrap();
    let h = holder(&store, "mine");
    let mut holding = h.holding(&["m", "b", "m"]).unwrap();
    assert_eq!(holding.entities(), ["b", "m"]);
    let cut = tokio::time::timeout(Duration::from_secs(2), holding.acquire(|_, _| {})).await;
    assert!(cut.is_err(), "m is held by the other");
    assert_eq!(holding.fences(), vec![("b".to_string(), 1)]);
    assert_eq!(store.record("b").unwrap().owner, h.owner());
    holding.release().await.unwrap();
    assert_eq!(
        store.record("b").unwrap().owner,
        "",
        "released before release() returned"
    );
    assert_eq!(
        store.record("m").unwrap().owner,
        other.owner(),
        "never ours"
    );
    blocker.release().await.unwrap();
}

/// A store that can stop answering (a partition): calls then never return.
struct Partition {
    inner: MemoryStore,
    cut: std::sync::atomic::AtomicBool,
    /// When the last compare-and-swap that landed was sent.
    last_swap_sent: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Store for Partition {
    fn get<'a>(&'a self, key: &'a str) -> writelane::BoxFuture<'a, writelane::StoreReply> {
        if self.cut.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        self.inner.get(key)
    }

    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        record: &'a LeaseRecord,
    ) -> writelane::BoxFuture<'a, writelane::StoreReply> {
        if self.cut.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        *self.last_swap_sent.lock().unwrap() = Some(tokio::time::Instant::now());
        self.inner.put_if_absent(key, record)
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        record: &'a LeaseRecord,
    ) -> writelane::BoxFuture<'a, writelane::StoreReply> {
        if self.cut.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        *self.last_swap_sent.lock().unwrap() = Some(tokio::time::Instant::now());
        self.inner.compare_and_swap(key, expected_rvn, record)
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_cut_off_loses_the_lease_when_it_runs_out_not_later() {
    let store = Arc::new(Partition {
        inner: MemoryStore::new(),
        cut: false.into(),
        last_swap_sent: std::sync::Mutex::new(None),
    });
    let h = LeaseHolder::new(
        Arc::clone(&store) as Arc<dyn Store>,
        &Policy::preset("iam").unwrap(),
        HoldOptions::default(),
    )
    .unwrap();
    let mut held = h.acquire(&["role/p"], |_, _| {}).await.unwrap();
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    store.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    let lost = tokio::time::timeout(Duration::from_secs(30), held.lost())
        .await
        .expect("lost");
    assert_eq!(
        lost,
        HoldError::Lost {
            entity: "role/p".into()
        }
    );
    let last = store.last_swap_sent.lock().unwrap().unwrap();
    let after = last.elapsed();
    // The iam preset: a 10 s lease. Lost at once when it runs out (no reply is waited
    // for: retries after a lost renewal may take a store timeout and a poll longer).
    assert!(
        after >= Duration::from_secs(10) && after <= Duration::from_millis(10_010),
        "lost {after:?} after the last renewal landed"
    );
}
