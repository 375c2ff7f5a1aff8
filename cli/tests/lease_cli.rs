//! `writelane lease` as users run it: the built binary against a file store in a temporary
//! directory (default features), and against redis-server and moto (DynamoDB, S3) behind
//! the cargo features, with the servers `lane/test.sh` starts
//! (`WRITELANE_TEST_REDIS_URL`, `WRITELANE_TEST_MOTO_ENDPOINT`): those tests fail, never
//! skip, without them.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use writelane::store::{open, OpenOptions, OpenedStore};
use writelane::{LeaseRecord, Store, StoreReply};

fn writelane(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_writelane"));
    cmd.args(args).env_remove("WRITELANE_STORE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The single line of stderr, checked to be one line prefixed with `context`.
fn one_line(out: &Output, context: &str) -> String {
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(
        err.starts_with(context),
        "{err:?} does not start with {context:?}"
    );
    err
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

/// A fresh name, so runs against a shared server never see each other's records.
fn unique(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{what}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("writelane-lease-cli"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn record(owner: &str, holder: Option<&str>, epoch: u64, rvn: u64, lease_ms: u64) -> LeaseRecord {
    LeaseRecord {
        owner: owner.into(),
        epoch,
        rvn,
        lease_ms,
        committed_token: None,
        holder: holder.map(str::to_string),
        ..Default::default()
    }
}

/// The store at `url`, opened in this process as another writer would.
fn stage(url: &str) -> (tokio::runtime::Runtime, OpenedStore) {
    let rt = runtime();
    let store = rt
        .block_on(open(url, &OpenOptions { timeout_ms: 2_000 }))
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    (rt, store)
}

fn put(rt: &tokio::runtime::Runtime, store: &dyn Store, key: &str, r: &LeaseRecord) {
    assert_eq!(
        rt.block_on(store.put_if_absent(key, r)),
        StoreReply::Done,
        "{key}"
    );
}

fn get(rt: &tokio::runtime::Runtime, store: &dyn Store, key: &str) -> Option<LeaseRecord> {
    match rt.block_on(store.get(key)) {
        StoreReply::Found { record } => record,
        other => panic!("{key}: {other:?}"),
    }
}

/// A live holder: renews `key` (a new rvn, same owner and epoch) every 50 ms until stopped.
struct Renewer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Renewer {
    /// Renew from a store of its own: a client made on one runtime (a Redis connection)
    /// does not work from another.
    fn start(url: &str, key: &str, first: LeaseRecord) -> Renewer {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, key, url) = (Arc::clone(&stop), key.to_string(), url.to_string());
        let thread = std::thread::spawn(move || {
            let (rt, opened) = stage(&url);
            let store = opened.store;
            let mut current = first;
            let mut renewals = 0;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let next = LeaseRecord {
                    rvn: current.rvn % 1_000_000 + 1,
                    ..current.clone()
                };
                match rt.block_on(store.compare_and_swap(&key, current.rvn, &next)) {
                    StoreReply::Done => {
                        current = next;
                        renewals += 1;
                    }
                    // Evicted: a real holder stops here.
                    _ => break,
                }
            }
            renewals
        });
        Renewer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop renewing; how many renewals landed.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("renewer")
    }
}

/// The whole of `writelane lease` on the store at `url` (already initialised), with the
/// entities under a fresh prefix.
fn lease_commands(url: &str) {
    let env = [("WRITELANE_STORE", url)];
    let (rt, opened) = stage(url);
    let store = Arc::clone(&opened.store);
    let base = format!("{}/", unique("role"));
    let (a, b, c) = (format!("{base}a"), format!("{base}b"), format!("{base}c"));

    // No record: free.
    let out = writelane(&["lease", "show", &a], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("free (no record)"),
        "{}",
        text(&out.stdout)
    );
    let v = json_of(&writelane(&["lease", "show", &a, "--json"], &env));
    assert_eq!(v["version"], 1);
    assert_eq!(v["lease"]["entity"], a.as_str());
    assert_eq!(v["lease"]["state"], "free");
    assert_eq!(v["lease"]["epoch"], Value::Null);

    // A held record, shown and listed.
    put(
        &rt,
        store.as_ref(),
        &a,
        &record(
            "host-a:11:x",
            Some("ci run 7: terraform apply"),
            4,
            77,
            60_000,
        ),
    );
    put(&rt, store.as_ref(), &b, &record("", None, 2, 78, 60_000));
    let out = writelane(&["lease", "show", &a], &env);
    let shown = text(&out.stdout);
    for want in [
        "state   held",
        "ci run 7: terraform apply",
        "host-a:11:x",
        "epoch   4",
        "rvn     77",
        "lease   1m00s",
    ] {
        assert!(shown.contains(want), "{want:?} in {shown}");
    }
    let v = json_of(&writelane(&["lease", "show", &a, "--json"], &env));
    let lease = &v["lease"];
    assert_eq!(lease["state"], "held");
    assert_eq!(lease["owner"], "host-a:11:x");
    assert_eq!(lease["holder"], "ci run 7: terraform apply");
    assert_eq!(
        (
            lease["epoch"].as_u64(),
            lease["rvn"].as_u64(),
            lease["lease_ms"].as_u64()
        ),
        (Some(4), Some(77), Some(60_000))
    );
    assert!(v["store"].as_str().is_some());

    let v = json_of(&writelane(
        &["lease", "list", "--prefix", &base, "--json"],
        &env,
    ));
    assert_eq!(v["version"], 1);
    assert_eq!(v["prefix"], base.as_str());
    let leases = v["leases"].as_array().expect("leases");
    let names: Vec<&str> = leases
        .iter()
        .map(|l| l["entity"].as_str().unwrap())
        .collect();
    assert_eq!(names, [a.as_str(), b.as_str()]);
    assert_eq!(leases[0]["state"], "held");
    assert_eq!(leases[1]["state"], "free");
    assert_eq!(leases[1]["epoch"], 2);
    let table = text(&writelane(&["lease", "list", "--prefix", &base], &env).stdout);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("held"), "{table}");
    assert!(table.contains("ci run 7: terraform apply"), "{table}");
    let none = writelane(&["lease", "list", "--prefix", &format!("{base}zz")], &env);
    assert!(none.status.success());
    assert!(none.stdout.is_empty());
    assert!(text(&none.stderr).contains("no records"));

    // Release: a free record and a missing one need nothing.
    let v = json_of(&writelane(&["lease", "release", &b, "--json"], &env));
    assert_eq!(v["result"], "already_free");
    let v = json_of(&writelane(
        &["lease", "release", &format!("{base}none"), "--json"],
        &env,
    ));
    assert_eq!(v["result"], "no_record");

    // A live holder is not evicted without --force; it is with --force.
    let live = record("host-c:12:y", Some("deploy job 9"), 6, 500, 800);
    put(&rt, store.as_ref(), &c, &live);
    let renewer = Renewer::start(url, &c, live);
    let out = writelane(&["lease", "release", &c], &env);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("deploy job 9") && err.contains("--force") && err.contains("alive"),
        "{err}"
    );
    assert_eq!(
        get(&rt, store.as_ref(), &c).expect("record").owner,
        "host-c:12:y"
    );
    let out = writelane(&["lease", "release", &c, "--force", "--json"], &env);
    let v = json_of(&out);
    assert_eq!(v["result"], "released");
    assert_eq!(v["evicted"]["holder"], "deploy job 9");
    assert_eq!(v["evicted"]["owner"], "host-c:12:y");
    assert_eq!(v["record"]["epoch"], 7);
    assert_eq!(v["record"]["owner"], "");
    assert!(
        renewer.stop() >= 1,
        "the holder renewed before it was evicted"
    );
    let now = get(&rt, store.as_ref(), &c).expect("record");
    assert_eq!((now.owner.as_str(), now.epoch, now.holder), ("", 7, None));

    // A holder that stopped renewing has expired: released without --force.
    let dead = record("host-d:13:z", Some("crashed job"), 9, 900, 300);
    assert_eq!(
        rt.block_on(store.compare_and_swap(&c, now.rvn, &dead)),
        StoreReply::Done
    );
    let out = writelane(&["lease", "release", &c], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("evicted") && said.contains("crashed job") && said.contains("expired"),
        "{said}"
    );
    assert!(said.contains("epoch 10"), "{said}");
    let after = get(&rt, store.as_ref(), &c).expect("record");
    assert_eq!((after.owner.as_str(), after.epoch), ("", 10));

    // The forced release of a holder prints whom it evicted.
    let held = record("host-e:14:w", Some("remediator"), 10, 901, 60_000);
    assert_eq!(
        rt.block_on(store.compare_and_swap(&c, after.rvn, &held)),
        StoreReply::Done
    );
    let out = writelane(&["lease", "release", &c, "--force"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("evicted \"remediator\" (owner host-e:14:w, epoch 10)"),
        "{said}"
    );
    assert!(said.contains("free at epoch 11"), "{said}");
}

#[test]
fn every_lease_subcommand_answers_help() {
    for args in [
        vec!["lease", "--help"],
        vec!["lease", "show", "--help"],
        vec!["lease", "list", "--help"],
        vec!["lease", "release", "--help"],
        vec!["lease", "init", "--help"],
        vec!["help", "lease"],
    ] {
        let out = writelane(&args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = text(&out.stdout);
        assert!(help.contains("Usage: writelane lease"), "{args:?}: {help}");
        assert!(help.contains("Exit codes (sysexits)"), "{args:?}");
    }
    let help = text(&writelane(&["lease", "--help"], &[]).stdout);
    for shape in ["\"version\"", "refused_live", "\"leases\": [LEASE...]"] {
        assert!(help.contains(shape), "{shape} in {help}");
    }
}

#[test]
fn init_creates_the_file_stores_directory() {
    let dir = temp_dir();
    let url = format!("file://{}/leases/state.json", dir.display());
    let v = json_of(&writelane(&["lease", "init", &url, "--json"], &[]));
    assert_eq!(v["version"], 1);
    assert_eq!(v["created"], true);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("created the directory"),
        "{v}"
    );
    assert!(dir.join("leases").is_dir());
    // Again: nothing to create. The URL may come from WRITELANE_STORE too.
    let out = writelane(&["lease", "init"], &[("WRITELANE_STORE", &url)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("holds 0 record(s)"));
    let v = json_of(&writelane(
        &["lease", "init", "--store", &url, "--json"],
        &[],
    ));
    assert_eq!(v["created"], false);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn lease_commands_on_the_file_store() {
    let dir = temp_dir();
    let url = format!("file://{}/leases.json", dir.display());
    lease_commands(&url);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_record_writelane_cannot_read_is_reported_not_touched() {
    let dir = temp_dir();
    let path = dir.join("leases.json");
    let bad = r#"{"broken":{"owner":"x","epoch":0,"rvn":1,"lease_ms":10,"committed_token":null,"holder":null}}"#;
    std::fs::write(&path, bad).unwrap();
    let url = format!("file://{}", path.display());
    let env = [("WRITELANE_STORE", url.as_str())];
    let v = json_of(&writelane(&["lease", "show", "broken", "--json"], &env));
    assert_eq!(v["lease"]["state"], "invalid");
    assert!(
        v["lease"]["error"].as_str().unwrap().contains("epoch"),
        "{v}"
    );
    let v = json_of(&writelane(&["lease", "list", "--json"], &env));
    assert_eq!(v["leases"][0]["state"], "invalid");
    let out = writelane(&["lease", "release", "broken", "--force"], &env);
    assert_eq!(out.status.code(), Some(65));
    let err = one_line(&out, "writelane lease release: ");
    assert!(
        err.contains("epoch") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
    std::fs::remove_dir_all(dir).ok();
}

/// Arguments, environment, exit code, the stderr line's prefix, words the line holds.
type BadCase<'a> = (
    Vec<&'a str>,
    Vec<(&'a str, &'a str)>,
    u8,
    &'a str,
    Vec<&'a str>,
);

#[test]
fn bad_input_gets_one_line_and_its_exit_code() {
    let dir = temp_dir();
    let file = format!("file://{}/leases.json", dir.display());
    let cases: Vec<BadCase> = vec![
        (
            vec!["lease", "show", "e"],
            vec![],
            64,
            "writelane lease show: ",
            vec!["no lease store", "--store", "WRITELANE_STORE"],
        ),
        (
            vec!["lease", "list"],
            vec![("WRITELANE_STORE", "")],
            64,
            "writelane lease list: ",
            vec!["no lease store"],
        ),
        (
            vec!["lease", "show", "e", "--store", "ftp://h/x"],
            vec![],
            64,
            "writelane lease show: ",
            vec![
                "unknown store scheme \"ftp\"",
                "dynamodb://TABLE",
                "s3://BUCKET/PREFIX",
                "redis://",
                "file:///PATH",
            ],
        ),
        (
            vec!["lease", "show", "e"],
            vec![("WRITELANE_STORE", "leases.json")],
            64,
            "writelane lease show: ",
            vec!["not a store URL"],
        ),
        (
            vec![
                "lease",
                "show",
                "e",
                "--store",
                "dynamodb://?region=eu-west-1",
            ],
            vec![],
            64,
            "writelane lease show: ",
            vec!["names no table", "dynamodb://TABLE"],
        ),
        (
            vec!["lease", "list", "--store", "s3:///prefix/"],
            vec![],
            64,
            "writelane lease list: ",
            vec!["names no bucket", "s3://BUCKET/PREFIX"],
        ),
        (
            vec!["lease", "show", "e", "--store", "dynamodb://t?regoin=x"],
            vec![],
            64,
            "writelane lease show: ",
            vec!["\"regoin\"", "region, endpoint"],
        ),
        (
            vec!["lease", "show", "", "--store", &file],
            vec![],
            64,
            "writelane: ",
            vec!["entity is a non-empty name", "writelane lease show --help"],
        ),
        (
            vec!["lease", "release", "  ", "--store", &file],
            vec![],
            64,
            "writelane: ",
            vec!["entity is a non-empty name"],
        ),
        (
            vec![
                "lease",
                "show",
                "e",
                "--store",
                &file,
                "--policy",
                r#"{"lease":{"renew_ms":60000}}"#,
            ],
            vec![],
            64,
            "writelane lease show: ",
            vec!["--policy", "lease.lease_ms"],
        ),
        (
            vec![
                "lease",
                "show",
                "e",
                "--store",
                &file,
                "--policy",
                "/no/such/policy.json",
            ],
            vec![],
            64,
            "writelane lease show: ",
            vec!["--policy", "/no/such/policy.json"],
        ),
        (
            vec!["lease", "frob"],
            vec![],
            64,
            "writelane: ",
            vec!["frob", "writelane lease --help"],
        ),
        (
            vec!["lease", "list", "--prefix"],
            vec![],
            64,
            "writelane: ",
            vec!["--prefix", "writelane lease list --help"],
        ),
    ];
    for (args, env, code, context, words) in cases {
        let out = writelane(&args, &env);
        assert_eq!(
            out.status.code(),
            Some(code as i32),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = one_line(&out, context);
        for w in words {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A store whose feature is not built in names the feature and how to build the full
/// command.
#[test]
fn a_store_not_built_in_names_its_feature() {
    let mut checked = 0;
    for (url, feature, built) in [
        ("dynamodb://leases", "dynamodb", cfg!(feature = "dynamodb")),
        ("s3://bucket/locks/", "s3", cfg!(feature = "s3")),
        ("redis://127.0.0.1:1/0", "redis", cfg!(feature = "redis")),
    ] {
        if built {
            continue;
        }
        let out = writelane(&["lease", "show", "e", "--store", url], &[]);
        assert_eq!(out.status.code(), Some(78), "{url}");
        let err = one_line(&out, "writelane lease show: ");
        assert!(err.contains(&format!("cargo feature `{feature}`")), "{err}");
        assert!(err.contains("--features aws,redis"), "{err}");
        checked += 1;
    }
    // With every store built in, the case cannot arise: the test of the default build
    // (lane/test.sh runs both) checks all three.
    assert!(checked > 0 || cfg!(all(feature = "dynamodb", feature = "s3", feature = "redis")));
}

#[cfg(any(feature = "redis", feature = "dynamodb", feature = "s3"))]
fn server_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run lane/test.sh, which starts the servers"))
}

#[cfg(feature = "redis")]
#[test]
fn lease_commands_on_redis() {
    let url = server_env("WRITELANE_TEST_REDIS_URL");
    let v = json_of(&writelane(&["lease", "init", &url, "--json"], &[]));
    assert!(v["detail"].as_str().unwrap().contains("PING"), "{v}");
    lease_commands(&url);
    // A server that is not there.
    let out = writelane(&["lease", "list", "--store", "redis://127.0.0.1:1/0"], &[]);
    assert_eq!(out.status.code(), Some(69));
    let err = one_line(&out, "writelane lease list: ");
    assert!(
        err.contains("Redis at 127.0.0.1:1") && err.contains("did not answer"),
        "{err}"
    );
}

/// moto's endpoint, with the fake credentials moto takes.
#[cfg(any(feature = "dynamodb", feature = "s3"))]
fn moto() -> (String, Vec<(&'static str, &'static str)>) {
    let endpoint = server_env("WRITELANE_TEST_MOTO_ENDPOINT");
    // This process stages records too, with the credentials lane/test.sh exports.
    server_env("AWS_ACCESS_KEY_ID");
    let env = vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    (endpoint, env)
}

/// No credentials anywhere: no keys, no profile files, no instance metadata.
#[cfg(any(feature = "dynamodb", feature = "s3"))]
fn no_credentials(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_writelane"));
    cmd.args(args);
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "WRITELANE_STORE",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/writelane-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/writelane-test/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1");
    cmd.output().expect("the binary runs")
}

#[cfg(feature = "dynamodb")]
#[test]
fn lease_commands_on_dynamodb() {
    let (endpoint, env) = moto();
    let table = unique("leases");
    let url = format!("dynamodb://{table}?endpoint={endpoint}");
    let env: Vec<(&str, &str)> = env.into_iter().collect();

    // Before init: the table is missing, and the message says how to create it.
    let out = writelane(&["lease", "list", "--store", &url], &env);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let err = one_line(&out, "writelane lease list: ");
    assert!(
        err.contains(&format!("DynamoDB table \"{table}\" does not exist")),
        "{err}"
    );
    assert!(err.contains("writelane lease init dynamodb://"), "{err}");

    let v = json_of(&writelane(&["lease", "init", &url, "--json"], &env));
    assert_eq!(v["created"], true, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("active"), "{v}");
    let v = json_of(&writelane(&["lease", "init", &url, "--json"], &env));
    assert_eq!(v["created"], false, "{v}");

    lease_commands(&url);

    let out = no_credentials(&["lease", "show", "e", "--store", &url]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    let err = one_line(&out, "writelane lease show: ");
    assert!(
        err.contains("credentials") && err.contains("AWS_PROFILE"),
        "{err}"
    );
}

#[cfg(feature = "s3")]
#[test]
fn lease_commands_on_s3() {
    let (endpoint, env) = moto();
    let env: Vec<(&str, &str)> = env.into_iter().collect();
    let bucket = unique("bucket").to_lowercase();

    // No bucket: init says so and does not create one.
    let missing = format!("s3://{bucket}/locks/?endpoint={endpoint}");
    let out = writelane(&["lease", "init", &missing], &env);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let err = one_line(&out, "writelane lease init: ");
    assert!(
        err.contains(&format!("S3 bucket \"{bucket}\"")) && err.contains("does not exist"),
        "{err}"
    );
    assert!(err.contains("aws s3 mb"), "{err}");
    let out = writelane(&["lease", "show", "e", "--store", &missing], &env);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));

    let rt = runtime();
    rt.block_on(async {
        let s3 = writelane::S3Store::connect(bucket.clone(), "", Some(&endpoint), 2_000).await;
        s3.client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create the bucket on moto");
    });
    let url = missing;
    let v = json_of(&writelane(&["lease", "init", &url, "--json"], &env));
    assert_eq!(v["created"], false, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("written and deleted"),
        "{v}"
    );
    // The probe is gone: the bucket holds no records.
    let v = json_of(&writelane(
        &["lease", "list", "--store", &url, "--json"],
        &env,
    ));
    assert_eq!(v["leases"], Value::Array(vec![]), "{v}");

    lease_commands(&url);

    // S3 knows when it last wrote a record: show gives its age.
    let v = json_of(&writelane(
        &["lease", "list", "--store", &url, "--json"],
        &env,
    ));
    let first = &v["leases"][0];
    assert!(first["age_ms"].as_u64().is_some(), "{v}");

    let out = no_credentials(&["lease", "list", "--store", &url]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    let err = one_line(&out, "writelane lease list: ");
    assert!(
        err.contains("credentials") && err.contains("AWS_PROFILE"),
        "{err}"
    );
}
