//! The command line, and with it every configuration knob.
//!
//! This is the one place where knobs are declared: each global option names its
//! environment variable, default and documentation here, clap resolves
//! flag > environment > default, and `docs/configuration.md` is checked against this
//! declaration by a test (`sgcache config-table` prints the table). Every subcommand's
//! arguments are declared here too; `cmd/*` implement them and import from here, never the
//! other way round, so the binary's modules import in one direction (no circle).

use std::ffi::OsString;
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

    /// Print a summary on stderr when serving ends: `true` one human line (gets, hits,
    /// misses, puts, bytes, ms, and the remote's counters), `json` one JSON object with every
    /// counter of the run (`{"sgcache":{"elapsed_ms":…,"remote":…,"metrics":{…}}}`).
    #[arg(long, global = true, env = "SGCACHE_VERBOSE", value_name = "BOOL|json",
          num_args = 0..=1, default_missing_value = "true", default_value = "false",
          value_parser = parse_verbose)]
    pub verbose: crate::serve::Summary,

    /// Remote tier URL: s3://bucket/prefix?region=…&endpoint=…, gs://bucket/prefix,
    /// azblob://container/prefix, redis://host:port/db, rediss://…, http(s)://host/prefix
    /// (bazel-remote, WebDAV), gha://, file:///path. Default: no remote.
    #[arg(long, global = true, env = "SGCACHE_REMOTE", value_name = "URL")]
    pub remote: Option<String>,

    /// Namespace (trust scope) the remote tier writes to and reads first, e.g. a branch.
    #[arg(
        long,
        global = true,
        env = "SGCACHE_NAMESPACE",
        value_name = "NAME",
        default_value = "default"
    )]
    pub namespace: String,

    /// Further namespaces to read after SGCACHE_NAMESPACE, in order, comma-separated (e.g. `main`).
    #[arg(
        long = "read-namespaces",
        global = true,
        env = "SGCACHE_READ_NAMESPACES",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub read_namespaces: Vec<String>,

    /// Ed25519 secret key (`sgsk1_…`, from `sgcache keygen`) that signs the action entries and
    /// manifests this job writes. Only jobs whose output others may trust hold it (e.g. main
    /// and release jobs, in a protected environment). Prefer the variable to the flag
    /// (process lists).
    #[arg(
        long = "signing-key",
        global = true,
        env = "SGCACHE_SIGNING_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub signing_key: Option<String>,

    /// Public keys (`sgpk1_…`, comma-separated) whose signatures this job accepts. With any,
    /// entries and manifests read are used only if signed by one of them (or unsigned in the
    /// job's own namespace when it holds no signing key); without, everything in the store is
    /// trusted. Not secret. The signing key's own public key is always trusted.
    #[arg(
        long = "trusted-keys",
        global = true,
        env = "SGCACHE_TRUSTED_KEYS",
        value_name = "KEYS"
    )]
    pub trusted_keys: Option<String>,

    /// Never write the remote (untrusted jobs, e.g. pull requests from forks).
    #[arg(long = "read-only", global = true, env = "SGCACHE_READ_ONLY", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub read_only: bool,

    /// Never read the remote, only write it (seeding jobs).
    #[arg(long = "write-only", global = true, env = "SGCACHE_WRITE_ONLY", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new(), conflicts_with = "read_only")]
    pub write_only: bool,

    /// zstd level for remote objects (1-19), or `off`. Always off for http(s):// remotes,
    /// whose servers must see raw bytes.
    #[arg(long, global = true, env = "SGCACHE_COMPRESSION", value_name = "LEVEL|off",
          default_value = "3", value_parser = parse_compression)]
    pub compression: Compression,

    /// Time limit for a remote request's first byte, retries included (a transfer then has
    /// no time limit as long as it keeps moving; it fails after 10 s without a byte).
    #[arg(long = "remote-timeout", global = true, env = "SGCACHE_REMOTE_TIMEOUT",
          value_name = "DUR", default_value = sgcache_store::defaults::FIRST_BYTE_TIMEOUT_TEXT,
          value_parser = parse_duration)]
    pub remote_timeout: Duration,

    /// Time limit for connecting to the remote (TCP and TLS).
    #[arg(long = "connect-timeout", global = true, env = "SGCACHE_REMOTE_CONNECT_TIMEOUT",
          value_name = "DUR", default_value = sgcache_store::defaults::CONNECT_TIMEOUT_TEXT,
          value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// How long the end of a go command waits for its manifest and queued uploads; what is
    /// left is dropped (and stays in the local cache). With a daemon, the go command does not
    /// wait: this bounds the daemon's own work when it exits.
    #[arg(long = "upload-deadline", global = true, env = "SGCACHE_UPLOAD_DEADLINE",
          value_name = "DUR", default_value = sgcache_store::defaults::UPLOAD_DEADLINE_TEXT,
          value_parser = parse_duration)]
    pub upload_deadline: Duration,

    /// The largest object (or pack) a remote entry may claim; larger claims are refused
    /// before any download, so a lying remote cannot fill the disk.
    #[arg(long = "max-object-size", global = true, env = "SGCACHE_REMOTE_MAX_OBJECT",
          value_name = "SIZE", default_value = sgcache_store::defaults::MAX_OBJECT_TEXT,
          value_parser = parse_size)]
    pub max_object_size: u64,

    /// Uploads in flight at once.
    #[arg(long = "upload-concurrency", global = true, env = "SGCACHE_UPLOAD_CONCURRENCY",
          value_name = "N", default_value = "8", value_parser = clap::value_parser!(u16).range(1..))]
    pub upload_concurrency: u16,

    /// Uploads that may wait in the queue; beyond this they are dropped (and counted).
    #[arg(long = "upload-queue", global = true, env = "SGCACHE_UPLOAD_QUEUE",
          value_name = "N", default_value = "1024", value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_queue: u32,

    /// Consecutive remote failures after which the remote is switched off (one warning line;
    /// gets become misses, puts stay local) until SGCACHE_BREAKER_COOLDOWN has passed. 0 =
    /// never.
    #[arg(
        long = "breaker-threshold",
        global = true,
        env = "SGCACHE_BREAKER_THRESHOLD",
        value_name = "N",
        default_value = "5"
    )]
    pub breaker_threshold: u32,

    /// How long a switched-off remote stays off before one probe request; each failed probe
    /// doubles it, up to 10 minutes, and a successful one switches the remote back on.
    #[arg(long = "breaker-cooldown", global = true, env = "SGCACHE_BREAKER_COOLDOWN",
          value_name = "DUR", default_value = sgcache_store::defaults::BREAKER_COOLDOWN_TEXT,
          value_parser = parse_duration)]
    pub breaker_cooldown: Duration,

    /// Prefetch: once the run needs the remote (its first local miss or put), fetch in the
    /// background what the last runs in this build context used (their manifest); at the end
    /// store this run's manifest if it used something the last one lacks.
    #[arg(long, global = true, env = "SGCACHE_PREFETCH", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true", default_value = "true",
          value_parser = BoolishValueParser::new())]
    pub prefetch: bool,

    /// Packs: with each manifest it stores, sgcache also stores the outputs it lists in packs
    /// of about 2 MiB (once more, beside `cas/`), so the next run's prefetch needs a few large
    /// requests instead of one per output. Off neither writes nor reads packs (saving that
    /// remote space and upload traffic).
    #[arg(long, global = true, env = "SGCACHE_PACKS", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true", default_value = "true",
          value_parser = BoolishValueParser::new())]
    pub packs: bool,

    /// Name of the build context whose manifest is used. Default: derived from the working
    /// directory, GOOS, GOARCH, GOFLAGS, CGO_ENABLED and GOEXPERIMENT (the Go version is
    /// already part of every action id).
    #[arg(
        long = "manifest-key",
        global = true,
        env = "SGCACHE_MANIFEST_KEY",
        value_name = "KEY"
    )]
    pub manifest_key: Option<String>,

    /// Shared daemon (`sgcache daemon`) for remote work: `off` = always in-process; `on` = use
    /// a daemon already running for this configuration, else in-process; `auto` = also start
    /// one (detached) when none runs. Local hits never go through the daemon. Without a remote
    /// there is nothing to share and this is ignored.
    #[arg(
        long,
        global = true,
        env = "SGCACHE_DAEMON",
        value_name = "off|on|auto",
        default_value = "on",
        value_enum
    )]
    pub daemon: DaemonMode,

    /// A daemon exits after this long without a client, once its upload queue is drained.
    #[arg(long = "daemon-idle", global = true, env = "SGCACHE_DAEMON_IDLE", value_name = "DUR",
          default_value = "10m", value_parser = parse_duration)]
    pub daemon_idle: Duration,

    /// Serve the daemon's counters (those of `stats --json`) as Prometheus text
    /// (OpenMetrics) on http://ADDR/metrics. A bare port (`9184`) or `localhost:PORT` binds
    /// loopback; another interface only when written out (e.g. `0.0.0.0:9184`). Only
    /// `sgcache daemon` serves it. Default: off.
    #[arg(
        long = "metrics-addr",
        global = true,
        env = "SGCACHE_METRICS_ADDR",
        value_name = "[HOST:]PORT"
    )]
    pub metrics_addr: Option<String>,

    /// Log filter for diagnostics on stderr (tracing EnvFilter syntax, e.g. `debug`, or
    /// `off`). A fatal error is always printed, whatever the filter.
    #[arg(
        long = "log",
        global = true,
        env = "SGCACHE_LOG",
        value_name = "FILTER",
        default_value = "warn",
        value_parser = parse_log_filter
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
    /// Check the setup: configuration (secrets masked), go version and GOCACHEPROG, whether
    /// the local directory is writable and the remote reachable with working credentials.
    Doctor,
    /// Print or rewrite a Go build ID, like `go tool buildid`.
    Buildid(BuildidArgs),
    /// Show cache entries: output id, size, time, kind, and for Go archives the build ID
    /// and `go object` header.
    Inspect(InspectArgs),
    /// Run the shared daemon for this configuration in the foreground (GOCACHEPROG clients
    /// hand it their remote work). Exits after SGCACHE_DAEMON_IDLE without clients.
    Daemon(DaemonArgs),
    /// Warm the local tier from the remote for the go commands that will run in DIR (default:
    /// here), before they ask: in the shared daemon (started if none runs), returning at once
    /// unless --wait.
    Prefetch(PrefetchArgs),
    /// Why a go command missed the cache: run it (`sgcache explain -- go test ./...`) and
    /// trace each miss, against a recorded baseline (`sgcache explain record -- go test
    /// ./...`), down to its root cause, with what to do about it.
    Explain(ExplainArgs),
    /// Print a new Ed25519 key pair: `SGCACHE_SIGNING_KEY=sgsk1_…` (secret: keep it in a
    /// secret store, for trusted jobs only) and `SGCACHE_TRUSTED_KEYS=sgpk1_…` (public: give
    /// it to every job that reads the cache).
    Keygen,
    /// Helpers for CI jobs (the GitHub Action runs them).
    #[command(subcommand)]
    Ci(CiCommand),
    /// Print the configuration table (markdown) generated from this declaration.
    #[command(name = "config-table", hide = true)]
    ConfigTable,
}

