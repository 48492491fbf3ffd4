//! The daemon process: `sgcache daemon`.
//!
//! One tokio runtime (two workers: the work is I/O and the builds need the cores) runs the
//! listener, one task per connection, the lookups (one [`Fetcher`] for every client, so two
//! go commands asking for the same action share one lookup and one download), per-context
//! prefetch, manifest writes and the upload queue.
//!
//! Lifetime: the daemon holds the `.lock` of its configuration from before it binds the
//! socket until it exits. It exits when it has had no client for `SGCACHE_DAEMON_IDLE`, its
//! upload queue is empty and no manifest write is running, or on `sgcache daemon --stop`;
//! it removes its socket first (so new clients fall back or start a new daemon), then
//! drains what is left (up to `SGCACHE_UPLOAD_DEADLINE`) and adds its counters to the stats
//! file. Killed with -9, it leaves a socket that nobody accepts on: clients get
//! `ECONNREFUSED` and serve in-process, and the next daemon (which can take the lock the
//! kernel released) replaces it.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use sgcache_disk::{DiskCache, Id};
use sgcache_store::{Manifest, Remote};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{Notify, mpsc};

use super::Error;
use super::socket::{self, LifetimeLock};
use super::wire::{ClientMsg, DaemonMsg, DaemonStatus, WIRE_VERSION, line, parse_id};
use crate::cli::DaemonArgs;
use crate::config::Config;
use crate::tier::{Fetcher, PrefetchCounts, Used, merge_manifest, note, store_manifest};

/// A client that has connected must say hello within this.
const HELLO_WAIT: Duration = Duration::from_secs(5);

