//! The `sgcache` binary: clap CLI, configuration, the serve loop, exit codes.
//!
//! Stdout belongs to the protocol while serving; everything human goes to stderr
//! through `tracing`. Exit codes: 0 success, 1 a command failed (or the protocol
//! stream was not the protocol), 2 bad usage or configuration.

use sgcache::{cmd, config, daemon, serve, tier, work};

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use sgcache::cli::{Cli, Command};
use sgcache::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global.log);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    let command = match cli.command {
        Some(c) => c,
        None if std::io::stdin().is_terminal() => {
            // Run by hand: help, rather than waiting for protocol input.
            Cli::command().print_help()?;
            return Ok(ExitCode::SUCCESS);
        }
        None => Command::Serve,
    };
    match command {
        Command::ConfigTable => {
            use std::io::Write;
            std::io::stdout().write_all(config::config_table().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            let cfg = Config::resolve(&cli.global)?;
            serve_stdio(&cfg)
        }
        Command::Stats(args) => cmd::stats::run(&Config::resolve(&cli.global)?, &args),
        Command::Trim(args) => cmd::maintain::trim(&Config::resolve(&cli.global)?, &args),
        Command::Verify(args) => cmd::maintain::verify(&Config::resolve(&cli.global)?, &args),
        Command::Buildid(args) => cmd::buildid::run(&args),
        Command::Inspect(args) => cmd::inspect::run(&args, &Config::resolve(&cli.global)?.dir),
        Command::Doctor => cmd::doctor::run(&Config::resolve(&cli.global)?),
        Command::Daemon(args) => daemon::run(&Config::resolve(&cli.global)?, &args),
        Command::Clean => cmd::maintain::clean(&Config::resolve(&cli.global)?),
    }
}

fn serve_stdio(cfg: &Config) -> Result<ExitCode> {
    let started = Instant::now();
    let disk = sgcache_disk::DiskCache::open_for_serving(&cfg.dir)
        .with_context(|| format!("opening the local cache `{}`", cfg.dir.display()))?;
    let disk = std::sync::Arc::new(disk);
    // Remote work goes to the shared daemon when there is one, else stays in-process.
    let remote = match daemon::DaemonClient::connect(cfg, disk.clone()) {
        Some(d) => Some(work::RemoteWork::Daemon(d)),
        None => tier::in_process(cfg, disk.clone()).map(work::RemoteWork::InProcess),
    };
    let mut server = serve::Server::new(disk, cfg.max_size, remote);
    if cfg.verbose {
        server = server.with_summary(started);
    }
    let (stdin, stdout) = raw_stdio();
    let ending = server.serve(stdin, stdout);
    match ending {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("stopping: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Stdin and stdout as plain files: no std line buffering in the way, and dropping
/// the stdout file closes the descriptor, which tells the go command we are done.
#[cfg(unix)]
fn raw_stdio() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    // SAFETY: descriptors 0 and 1 are open for the life of the process and nothing
    // else in this program reads stdin or writes stdout while serving; ownership moves
    // to these two files, which are the only handles used from here on.
    unsafe { (std::fs::File::from_raw_fd(0), std::fs::File::from_raw_fd(1)) }
}

#[cfg(not(unix))]
fn raw_stdio() -> (std::io::Stdin, std::io::Stdout) {
    (std::io::stdin(), std::io::stdout())
}
