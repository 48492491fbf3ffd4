//! Resolving the parsed command line into the typed configuration the rest of the
//! program uses. This module and `cli.rs` are the only places that read the
//! environment (clippy's `disallowed-methods`, in `clippy.toml`, keeps it that way).
#![allow(clippy::disallowed_methods)] // this module is where the environment is read

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use sgcache_store::{ManifestName, Mode, PublicKey, RemoteConfig, SecretKey};

use crate::cli::{DaemonMode, GlobalArgs};
use crate::serve::Summary;

/// The typed, resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute local cache directory.
    pub dir: PathBuf,
    /// Local size cap in bytes.
    pub max_size: Option<u64>,
    /// Summary at the end of serving.
    pub verbose: Summary,
    /// The remote tier, if one is configured.
    pub remote: Option<RemoteConfig>,
    /// Prefetch from the build context's manifest.
    pub prefetch: bool,
    /// The build context's manifest name (of go commands run in the current directory).
    pub manifest: ManifestName,
    /// `SGCACHE_MANIFEST_KEY`, if set.
    pub manifest_key: Option<String>,
    /// Whether to use (or start) the shared daemon.
    pub daemon: DaemonMode,
    /// The daemon's idle timeout.
    pub daemon_idle: std::time::Duration,
    /// `$XDG_RUNTIME_DIR`, where daemon sockets live when set.
    pub runtime_dir: Option<PathBuf>,
    /// The configuration hash a daemon and its clients must agree on; `None` without a
    /// remote (nothing to share). See [`daemon_key`].
    pub daemon_key: Option<[u8; 32]>,
    /// Where the daemon serves Prometheus metrics (`SGCACHE_METRICS_ADDR`), if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Config {
    /// Resolves the configuration: flag > environment > default. Every error names the
    /// variable and what it accepts; the binary exits 2 on one, before serving anything.
    pub fn resolve(g: &GlobalArgs) -> Result<Config> {
        let dir = match &g.dir {
            // Like the go command with GOCACHE: a relative directory would make every
            // DiskPath relative to whatever directory each go command runs in.
            Some(d) if !d.is_absolute() => bail!(
                "SGCACHE_DIR `{}` is not an absolute path; the go command rejects a relative \
                 GOCACHE for the same reason",
                d.display()
            ),
            Some(d) => d.clone(),
            None => go_cache_dir()?,
        };
        if dir.to_str().is_none() {
            bail!(
                "cache directory `{}` is not valid UTF-8; the protocol cannot name files in it",
                dir.display()
            );
        }
        let signing_key = match g.signing_key.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(k) => Some(SecretKey::parse(k).context("SGCACHE_SIGNING_KEY")?),
        };
        let trusted_keys = match g.trusted_keys.as_deref() {
            None => Vec::new(),
            Some(k) => PublicKey::parse_list(k).context("SGCACHE_TRUSTED_KEYS")?,
        };
        let remote = g.remote.as_ref().filter(|u| !u.is_empty()).map(|url| {
            let mut r = RemoteConfig::new(url.clone());
            r.namespace = g.namespace.clone();
            r.read_namespaces = g
                .read_namespaces
                .iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            r.signing_key = signing_key.clone();
            r.trusted_keys = trusted_keys.clone();
            r.compression_level = g.compression.0;
            r.mode = if g.read_only {
                Mode::ReadOnly
            } else if g.write_only {
                Mode::WriteOnly
            } else {
                Mode::ReadWrite
            };
            r.first_byte_timeout = g.remote_timeout;
            r.connect_timeout = g.connect_timeout;
            r.max_object_size = g.max_object_size;
            r.breaker_cooldown = g.breaker_cooldown;
            r.upload_deadline = g.upload_deadline;
            r.upload_concurrency = usize::from(g.upload_concurrency);
            r.upload_queue = g.upload_queue as usize;
            r.breaker_threshold = g.breaker_threshold;
            r.packs = g.packs;
            // Azure's conventional variables, as OpenDAL configuration keys.
            for (var, key) in [
                ("AZURE_STORAGE_ACCOUNT", "account_name"),
                ("AZURE_STORAGE_KEY", "account_key"),
                ("AZURE_STORAGE_SAS_TOKEN", "sas_token"),
            ] {
                if let Ok(v) = std::env::var(var)
                    && !v.is_empty()
                    && url.starts_with("azblob:")
                {
                    r.extra.insert(key.to_owned(), v);
                }
            }
            r
        });
        let metrics_addr = match g.metrics_addr.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(parse_metrics_addr(a)?),
        };
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let daemon_key = remote
            .as_ref()
            .map(|r| daemon_key(&dir, r, &credentials_fingerprint()));
        Ok(Config {
            dir,
            max_size: g.max_size,
            verbose: g.verbose,
            remote,
            prefetch: g.prefetch,
            manifest: manifest_name(g.manifest_key.as_deref()),
            manifest_key: g.manifest_key.clone().filter(|k| !k.is_empty()),
            daemon: g.daemon,
            daemon_idle: g.daemon_idle,
            runtime_dir,
            daemon_key,
            metrics_addr,
        })
    }
}

