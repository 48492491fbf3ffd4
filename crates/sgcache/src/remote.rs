//! Where a serving sgcache does its remote work: nowhere (no remote), through the shared
//! daemon, or in this process. The choice is made once, at start; the serve loop only sees
//! the [`RemoteWork`] it gets.

use std::sync::Arc;

use sgcache_disk::DiskCache;
use sgcache_store::RemoteCache;
use sgcache_tier::{
    Deferred, InProcess, Lazy, LocalOnly, RemoteWork, TierConfig, nothing_to_store,
};
use sgcache_types::{IndexEntry, Metrics};

use crate::config::Config;
use crate::daemon::DaemonClient;

/// The remote work for one serving run: the daemon's when one answers for this
/// configuration, else in-process, else (no remote, or one that cannot be set up: said
/// once) local only. With a remote, the daemon is tried on a thread of its own ([`Deferred`])
/// while the go command gets its handshake and its first local hits; in-process work is
/// created only when the run first needs it ([`Lazy`]).
pub fn remote_work(
    cfg: &Config,
    disk: Arc<DiskCache>,
    metrics: &Arc<Metrics>,
) -> Box<dyn RemoteWork> {
    if cfg.remote.is_none() {
        return Box::new(LocalOnly);
    }
    let (cfg, metrics) = (cfg.clone(), metrics.clone());
    Box::new(Deferred::start(move || set_up(&cfg, disk, &metrics)))
}

/// [`remote_work`]'s choice, made on its setup thread. In-process work is [`Lazy`]: created
/// on the run's first local miss or put, so a fully warm go command never pays for a
/// runtime, a TLS client or a manifest load.
fn set_up(cfg: &Config, disk: Arc<DiskCache>, metrics: &Arc<Metrics>) -> Box<dyn RemoteWork> {
    if let Some(d) = DaemonClient::connect(cfg, disk.clone(), metrics.clone()) {
        return Box::new(d);
    }
    // A run that only hit locally stores no manifest when this machine's recent copy already
    // lists what it used (what the session would conclude after loading that copy).
    let settled = {
        let (dir, remote, name) = (disk.dir().to_path_buf(), cfg.remote.clone(), cfg.manifest);
        move |used: &[IndexEntry]| {
            remote
                .as_ref()
                .is_none_or(|rc| nothing_to_store(&dir, rc, &name, used))
        }
    };
    let (cfg, metrics) = (cfg.clone(), metrics.clone());
    Box::new(Lazy::new(
        "in-process",
        move || match in_process(&cfg, disk, &metrics) {
            Some(t) => Box::new(t) as Box<dyn RemoteWork>,
            None => Box::new(LocalOnly),
        },
        settled,
    ))
}

/// The in-process remote work for `cfg`, or `None` without a remote or when the remote
/// cannot be set up (said once; the build then runs on the local tier alone).
pub fn in_process(cfg: &Config, disk: Arc<DiskCache>, metrics: &Arc<Metrics>) -> Option<InProcess> {
    let rc = cfg.remote.as_ref()?;
    let remote = match RemoteCache::new(rc.clone(), metrics.clone()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("remote disabled: {e}");
            return None;
        }
    };
    let tier = TierConfig {
        manifest: Some(cfg.manifest),
        prefetch: cfg.prefetch,
    };
    match InProcess::start(remote, disk, tier) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("remote disabled: starting its runtime: {e}");
            None
        }
    }
}
