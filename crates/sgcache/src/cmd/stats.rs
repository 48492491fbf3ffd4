//! `sgcache stats`: what is in the local cache, and this machine's counters.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use sgcache_disk::{DiskCache, ScanKind};

use crate::cli::StatsArgs;
use crate::config::Config;

/// Prints the statistics.
pub fn run(cfg: &Config, args: &StatsArgs) -> Result<ExitCode> {
    let disk =
        DiskCache::open(&cfg.dir).with_context(|| format!("opening `{}`", cfg.dir.display()))?;
    // Kind by output: reading a few header bytes per file is cheap next to the scan.
    let mut kinds: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let summary = disk.scan(|item| {
        let kind = match item.kind {
            ScanKind::Executable => "executable",
            ScanKind::Output => classify_file(&item.path, item.size),
            _ => return,
        };
        let e = kinds.entry(kind).or_default();
        e.0 += 1;
        e.1 += item.size;
    })?;
    let counters = sgcache_disk::read_counters(&cfg.dir).unwrap_or_default();
    let outage = cfg.remote.as_ref().and_then(|r| {
        sgcache_tier::local_state::read_outage(&sgcache_tier::local_state::outage_path(
            &sgcache_disk::layout::state_dir(&cfg.dir),
            r,
        ))
    });
    let time = |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339_seconds(t).to_string());
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "dir": cfg.dir,
            "actions": summary.actions,
            "outputs": summary.outputs,
            "executables": summary.executables,
            "temp_files": summary.temp_files,
            "bytes": summary.total_bytes,
            "output_bytes": summary.output_bytes,
            "oldest": time(summary.oldest),
            "newest": time(summary.newest),
            "kinds": kinds.iter().map(|(k, (n, b))| (k.to_string(), serde_json::json!({"count": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "counters": counters,
            "remote_outage": outage,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
    writeln!(out, "local cache  {}", cfg.dir.display())?;
    writeln!(
        out,
        "entries      {} index entries, {} outputs, {} executables",
        summary.actions, summary.outputs, summary.executables
    )?;
    writeln!(out, "size         {}", size(summary.total_bytes))?;
    if let (Some(o), Some(n)) = (time(summary.oldest), time(summary.newest)) {
        writeln!(out, "last used    oldest {o}, newest {n}")?;
    }
    for (k, (n, b)) in &kinds {
        writeln!(out, "  {k:<22} {n:>8}  {}", size(*b))?;
    }
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    writeln!(
        out,
        "this machine gets {} (hits {}, {:.1}%, {} of them from the remote; misses {}), puts {} ({}), served {}",
        counters.gets,
        counters.hits,
        pct(counters.hits, counters.gets),
        counters.hits_remote,
        counters.misses,
        counters.puts,
        size(counters.put_bytes),
        size(counters.hit_bytes),
    )?;
    for f in counters.nonzero() {
        if !matches!(
            f.name,
            "gets" | "hits" | "hits_remote" | "misses" | "puts" | "put_bytes" | "hit_bytes"
        ) {
            writeln!(out, "  {:<28} {:>12}", f.name, f.value)?;
        }
    }
    if let Some(o) = &outage {
        let until =
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(o.until_unix_ns.max(0) as u64);
        let state = if o.active(std::time::SystemTime::now()) {
            "down"
        } else {
            "was down (the next request probes it)"
        };
        writeln!(
            out,
            "remote       {} {state} since {}, until {} ({})",
            o.remote,
            o.since(),
            humantime::format_rfc3339_seconds(until),
            o.reason
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What an output is, from its first bytes (the same classification `inspect` uses).
fn classify_file(path: &std::path::Path, size: u64) -> &'static str {
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    sgcache_buildid::classify(&head[..n], size).label()
}
