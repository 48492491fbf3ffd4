//! `sgcache trim`, `sgcache verify`, `sgcache clean`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sgcache_disk::{DiskCache, TrimOptions};

use crate::cli::{TrimArgs, VerifyArgs};
use crate::config::Config;

fn open(cfg: &Config) -> Result<DiskCache> {
    DiskCache::open(&cfg.dir).with_context(|| format!("opening `{}`", cfg.dir.display()))
}

/// Trims now: the age rule, then the size cap.
pub fn trim(cfg: &Config, args: &TrimArgs) -> Result<ExitCode> {
    let disk = open(cfg)?;
    let report = disk.trim(&TrimOptions {
        max_age: args.max_age,
        max_size: cfg.max_size,
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "trimmed `{}`: removed {} entries, {}",
        cfg.dir.display(),
        report.removed_entries,
        bytesize::ByteSize(report.removed_bytes).display().iec()
    )?;
    if let Some(e) = &report.stamp_error {
        anyhow::bail!("could not record the trim in trim.txt: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Rehashes everything; exit 1 when something is corrupt (and not repaired).
pub fn verify(cfg: &Config, args: &VerifyArgs) -> Result<ExitCode> {
    let disk = open(cfg)?;
    let report = disk.verify_with_grace(args.repair, args.grace)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "kind": format!("{:?}", p.kind),
                    "path": p.path,
                    "detail": p.detail,
                    "removed": p.removed,
                })
            })
            .collect();
        let v = serde_json::json!({
            "dir": cfg.dir,
            "actions_checked": report.actions_checked,
            "outputs_checked": report.outputs_checked,
            "executables_checked": report.executables_checked,
            "bytes_hashed": report.bytes_hashed,
            "dangling_actions": report.dangling_actions,
            "skipped_recent": report.skipped_recent,
            "empty_actions": report.empty_actions,
            "problems": problems,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for p in &report.problems {
            let fate = if p.removed { " (removed)" } else { "" };
            writeln!(out, "{:?}: {}{fate}", p.kind, p.detail)?;
        }
        writeln!(
            out,
            "verified `{}`: {} index entries, {} outputs, {} executables, {} hashed; \
             {} problems, {} entries without output and {} empty entries (normal misses), \
             {} skipped as in use",
            cfg.dir.display(),
            report.actions_checked,
            report.outputs_checked,
            report.executables_checked,
            bytesize::ByteSize(report.bytes_hashed).display().iec(),
            report.problems.len(),
            report.dangling_actions,
            report.empty_actions,
            report.skipped_recent,
        )?;
    }
    let unrepaired = report.problems.iter().any(|p| !p.removed);
    Ok(if unrepaired {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Removes every entry, like `go clean -cache`.
pub fn clean(cfg: &Config) -> Result<ExitCode> {
    let disk = open(cfg)?;
    disk.clean()?;
    writeln!(std::io::stdout().lock(), "cleaned `{}`", cfg.dir.display())?;
    Ok(ExitCode::SUCCESS)
}
