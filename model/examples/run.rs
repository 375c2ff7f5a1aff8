//! Run one configuration and print its report: `cargo run -p writelane-model --release
//! --example run -- WRITERS HORIZON [fault=N ...] [mutation]`.
use writelane_model::{check, Config, Faults, Mutation};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let writers = args.first().and_then(|a| a.parse().ok()).unwrap_or(2);
    let horizon = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut faults = Faults::default();
    let mut mutation = Mutation::None;
    let mut max_faults = u32::MAX;
    for a in args.iter().skip(2) {
        let (k, v) = a.split_once('=').unwrap_or((a, "1"));
        let n: u32 = v.parse().expect("a count");
        match k {
            "lost_requests" => faults.lost_requests = n,
            "lost_replies" => faults.lost_replies = n,
            "unavailable" => faults.unavailable = n,
            "crashes" => faults.crashes = n,
            "jumps" => faults.jumps = n,
            "stalls" => faults.stalls = n,
            "force_releases" => faults.force_releases = n,
            "max" => max_faults = n,
            "NoLockDelay" => mutation = Mutation::NoLockDelay,
            "StoreIgnoresRvn" => mutation = Mutation::StoreIgnoresRvn,
            "ReleaseByDelete" => mutation = Mutation::ReleaseByDelete,
            "WriteBeforeGrant" => mutation = Mutation::WriteBeforeGrant,
            "ForceReleaseKeepsToken" => mutation = Mutation::ForceReleaseKeepsToken,
            "AckBeforeAccept" => mutation = Mutation::AckBeforeAccept,
            "HostIgnoresTimers" => mutation = Mutation::HostIgnoresTimers,
            "QueueJumper" => mutation = Mutation::QueueJumper,
            other => panic!("unknown argument {other}"),
        }
    }
    let config = Config::new(writers, horizon)
        .faults(faults)
        .mutation(mutation)
        .max_faults(max_faults);
    let report = check(config, None);
    print!("{report}");
    println!("covered: {:?}", report.covered);
}
