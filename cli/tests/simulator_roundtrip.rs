//! The simulator round trip: `writelane simulate --trail DIR` writes each strategy's calls
//! as CloudTrail files, `writelane trail DIR --json` analyses them, and the analyzer's
//! counts equal the simulator's own, strategy by strategy (each has its own account):
//! conflicts, writes and reads. A `writelane` run shows no conflict and no incident, since
//! its writers are the lanes of one process.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use writelane_cli::sim::{self, trail::account_of, Model, STRATEGIES};

const WRITERS: u32 = 10;
const RUNS: u32 = 2;
const SEED: u64 = 1;

fn writelane() -> Command {
    Command::new(env!("CARGO_BIN_EXE_writelane"))
}

fn simulate(dir: &Path, model: &str) {
    let out = writelane()
        .args(["simulate", "--model", model, "--writers"])
        .arg(WRITERS.to_string())
        .args([
            "--runs",
            &RUNS.to_string(),
            "--seed",
            &SEED.to_string(),
            "--trail",
        ])
        .arg(dir)
        .output()
        .expect("writelane runs");
    assert!(
        out.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn analyse(input: &Path) -> Value {
    let out = writelane()
        .arg("trail")
        .arg(input)
        .arg("--json")
        .output()
        .expect("writelane runs");
    assert!(
        out.status.success(),
        "trail: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the report is JSON")
}

/// The simulator's own totals for one strategy over the runs the command made.
fn truth(model: Model, strategy: &str) -> (u64, u64, u64) {
    let runs: Vec<sim::RunResult> = (0..RUNS)
        .map(|r| sim::run_once(model, strategy, WRITERS, SEED + r as u64))
        .collect();
    let sum = |f: fn(&sim::RunResult) -> u64| runs.iter().map(f).sum::<u64>();
    (sum(|r| r.conflicts), sum(|r| r.writes), sum(|r| r.reads))
}

fn round_trip(model: Model, name: &str) {
    let dir = tempdir(name);
    simulate(&dir, name);
    // The whole tree at once: accounts keep the strategies apart.
    let all = analyse(&dir);
    let entities = all["entities"].as_array().expect("entities");
    let mut uncoordinated_conflicts = 0;
    for &strategy in STRATEGIES {
        let (conflicts, writes, reads) = truth(model, strategy);
        let account = account_of(strategy).expect("a strategy's account");
        let entity = entities
            .iter()
            .find(|e| e["account"] == account.as_str())
            .unwrap_or_else(|| panic!("{strategy}: no entity in account {account}"));
        assert_eq!(
            entity["conflicts"], conflicts,
            "{name} {strategy}: conflicts"
        );
        assert_eq!(
            entity["writes"], writes,
            "{name} {strategy}: writes (failed ones included)"
        );
        // One folder alone gives the same counts, and its reads.
        let one = analyse(&dir.join(strategy));
        assert_eq!(one["totals"]["conflicts"], conflicts, "{name} {strategy}");
        assert_eq!(one["totals"]["writes"], writes, "{name} {strategy}");
        assert_eq!(
            one["totals"]["reads"], reads,
            "{name} {strategy}: reads are counted apart"
        );
        if strategy == "writelane" {
            assert_eq!(
                conflicts, 0,
                "{name}: the simulator's writelane has no conflict"
            );
            assert_eq!(
                one["totals"]["incidents"], 0,
                "{name}: writelane shows no incident"
            );
            assert_eq!(entity["incidents"].as_array().map(Vec::len), Some(0));
            assert_eq!(
                one["writers"].as_array().map(Vec::len),
                Some(1),
                "one process"
            );
        }
        if [
            "immediate",
            "exponential",
            "full-jitter",
            "equal-jitter",
            "decorrelated",
        ]
        .contains(&strategy)
        {
            uncoordinated_conflicts += conflicts;
            let writers = one["writers"].as_array().map(Vec::len);
            assert_eq!(
                writers,
                Some(WRITERS as usize),
                "{name} {strategy}: a writer each"
            );
            assert!(
                one["totals"]["incidents"].as_u64() > Some(0),
                "{name} {strategy}: uncoordinated writers overlap"
            );
        }
    }
    assert!(
        uncoordinated_conflicts > 0,
        "{name}: the check compares something"
    );
    assert_eq!(
        all["totals"]["conflicts"],
        STRATEGIES.iter().map(|s| truth(model, s).0).sum::<u64>()
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("writelane-roundtrip-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn iam_model_counts_match() {
    round_trip(Model::Iam, "iam");
}

#[test]
fn brooker_model_counts_match() {
    round_trip(Model::Brooker, "brooker");
}

#[test]
fn replays_are_found_where_the_sdk_replays() {
    // The SDK's standard mode sends the same request again after a conflict: immediate
    // replay. The uncoordinated strategies re-read before each attempt, so their retries
    // carry what they read and are not the same call; writelane's lanes leave nothing to
    // retry.
    let dir = tempdir("replay");
    simulate(&dir, "iam");
    let replayed = analyse(&dir.join("aws-standard"));
    assert!(
        replayed["totals"]["replays"].as_u64() > Some(0),
        "aws-standard replays"
    );
    let replay = &replayed["entities"][0]["replays"][0];
    assert_eq!(replay["action"], "PutRolePolicy");
    assert_eq!(replay["retry_mode"], "standard");
    let calm = analyse(&dir.join("writelane"));
    assert_eq!(calm["totals"]["replays"], 0);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn an_unwritable_trail_directory_is_a_usage_error_naming_it() {
    let dir = tempdir("unwritable");
    // A file where the folder should go.
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "not a folder").expect("write");
    let out = writelane()
        .args([
            "simulate",
            "--writers",
            "2",
            "--runs",
            "1",
            "--strategies",
            "writelane",
            "--trail",
        ])
        .arg(&blocker)
        .output()
        .expect("writelane runs");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--trail") && stderr.contains("blocker"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
