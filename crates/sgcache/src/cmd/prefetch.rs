//! `sgcache prefetch [--wait] [DIR…]`: warm the local tier before the go command asks.
//!
//! Which build context: the one go commands run in `DIR` (default: here) with this
//! environment will use — the same rule as serving (`SGCACHE_MANIFEST_KEY`, else the directory
//! and `GOOS`, `GOARCH`, `GOFLAGS`, `CGO_ENABLED`, `GOEXPERIMENT` as `go env` in that directory
//! gives them, which is what the go command sets for its GOCACHEPROG child; see
//! `config::CONTEXT_VARS`). The work runs in the shared daemon of this configuration
//! (started if none runs), so the command returns at once and go commands that start
//! meanwhile join its downloads; `--wait` returns when it is done. With `SGCACHE_DAEMON=off`
//! it works in this process and always waits. A missing manifest or a remote that is down is
//! not an error: there is simply nothing to fetch.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sgcache_store::{ManifestName, RemoteCache};
use sgcache_tier::{Fetcher, Session};
use sgcache_types::Metrics;

use crate::cli::{DaemonMode, PrefetchArgs};
use crate::config::{Config, manifest_name_of_dir};

/// Runs the command.
pub fn run(cfg: &Config, args: &PrefetchArgs) -> Result<ExitCode> {
    if cfg.remote.is_none() {
        bail!("no remote configured (SGCACHE_REMOTE): there is nothing to prefetch from");
    }
    let names = contexts(cfg, &args.dirs)?;
    let t0 = Instant::now();
    let mut out = std::io::stdout().lock();
    if cfg.daemon != DaemonMode::Off {
        let mut auto = cfg.clone();
        auto.daemon = DaemonMode::Auto;
        match crate::daemon::prefetch(&auto, &names, args.wait) {
            Ok(p) if args.wait => {
                writeln!(
                    out,
                    "prefetch: {} context(s) warm in {} ms by daemon pid {}: {} records, {} outputs fetched",
                    p.contexts,
                    t0.elapsed().as_millis(),
                    p.pid,
                    p.records,
                    p.outputs
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            Ok(p) => {
                writeln!(
                    out,
                    "prefetch: {} context(s) warming in daemon pid {}",
                    p.contexts, p.pid
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => tracing::info!("prefetch: no daemon ({e:#}); working in-process"),
        }
    }
    let (records, outputs) = in_process(cfg, &names)?;
    writeln!(
        out,
        "prefetch: {} context(s) warm in {} ms in-process: {records} records, {outputs} outputs fetched",
        names.len(),
        t0.elapsed().as_millis()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The build contexts of `dirs` (default: the current directory's), as go commands run there
/// name them: the variables that name a context come from `go env` in each directory, since
/// the go command sets them for its GOCACHEPROG child even when this shell does not (see
/// `config::CONTEXT_VARS`).
fn contexts(cfg: &Config, dirs: &[PathBuf]) -> Result<Vec<ManifestName>> {
    if cfg.manifest_key.is_some() {
        return Ok(vec![cfg.manifest]);
    }
    let here = [PathBuf::from(".")];
    let dirs = if dirs.is_empty() { &here[..] } else { dirs };
    let mut names = Vec::new();
    for d in dirs {
        // As the go command's working directory is reported: absolute, links resolved.
        let dir = std::fs::canonicalize(d)
            .with_context(|| format!("prefetch directory `{}`", d.display()))?;
        let name = manifest_name_of_dir(&dir);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Prefetches in this process and waits; returns records loaded and outputs fetched.
fn in_process(cfg: &Config, names: &[ManifestName]) -> Result<(u64, u64)> {
    let rc = cfg.remote.clone().expect("checked by the caller");
    let metrics = Arc::new(Metrics::default());
    let remote = RemoteCache::new(rc, metrics.clone()).context("configuring the remote")?;
    let disk = Arc::new(
        sgcache_disk::DiskCache::open(&cfg.dir)
            .with_context(|| format!("opening the local cache `{}`", cfg.dir.display()))?,
    );
    let rt = sgcache_tier::runtime("sgcache-prefetch").context("starting the runtime")?;
    let fetcher = Fetcher::new(remote, disk);
    rt.block_on(async {
        let sessions: Vec<Arc<Session>> = names
            .iter()
            .map(|n| {
                let s = Session::new(fetcher.clone(), *n);
                s.start_prefetch(rt.handle(), true);
                s
            })
            .collect();
        for s in &sessions {
            s.prefetch_finished().await;
        }
    });
    let m = metrics.snapshot();
    if let Err(e) = sgcache_disk::add_counters(&cfg.dir, &m) {
        tracing::debug!("saving stats: {e}");
    }
    Ok((
        m.prefetch_manifest_records,
        m.prefetch_pack_objects + m.prefetch_found,
    ))
}
