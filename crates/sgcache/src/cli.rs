//! The command line, and with it every configuration knob.
//!
//! This is the one place where knobs are declared: each global option names its
//! environment variable, default and documentation here, clap resolves
//! flag > environment > default, and `docs/configuration.md` is checked against this
//! declaration by a test (`sgcache config-table` prints the table).

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

/// sgcache: a build cache for Go (GOCACHEPROG) whose local tier is Go's own GOCACHE.
///
/// Turn it on with `go env -w GOCACHEPROG=sgcache`. With no subcommand and stdin
/// not a terminal, it serves the GOCACHEPROG protocol on stdin/stdout.
#[derive(Debug, Parser)]
#[command(name = "sgcache", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand shares. Each one is a configuration knob.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Local cache directory. Default: the go command's own GOCACHE (GOCACHE, else
    /// $XDG_CACHE_HOME/go-build, else ~/.cache/go-build; macOS ~/Library/Caches/go-build;
    /// Windows %LocalAppData%\go-build).
    #[arg(long, global = true, env = "SGCACHE_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Size cap for the local directory (e.g. 20GiB). When set, trimming also removes
    /// least-recently-used entries until the cache fits. Default: no cap (Go's age rule only).
    #[arg(long = "max-size", global = true, env = "SGCACHE_MAX_SIZE", value_name = "SIZE",
          value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Print one summary line on stderr when serving ends (gets, hits, misses, puts, bytes, ms).
    #[arg(long, global = true, env = "SGCACHE_VERBOSE", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub verbose: bool,

    /// Log filter for diagnostics on stderr (tracing EnvFilter syntax, e.g. `debug`).
    #[arg(
        long = "log",
        global = true,
        env = "SGCACHE_LOG",
        value_name = "FILTER",
        default_value = "warn"
    )]
    pub log: String,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GOCACHEPROG protocol on stdin/stdout (the default without a subcommand).
    Serve,
    /// Show what is in the local cache and this machine's cumulative counters.
    Stats(StatsArgs),
    /// Remove unused entries now (Go's age rule, or --max-age), then enforce --max-size.
    Trim(TrimArgs),
    /// Rehash every output and check every index entry; --repair removes what is corrupt.
    Verify(VerifyArgs),
    /// Remove all cache entries, exactly what `go clean -cache` removes.
    Clean,
    /// Print or rewrite a Go build ID, like `go tool buildid`.
    Buildid(crate::cmd::buildid::BuildidArgs),
    /// Print the configuration table (markdown) generated from this declaration.
    #[command(name = "config-table", hide = true)]
    ConfigTable,
}

/// `sgcache stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `sgcache trim`.
#[derive(Debug, Args)]
pub struct TrimArgs {
    /// Remove entries unused for longer than this (e.g. 36h, 5d). Default: Go's rule, 5 days + 1 hour.
    #[arg(long = "max-age", value_name = "DUR", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
}

/// `sgcache verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Remove corrupt entries.
    #[arg(long)]
    pub repair: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Parses `20GiB`, `500MB`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("{s:?} is not a size; write it like 500MiB, 20GiB or 1048576"))
}

/// Parses `30s`, `5m`, `36h`, `5d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("{s:?} is not a duration; write it like 30s, 5m, 36h or 5d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("lots").unwrap_err().contains("20GiB"));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").unwrap_err().contains("30s"));
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
