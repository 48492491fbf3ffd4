//! The `sgcache` binary: clap CLI, configuration, the serve loop, exit codes.
//!
//! Stdout belongs to the protocol while serving; everything human goes to stderr
//! through `tracing`. Exit codes: 0 success, 1 a command failed (or the protocol
//! stream was not the protocol), 2 bad usage or configuration (before anything is served
//! or touched).

use sgcache::{cmd, config, daemon, remote, serve};

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use sgcache::cli::{Cli, Command};
use sgcache::config::Config;

/// Exit code for bad usage or configuration (clap uses it for bad flags too).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let started = Instant::now();
    fix_mmap_threshold();
    let cli = Cli::parse();
    init_tracing(&cli.global.log);
    let config = cli.command.as_ref().is_none_or(|c| c.needs_config());
    let cfg = if config {
        match Config::resolve(&cli.global) {
            Ok(c) => Some(c),
            Err(e) => {
                fatal(&format!("configuration: {e:#}"));
                return ExitCode::from(EXIT_USAGE);
            }
        }
    } else {
        None
    };
    let prints_listing = matches!(
        cli.command,
        Some(Command::Inspect(_) | Command::Stats(_) | Command::ConfigTable)
    );
    match run(cli, cfg, started) {
        Ok(code) => code,
        // `sgcache inspect --all | head`: the reader has what it wanted; like other Unix
        // listing tools, stop quietly rather than report the closed pipe.
        Err(e) if prints_listing && is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            fatal(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error that ends the process: always printed, whatever `SGCACHE_LOG` filters out.
fn fatal(msg: &str) {
    let _ = writeln!(std::io::stderr(), "sgcache: error: {msg}");
}

fn init_tracing(filter: &str) {
    // The value was checked when the command line was parsed.
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

fn run(cli: Cli, cfg: Option<Config>, started: Instant) -> Result<ExitCode> {
    let command = match cli.command {
        Some(c) => c,
        None if std::io::stdin().is_terminal() => {
            // Run by hand: help, rather than waiting for protocol input.
            Cli::command().print_help()?;
            return Ok(ExitCode::SUCCESS);
        }
        None => Command::Serve,
    };
    let cfg = || cfg.as_ref().expect("resolved for commands that need it");
    match command {
        Command::ConfigTable => {
            std::io::stdout().write_all(config::config_table().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen => cmd::keygen::run(),
        Command::Prefetch(args) => cmd::prefetch::run(cfg(), &args),
        Command::Explain(args) => cmd::explain::run(cfg(), args),
        Command::Serve => serve_stdio(cfg(), started),
        Command::Stats(args) => cmd::stats::run(cfg(), &args),
        Command::Trim(args) => cmd::maintain::trim(cfg(), &args),
        Command::Verify(args) => cmd::maintain::verify(cfg(), &args),
        Command::Buildid(args) => cmd::buildid::run(&args),
        Command::Inspect(args) => cmd::inspect::run(&args, &cfg().dir),
        Command::Doctor => cmd::doctor::run(cfg()),
        Command::Daemon(args) => daemon::run(cfg(), &args),
        Command::Clean => cmd::maintain::clean(cfg()),
        Command::Ci(c) => cmd::ci::run(&c),
    }
}

fn serve_stdio(cfg: &Config, started: Instant) -> Result<ExitCode> {
    let disk = sgcache_disk::DiskCache::open_for_serving(&cfg.dir)
        .with_context(|| format!("opening the local cache `{}`", cfg.dir.display()))?;
    let disk = std::sync::Arc::new(disk);
    let metrics = std::sync::Arc::new(sgcache_types::Metrics::default());
    let work = remote::remote_work(cfg, disk.clone(), &metrics);
    let server =
        serve::Server::new(disk, cfg.max_size, work, metrics).with_summary(cfg.verbose, started);
    let (stdin, stdout) = raw_stdio();
    match server.serve(stdin, stdout) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            fatal(&format!("stopping: {e}"));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Keeps glibc's malloc from holding on to freed pack and upload buffers.
///
/// glibc serves allocations over a threshold (128 KiB at start) with their own mappings,
/// returned to the system when freed; but each such free *raises* the threshold (up to
/// 32 MiB), after which the 1–4 MiB pack and chunk buffers come from per-thread arenas and
/// stay resident. Measured with `bash bench/memory.sh`: a cold `go build std` with a
/// `file://` remote peaked at 120 MB with the moving threshold and 66 MB with it fixed. Fixing it costs a `mmap`/`munmap` per large buffer, which is
/// nothing next to the I/O that fills them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_mmap_threshold() {
    // SAFETY: mallopt only changes malloc's tuning; called once, before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}

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
