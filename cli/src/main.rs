//! `writelane`: the contention simulator, canonical policy tokens, policy checks, and the
//! conformance-vector generator.

use std::io::Read;
use std::process::ExitCode;

use writelane_cli::{lanevectors, schema, sim, vectors};
use writelane_core::{policy_token, Policy};

const USAGE: &str = "\
writelane — the write discipline for cloud control planes

usage:
  writelane simulate [--model iam|brooker] [--writers N[,N...]] [--runs R] [--seed S]
                     [--strategies a,b,...] [--json]
      Deterministic contention lab in virtual time: N writers, one read-modify-write
      each, on one entity; every strategy side by side. Defaults: --model iam
      --writers 10,100 --runs 5 --seed 1, all strategies.
  writelane token [FILE]      canonical change token of an IAM policy document (stdin if no FILE)
  writelane check [FILE]      validate a policy (JSON; stdin if no FILE) and print the effective policy
  writelane vectors --out DIR [--lease-out DIR2 [--lane-out DIR3]]
                              regenerate the conformance vectors (the shared-lane ones,
                              and the lane-driver ones)
  writelane --help | --version
";

fn read_input(path: Option<&String>) -> Result<String, String> {
    match path.map(String::as_str) {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("reading stdin: {e}"))?;
            Ok(s)
        }
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("reading {p}: {e}")),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("writelane: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn simulate(args: &[String]) -> ExitCode {
    let mut model = sim::Model::Iam;
    let mut writers = vec![10u32, 100];
    let mut runs = 5u32;
    let mut seed = 1u64;
    let mut json = false;
    let mut strategies: Vec<String> = sim::STRATEGIES.iter().map(|s| s.to_string()).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<String, ExitCode> {
            it.next()
                .cloned()
                .ok_or_else(|| usage_error(&format!("{name} needs a value")))
        };
        let parsed: Result<(), ExitCode> = (|| {
            match flag.as_str() {
                "--model" => {
                    let v = value("--model")?;
                    model = sim::Model::parse(&v).ok_or_else(|| {
                        usage_error(&format!(
                            "--model: unknown model {v:?}; expected iam or brooker"
                        ))
                    })?;
                }
                "--writers" => {
                    let v = value("--writers")?;
                    writers = v
                        .split(',')
                        .map(|n| match n.trim().parse::<u32>() {
                            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
                            _ => Err(usage_error(&format!(
                                "--writers: {n:?} is not a count in 1..=10000"
                            ))),
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--runs" => {
                    let v = value("--runs")?;
                    runs = match v.parse::<u32>() {
                        Ok(n) if (1..=1000).contains(&n) => n,
                        _ => {
                            return Err(usage_error(&format!(
                                "--runs: {v:?} is not a count in 1..=1000"
                            )))
                        }
                    };
                }
                "--seed" => {
                    let v = value("--seed")?;
                    seed = v.parse().map_err(|_| {
                        usage_error(&format!("--seed: {v:?} is not a non-negative integer"))
                    })?;
                }
                "--strategies" => {
                    let v = value("--strategies")?;
                    strategies = v.split(',').map(|s| s.trim().to_string()).collect();
                    if let Some(bad) = strategies
                        .iter()
                        .find(|s| !sim::STRATEGIES.contains(&s.as_str()))
                    {
                        return Err(usage_error(&format!(
                            "--strategies: unknown strategy {bad:?}; expected some of {}",
                            sim::STRATEGIES.join(",")
                        )));
                    }
                }
                "--json" => json = true,
                other => return Err(usage_error(&format!("simulate: unknown option {other:?}"))),
            }
            Ok(())
        })();
        if let Err(code) = parsed {
            return code;
        }
    }
    let names: Vec<&str> = strategies.iter().map(String::as_str).collect();
    let reports: Vec<sim::Report> = writers
        .iter()
        .map(|&n| sim::compare(model, n, runs, seed, &names))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).expect("reports serialise")
        );
    } else {
        for r in &reports {
            println!("{}", sim::render(r));
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        // The main job: the simulator on its defaults.
        return simulate(&[]);
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "simulate" => simulate(rest),
        "token" => match read_input(rest.first()).map(|doc| policy_token(&doc)) {
            Ok(Ok(t)) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("writelane token: {e}");
                ExitCode::from(1)
            }
            Err(e) => usage_error(&e),
        },
        "check" => match read_input(rest.first()).map(|text| Policy::from_json(&text)) {
            Ok(Ok(p)) => {
                println!("{}", p.to_json());
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("writelane check: {e}");
                ExitCode::from(1)
            }
            Err(e) => usage_error(&e),
        },
        "vectors" => match rest {
            [flag, dir, lflag, ldir, laneflag, lanedir]
                if flag == "--out" && lflag == "--lease-out" && laneflag == "--lane-out" =>
            {
                let written = vectors::write_all(std::path::Path::new(dir)).and_then(|n| {
                    let m = vectors::write_lease(std::path::Path::new(ldir))?;
                    let k = lanevectors::write_lane(std::path::Path::new(lanedir))?;
                    // The event schema sits beside the vectors it describes.
                    let root = std::path::Path::new(dir)
                        .parent()
                        .unwrap_or(std::path::Path::new("."));
                    schema::write_events(&root.join("schema/events.json"))?;
                    Ok((n, m, k))
                });
                match written {
                    Ok((n, m, k)) => {
                        println!("wrote {n} vectors to {dir}, {m} to {ldir} and {k} to {lanedir}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("writelane vectors: {e}");
                        ExitCode::from(1)
                    }
                }
            }
            [flag, dir, lflag, ldir] if flag == "--out" && lflag == "--lease-out" => {
                let written = vectors::write_all(std::path::Path::new(dir))
                    .and_then(|n| vectors::write_lease(std::path::Path::new(ldir)).map(|m| (n, m)));
                match written {
                    Ok((n, m)) => {
                        println!("wrote {n} vectors to {dir} and {m} to {ldir}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("writelane vectors: {e}");
                        ExitCode::from(1)
                    }
                }
            }
            [flag, dir] if flag == "--out" => match vectors::write_all(std::path::Path::new(dir)) {
                Ok(n) => {
                    println!("wrote {n} vectors to {dir}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("writelane vectors: {e}");
                    ExitCode::from(1)
                }
            },
            _ => usage_error("vectors needs --out DIR"),
        },
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        "--version" | "-V" => {
            println!("writelane {}", writelane_core::VERSION);
            ExitCode::SUCCESS
        }
        other => usage_error(&format!("unknown command {other:?}")),
    }
}