/// `sgcache buildid`.
#[derive(Debug, Args)]
pub struct BuildidArgs {
    /// Rewrite the file's content ID to match its content (like `go tool buildid -w`).
    #[arg(short = 'w')]
    pub write: bool,
    /// A Go package archive or binary.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `sgcache inspect`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
pub struct InspectArgs {
    /// An action ID (64 hex digits) or a hex prefix of one.
    #[arg(value_name = "ACTIONID")]
    pub id: Option<String>,
    /// Every entry in the cache.
    #[arg(long)]
    pub all: bool,
    /// Machine-readable output (a JSON array).
    #[arg(long)]
    pub json: bool,
}

/// `sgcache prefetch`.
#[derive(Debug, Args)]
pub struct PrefetchArgs {
    /// Return only when the local tier is warm (else at once; the daemon keeps working).
    #[arg(long)]
    pub wait: bool,
    /// Directories whose go commands to warm for (e.g. `.` and `tools`); default: this one.
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

/// `sgcache explain`.
#[derive(Debug, Args)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct ExplainArgs {
    /// `record`: store this run as the baseline instead of explaining it.
    #[command(subcommand)]
    pub action: Option<ExplainAction>,
    /// The baseline: a file (a path with a `/`, or an existing file) or a namespace of the
    /// remote. Default: this machine's baseline for the same go command, else the remote's
    /// (SGCACHE_NAMESPACE, then SGCACHE_READ_NAMESPACES).
    #[arg(long, value_name = "FILE|NAMESPACE")]
    pub against: Option<String>,
    /// Print the report as JSON on stdout (the go command's own stdout goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// The baseline's name (default: the go command's arguments, so `go test ./...` is
    /// explained against the last recorded `go test ./...`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The go command, after `--` (e.g. `-- go test ./...`).
    #[arg(last = true, required = true, value_name = "GO COMMAND")]
    pub command: Vec<OsString>,
}

/// `sgcache explain record`.
#[derive(Debug, Subcommand)]
pub enum ExplainAction {
    /// Run the go command with the hashing transcript on and store it as the baseline: on
    /// this machine (or --out) and, when this job writes the remote, in the remote under
    /// SGCACHE_NAMESPACE (signed with SGCACHE_SIGNING_KEY, if set).
    Record(RecordArgs),
}

/// `sgcache explain record`'s arguments.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Write the baseline to this file instead of the local cache directory (the remote
    /// still gets it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The baseline's name (default: the go command's arguments).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The go command, after `--`.
    #[arg(last = true, required = true, value_name = "GO COMMAND")]
    pub command: Vec<OsString>,
}

