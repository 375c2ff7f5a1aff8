//! The store conformance suite: one generic test run on every adapter against a real
//! server (memory, file, redis-server, moto for DynamoDB and S3), then each adapter's own
//! failures: a dead server is `Unavailable`, a server that never answers a write is
//! `Lost` within the store timeout, a value that is not a lease record is `Unavailable`,
//! and the layout is the one the other bindings share. The Redis, DynamoDB and S3 tests
//! need the servers `lane/test.sh` starts (`WRITELANE_TEST_REDIS_URL`,
//! `WRITELANE_TEST_MOTO_ENDPOINT`); they fail, never skip, without them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use writelane::{
    Attempt, Failure, Lane, LaneOptions, LeaseRecord, MemoryStore, NoRead, Policy, RunOptions,
    Store, StoreReply,
};

fn record(
    owner: &str,
    epoch: u64,
    rvn: u64,
    token: Option<&str>,
    holder: Option<&str>,
) -> LeaseRecord {
    LeaseRecord {
        owner: owner.to_string(),
        epoch,
        rvn,
        lease_ms: 10_000,
        committed_token: token.map(str::to_string),
        holder: holder.map(str::to_string),
        ..Default::default()
    }
}

fn unique(name: &str) -> String {
    format!(
        "arn:aws:iam::123456789012:role/{name}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The three operations, refusals with the record found, and atomicity under 8
/// concurrent writers. `store` must be empty at keys named after `name`.
async fn conformance(store: Arc<dyn Store>, name: &str) {
    let key = unique(name);
    let found = |r: Option<&LeaseRecord>| StoreReply::Found { record: r.cloned() };
    let refused = |r: Option<&LeaseRecord>| StoreReply::Refused {
        current: r.cloned(),
    };
    assert_eq!(store.get(&key).await, found(None), "{name}: no record yet");
    let r1 = record(
        "host-a:1:00000000000000aa",
        1,
        101,
        None,
        Some("ci \"run\" 7 — ünïcode"),
    );
    let r2 = record("", 1, 102, Some("c1:sha256:abc"), None);
    let r3 = record("host-b:2:00000000000000bb", 2, 103, Some("v3"), Some("b"));
    assert_eq!(
        store.put_if_absent(&key, &r1).await,
        StoreReply::Done,
        "{name}"
    );
    assert_eq!(store.get(&key).await, found(Some(&r1)), "{name}: read back");
    assert_eq!(
        store.put_if_absent(&key, &r2).await,
        refused(Some(&r1)),
        "{name}"
    );
    assert_eq!(
        store.compare_and_swap(&key, 999, &r2).await,
        refused(Some(&r1)),
        "{name}"
    );
    assert_eq!(
        store.compare_and_swap(&key, 101, &r2).await,
        StoreReply::Done,
        "{name}"
    );
    assert_eq!(store.get(&key).await, found(Some(&r2)), "{name}: swapped");
    // A retried swap whose first try landed is refused by our own record.
    assert_eq!(
        store.compare_and_swap(&key, 101, &r2).await,
        refused(Some(&r2)),
        "{name}"
    );
    assert_eq!(
        store.compare_and_swap(&key, 102, &r3).await,
        StoreReply::Done,
        "{name}"
    );
    let missing = unique(&format!("{name}-missing"));
    assert_eq!(
        store.compare_and_swap(&missing, 1, &r1).await,
        refused(None),
        "{name}"
    );
    assert_eq!(
        store.get(&missing).await,
        found(None),
        "{name}: a refused swap creates nothing"
    );

    // Eight writers at once: exactly one creates, exactly one swaps.
    let race = unique(&format!("{name}-race"));
    let puts = (0..8u64).map(|i| {
        let (store, race) = (Arc::clone(&store), race.clone());
        tokio::spawn(async move {
            let mine = record(
                &format!("w{i}:1:000000000000000{i}"),
                1,
                200 + i,
                None,
                None,
            );
            (mine.clone(), store.put_if_absent(&race, &mine).await)
        })
    });
    let results: Vec<_> = futures_join(puts).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, r)| *r == StoreReply::Done)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{name}: put_if_absent winners {results:?}"
    );
    let winner = winners[0].0.clone();
    for (_, r) in &results {
        assert!(
            *r == StoreReply::Done || *r == refused(Some(&winner)),
            "{name}: {r:?}"
        );
    }
    let swaps = (0..8u64).map(|i| {
        let (store, race, rvn) = (Arc::clone(&store), race.clone(), winner.rvn);
        tokio::spawn(async move {
            let mine = record(
                &format!("s{i}:1:000000000000000{i}"),
                2,
                300 + i,
                None,
                None,
            );
            (
                mine.clone(),
                store.compare_and_swap(&race, rvn, &mine).await,
            )
        })
    });
    let results: Vec<_> = futures_join(swaps).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, r)| *r == StoreReply::Done)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{name}: compare_and_swap winners {results:?}"
    );
    let winner = winners[0].0.clone();
    for (_, r) in &results {
        assert!(
            *r == StoreReply::Done || *r == refused(Some(&winner)),
            "{name}: {r:?}"
        );
    }
    assert_eq!(store.get(&race).await, found(Some(&winner)), "{name}");

    // And a lane over the store: acquire, write fenced by epoch 1, release with the token.
    let entity = unique(&format!("{name}-lane"));
    let lane = Lane::new(
        Policy::preset("iam").unwrap(),
        LaneOptions {
            store: Some(Arc::clone(&store)),
            ..LaneOptions::default()
        },
    )
    .unwrap();
    let report = lane
        .run(
            &entity,
            |a: Attempt| async move {
                assert_eq!(a.fence, Some(1));
                a.set_token("v1");
                Ok::<_, Failure>(())
            },
            None::<NoRead<Failure>>,
            RunOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.into_result().unwrap(), Some("v1".into()), "{name}");
    let StoreReply::Found {
        record: Some(after),
    } = store.get(&entity).await
    else {
        panic!("{name}: no record after a run");
    };
    assert_eq!(
        (after.owner.as_str(), after.epoch),
        ("", 1),
        "{name}: released"
    );
    assert_eq!(after.committed_token.as_deref(), Some("v1"), "{name}");
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[cfg(any(feature = "redis", feature = "dynamodb", feature = "s3"))]
/// A TCP server that accepts connections and never answers; its address.
async fn black_hole() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

