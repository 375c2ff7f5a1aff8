//! `writelane hold` as real processes on the file store: a killed holder (and what its
//! command started), the reaper's exit on normal paths, a forced release,
//! SIGTERM, crossed entity orders, and bad input. Leases are short (2 s) so takeovers
//! take seconds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use writelane::{FileStore, LeaseRecord, Store};

const BIN: &str = env!("CARGO_BIN_EXE_writelane");

/// A 2 s lease renewed every 500 ms, polled every 50 ms, 200 ms lock-delay.
const POLICY: &str = r#"{"lease":{"lease_ms":2000,"renew_ms":500,"lock_delay_ms":200,"poll_ms":50,"max_write_ms":1000,"store_timeout_ms":500}}"#;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("writelane-hold-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn store_url(&self) -> String {
        format!("file://{}", self.path("leases.json").display())
    }

    fn record(&self, key: &str) -> Option<LeaseRecord> {
        let text = std::fs::read_to_string(self.path("leases.json")).ok()?;
        let all: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rec = all.get(key)?;
        Some(LeaseRecord::from_json(rec.to_string().as_bytes()).unwrap())
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hold(dir: &Dir, extra: &[&str], entities: &[&str], command: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("hold")
        .arg("--store")
        .arg(dir.store_url())
        .arg("--policy")
        .arg(POLICY)
        .args(extra)
        .args(entities)
        .arg("--")
        .args(command)
        .env_remove("WRITELANE_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn spawn(dir: &Dir, extra: &[&str], entities: &[&str], script: &str) -> Child {
    let cmd = sh(script);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    hold(dir, extra, entities, &cmd).spawn().unwrap()
}

/// Wait until `path` exists and holds text, for at most 10 s.
fn wait_for_file(path: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the process is gone (or a zombie nobody reaped yet).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_dead(pid: i32) {
    let start = Instant::now();
    while !dead(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

fn wait_output(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let start = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if start.elapsed() > limit {
            signal(pid, libc::SIGKILL);
            panic!("hold {pid} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_command_gets_its_fences_and_its_exit_code_passes_through() {
    let dir = Dir::new("env");
    let out = hold(
        &dir,
        &["--holder", "test job"],
        &["role/b", "role/a", "role/b"],
        &["sh", "-c", "printf '%s|' \"$WRITELANE_ENTITIES\" \"$WRITELANE_ENTITY_1\" \"$WRITELANE_FENCE_1\" \"$WRITELANE_ENTITY_2\" \"$WRITELANE_FENCE_2\" \"$WRITELANE_HOLDER\"; exit 3"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "role/a\nrole/b|role/a|1|role/b|1|test job|"
    );
    for key in ["role/a", "role/b"] {
        let rec = dir.record(key).unwrap();
        assert_eq!(rec.owner, "", "{key} released");
        assert_eq!(rec.committed_token, None);
    }
    // A command killed by a signal: 128 + n, as a shell reports it.
    let out = hold(&dir, &[], &["role/a"], &["sh", "-c", "kill -USR1 $$"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + libc::SIGUSR1));
    assert_eq!(dir.record("role/a").unwrap().epoch, 2);
}

#[test]
fn kill_9_of_hold_stops_its_command_and_the_next_holder_takes_over_after_the_lease() {
    let dir = Dir::new("kill9");
    let log = dir.path("log");
    let pidfile = dir.path("pid");
    let first = spawn(
        &dir,
        &[],
        &["role/x"],
        &format!(
            "echo \"first $WRITELANE_FENCE_1\" >> {log}; echo $$ > {pid}; exec sleep 60",
            log = log.display(),
            pid = pidfile.display()
        ),
    );
    let command_pid: i32 = wait_for_file(&pidfile).trim().parse().unwrap();
    let killed_at = Instant::now();
    signal(first.id(), libc::SIGKILL);
    wait_output(first, Duration::from_secs(5));
    wait_dead(command_pid);
    assert_eq!(
        dir.record("role/x").unwrap().epoch,
        1,
        "left held by the dead hold"
    );
    let second = spawn(
        &dir,
        &[],
        &["role/x"],
        &format!("echo \"second $WRITELANE_FENCE_1\" >> {}", log.display()),
    );
    let out = wait_output(second, Duration::from_secs(20));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        killed_at.elapsed() >= Duration::from_millis(2000),
        "taken over only after a whole lease: {:?}",
        killed_at.elapsed()
    );
    assert!(
        stderr(&out).contains("waiting for role/x: held by"),
        "{}",
        stderr(&out)
    );
    assert_eq!(dir.read("log"), "first 1\nsecond 2\n");
    assert_eq!(dir.record("role/x").unwrap().owner, "");
}

/// The reaper hold `hold_pid` started (its child run with `--internal-reaper`), if any.
fn reaper_of(hold_pid: u32) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After "(comm)": state, then the parent's pid.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == hold_pid && is_reaper(pid)).then_some(pid)
        })
}

/// Whether `pid` is a live reaper (a pid reused since is not).
fn is_reaper(pid: i32) -> bool {
    !dead(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"--internal-reaper"))
}

/// `dead` within `limit`, polled every 10 ms.
fn dead_within(pid: i32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    dead(pid)
}

#[test]
fn kill_9_of_hold_kills_what_its_command_started_too_and_the_next_holder_takes_over() {
    let dir = Dir::new("kill9-grandchild");
    let pidfile = dir.path("pid");
    // CI steps run through a shell: the process doing the writes is the shell's child.
    // Its output goes nowhere, so nothing here waits on pipes a survivor would hold open.
    let script = sh(&format!(
        "sleep 300 & echo $! > {}; wait",
        pidfile.display()
    ));
    let script: Vec<&str> = script.iter().map(String::as_str).collect();
    let mut first = hold(&dir, &[], &["role/gc"], &script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let grandchild: i32 = wait_for_file(&pidfile).trim().parse().unwrap();
    let reaper = reaper_of(first.id()).expect("a reaper runs beside the command");
    assert!(!dead(grandchild));
    signal(first.id(), libc::SIGKILL);
    first.wait().unwrap();
    let gone = dead_within(grandchild, Duration::from_secs(2));
    if !gone {
        // Not left running after the test fails.
        signal(grandchild as u32, libc::SIGKILL);
    }
    assert!(
        gone,
        "the command's child {grandchild} outlived its killed holder"
    );
    assert!(
        dead_within(reaper, Duration::from_secs(2)),
        "the reaper {reaper} stayed"
    );
    assert_eq!(dir.record("role/gc").unwrap().epoch, 1, "left held");
    let out = hold(&dir, &["--wait", "20s"], &["role/gc"], &["true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rec = dir.record("role/gc").unwrap();
    assert_eq!(
        (rec.epoch, rec.owner.as_str()),
        (2, ""),
        "taken over, released"
    );
}

#[test]
fn a_normal_run_leaves_no_reaper_behind_and_keeps_its_exit_code() {
    let dir = Dir::new("reaper-exits");
    let pidfile = dir.path("hold-pid");
    let child = spawn(
        &dir,
        &[],
        &["role/r"],
        &format!("echo $PPID > {}; sleep 0.3; exit 4", pidfile.display()),
    );
    let hold_pid: u32 = wait_for_file(&pidfile).trim().parse().unwrap();
    assert_eq!(hold_pid, child.id());
    let reaper = reaper_of(hold_pid).expect("a reaper runs beside the command");
    let out = wait_output(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // hold waits for its reaper before exiting: it is gone already, not merely orphaned.
    assert!(!is_reaper(reaper), "reaper {reaper} left running");
    assert_eq!(dir.record("role/r").unwrap().owner, "");
}

#[test]
fn the_reapers_flag_is_hidden_and_takes_nothing_else() {
    let help = Command::new(BIN).args(["hold", "--help"]).output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("reaper process"), "{help}");
    assert!(!help.contains("--internal-reaper"), "{help}");
    let dir = Dir::new("reaper-flag");
    let out = hold(&dir, &["--internal-reaper"], &["role/x"], &["true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert_eq!(dir.record("role/x"), None, "nothing was held");
}

#[test]
fn a_forced_release_stops_the_command_and_exits_lease_lost() {
    let dir = Dir::new("force");
    let log = dir.path("log");
    let child = spawn(
        &dir,
        &["--grace", "5s"],
        &["role/f"],
        &format!(
            "trap 'echo term >> {log}; exit 7' TERM; echo started >> {log}; while :; do sleep 0.05; done",
            log = log.display()
        ),
    );
    wait_for_file(&log);
    let reaper = reaper_of(child.id()).expect("a reaper runs beside the command");
    let store = FileStore::new(dir.path("leases.json"));
    let evicted = force_release(&store, "role/f");
    assert_eq!(evicted.epoch, 2);
    let out = wait_output(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(76), "{}", stderr(&out));
    assert!(!is_reaper(reaper), "reaper {reaper} left running");
    assert!(dir.read("log").ends_with("term\n"), "{}", dir.read("log"));
    let err = stderr(&out);
    assert!(err.contains("the lease of role/f was lost"), "{err}");
    assert!(err.contains("it exited 7"), "{err}");
    assert_eq!(
        dir.record("role/f").unwrap().epoch,
        2,
        "the operator's record stands"
    );
}

#[test]
fn a_command_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let dir = Dir::new("grace");
    let log = dir.path("log");
    let child = spawn(
        &dir,
        &["--grace", "1s"],
        &["role/g"],
        &format!(
            "trap '' TERM; echo started >> {log}; while :; do sleep 0.05; done",
            log = log.display()
        ),
    );
    wait_for_file(&log);
    // The operator's command this time.
    let release = Command::new(BIN)
        .args([
            "lease",
            "release",
            "--force",
            "--store",
            &dir.store_url(),
            "role/g",
        ])
        .output()
        .unwrap();
    assert!(release.status.success(), "{}", stderr(&release));
    let released = Instant::now();
    let out = wait_output(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(76), "{}", stderr(&out));
    assert!(
        released.elapsed() >= Duration::from_secs(1),
        "{:?}",
        released.elapsed()
    );
    assert!(
        stderr(&out).contains("killed after the grace period"),
        "{}",
        stderr(&out)
    );
}

fn force_release(store: &FileStore, key: &str) -> LeaseRecord {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(store.clone());
    match rt
        .block_on(writelane::force_release(
            store.as_ref(),
            key,
            None,
            None,
            1_000,
        ))
        .unwrap()
    {
        writelane::ForceReleaseResult::Released { record } => record,
        other => panic!("not released: {other:?}"),
    }
}

#[test]
fn sigterm_to_hold_reaches_the_command_and_releases_the_lease() {
    let dir = Dir::new("term");
    let pidfile = dir.path("pid");
    let child = spawn(
        &dir,
        &[],
        &["role/t"],
        &format!("echo $$ > {}; exec sleep 60", pidfile.display()),
    );
    let command_pid: i32 = wait_for_file(&pidfile).trim().parse().unwrap();
    signal(child.id(), libc::SIGTERM);
    let out = wait_output(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    wait_dead(command_pid);
    let rec = dir.record("role/t").unwrap();
    assert_eq!(rec.owner, "", "released");
    assert_eq!(rec.epoch, 1);
}

#[test]
fn holds_of_crossed_entity_orders_both_complete_one_at_a_time() {
    let dir = Dir::new("deadlock");
    let log = dir.path("log");
    let script = format!(
        "echo in >> {log}; sleep 0.3; echo out >> {log}",
        log = log.display()
    );
    let children: Vec<Child> = [["A", "B"], ["B", "A"], ["A", "B"], ["B", "A"]]
        .iter()
        .map(|order| spawn(&dir, &[], order, &script))
        .collect();
    for child in children {
        let out = wait_output(child, Duration::from_secs(20));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(dir.read("log"), "in\nout\n".repeat(4), "never two at once");
    assert_eq!(dir.record("A").unwrap().epoch, 4);
    assert_eq!(dir.record("B").unwrap().epoch, 4);
}

#[test]
fn a_wait_that_runs_out_exits_75_naming_the_holder_and_runs_nothing() {
    let dir = Dir::new("wait");
    let log = dir.path("log");
    let first = spawn(
        &dir,
        &["--holder", "the deploy job"],
        &["role/w"],
        &format!("echo held >> {}; sleep 5", log.display()),
    );
    wait_for_file(&log);
    let out = hold(
        &dir,
        &["--wait", "1s"],
        &["role/w"],
        &["sh", "-c", "echo ran"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing was run");
    let err = stderr(&out);
    assert!(err.contains("held by \"the deploy job\""), "{err}");
    assert!(err.contains("within --wait 1s"), "{err}");
    let first = wait_output(first, Duration::from_secs(10));
    assert!(first.status.success());
}

#[test]
fn bad_input_gets_one_line_and_the_usage_code() {
    let dir = Dir::new("bad");
    let url = dir.store_url();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["hold", "--store", &url, "role/a", "--"],
            "no command after --",
        ),
        (
            vec!["hold", "--store", &url, "role/a"],
            "no command after --",
        ),
        (
            vec!["hold", "--store", &url, "", "--", "true"],
            "non-empty name",
        ),
        (
            vec!["hold", "--store", "ftp://x/y", "a", "--", "true"],
            "unknown store scheme",
        ),
        (
            vec!["hold", "--store", "no-scheme", "a", "--", "true"],
            "scheme",
        ),
        (vec!["hold", "a", "--", "true"], "WRITELANE_STORE"),
        (
            vec![
                "hold",
                "--store",
                &url,
                "--policy",
                r#"{"lease":{"renew_ms":6000}}"#,
                "a",
                "--",
                "true",
            ],
            "lease.lease_ms",
        ),
        (
            vec![
                "hold",
                "--store",
                &url,
                "--policy",
                "/no/such/file.json",
                "a",
                "--",
                "true",
            ],
            "neither JSON nor a readable file",
        ),
        (
            vec!["hold", "--store", &url, "--wait", "30", "a", "--", "true"],
            "30s",
        ),
        (vec!["hold", "--store", &url, "--", "true"], "ENTITY"),
        (
            vec!["hold", "--store", "dynamodb://", "a", "--", "true"],
            "table",
        ),
        (
            vec!["hold", "--store", "s3://?region=x", "a", "--", "true"],
            "bucket",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN)
            .args(&args)
            .env_remove("WRITELANE_STORE")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("writelane"), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let long_holder = "h".repeat(2000);
    let out = Command::new(BIN)
        .args([
            "hold",
            "--store",
            &url,
            "--holder",
            &long_holder,
            "a",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("--holder"));
    // Nothing was acquired by any of them.
    assert!(dir.record("a").is_none());
    assert!(dir.record("role/a").is_none());
}

#[test]
fn the_store_comes_from_writelane_store_and_a_missing_command_exits_127() {
    let dir = Dir::new("env-store");
    let out = Command::new(BIN)
        .args([
            "hold",
            "--policy",
            POLICY,
            "role/e",
            "--",
            "/no/such/command",
        ])
        .env("WRITELANE_STORE", dir.store_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let rec = dir.record("role/e").unwrap();
    assert_eq!(rec.owner, "", "released after the failed start");
}

#[test]
#[cfg(not(feature = "redis"))]
fn a_store_not_built_in_exits_78_naming_the_feature() {
    let out = Command::new(BIN)
        .args([
            "hold",
            "--store",
            "redis://127.0.0.1:1/0",
            "a",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("redis"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
}

#[test]
#[cfg(feature = "dynamodb")]
fn a_missing_table_exits_78_before_anything_runs() {
    let Ok(endpoint) = std::env::var("WRITELANE_TEST_MOTO_ENDPOINT") else {
        panic!("WRITELANE_TEST_MOTO_ENDPOINT must name a moto server (lane/test.sh sets it)");
    };
    let url = format!(
        "dynamodb://no-such-table-{}?region=us-east-1&endpoint={endpoint}",
        std::process::id()
    );
    let out = Command::new(BIN)
        .args(["hold", "--store", &url, "a", "--", "echo", "ran"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing ran");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn a_store_that_never_answers_exits_69_within_the_wait() {
    let dir = Dir::new("unanswered");
    // A store "file" that is a directory: every read fails, as an unreachable server's.
    std::fs::create_dir(dir.path("leases.json")).unwrap();
    let url = dir.store_url();
    let start = Instant::now();
    let out = Command::new(BIN)
        .args([
            "hold", "--store", &url, "--wait", "1s", "a", "--", "echo", "ran",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing ran");
    let err = stderr(&out);
    assert!(
        err.contains("writelane hold: waiting for a: the lease store does not answer\n"),
        "a progress line says why it waits: {err}"
    );
    assert!(err.contains("did not answer within --wait 1s"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_file_store_in_a_missing_directory_exits_78() {
    let dir = Dir::new("nodir");
    let url = format!("file://{}/leases.json", dir.path("missing").display());
    let out = Command::new(BIN)
        .args(["hold", "--store", &url, "a", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

/// Run `line` in a shell on a new terminal (util-linux `script`), typing each of `input`
/// into it a second apart; returns what the terminal showed.
fn on_a_terminal(line: &str, input: &[&[u8]]) -> String {
    use std::io::Write;
    let mut child = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script runs a command on a terminal");
    let mut stdin = child.stdin.take().unwrap();
    for chunk in input {
        std::thread::sleep(Duration::from_secs(1));
        stdin.write_all(chunk).unwrap();
        stdin.flush().unwrap();
    }
    let out = wait_output(child, Duration::from_secs(15));
    drop(stdin);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn on_a_terminal_the_command_can_read_it_and_ctrl_c_reaches_it() {
    let dir = Dir::new("tty");
    let url = dir.store_url();
    // The command prompts and reads, as `terraform apply` asks for "yes".
    let shown = on_a_terminal(
        &format!("{BIN} hold --store {url} role/t -- sh -c 'read x; echo got:$x'; echo hold:$?"),
        &[b"yes\n"],
    );
    assert!(shown.contains("got:yes"), "{shown}");
    assert!(shown.contains("hold:0"), "{shown}");
    // Ctrl-C goes to the command; hold exits 130 and releases, and the shell has its
    // terminal back (it reads the next line).
    let shown = on_a_terminal(
        &format!(
            "{BIN} hold --store {url} role/t -- sleep 10; echo hold:$?; read y; echo shell:$y"
        ),
        &[b"\x03", b"back\n"],
    );
    assert!(shown.contains("hold:130"), "{shown}");
    assert!(shown.contains("shell:back"), "{shown}");
    let rec = dir.record("role/t").unwrap();
    assert_eq!(rec.owner, "");
    assert_eq!(rec.epoch, 2);
}
