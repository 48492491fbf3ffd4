//! `sgcache doctor`: is this setup going to work?

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::Config;

/// Prints the resolved configuration (secrets masked), the go command's view, and the
/// results of a local write probe and a remote put/get/delete probe. Exit 1 if a check fails.
pub fn run(cfg: &Config) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut ok = true;
    writeln!(out, "configuration")?;
    writeln!(out, "  local dir          {}", cfg.dir.display())?;
    let cap = cfg
        .max_size
        .map(|b| bytesize::ByteSize(b).display().iec().to_string())
        .unwrap_or_else(|| "none (Go's 5-day age rule)".into());
    writeln!(out, "  max size           {cap}")?;
    match &cfg.remote {
        None => writeln!(out, "  remote             none")?,
        Some(r) => {
            writeln!(
                out,
                "  remote             {}",
                sgcache_store::mask_url(&r.url)
            )?;
            writeln!(out, "  mode               {:?}", r.mode)?;
            writeln!(out, "  namespace          {}", r.namespace)?;
            writeln!(out, "  read namespaces    {}", r.read_namespaces.join(", "))?;
            let key = match &r.signing_key {
                Some(k) => format!("set (hidden), public key {}", k.public().to_text()),
                None => "not set".into(),
            };
            writeln!(out, "  signing key        {key}")?;
            let trusted: Vec<String> = r.trusted_keys.iter().map(|k| k.to_text()).collect();
            writeln!(
                out,
                "  trusted keys       {}",
                if trusted.is_empty() {
                    "none".into()
                } else {
                    trusted.join(", ")
                }
            )?;
            let z = r
                .compression_level
                .map_or("off".to_string(), |l| format!("zstd level {l}"));
            writeln!(out, "  compression        {z}")?;
            writeln!(
                out,
                "  timeouts           connect {:?}, first byte {:?}, stall {:?}, upload deadline {:?}",
                r.connect_timeout, r.first_byte_timeout, r.stall_timeout, r.upload_deadline
            )?;
        }
    }
    if let Some(r) = &cfg.remote {
        let trust =
            sgcache_store::Trust::new(&r.trusted_keys, r.signing_key.as_ref(), &r.namespace);
        if trust.trusts_anything() {
            writeln!(
                out,
                "  warning            no trusted keys: this job uses whatever any writer of the store \
                 put there; set SGCACHE_TRUSTED_KEYS (see `sgcache keygen` and docs/remote.md#trust)"
            )?;
        }
    }

    writeln!(out, "go command")?;
    match std::process::Command::new("go")
        .args(["env", "GOVERSION", "GOCACHE", "GOCACHEPROG"])
        .output()
    {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut lines = text.lines();
            let (v, c, p) = (
                lines.next().unwrap_or(""),
                lines.next().unwrap_or(""),
                lines.next().unwrap_or(""),
            );
            writeln!(out, "  version            {v}")?;
            writeln!(out, "  GOCACHE            {c}")?;
            let p = if p.is_empty() {
                "(not set: run `go env -w GOCACHEPROG=sgcache`)"
            } else {
                p
            };
            writeln!(out, "  GOCACHEPROG        {p}")?;
            if !c.is_empty() && std::path::Path::new(c) != cfg.dir {
                writeln!(
                    out,
                    "  note               sgcache's local dir differs from GOCACHE; \
                     `go clean -cache` will not clean it"
                )?;
            }
        }
        _ => writeln!(out, "  go                 not found on PATH")?,
    }

    writeln!(out, "checks")?;
    match local_probe(cfg) {
        Ok(()) => writeln!(out, "  local dir          ok (writable)")?,
        Err(e) => {
            ok = false;
            writeln!(out, "  local dir          FAILED: {e:#}")?;
        }
    }
    if let Some(rc) = &cfg.remote {
        let metrics = std::sync::Arc::new(sgcache_types::Metrics::default());
        let result = sgcache_store::RemoteCache::new(rc.clone(), metrics)
            .map_err(anyhow::Error::from)
            .and_then(|remote| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok(rt.block_on(remote.probe())?)
            });
        let outage_file =
            sgcache_tier::local_state::outage_path(&sgcache_disk::layout::state_dir(&cfg.dir), rc);
        if let Some(o) = sgcache_tier::local_state::read_outage(&outage_file) {
            writeln!(
                out,
                "  recorded outage    since {} ({}); go commands skip the remote until it ends",
                o.since(),
                o.reason
            )?;
        }
        match result {
            Ok(msg) => {
                writeln!(out, "  remote             ok ({msg})")?;
                if std::fs::remove_file(&outage_file).is_ok() {
                    writeln!(out, "  recorded outage    cleared: the remote answers")?;
                }
            }
            Err(e) => {
                ok = false;
                writeln!(out, "  remote             FAILED: {e:#}")?;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn local_probe(cfg: &Config) -> Result<()> {
    let disk = sgcache_disk::DiskCache::open(&cfg.dir)?;
    let data = b"sgcache doctor probe";
    let out = sgcache_disk::OutputId::from(sgcache_disk::sha256(data));
    let mut pending = disk.begin_put(&out, data.len() as u64)?;
    pending.write_all(data)?;
    drop(pending); // aborted: the probe leaves nothing behind
    Ok(())
}