#[cfg(any(feature = "redis", feature = "dynamodb", feature = "s3"))]
/// A loopback port nobody listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[cfg(any(feature = "redis", feature = "dynamodb", feature = "s3"))]
/// A write to a server that never answers is `Lost`, within about the store timeout.
async fn lost_within(store: &dyn Store, timeout_ms: u64) {
    let start = Instant::now();
    let r = record("a:1:0000000000000001", 1, 1, None, None);
    let reply = writelane::apply(
        store,
        writelane::StoreOp::PutIfAbsent {
            key: "role/x".into(),
            record: r,
        },
        timeout_ms,
    )
    .await;
    let took = start.elapsed();
    assert_eq!(reply, StoreReply::Lost);
    assert!(
        took < Duration::from_millis(timeout_ms * 3 + 1_000),
        "took {took:?}"
    );
}

/// A dead server: every operation `Unavailable`, quickly.
async fn unavailable(store: &dyn Store) {
    let r = record("a:1:0000000000000001", 1, 1, None, None);
    assert_eq!(store.get("role/x").await, StoreReply::Unavailable);
    assert_eq!(
        store.put_if_absent("role/x", &r).await,
        StoreReply::Unavailable
    );
    assert_eq!(
        store.compare_and_swap("role/x", 1, &r).await,
        StoreReply::Unavailable
    );
}

#[cfg(any(feature = "redis", feature = "dynamodb", feature = "s3"))]
fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run lane/test.sh, which starts the servers"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    conformance(Arc::new(MemoryStore::new()), "memory").await;
}