/// Parses `SGCACHE_METRICS_ADDR`: a bare port binds loopback (`9184` → `127.0.0.1:9184`), as
/// does `localhost:PORT`; any other interface must be written out as an IP address and port
/// (`0.0.0.0:9184`, `[::]:9184`), so exposing the counters beyond this machine is never a
/// default. Host names other than `localhost` are refused (no DNS lookup at start).
pub fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, SocketAddr};
    let bad = || {
        anyhow::anyhow!(
            "SGCACHE_METRICS_ADDR {s:?} is not an address to serve metrics on; write a port \
             (9184: loopback), localhost:PORT, or an IP address and port (0.0.0.0:9184 to \
             serve every interface)"
        )
    };
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port = port.parse::<u16>().map_err(|_| bad())?;
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse::<SocketAddr>().map_err(|_| bad())
}

/// The configuration hash of the shared daemon: everything that changes what is served or
/// who it is served as. The local directory (canonical), the remote URL and its extra keys,
/// namespaces, the signing key (hashed: the key itself never leaves this process), the
/// mode, compression, the credentials the backends read from the environment (hashed), and
/// the sgcache version. Timeouts and queue sizes are the daemon's own.
pub fn daemon_key(dir: &std::path::Path, r: &RemoteConfig, credentials: &[u8; 32]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let field = |h: &mut sha2::Sha256, k: &str, v: &[u8]| {
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
    };
    field(
        &mut h,
        "sgcache-daemon",
        env!("CARGO_PKG_VERSION").as_bytes(),
    );
    field(&mut h, "dir", dir.as_os_str().as_encoded_bytes());
    field(&mut h, "url", r.url.as_bytes());
    for (k, v) in &r.extra {
        field(&mut h, "extra", format!("{k}={v}").as_bytes());
    }
    field(&mut h, "ns", r.namespace.as_bytes());
    for ns in &r.read_namespaces {
        field(&mut h, "read-ns", ns.as_bytes());
    }
    // Keys by their public half only: the secret never leaves this process.
    if let Some(k) = &r.signing_key {
        field(&mut h, "signing-key", k.public().to_text().as_bytes());
    }
    for k in &r.trusted_keys {
        field(&mut h, "trusted-key", k.to_text().as_bytes());
    }
    field(&mut h, "mode", format!("{:?}", r.mode).as_bytes());
    field(&mut h, "packs", &[u8::from(r.packs)]);
    field(
        &mut h,
        "compression",
        format!("{:?}", r.compression_level).as_bytes(),
    );
    field(&mut h, "credentials", credentials);
    h.finalize().into()
}

