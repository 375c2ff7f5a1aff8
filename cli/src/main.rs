//! `writelane`: the contention simulator, canonical policy tokens, policy checks, the
//! conformance-vector generator, and shell completions.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod hold;
mod trail_cmd;

use clap::{CommandFactory, Parser, Subcommand};
use writelane_cli::exit::{self, Failure};
use writelane_cli::{batchvectors, lanevectors, lease, schema, sim, vectors};
use writelane_core::{policy_token, Policy};

/// writelane: the write discipline for cloud control planes.
///
/// With no subcommand, runs `writelane simulate` on its defaults.
#[derive(Debug, Parser)]
#[command(
    name = "writelane",
    version = writelane_core::VERSION,
    propagate_version = true,
    after_help = exit::HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deterministic contention lab in virtual time: N writers, one read-modify-write each,
    /// on one entity; every strategy side by side.
    Simulate(SimulateArgs),
    /// Print the canonical change token of an IAM policy document.
    Token(InputArgs),
    /// Validate a policy (JSON) and print the effective policy; exits 1 naming the field
    /// when it is invalid.
    Check(InputArgs),
    /// Regenerate the conformance vectors (the shared-lane ones, and the lane-driver ones).
    Vectors(VectorsArgs),
    /// Run a command while holding the leases of entities, so jobs that write them (a
    /// pipeline's `terraform apply`, a remediator's `Lane`) go one at a time.
    Hold(hold::HoldArgs),
    /// Look at and administer the lease records in a store: show, list, release, init.
    Lease(lease::LeaseArgs),
    /// Find who collides with whom on IAM entities, from CloudTrail: writers per entity,
    /// conflicts, overlap incidents, immediate replays, policy fights, writer pairs.
    Trail(trail_cmd::TrailArgs),
    /// Print a shell completion script to stdout.
    ///
    /// bash: `writelane completions bash > ~/.local/share/bash-completion/completions/writelane`;
    /// zsh: `writelane completions zsh > "${fpath[1]}/_writelane"`;
    /// fish: `writelane completions fish > ~/.config/fish/completions/writelane.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The contention model: iam (writes hold the entity for a service time) or brooker
    /// (optimistic concurrency on a version number).
    #[arg(long, default_value = "iam", value_parser = parse_model)]
    model: sim::Model,
    /// Writer counts to simulate, comma-separated, each in 1..=10000.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    writers: Vec<u32>,
    /// Runs per writer count (seeds SEED, SEED+1, ...), in 1..=1000.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Strategies to compare, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(sim::STRATEGIES.iter().copied()))]
    strategies: Vec<String>,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
    /// Also write each strategy's IAM calls as CloudTrail log files under DIR (one folder
    /// and account per strategy), for `writelane trail`.
    #[arg(long, value_name = "DIR")]
    trail: Option<std::path::PathBuf>,
}

impl Default for SimulateArgs {
    fn default() -> Self {
        SimulateArgs {
            model: sim::Model::Iam,
            writers: vec![10, 100],
            runs: 5,
            seed: 1,
            strategies: Vec::new(),
            json: false,
            trail: None,
        }
    }
}

#[derive(Debug, clap::Args)]
struct InputArgs {
    /// The JSON file to read; stdin when absent or `-`.
    file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct VectorsArgs {
    /// Directory for the lane vectors (the event schema goes to DIR/../schema/events.json).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Directory for the shared-lane (lease) vectors.
    #[arg(long, value_name = "DIR2")]
    lease_out: Option<PathBuf>,
    /// Directory for the lane-driver vectors (needs --lease-out).
    #[arg(long, value_name = "DIR3", requires = "lease_out")]
    lane_out: Option<PathBuf>,
}

fn parse_model(text: &str) -> Result<sim::Model, String> {
    sim::Model::parse(text)
        .ok_or_else(|| format!("unknown model {text:?}; expected iam or brooker"))
}

fn read_input(path: Option<&Path>) -> Result<String, Failure> {
    match path {
        None => read_stdin(),
        Some(p) if p == Path::new("-") => read_stdin(),
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", p.display()))),
    }
}

fn read_stdin() -> Result<String, Failure> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
    Ok(s)
}

