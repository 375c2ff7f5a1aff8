//! One Lane shared by tasks, two Lanes sharing a file store (two machines), and
//! cancellation by dropping the run future. Real tokio time, multi-threaded runtimes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use writelane::{
    Attempt, Failure, Lane, LaneOptions, MemoryStore, NoRead, OpId, Policy, RunOptions, Store,
};

/// A stand-in for an entity: counts writers inside a write, and logs each write.
#[derive(Default)]
struct Entity {
    inside: AtomicUsize,
    overlaps: AtomicUsize,
    version: AtomicU64,
    log: Mutex<Vec<(OpId, Option<u64>)>>,
}

impl Entity {
    async fn write(&self, a: &Attempt) {
        if self.inside.fetch_add(1, Ordering::SeqCst) != 0 {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.log.lock().unwrap().push((a.op, a.fence));
        tokio::time::sleep(Duration::from_millis(2)).await;
        let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        a.set_token(format!("v{v}"));
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn one_write(lane: &Lane, entity: &Arc<Entity>) -> Option<String> {
    let e = Arc::clone(entity);
    let read_entity = Arc::clone(entity);
    let report = lane
        .run(
            "role/app",
            move |a: Attempt| {
                let e = Arc::clone(&e);
                async move {
                    e.write(&a).await;
                    Ok::<_, Failure>(())
                }
            },
            Some(move || {
                let v = read_entity.version.load(Ordering::SeqCst);
                async move { Ok(Some(format!("v{v}"))) }
            }),
            RunOptions::default(),
        )
        .await
        .unwrap();
    report.into_result().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_five_writes_one_lane_fifo_no_overlap() {
    let lane = Lane::new(Policy::preset("iam").unwrap(), LaneOptions::default()).unwrap();
    let entity = Arc::new(Entity::default());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (lane, entity) = (lane.clone(), Arc::clone(&entity));
            tokio::spawn(async move {
                for _ in 0..5 {
                    assert!(one_write(&lane, &entity).await.is_some());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let log = entity.log.lock().unwrap();
    assert_eq!(log.len(), 40, "one attempt per write");
    assert_eq!(
        entity.overlaps.load(Ordering::SeqCst),
        0,
        "writes overlapped"
    );
    assert!(
        log.windows(2).all(|w| w[0].0 < w[1].0),
        "writes not in submission order (FIFO): {log:?}"
    );
    let stats = lane.stats();
    assert_eq!((stats.global.committed, stats.global.conflicts), (40, 0));
    assert!(stats.global.lane_waits > 0, "the tasks never contended");
    assert_eq!(stats.active_ops, 0);
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "writelane-lane-{}-{name}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("leases.json")
}

fn short_lease() -> Policy {
    Policy::from_json(
        r#"{"lease": {"lease_ms": 3000, "renew_ms": 1000, "lock_delay_ms": 100,
            "poll_ms": 20, "unavailable_ms": 5000, "max_write_ms": 500}}"#,
    )
    .unwrap()
}

#[cfg(all(unix, feature = "file"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lanes_share_a_file_store_like_two_machines() {
    let path = temp_path("two-lanes");
    let entity = Arc::new(Entity::default());
    let lanes: Vec<Lane> = [
        "machine-a:1:00000000000000aa",
        "machine-b:2:00000000000000bb",
    ]
    .iter()
    .map(|owner| {
        let store = writelane::FileStore::new(&path).with_timeout_ms(1_000);
        let options = LaneOptions {
            store: Some(Arc::new(store)),
            owner: Some(owner.to_string()),
            holder: Some(format!("test {owner}")),
            ..LaneOptions::default()
        };
        Lane::new(short_lease(), options).unwrap()
    })
    .collect();
    let mut tasks = Vec::new();
    for lane in &lanes {
        for _ in 0..3 {
            let (lane, entity) = (lane.clone(), Arc::clone(&entity));
            tasks.push(tokio::spawn(async move {
                for _ in 0..3 {
                    assert!(one_write(&lane, &entity).await.is_some());
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = entity.log.lock().unwrap();
    assert_eq!(log.len(), 18);
    assert_eq!(
        entity.overlaps.load(Ordering::SeqCst),
        0,
        "writes overlapped"
    );
    let fences: Vec<u64> = log
        .iter()
        .map(|(_, f)| f.expect("a fenced write"))
        .collect();
    assert!(
        fences.windows(2).all(|w| w[0] < w[1]),
        "every holding bumps the epoch: {fences:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let record = &file["role/app"];
    assert_eq!(record["owner"], "", "released: {text}");
    assert_eq!(record["epoch"], fences.last().copied().unwrap());
    assert_eq!(record["committed_token"], "v18");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_releases_the_lane_and_the_lease() {
    let store = Arc::new(MemoryStore::new());
    let lane = Lane::new(
        short_lease(),
        LaneOptions {
            store: Some(store.clone() as Arc<dyn Store>),
            ..LaneOptions::default()
        },
    )
    .unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let s = Arc::clone(&started);
    let stuck = lane.run(
        "role/app",
        move |_a: Attempt| {
            let s = Arc::clone(&s);
            async move {
                s.notify_one();
                std::future::pending::<Result<(), Failure>>().await
            }
        },
        None::<NoRead<Failure>>,
        RunOptions::default(),
    );
    tokio::select! {
        _ = stuck => panic!("the stuck write finished"),
        () = started.notified() => {}
    }
    // The run future is dropped here, mid-write: the lane and the lease are released.
    let held = store.record("role/app").unwrap();
    let next = tokio::time::timeout(
        Duration::from_secs(2),
        lane.run(
            "role/app",
            |a: Attempt| async move {
                assert_eq!(a.base_token.as_deref(), Some("v8"), "based on a fresh read");
                a.set_token("v9");
                Ok::<_, Failure>(())
            },
            Some(|| async { Ok::<_, Failure>(Some("v8".to_string())) }),
            RunOptions::default(),
        ),
    )
    .await
    .expect("the lane was released at once")
    .unwrap();
    assert_eq!(next.into_result().unwrap(), Some("v9".into()));
    let after = store.record("role/app").unwrap();
    assert_eq!(after.owner, "");
    assert_eq!(
        after.epoch,
        held.epoch + 1,
        "the next run took a new holding"
    );
    assert_eq!(
        lane.stats().global.gave_up,
        1,
        "the dropped run gave up (cancelled)"
    );
}