/// A hash of the credential variables the remote backends read from the environment, so
/// two users of one machine account with different credentials never share a daemon.
fn credentials_fingerprint() -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "ACTIONS_CACHE_URL",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_RESULTS_URL",
    ] {
        let v = std::env::var_os(var).unwrap_or_default();
        h.update(var.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_encoded_bytes());
    }
    h.finalize().into()
}

/// The variables that, with the working directory, name a build context.
///
/// The go command sets each of them in its own environment before it starts anything
/// (`cmd/go/main.go`, `invoke`: "Set environment (GOOS, GOARCH, etc) explicitly", from
/// `envcmd.MkEnv`), so a GOCACHEPROG child sees the values `go env` prints even when the
/// user's shell sets none. A command run from that shell (`sgcache prefetch`) must ask
/// `go env` for them: see [`go_env_context`].
pub const CONTEXT_VARS: [&str; 5] = ["GOOS", "GOARCH", "GOFLAGS", "CGO_ENABLED", "GOEXPERIMENT"];

/// The manifest name of the build context of go commands run in the current directory, as
/// the go command's GOCACHEPROG child sees it: `SGCACHE_MANIFEST_KEY`, else the directory
/// and [`CONTEXT_VARS`] from this process's environment (set by the go command). The go
/// version need not be part of it: it salts every action id, so another version's manifest
/// only yields misses.
fn manifest_name(key: Option<&str>) -> ManifestName {
    let cwd = std::env::current_dir().unwrap_or_default();
    manifest_name_in(key, &cwd, &|var| std::env::var(var).unwrap_or_default())
}

/// The manifest name of go commands run in `dir` (`dir` as the operating system reports a
/// working directory: absolute, symbolic links resolved) whose [`CONTEXT_VARS`] have the
/// values `var` gives; `SGCACHE_MANIFEST_KEY`, when set, names one context whatever the
/// directory.
fn manifest_name_in(
    key: Option<&str>,
    dir: &std::path::Path,
    var: &dyn Fn(&str) -> String,
) -> ManifestName {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    match key.filter(|k| !k.is_empty()) {
        Some(k) => h.update(format!("key={k}")),
        None => {
            h.update(format!("cwd={}\0", dir.display()));
            for name in CONTEXT_VARS {
                h.update(format!("{name}={}\0", var(name)));
            }
        }
    }
    ManifestName(h.finalize().into())
}

/// The manifest name of go commands run in `dir` (absolute, links resolved) with this
/// environment, for a command run from the user's shell rather than by the go command:
/// [`CONTEXT_VARS`] from [`go_env_context`]. Without a usable go command, this environment's
/// values are used, with a warning on stderr: a context named from them may not be the
/// build's.
pub fn manifest_name_of_dir(dir: &std::path::Path) -> ManifestName {
    match go_env_context(dir) {
        Ok(vars) => manifest_name_in(None, dir, &|v| vars.get(v).cloned().unwrap_or_default()),
        Err(e) => {
            tracing::warn!(
                "{e:#}; naming the build context of `{}` from this environment",
                dir.display()
            );
            manifest_name_in(None, dir, &|v| std::env::var(v).unwrap_or_default())
        }
    }
}