fn simulate(args: SimulateArgs) -> Result<ExitCode, Failure> {
    let names: Vec<&str> = if args.strategies.is_empty() {
        sim::STRATEGIES.to_vec()
    } else {
        args.strategies.iter().map(String::as_str).collect()
    };
    let reports: Vec<sim::Report> = args
        .writers
        .iter()
        .map(|&n| sim::compare(args.model, n, args.runs, args.seed, &names))
        .collect();
    if args.json {
        let text = serde_json::to_string_pretty(&reports)
            .map_err(|e| Failure::software(format!("cannot encode the reports as JSON: {e}")))?;
        println!("{text}");
    } else {
        for r in &reports {
            println!("{}", sim::render(r));
        }
    }
    if let Some(dir) = &args.trail {
        let written =
            sim::trail::write_trail(dir, args.model, &args.writers, args.runs, args.seed, &names)
                .map_err(|e| Failure::usage(format!("--trail: {e}")))?;
        for s in &written {
            eprintln!(
                "trail: {} in account {}: {} file(s), {} read(s), {} write(s), {} conflict(s) under {}",
                s.strategy,
                s.account,
                s.files,
                s.reads,
                s.writes,
                s.conflicts,
                s.folder.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `token` and `check` exit 1 for an invalid document: their verdict, not a usage error.
fn verdict<T, E: std::fmt::Display>(
    context: &str,
    result: Result<T, E>,
    show: impl FnOnce(T) -> String,
) -> ExitCode {
    match result {
        Ok(value) => {
            println!("{}", show(value));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{context}: {e}");
            ExitCode::from(1)
        }
    }
}

fn write_vectors(args: VectorsArgs) -> Result<ExitCode, Failure> {
    let dir = &args.out;
    let failed = |e: std::io::Error| Failure::new(1, e.to_string());
    let n = vectors::write_all(dir).map_err(failed)?;
    let Some(ldir) = &args.lease_out else {
        println!("wrote {n} vectors to {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    };
    let m = vectors::write_lease(ldir).map_err(failed)?;
    let Some(lanedir) = &args.lane_out else {
        println!(
            "wrote {n} vectors to {} and {m} to {}",
            dir.display(),
            ldir.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let k = lanevectors::write_lane(lanedir).map_err(failed)?;
    let b = batchvectors::write_batch(&lanedir.join("batch")).map_err(failed)?;
    // The event schema sits beside the vectors it describes.
    let root = dir.parent().unwrap_or(Path::new("."));
    schema::write_events(&root.join("schema/events.json")).map_err(failed)?;
    println!(
        "wrote {n} vectors to {}, {m} to {}, {k} to {} and {b} to {}",
        dir.display(),
        ldir.display(),
        lanedir.display(),
        lanedir.join("batch").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; every other parse error is a usage
            // error, with writelane's usage code (see exit.rs for why not clap's 2).
            if !e.use_stderr() {
                // Printing can only fail when stdout is closed; nothing is left to say.
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let argv: Vec<String> = std::env::args().skip(1).collect();
            let command = writelane_cli::args::command_path(&Cli::command(), &argv);
            eprintln!("{}", writelane_cli::args::usage_line(&e, &command));
            return ExitCode::from(exit::EX_USAGE);
        }
    };
    if !matches!(cli.command, Some(Command::Hold(_))) {
        // Output piped into `head` that closes early ends the program quietly, as it does
        // any Unix filter, instead of a panic on the failed print. Not for `hold`, whose
        // own stdout and stderr closing must not end it while its command runs.
        // SAFETY: setting a signal's disposition to the default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let (context, result) = match cli.command {
        // The main job: the simulator on its defaults.
        None => ("writelane simulate", simulate(SimulateArgs::default())),
        Some(Command::Simulate(args)) => ("writelane simulate", simulate(args)),
        Some(Command::Token(args)) => (
            "writelane token",
            read_input(args.file.as_deref())
                .map(|doc| verdict("writelane token", policy_token(&doc), |t| t)),
        ),
        Some(Command::Check(args)) => (
            "writelane check",
            read_input(args.file.as_deref())
                .map(|text| verdict("writelane check", Policy::from_json(&text), |p| p.to_json())),
        ),
        Some(Command::Vectors(args)) => ("writelane vectors", write_vectors(args)),
        Some(Command::Hold(args)) => ("writelane hold", hold::run(args)),
        Some(Command::Lease(args)) => (args.context(), lease::run(args)),
        Some(Command::Trail(args)) => ("writelane trail", trail_cmd::run(args)),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "writelane",
                &mut std::io::stdout(),
            );
            ("writelane completions", Ok(ExitCode::SUCCESS))
        }
    };
    result.unwrap_or_else(|failure| failure.report(context))
}