/// Per build context (manifest name): what prefetch loaded, and prefetch itself.
#[derive(Debug, Default)]
struct Context {
    previous: Arc<Mutex<Manifest>>,
    loaded: AtomicBool,
    prefetch: Mutex<Option<tokio::task::JoinHandle<()>>>,
    counts: Arc<PrefetchCounts>,
    /// Serializes manifest writes of one context, so each merges with the last.
    write: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Daemon {
    key: [u8; 32],
    fetcher: Fetcher,
    started: Instant,
    idle: Duration,
    clients_now: AtomicU64,
    clients_total: AtomicU64,
    lookups: AtomicU64,
    found: AtomicU64,
    uploads_queued: AtomicU64,
    uploads_refused: AtomicU64,
    manifests_stored: AtomicU64,
    manifest_writes: AtomicU64,
    last_client: Mutex<Instant>,
    contexts: Mutex<HashMap<Id, Arc<Context>>>,
    stop: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `sgcache daemon`: serves until idle or stopped. Exits 0 at once when another daemon
/// already serves this configuration.
pub fn run(cfg: &Config, args: &DaemonArgs) -> Result<ExitCode> {
    if args.status || args.stop {
        return status(cfg, args.stop);
    }
    let key = cfg.daemon_key.ok_or(Error::NoRemote)?;
    let rc = cfg.remote.clone().ok_or(Error::NoRemote)?;
    let ep = socket::endpoint(cfg.runtime_dir.as_deref(), &key)?;
    let Some(_lock) = LifetimeLock::try_take(&ep.lock)? else {
        tracing::info!(
            "a daemon already serves this configuration ({})",
            ep.sock.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    // We hold the lock: any socket there is a dead daemon's.
    match std::fs::remove_file(&ep.sock) {
        Ok(()) => tracing::info!("removed the stale socket `{}`", ep.sock.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                op: "removing the stale socket",
                path: ep.sock.clone(),
                source,
            }
            .into());
        }
    }
    let disk = DiskCache::open(&cfg.dir)
        .with_context(|| format!("opening the local cache `{}`", cfg.dir.display()))?;
    let disk = Arc::new(disk);
    let remote = Remote::new(rc).context("configuring the remote")?;
    let rt = crate::tier::runtime("sgcache-daemon").context("starting the runtime")?;
    let d = Arc::new(Daemon {
        key,
        fetcher: Fetcher::new(remote, disk.clone()),
        started: Instant::now(),
        idle: cfg.daemon_idle,
        clients_now: AtomicU64::new(0),
        clients_total: AtomicU64::new(0),
        lookups: AtomicU64::new(0),
        found: AtomicU64::new(0),
        uploads_queued: AtomicU64::new(0),
        uploads_refused: AtomicU64::new(0),
        manifests_stored: AtomicU64::new(0),
        manifest_writes: AtomicU64::new(0),
        last_client: Mutex::new(Instant::now()),
        contexts: Mutex::new(HashMap::new()),
        stop: Notify::new(),
    });
    let sock = ep.sock.clone();
    rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(&sock).map_err(|source| Error::Io {
            op: "binding",
            path: sock.clone(),
            source,
        })?;
        tracing::info!(
            "daemon pid {} serving `{}` for {}",
            std::process::id(),
            sock.display(),
            d.fetcher.remote().describe()
        );
        let tick = (d.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        // SIGTERM (systemd, a CI runner's clean-up) and SIGINT (a terminal) stop it like
        // `--stop`: what is queued is still delivered.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|source| Error::Io {
            op: "handling SIGTERM for",
            path: sock.clone(),
            source,
        })?;
        let mut int = signal(SignalKind::interrupt()).map_err(|source| Error::Io {
            op: "handling SIGINT for",
            path: sock.clone(),
            source,
        })?;
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => {
                        let d = d.clone();
                        tokio::spawn(async move { d.serve_conn(s).await });
                    }
                    Err(e) => tracing::warn!("accepting a client: {e}"),
                },
                _ = ticker.tick() => if d.is_idle() { break },
                _ = d.stop.notified() => break,
                _ = term.recv() => {
                    tracing::info!("SIGTERM: draining, then exiting");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: draining, then exiting");
                    break;
                }
            }
        }
        // New clients go elsewhere from here on; what was queued is still delivered.
        drop(listener);
        let _ = std::fs::remove_file(&sock);
        let deadline = Instant::now() + d.fetcher.remote().config().upload_deadline;
        while d.manifest_writes.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = d.fetcher.remote().drain().await;
        tracing::info!("daemon exiting: {report:?}");
        anyhow::Ok(())
    })?;
    let mut counters = sgcache_disk::Counters::default();
    for (name, n) in d.fetcher.remote().counters() {
        counters.add_extra(name, n);
    }
    counters.add_extra("daemon_clients", d.clients_total.load(Ordering::Relaxed));
    if let Err(e) = sgcache_disk::add_counters(disk.dir(), &counters) {
        tracing::debug!("saving stats: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `sgcache daemon --status` / `--stop`: asks the running daemon. Exit 1 if none answers.
pub fn status(cfg: &Config, stop: bool) -> Result<ExitCode> {
    use std::io::{BufRead, Write};
    let key = cfg.daemon_key.ok_or(Error::NoRemote)?;
    let ep = socket::endpoint(cfg.runtime_dir.as_deref(), &key)?;
    let not_running = |reason: String| Error::NotRunning {
        path: ep.sock.clone(),
        reason,
    };
    let s = std::os::unix::net::UnixStream::connect(&ep.sock)
        .map_err(|e| not_running(e.to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut w = s.try_clone()?;
    w.write_all(&line(&ClientMsg::Hello {
        version: WIRE_VERSION,
        config: hex::encode(key),
        manifest: None,
        prefetch: false,
        pid: std::process::id(),
    }))?;
    w.write_all(&line(if stop {
        &ClientMsg::Stop
    } else {
        &ClientMsg::Status
    }))?;
    let mut r = std::io::BufReader::new(s);
    let mut out = std::io::stdout();
    for _ in 0..2 {
        let mut l = String::new();
        if r.read_line(&mut l)
            .map_err(|e| not_running(e.to_string()))?
            == 0
        {
            return Err(not_running("it closed the connection".into()).into());
        }
        match serde_json::from_str::<DaemonMsg>(&l) {
            Ok(DaemonMsg::Welcome { .. }) => {}
            Ok(DaemonMsg::Status { status }) => {
                out.write_all(serde_json::to_string_pretty(&status)?.as_bytes())?;
                out.write_all(b"\n")?;
                return Ok(ExitCode::SUCCESS);
            }
            Ok(DaemonMsg::Stopping) => {
                out.write_all(b"stopping\n")?;
                out.flush()?;
                // The daemon drains its upload queue before it exits, and holds its lifetime
                // lock until then: wait for the lock, so a CI job that ends with `--stop` ends
                // after its uploads (bounded by the upload deadline, plus slack).
                let bound = cfg
                    .remote
                    .as_ref()
                    .map_or(Duration::ZERO, |r| r.upload_deadline)
                    + Duration::from_secs(10);
                let t0 = Instant::now();
                loop {
                    if socket::LifetimeLock::try_take(&ep.lock)?.is_some() {
                        out.write_all(b"stopped\n")?;
                        return Ok(ExitCode::SUCCESS);
                    }
                    if t0.elapsed() > bound {
                        out.write_all(b"still draining; not waiting longer\n")?;
                        return Ok(ExitCode::FAILURE);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Ok(DaemonMsg::Refused { reason }) => return Err(not_running(reason).into()),
            other => return Err(not_running(format!("unexpected answer {other:?}")).into()),
        }
    }
    Err(not_running("no answer".into()).into())
}

impl Daemon {
    fn is_idle(&self) -> bool {
        self.clients_now.load(Ordering::SeqCst) == 0
            && lock(&self.last_client).elapsed() >= self.idle
            && self.fetcher.remote().pending_uploads() == 0
            && self.manifest_writes.load(Ordering::SeqCst) == 0
    }

    fn status(&self) -> DaemonStatus {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DaemonStatus {
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            clients_now: l(&self.clients_now),
            clients_total: l(&self.clients_total),
            lookups: l(&self.lookups),
            lookups_found: l(&self.found),
            uploads_queued: l(&self.uploads_queued),
            uploads_refused: l(&self.uploads_refused),
            uploads_pending: self.fetcher.remote().pending_uploads(),
            manifests_stored: l(&self.manifests_stored),
            remote: self
                .fetcher
                .remote()
                .counters()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    /// The context `name`, starting its prefetch if asked and none is running.
    fn context(&self, name: Id, prefetch: bool) -> Arc<Context> {
        let ctx = lock(&self.contexts).entry(name).or_default().clone();
        if prefetch {
            let mut p = lock(&ctx.prefetch);
            if p.as_ref().is_none_or(|t| t.is_finished()) {
                let (fetcher, previous) = (self.fetcher.clone(), ctx.previous.clone());
                let counts = ctx.counts.clone();
                ctx.loaded.store(true, Ordering::SeqCst);
                *p = Some(tokio::spawn(async move {
                    fetcher.prefetch(name, previous, counts).await
                }));
            }
        }
        ctx
    }

    /// Checks an upload job against the local tier and queues it.
    fn queue_upload(&self, action: Id, out: Id, size: u64, time: i64) -> bool {
        let disk: &DiskCache = self.fetcher.disk();
        let matches =
            matches!(disk.get(&action), Ok(Some(e)) if e.output_id == out && e.size == size);
        let path = if matches {
            disk.find_output(&out, size)
        } else {
            None
        };
        let Some(path) = path else {
            self.uploads_refused.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        self.fetcher
            .remote()
            .enqueue_upload(action, out, size, time, path);
        self.uploads_queued.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Stores the manifest of one finished run in the background (merged with the
    /// context's previous one, which then becomes this merge).
    fn store_manifest(self: &Arc<Self>, name: Id, ctx: Arc<Context>, used: Used) {
        if used.0.is_empty() {
            return;
        }
        self.manifest_writes.fetch_add(1, Ordering::SeqCst);
        let d = self.clone();
        tokio::spawn(async move {
            let _serial = ctx.write.lock().await;
            let remote = d.fetcher.remote();
            if !ctx.loaded.swap(true, Ordering::SeqCst) {
                let m = remote.get_manifest(&name).await;
                let mut p = lock(&ctx.previous);
                if p.records.is_empty() {
                    *p = m;
                }
            }
            let previous = lock(&ctx.previous).clone();
            let list = merge_manifest(&used, &previous.records, ctx.counts.repack());
            if !list.is_empty() {
                let stored = store_manifest(remote, d.fetcher.disk(), &name, list, &previous).await;
                if stored.packs != previous.packs {
                    // Packs rebuilt: missing ones no longer listed.
                    ctx.counts.packs_missing.store(0, Ordering::Relaxed);
                }
                *lock(&ctx.previous) = stored;
                d.manifests_stored.fetch_add(1, Ordering::Relaxed);
            }
            d.manifest_writes.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn serve_conn(self: Arc<Self>, stream: UnixStream) {
        let (rd, mut wr) = stream.into_split();
        let mut lines = BufReader::new(rd).lines();
        let hello = match tokio::time::timeout(HELLO_WAIT, lines.next_line()).await {
            Ok(Ok(Some(l))) => serde_json::from_str::<ClientMsg>(&l).ok(),
            _ => None,
        };
        let Some(ClientMsg::Hello {
            version,
            config,
            manifest,
            prefetch,
            pid,
        }) = hello
        else {
            return;
        };
        let refusal = if version != WIRE_VERSION {
            Some(format!(
                "wire version {version}; this daemon speaks {WIRE_VERSION}"
            ))
        } else if config != hex::encode(self.key) {
            Some("another configuration (its socket name collides with ours)".to_owned())
        } else {
            None
        };
        if let Some(reason) = refusal {
            tracing::info!("refused client pid {pid}: {reason}");
            let _ = wr.write_all(&line(&DaemonMsg::Refused { reason })).await;
            return;
        }
        let welcome = line(&DaemonMsg::Welcome {
            version: WIRE_VERSION,
            pid: std::process::id(),
        });
        if wr.write_all(&welcome).await.is_err() {
            return;
        }
        self.clients_now.fetch_add(1, Ordering::SeqCst);
        self.clients_total.fetch_add(1, Ordering::Relaxed);

        // One writer per connection; answers are coalesced into one write when several
        // are ready.
        let (tx, mut rx) = mpsc::unbounded_channel::<DaemonMsg>();
        let writer = tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(m) = rx.recv().await {
                buf.extend(line(&m));
                while let Ok(m) = rx.try_recv() {
                    buf.extend(line(&m));
                }
                if wr.write_all(&buf).await.is_err() {
                    break;
                }
                buf.clear();
            }
        });

        let ctx = manifest
            .as_deref()
            .and_then(parse_id)
            .map(|name| (name, self.context(name, prefetch)));
        let used: Arc<Mutex<Used>> = Arc::default();
        let mut stop_asked = false;
        loop {
            let msg = match lines.next_line().await {
                Ok(Some(l)) => match serde_json::from_str::<ClientMsg>(&l) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!("client pid {pid}: malformed message: {e}");
                        break;
                    }
                },
                _ => break, // the client went away
            };
            match msg {
                ClientMsg::Lookup { id, action } => {
                    self.lookups.fetch_add(1, Ordering::Relaxed);
                    let (d, tx) = (self.clone(), tx.clone());
                    tokio::spawn(async move {
                        let found = match parse_id(&action) {
                            Some(a) => d.fetcher.lookup(a).await.is_some(),
                            None => false,
                        };
                        if found {
                            d.found.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = tx.send(DaemonMsg::Found { id, found });
                    });
                }
                ClientMsg::Upload {
                    id,
                    action,
                    output,
                    size,
                    time,
                } => {
                    let ok = match (parse_id(&action), parse_id(&output)) {
                        (Some(a), Some(o)) => self.queue_upload(a, o, size, time),
                        _ => false,
                    };
                    let _ = tx.send(DaemonMsg::Queued { id, ok });
                }
                ClientMsg::Used { records } => {
                    for r in records.iter().filter_map(|r| r.record()) {
                        note(&used, r);
                    }
                }
                ClientMsg::Bye => {
                    if let Some((name, ctx)) = &ctx {
                        let used = std::mem::take(&mut *lock(&used));
                        self.store_manifest(*name, ctx.clone(), used);
                    }
                    let _ = tx.send(DaemonMsg::Bye);
                    break;
                }
                ClientMsg::Status => {
                    let _ = tx.send(DaemonMsg::Status {
                        status: self.status(),
                    });
                }
                ClientMsg::Stop => {
                    let _ = tx.send(DaemonMsg::Stopping);
                    stop_asked = true;
                    break;
                }
                ClientMsg::Hello { .. } => {}
            }
        }
        drop(tx);
        let _ = writer.await;
        *lock(&self.last_client) = Instant::now();
        self.clients_now.fetch_sub(1, Ordering::SeqCst);
        if stop_asked {
            // Only once `stopping` is written: a daemon with nothing to drain shuts its
            // runtime down at once, which would drop the answer unsent.
            self.stop.notify_one();
        }
    }
}