/// [`CONTEXT_VARS`] as a go command run in `dir` with this environment sets them: `go env
/// -json` run there (so the go env file, the module's toolchain and the computed defaults,
/// such as `CGO_ENABLED`, count as they do for the build).
///
/// Errors: the go command could not be run, failed (its stderr is in the error), or printed
/// something other than a JSON object of strings.
fn go_env_context(dir: &std::path::Path) -> Result<std::collections::HashMap<String, String>> {
    let out = std::process::Command::new("go")
        .arg("env")
        .arg("-json")
        .args(CONTEXT_VARS)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running `go env`")?;
    if !out.status.success() {
        anyhow::bail!(
            "`go env` in `{}` failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading `go env -json`")
}

/// The directory the go command itself uses, found the way `cmd/go` finds it:
/// `GOCACHE` from the environment, then from the go env file (`go env -w`), then the
/// user cache directory.
pub fn go_cache_dir() -> Result<PathBuf> {
    let env_file = go_env_file();
    let lookup = |key: &str| -> Option<String> {
        let v = std::env::var(key).ok().filter(|v| !v.is_empty());
        v.or_else(|| {
            if key == "GOCACHE" {
                env_file.as_deref().and_then(|f| go_env_lookup(f, key))
            } else {
                None
            }
        })
    };
    sgcache_disk::default_dir(&lookup)
        .map_err(|e| anyhow::anyhow!("{e}; set SGCACHE_DIR or GOCACHE to an absolute directory"))
}

/// The contents of the go command's env file (`$GOENV`, else
/// `<UserConfigDir>/go/env`), if there is one.
fn go_env_file() -> Option<String> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let path = match var("GOENV") {
        Some(p) if p == "off" => return None,
        Some(p) => PathBuf::from(p),
        None => {
            let base = if cfg!(target_os = "macos") {
                PathBuf::from(var("HOME")?).join("Library/Application Support")
            } else if cfg!(windows) {
                PathBuf::from(var("AppData")?)
            } else {
                match var("XDG_CONFIG_HOME") {
                    Some(x) => PathBuf::from(x),
                    None => PathBuf::from(var("HOME")?).join(".config"),
                }
            };
            base.join("go").join("env")
        }
    };
    std::fs::read_to_string(path).ok()
}

/// The go command's `GODEBUG` as this process inherited it. `sgcache explain` adds its own
/// settings for the child go command and must know the user's value: a plain run hashes it
/// into every test result's key.
pub fn inherited_godebug() -> Option<std::ffi::OsString> {
    std::env::var_os("GODEBUG")
}

/// `KEY=value` lookup in a go env file (last assignment wins, like cmd/go).
fn go_env_lookup(contents: &str, key: &str) -> Option<String> {
    contents
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
        .next_back()
        .filter(|v| !v.is_empty())
}

/// The configuration reference as a markdown table, generated from the clap
/// declaration in `cli.rs` (so `docs/configuration.md` cannot drift: a test compares).
pub fn config_table() -> String {
    use clap::CommandFactory;
    let cmd = crate::cli::Cli::command();
    let mut out = String::from("| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n");
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let flag = arg
            .get_long()
            .map(|l| format!("`--{l}`"))
            .unwrap_or_default();
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let default = if default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{default}`")
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string().replace('\n', " "))
            .unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {flag} | {default} | {help} |\n",
            env.to_string_lossy()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_addr_is_loopback_unless_written_out() {
        let p = |s: &str| parse_metrics_addr(s).map(|a| a.to_string());
        assert_eq!(p("9184").unwrap(), "127.0.0.1:9184");
        assert_eq!(p("localhost:9184").unwrap(), "127.0.0.1:9184");
        assert_eq!(p("[::1]:9184").unwrap(), "[::1]:9184");
        assert_eq!(p("0.0.0.0:9184").unwrap(), "0.0.0.0:9184");
        for bad in [
            "",
            "nonsense",
            "99999",
            "example.com:80",
            "localhost:x",
            "1.2.3.4",
        ] {
            let e = p(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("SGCACHE_METRICS_ADDR") && !e.contains('\n'),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn go_env_file_lookup() {
        let f = "GOFLAGS=-mod=mod\nGOCACHE=/a\nGOCACHE=/b\n";
        assert_eq!(go_env_lookup(f, "GOCACHE").as_deref(), Some("/b"));
        assert_eq!(go_env_lookup(f, "GOPATH"), None);
        assert_eq!(go_env_lookup("GOCACHE=\n", "GOCACHE"), None);
    }

    #[test]
    fn docs_configuration_table_is_current() {
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let text = std::fs::read_to_string(docs).expect("docs/configuration.md exists");
        let table = config_table();
        assert!(
            text.contains(&table),
            "docs/configuration.md is out of date; regenerate the table with \
             `bash scripts/config-table.sh`:\n{table}"
        );
    }
}
