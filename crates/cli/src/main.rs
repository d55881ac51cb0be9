//! The `switchyard` binary: parses the command line, sets up logging, and
//! hands over to the library crates. Exit codes: 0 ok, 1 failure, 64 bad
//! config or usage.

#![forbid(unsafe_code)]

/// `println!` for reports a reader may cut short (`| head`): a closed
/// stdout is an `io::Error` the caller returns (and `main` ends quietly on),
/// not a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod check;
mod demo;
mod new;
mod policy_test;
mod serve;
mod sign;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: per-thread free lists make the ~150 small allocations of a
/// request (header maps, bodies, futures) cheaper than glibc's malloc does
/// (measured: `switchyard-bench --callgrind`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process, before any thread starts.
/// mimalloc asks for them on its arenas, and then every 2 MiB an arena grows
/// into is faulted in and zeroed whole: holding 9,000 open streams, that was
/// 41 % of the gateway's CPU (zeroing pages), 76 KiB of RSS per stream
/// instead of 51, and 85 MiB at rest instead of 37 (`switchyard-bench
/// --open-streams`). A gateway holds many small, long-lived allocations;
/// 4 KiB pages suit it.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("warning: could not turn transparent huge pages off: {e}");
    }
}

/// Switchyard: an LLM gateway whose failover decisions are WebAssembly policies.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway from a config file.
    Serve {
        /// The TOML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway in front of two local mock providers (no keys, no network).
    Demo {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Policy folder to watch (drop a .wasm here to hot-swap it in).
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
    },
    /// Check a config file and say what it would do.
    Validate {
        /// The TOML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Scaffold a policy project from a template.
    New {
        /// Policy name (the `.wasm` file stem routes refer to).
        name: String,
        /// Language of the project.
        #[arg(long, value_enum)]
        lang: new::Lang,
        /// Folder to create the project in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Gateway keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Rehearse an outage: run a scenario's traffic and provider faults
    /// through the real gateway in virtual time (an hour in seconds) and
    /// report how the policy rode it out. Same seed, same report.
    Simulate {
        /// The scenario file (see examples/scenarios).
        #[arg(long)]
        scenario: PathBuf,
        /// A gateway config file instead of the scenario's own.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A policy component deciding for every route.
        #[arg(long, conflicts_with = "compare")]
        policy: Option<PathBuf>,
        /// The seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Two policy components, side by side on the same scenario and seed.
        #[arg(long, num_args = 2, value_names = ["A.wasm", "B.wasm"])]
        compare: Vec<PathBuf>,
        /// Also write the report as JSON to this file (`-`: stdout, instead of the text).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the report as a self-contained HTML page with the timeline chart.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Serve a scenario's providers on loopback (OpenAI or Anthropic wire,
    /// streaming included), their faults on the scenario's timeline in real
    /// time: point a staging gateway and real clients at an outage.
    Mock {
        /// The scenario file.
        #[arg(long)]
        scenario: PathBuf,
        /// The seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new gateway key: prints it once, and the `[[keys]]` lines to add
    /// to the config (only its hash is stored).
    New {
        /// Who will hold it (a team, a service): what logs and policies see.
        name: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Load a component with the gateway's real host and check it satisfies the policy world.
    Check {
        /// The `.wasm` component.
        file: PathBuf,
        /// Settings JSON handed to the policy's `init` (default `{}`).
        #[arg(long)]
        config: Option<String>,
        /// Keep the compiled code in this folder; point it at a gateway's
        /// cache (`<policy dir>/.cache` by default) and the checked file
        /// loads there without compiling again.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Run expectation files against a component: given these outcomes and
    /// this health, the policy must decide this. With no arguments, in a
    /// folder made by `switchyard new`: its NAME.wasm against its
    /// policy-tests.toml (nothing is built).
    Test {
        /// The `.wasm` component (default: the folder's NAME.wasm).
        file: Option<PathBuf>,
        /// Expectation files (default: policy-tests.toml beside the component).
        #[arg(long)]
        expect: Vec<PathBuf>,
    },
    /// Make an Ed25519 signing key for policies: written to OUT (owner-only);
    /// prints the `[policy] trusted_keys` line for the gateway's config.
    Keygen {
        /// Where the (secret) key goes; never overwritten.
        out: PathBuf,
    },
    /// Sign a policy: writes FILE.wasm.sig, which a gateway with
    /// `[policy] trusted_keys` needs beside the file to load it.
    Sign {
        /// The `.wasm` component.
        file: PathBuf,
        /// The signing key (`switchyard policy keygen`).
        #[arg(long)]
        key: PathBuf,
    },
}

/// Logs to stderr at `SWITCHYARD_LOG`'s level, else at `default`.
fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `switchyard keys new NAME`.
fn keys_new(name: &str) -> ExitCode {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        eprintln!("error: a key name is 1-64 of A-Z a-z 0-9 - _ . (it appears in logs and metrics)");
        return ExitCode::from(EXIT_CONFIG);
    }
    let (key, hash) = switchyard_access::new_key();
    println!("{key}");
    eprintln!("\nThe key above is shown once: give it to {name}. Add these lines to the config:\n");
    println!("\n[[keys]]\nname = {name:?}\nhash = {hash:?}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    no_huge_pages();
    let cli = Cli::parse();
    // A simulated gateway's own log (an hour of breaker events in seconds)
    // would drown its report: off, unless SWITCHYARD_LOG says otherwise.
    let quiet = matches!(cli.command, Command::Simulate { .. });
    init_logging(cli.log_format, if quiet { "off" } else { "info" });
    // A simulation runs on its own single-threaded, virtual-time runtime.
    let command = match cli.command {
        Command::Simulate { scenario, config, policy, seed, compare, json, html } => {
            let args = simulate::Args { scenario, config, policy, seed, compare, json, html };
            return finish(simulate::simulate(args));
        }
        other => other,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve { config } => serve::serve(&config).await,
            Command::Demo { listen, policy_dir } => demo::demo(&listen, &policy_dir).await,
            Command::Validate { config } => serve::validate(&config).await,
            Command::Policy { command: PolicyCommand::Check { file, config, cache_dir } } => {
                check::check(&file, config.as_deref(), cache_dir).await
            }
            Command::Policy { command: PolicyCommand::Test { file, expect } } => {
                policy_test::test(file.as_deref(), &expect).await
            }
            Command::Policy { command: PolicyCommand::Keygen { out } } => sign::keygen(&out),
            Command::Policy { command: PolicyCommand::Sign { file, key } } => sign::sign(&file, &key),
            Command::New { name, lang, dir } => new::new(&name, lang, &dir),
            Command::Keys { command: KeysCommand::New { name } } => Ok(keys_new(&name)),
            Command::Mock { scenario, seed } => simulate::mock(&scenario, seed).await,
            Command::Simulate { .. } => unreachable!("run above, without this runtime"),
        }
    });
    finish(result)
}

/// The exit code for a command's result.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): what it wanted, it has.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit code for a config or usage mistake (EX_USAGE).
pub(crate) const EXIT_CONFIG: u8 = 64;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing open requests");
}