#[cfg(all(unix, feature = "file"))]
mod file {
    use super::*;
    use writelane::FileStore;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(unique(name).replace([':', '/'], "_"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_store_conforms_and_keeps_the_shared_layout() {
        let dir = temp_dir("file");
        let path = dir.join("leases.json");
        conformance(Arc::new(FileStore::new(&path)), "file").await;
        // {key: record}, keys sorted, records in the core's JSON: what Python and Go read.
        let text = std::fs::read_to_string(&path).unwrap();
        let file: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        let keys: Vec<&String> = file.keys().collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]) && keys.len() == 3,
            "{text}"
        );
        for (k, v) in &file {
            let parsed = LeaseRecord::from_json(v.to_string().as_bytes()).unwrap();
            assert!(text.contains(&format!("{}:{}", serde_json::json!(k), parsed.to_json())));
        }
        assert!(!dir.read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn file_store_reads_what_python_writes() {
        let dir = temp_dir("python");
        let path = dir.join("leases.json");
        // json.dump(records, f, sort_keys=True): spaces after separators, keys sorted.
        std::fs::write(&path, r#"{"role/app": {"committed_token": "v6", "epoch": 3, "holder": null, "lease_ms": 400, "owner": "", "rvn": 778}}"#).unwrap();
        let store = FileStore::new(&path);
        let want = record("", 3, 778, Some("v6"), None);
        let want = LeaseRecord {
            lease_ms: 400,
            ..want
        };
        assert_eq!(
            store.get("role/app").await,
            StoreReply::Found {
                record: Some(want.clone())
            }
        );
        let next = LeaseRecord {
            owner: "me:1:0000000000000001".into(),
            epoch: 4,
            rvn: 9,
            ..want
        };
        assert_eq!(
            store.compare_and_swap("role/app", 778, &next).await,
            StoreReply::Done
        );
        assert_eq!(
            store.get("role/app").await,
            StoreReply::Found { record: Some(next) }
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn file_store_failures_are_unavailable() {
        let dir = temp_dir("fail");
        // Not a lease record, and not JSON.
        let path = dir.join("leases.json");
        std::fs::write(&path, r#"{"role/x": {"owner": "x", "epoch": 0}}"#).unwrap();
        let store = FileStore::new(&path);
        assert_eq!(store.get("role/x").await, StoreReply::Unavailable);
        assert_eq!(
            store.get("role/other").await,
            StoreReply::Found { record: None }
        );
        std::fs::write(&path, "not json").unwrap();
        unavailable(&store).await;
        // A directory that does not exist.
        unavailable(&FileStore::new(dir.join("missing/leases.json"))).await;
        // A lock held by another process (here: another descriptor) past the timeout.
        let locked = dir.join("locked.json");
        let held = std::fs::File::create(dir.join("locked.json.lock")).unwrap();
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor this test owns.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let start = Instant::now();
        let store = FileStore::new(&locked).with_timeout_ms(200);
        assert_eq!(store.get("role/x").await, StoreReply::Unavailable);
        assert!(
            start.elapsed() >= Duration::from_millis(190)
                && start.elapsed() < Duration::from_secs(2)
        );
        drop(held);
        assert_eq!(
            store.get("role/x").await,
            StoreReply::Found { record: None }
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use writelane::RedisStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_store_conforms_and_keeps_the_shared_layout() {
        let url = env("WRITELANE_TEST_REDIS_URL");
        conformance(Arc::new(RedisStore::new(&url).unwrap()), "redis").await;
        let store = RedisStore::new(&url).unwrap();
        let key = unique("redis-layout");
        let r = record("a:1:0000000000000001", 1, 5, Some("v1"), None);
        assert_eq!(store.put_if_absent(&key, &r).await, StoreReply::Done);
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let raw: String = redis::cmd("GET")
            .arg(format!("writelane:lease:{key}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(raw, r.to_json());
        // A value that is not a lease record.
        let _: () = redis::cmd("SET")
            .arg(format!("writelane:lease:{key}"))
            .arg("{\"rvn\": \"x\"}")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(store.get(&key).await, StoreReply::Unavailable);
        assert_eq!(
            store.compare_and_swap(&key, 5, &r).await,
            StoreReply::Unavailable
        );
    }

    /// A server that completes the client's handshake (`+OK` to every command) and then
    /// never answers a script: the write was sent and no reply came.
    async fn silent_after_handshake() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut silent = false;
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let chunk = String::from_utf8_lossy(&buf[..n]).to_string();
                        silent |= chunk.contains("EVAL");
                        if !silent {
                            let commands =
                                chunk.split("\r\n").filter(|l| l.starts_with('*')).count();
                            let _ = socket
                                .write_all("+OK\r\n".repeat(commands).as_bytes())
                                .await;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn redis_store_dead_or_silent_server() {
        let dead = RedisStore::new(&format!("redis://127.0.0.1:{}/0", dead_port())).unwrap();
        unavailable(&dead).await;
        // Connected, but the handshake is never answered: nothing of ours went out.
        let mute = RedisStore::new(&format!("redis://{}/0", black_hole().await))
            .unwrap()
            .with_timeout_ms(300);
        unavailable(&mute).await;
        let silent = RedisStore::new(&format!("redis://{}/0", silent_after_handshake().await))
            .unwrap()
            .with_timeout_ms(300);
        lost_within(&silent, 300).await;
    }
}

#[cfg(any(feature = "dynamodb", feature = "s3"))]
fn moto() -> String {
    for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        env(v);
    }
    env("WRITELANE_TEST_MOTO_ENDPOINT")
}

#[cfg(feature = "dynamodb")]
mod dynamodb_store {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use writelane::DynamoDbStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dynamodb_store_conforms_and_keeps_the_shared_layout() {
        let endpoint = moto();
        let table = format!("leases{}", dead_port());
        let store = DynamoDbStore::connect(&table, Some(&endpoint), 2_000).await;
        store.create_table().await.unwrap();
        store.create_table().await.unwrap(); // a second time is fine
        let store = Arc::new(store);
        conformance(store.clone(), "dynamodb").await;
        let key = unique("ddb-layout");
        let r = record("a:1:0000000000000001", 1, 5, None, Some("h"));
        assert_eq!(store.put_if_absent(&key, &r).await, StoreReply::Done);
        let item = store
            .client()
            .get_item()
            .table_name(&table)
            .key("key", AttributeValue::S(key.clone()))
            .send()
            .await
            .unwrap();
        let item = item.item().unwrap();
        assert_eq!(item["owner"], AttributeValue::S(r.owner.clone()));
        assert_eq!(item["epoch"], AttributeValue::N("1".into()));
        assert_eq!(item["rvn"], AttributeValue::N("5".into()));
        assert_eq!(item["lease_ms"], AttributeValue::N("10000".into()));
        assert_eq!(item["committed_token"], AttributeValue::Null(true));
        assert_eq!(item["holder"], AttributeValue::S("h".into()));
        // An item that is not a lease record.
        store
            .client()
            .put_item()
            .table_name(&table)
            .item("key", AttributeValue::S(key.clone()))
            .item("rvn", AttributeValue::S("x".into()))
            .send()
            .await
            .unwrap();
        assert_eq!(store.get(&key).await, StoreReply::Unavailable);
    }

    #[tokio::test]
    async fn dynamodb_store_dead_or_silent_server() {
        moto();
        let dead = format!("http://127.0.0.1:{}", dead_port());
        unavailable(&DynamoDbStore::connect("t", Some(&dead), 1_000).await).await;
        let silent = format!("http://{}", black_hole().await);
        lost_within(&DynamoDbStore::connect("t", Some(&silent), 300).await, 300).await;
    }
}

#[cfg(feature = "s3")]
mod s3_store {
    use super::*;
    use writelane::S3Store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_store_conforms_and_keeps_the_layout() {
        let endpoint = moto();
        let bucket = format!("leases{}", dead_port());
        let store = S3Store::connect(&bucket, "writelane/leases/", Some(&endpoint), 2_000).await;
        store
            .client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let store = Arc::new(store);
        conformance(store.clone(), "s3").await;
        let key = unique("s3-layout");
        let r = record("a:1:0000000000000001", 1, 5, Some("v1"), None);
        assert_eq!(store.put_if_absent(&key, &r).await, StoreReply::Done);
        let object = store
            .client()
            .get_object()
            .bucket(&bucket)
            .key(format!("writelane/leases/{key}"))
            .send()
            .await
            .unwrap();
        let body = object.body.collect().await.unwrap().into_bytes();
        assert_eq!(std::str::from_utf8(&body).unwrap(), r.to_json());
        // Another writer changed the object behind this store's cached ETag: the swap is
        // refused with the record found, never written over it.
        let other = record("b:2:0000000000000002", 2, 6, None, None);
        let fresh = S3Store::connect(&bucket, "writelane/leases/", Some(&endpoint), 2_000).await;
        assert_eq!(
            fresh.compare_and_swap(&key, 5, &other).await,
            StoreReply::Done
        );
        let mine = record("a:1:0000000000000001", 1, 7, None, None);
        assert_eq!(
            store.compare_and_swap(&key, 5, &mine).await,
            StoreReply::Refused {
                current: Some(other.clone())
            }
        );
        // A body that is not a lease record.
        store
            .client()
            .put_object()
            .bucket(&bucket)
            .key(format!("writelane/leases/{key}"))
            .body(b"{}".to_vec().into())
            .send()
            .await
            .unwrap();
        assert_eq!(store.get(&key).await, StoreReply::Unavailable);
    }

    #[tokio::test]
    async fn s3_store_dead_or_silent_server() {
        moto();
        let dead = format!("http://127.0.0.1:{}", dead_port());
        unavailable(&S3Store::connect("b", "p/", Some(&dead), 1_000).await).await;
        let silent = format!("http://{}", black_hole().await);
        lost_within(&S3Store::connect("b", "p/", Some(&silent), 300).await, 300).await;
    }
}