/// `sgcache ci …`.
#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Set the mtime of every git-tracked file (and of the directories holding them) to a
    /// time derived from its content, the same on every checkout, so `go test` results of
    /// tests that read files (testdata/) are reused from a shared cache on fresh checkouts.
    /// Files modified in the work tree are left alone.
    RestoreMtimes(RestoreMtimesArgs),
}

/// `sgcache ci restore-mtimes`.
#[derive(Debug, Args)]
pub struct RestoreMtimesArgs {
    /// A directory inside the git work tree (the whole work tree is done).
    #[arg(value_name = "DIR", default_value = ".")]
    pub path: PathBuf,
}

impl Command {
    /// Whether the command reads the configuration (and so fails with exit code 2 on a bad
    /// knob). `buildid`, `keygen`, `config-table` and `ci` work without one.
    pub fn needs_config(&self) -> bool {
        !matches!(
            self,
            Command::Buildid(_) | Command::Keygen | Command::ConfigTable | Command::Ci(_)
        )
    }
}

/// How a serving sgcache uses the shared daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DaemonMode {
    /// Never: remote work is done in-process.
    Off,
    /// Use a running daemon for this configuration if there is one.
    On,
    /// Use one, starting it when none runs.
    Auto,
}

/// `sgcache daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Print the running daemon's state (JSON) instead of starting one; exit 1 if none runs.
    #[arg(long, conflicts_with = "stop")]
    pub status: bool,
    /// Ask the running daemon to exit (after draining its uploads).
    #[arg(long)]
    pub stop: bool,
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
    /// Leave files modified this recently alone (they may be writes in progress).
    /// `0s` judges everything: only when no go command is using the directory.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    pub grace: Duration,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Parses `SGCACHE_VERBOSE`: a boolean, or `json`.
pub fn parse_verbose(s: &str) -> Result<crate::serve::Summary, String> {
    use crate::serve::Summary;
    match s.trim().to_ascii_lowercase().as_str() {
        "json" => Ok(Summary::Json),
        "1" | "true" | "yes" | "on" | "y" => Ok(Summary::Human),
        "0" | "false" | "no" | "off" | "n" | "" => Ok(Summary::Off),
        _ => Err(format!(
            "{s:?} is not a summary setting; write true, false or json"
        )),
    }
}

/// Checks a tracing filter (`warn`, `debug`, `sgcache=debug,warn`, `off`).
pub fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{s:?} is not a log filter ({e}); write e.g. warn, debug or off"))
}

/// A zstd level, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression(pub Option<i32>);

/// Parses `off` or a zstd level 1-19.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    match s.trim() {
        "off" | "0" | "none" | "false" => Ok(Compression(None)),
        n => match n.parse::<i32>() {
            Ok(l) if (1..=19).contains(&l) => Ok(Compression(Some(l))),
            _ => Err(format!(
                "{s:?} is not a compression setting; write off or a zstd level 1-19"
            )),
        },
    }
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
