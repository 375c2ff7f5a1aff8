//! No input makes the reader or the analysis panic: random bytes, and fixtures with bytes
//! cut, flipped or inserted, are skipped or read, and the run ends with a report.

use std::path::PathBuf;

use proptest::prelude::*;
use writelane_trail::{analyze, Input, Knobs, Options};

fn fixture_bytes() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    [
        "records.jsonl",
        "lookup-events.json",
        "eventbridge.jsonl",
        "bad/bad-records.json",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap())
    .collect()
}

fn run(bytes: &[u8]) -> writelane_trail::Report {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.json"), bytes).unwrap();
    let options = Options {
        knobs: Knobs {
            bucket_ms: Some(1),
            window_ms: 0,
            replay_calls: 2,
            ..Knobs::default()
        },
        ..Options::default()
    };
    analyze(&[Input::Path(dir.path().to_path_buf())], &options).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_skipped_or_read(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let r = run(&bytes);
        prop_assert_eq!(r.reading.files_read + r.reading.files_skipped, 1);
    }

    #[test]
    fn damaged_fixtures_never_panic(which in 0usize..4, at in any::<prop::sample::Index>(), byte in any::<u8>(), how in 0u8..3) {
        let mut bytes = fixture_bytes().swap_remove(which);
        let i = at.index(bytes.len());
        match how {
            0 => bytes.truncate(i),
            1 => bytes[i] = byte,
            _ => bytes.insert(i, byte),
        }
        let r = run(&bytes);
        prop_assert_eq!(r.reading.files_read + r.reading.files_skipped, 1);
        // Whatever was read adds up.
        prop_assert!(r.totals.conflicts <= r.totals.writes);
    }
}
