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
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use sgcache_disk::DiskCache;
use sgcache_store::layers::BreakerPosition;
use sgcache_store::{ManifestName, RemoteCache, UploadJob, UploadQueue};
use sgcache_tier::{Fetcher, Session, UsedActions};
use sgcache_types::{ActionId, Counter, IndexEntry, Metrics};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};

use super::Error;
use super::socket::{self, LifetimeLock};
use super::wire::{ClientMsg, DaemonMsg, DaemonStatus, WIRE_VERSION, line, parse_hex32};
use crate::cli::DaemonArgs;
use crate::config::Config;

/// A client that has connected must say hello within this.
const HELLO_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Daemon {
    key: [u8; 32],
    fetcher: Fetcher,
    uploads: UploadQueue,
    metrics: Arc<Metrics>,
    rt: tokio::runtime::Handle,
    started: Instant,
    idle: Duration,
    clients_now: AtomicU64,
    // For `--status`: what the daemon did for its clients.
    lookups: Counter,
    found: Counter,
    uploads_queued: Counter,
    uploads_refused: Counter,
    /// Manifest stores running (the daemon does not exit idle while one runs).
    manifest_writes: AtomicU64,
    last_client: Mutex<Instant>,
    /// One session per build context, for the daemon's life.
    sessions: Mutex<HashMap<ManifestName, Arc<Session>>>,
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
    let metrics = Arc::new(Metrics::default());
    let remote = RemoteCache::new(rc, metrics.clone()).context("configuring the remote")?;
    let rt = sgcache_tier::runtime("sgcache-daemon").context("starting the runtime")?;
    let fetcher = Fetcher::new(remote.clone(), disk.clone());
    let uploads = UploadQueue::start(remote, rt.handle());
    fetcher.attach_uploads(&uploads);
    let d = Arc::new(Daemon {
        key,
        fetcher,
        uploads,
        metrics: metrics.clone(),
        rt: rt.handle().clone(),
        started: Instant::now(),
        idle: cfg.daemon_idle,
        clients_now: AtomicU64::new(0),
        lookups: Counter::default(),
        found: Counter::default(),
        uploads_queued: Counter::default(),
        uploads_refused: Counter::default(),
        manifest_writes: AtomicU64::new(0),
        last_client: Mutex::new(Instant::now()),
        sessions: Mutex::new(HashMap::new()),
        stop: Notify::new(),
    });
    if let Some(addr) = cfg.metrics_addr {
        let s = d.clone();
        let bound = super::metrics::serve(addr, Arc::new(move || s.status()))?;
        tracing::info!("metrics on http://{bound}/metrics");
    }
    rt.block_on(serve_until_stopped(&d, &ep.sock))?;
    if let Err(e) = sgcache_disk::add_counters(disk.dir(), &metrics.snapshot()) {
        tracing::debug!("saving stats: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves clients on `sock` until the daemon is idle, told to stop, or signalled; then
/// delivers what is queued (manifest writes, then uploads) within the upload deadline.
async fn serve_until_stopped(d: &Arc<Daemon>, sock: &Path) -> Result<()> {
    let listener = tokio::net::UnixListener::bind(sock).map_err(|source| Error::Io {
        op: "binding",
        path: sock.to_path_buf(),
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
        path: sock.to_path_buf(),
        source,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|source| Error::Io {
        op: "handling SIGINT for",
        path: sock.to_path_buf(),
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
    let _ = std::fs::remove_file(sock);
    let deadline = d.fetcher.remote().config().upload_deadline;
    let until = Instant::now() + deadline;
    while d.manifest_writes.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = until.saturating_duration_since(Instant::now());
    let report = d.uploads.drain(left.max(Duration::from_millis(1))).await;
    tracing::info!("daemon exiting: {report:?}");
    Ok(())
}

/// What the daemon says it did for a `sgcache prefetch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefetched {
    /// The daemon's pid.
    pub pid: u32,
    /// Build contexts started or joined.
    pub contexts: u64,
    /// Manifest records loaded meanwhile (when waited for).
    pub records: u64,
    /// Outputs fetched meanwhile (when waited for).
    pub outputs: u64,
}

/// `sgcache prefetch` through the daemon of `cfg` (starting one if none runs): asks it to
/// warm the build contexts `names`, and with `wait` waits until it has. `Err` when no
/// daemon can be reached (the caller then works in-process).
pub fn prefetch(cfg: &Config, names: &[ManifestName], wait: bool) -> Result<Prefetched> {
    use std::io::{BufRead, Write};
    let key = cfg.daemon_key.ok_or(Error::NoRemote)?;
    let ep = socket::endpoint(cfg.runtime_dir.as_deref(), &key)?;
    let s = match std::os::unix::net::UnixStream::connect(&ep.sock) {
        Ok(s) => s,
        Err(_) => super::client::start_and_connect(cfg, &ep).ok_or_else(|| Error::NotRunning {
            path: ep.sock.clone(),
            reason: "none runs, and the one started did not accept".into(),
        })?,
    };
    // Waiting may take as long as prefetch does (its own bounds: 2 minutes, 8 GiB).
    s.set_read_timeout(Some(if wait {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(5)
    }))?;
    let mut w = s.try_clone()?;
    w.write_all(&line(&ClientMsg::Hello {
        version: WIRE_VERSION,
        config: hex::encode(key),
        manifest: None,
        prefetch: false,
        pid: std::process::id(),
    }))?;
    w.write_all(&line(&ClientMsg::Prefetch {
        manifests: names.iter().map(|n| hex::encode(n.0)).collect(),
        wait,
    }))?;
    let mut r = std::io::BufReader::new(s);
    let not_running = |reason: String| Error::NotRunning {
        path: ep.sock.clone(),
        reason,
    };
    let mut pid = 0;
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)
            .map_err(|e| not_running(e.to_string()))?
            == 0
        {
            return Err(not_running("it closed the connection".into()).into());
        }
        match serde_json::from_str::<DaemonMsg>(&l) {
            Ok(DaemonMsg::Welcome { pid: p, .. }) => pid = p,
            Ok(DaemonMsg::Prefetched {
                contexts,
                records,
                outputs,
            }) => {
                let _ = w.write_all(&line(&ClientMsg::Bye));
                return Ok(Prefetched {
                    pid,
                    contexts,
                    records,
                    outputs,
                });
            }
            Ok(DaemonMsg::Refused { reason }) => return Err(not_running(reason).into()),
            other => return Err(not_running(format!("unexpected answer {other:?}")).into()),
        }
    }
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
            && self.uploads.pending() == 0
            && self.manifest_writes.load(Ordering::SeqCst) == 0
            && !lock(&self.sessions).values().any(|s| s.is_prefetching())
    }

    fn status(&self) -> DaemonStatus {
        let breaker = match self.fetcher.remote().breaker().position() {
            BreakerPosition::Closed => "closed",
            BreakerPosition::Open => "open",
            BreakerPosition::HalfOpen => "half-open",
        };
        DaemonStatus {
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            clients_now: self.clients_now.load(Ordering::Relaxed),
            lookups: self.lookups.get(),
            lookups_found: self.found.get(),
            uploads_queued: self.uploads_queued.get(),
            uploads_refused: self.uploads_refused.get(),
            uploads_pending: self.uploads.pending(),
            contexts: lock(&self.sessions).len() as u64,
            breaker: breaker.into(),
            metrics: self.metrics.snapshot(),
        }
    }

    /// The session of build context `name`, starting its prefetch if asked and none runs.
    fn session(&self, name: ManifestName, prefetch: bool) -> Arc<Session> {
        let s = lock(&self.sessions)
            .entry(name)
            .or_insert_with(|| Session::new(self.fetcher.clone(), name))
            .clone();
        if prefetch {
            s.start_prefetch(&self.rt, false);
        }
        s
    }

    /// Checks an upload job against the local tier and queues it.
    fn queue_upload(&self, e: IndexEntry) -> bool {
        let disk: &DiskCache = self.fetcher.disk();
        let matches =
            matches!(disk.get(&e.action), Ok(Some(l)) if l.output == e.output && l.size == e.size);
        let path = if matches {
            disk.find_output(&e.output, e.size)
        } else {
            None
        };
        let Some(path) = path else {
            self.uploads_refused.inc();
            return false;
        };
        let heal = self.fetcher.on_put(&e);
        if !heal && self.fetcher.recently_uploaded(&e) {
            self.metrics.uploads_skipped_recent.inc();
            self.uploads_queued.inc();
            return true;
        }
        match self.uploads.enqueue(UploadJob {
            entry: e,
            path,
            heal,
        }) {
            Ok(()) | Err(sgcache_store::Refused::ReadOnly) => {
                self.uploads_queued.inc();
                true
            }
            Err(why) => {
                tracing::debug!("upload of {} not queued: {why}", e.action.short());
                self.uploads_refused.inc();
                false
            }
        }
    }

    /// Stores the manifest of one finished run in the background.
    fn store_manifest(self: &Arc<Self>, session: Arc<Session>, used: UsedActions) {
        if used.is_empty() {
            return;
        }
        self.manifest_writes.fetch_add(1, Ordering::SeqCst);
        let d = self.clone();
        tokio::spawn(async move {
            let deadline = d.fetcher.remote().config().upload_deadline;
            session.store_run(&used, deadline).await;
            d.manifest_writes.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn serve_conn(self: Arc<Self>, stream: UnixStream) {
        let (rd, mut wr) = stream.into_split();
        let mut lines = BufReader::new(rd).lines();
        let Some((manifest, prefetch, pid)) = self.handshake(&mut lines, &mut wr).await else {
            return;
        };
        self.clients_now.fetch_add(1, Ordering::SeqCst);
        self.metrics.daemon_clients.inc();
        let (tx, writer) = spawn_writer(wr);
        let session = manifest
            .as_deref()
            .and_then(parse_hex32)
            .map(|name| self.session(ManifestName(name), prefetch));
        let used: Arc<Mutex<UsedActions>> = Arc::default();
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
                ClientMsg::Lookup { id, action } => self.lookup_for(id, action, &used, &tx),
                ClientMsg::Upload { id, entry } => {
                    let ok = self.queue_upload(entry);
                    let _ = tx.send(DaemonMsg::Queued { id, ok });
                }
                ClientMsg::Used { entries } => {
                    let mut used = lock(&used);
                    for e in entries {
                        used.note(e);
                    }
                }
                ClientMsg::Bye => {
                    if let Some(s) = &session {
                        self.store_manifest(s.clone(), std::mem::take(&mut *lock(&used)));
                    }
                    let _ = tx.send(DaemonMsg::Bye);
                    break;
                }
                ClientMsg::Status => {
                    let _ = tx.send(DaemonMsg::Status {
                        status: Box::new(self.status()),
                    });
                }
                ClientMsg::Prefetch { manifests, wait } => self.prefetch_for(&manifests, wait, &tx),
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

    /// Reads the client's hello and answers it: `Some((manifest, prefetch, pid))` once the
    /// client is welcome; `None` (after a refusal, where one is due) otherwise.
    async fn handshake(
        &self,
        lines: &mut Lines<BufReader<OwnedReadHalf>>,
        wr: &mut OwnedWriteHalf,
    ) -> Option<(Option<String>, bool, u32)> {
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
            return None;
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
            return None;
        }
        let welcome = line(&DaemonMsg::Welcome {
            version: WIRE_VERSION,
            pid: std::process::id(),
        });
        wr.write_all(&welcome).await.ok()?;
        Some((manifest, prefetch, pid))
    }

    /// Answers a lookup when the fetcher has: found, or a miss the run's manifest may list.
    fn lookup_for(
        self: &Arc<Self>,
        id: u64,
        action: ActionId,
        used: &Arc<Mutex<UsedActions>>,
        tx: &Answers,
    ) {
        self.lookups.inc();
        let (d, tx, used) = (self.clone(), tx.clone(), used.clone());
        tokio::spawn(async move {
            let found = d.fetcher.lookup(action).await.is_some();
            if found {
                d.found.inc();
            } else {
                lock(&used).note_miss(action);
            }
            let _ = tx.send(DaemonMsg::Found { id, found });
        });
    }

    /// Starts prefetch for each named build context and answers with what it did: at once,
    /// or when every context is warm (`wait`).
    fn prefetch_for(self: &Arc<Self>, manifests: &[String], wait: bool, tx: &Answers) {
        let sessions: Vec<Arc<Session>> = manifests
            .iter()
            .filter_map(|m| parse_hex32(m))
            .map(|name| {
                let s = self.session(ManifestName(name), false);
                s.start_prefetch(&self.rt, true);
                s
            })
            .collect();
        let (d, tx) = (self.clone(), tx.clone());
        let before = d.metrics.snapshot();
        tokio::spawn(async move {
            if wait {
                for s in &sessions {
                    s.prefetch_finished().await;
                }
            }
            let now = d.metrics.snapshot();
            let _ = tx.send(DaemonMsg::Prefetched {
                contexts: sessions.len() as u64,
                records: now.prefetch_manifest_records - before.prefetch_manifest_records,
                outputs: (now.prefetch_pack_objects + now.prefetch_found)
                    - (before.prefetch_pack_objects + before.prefetch_found),
            });
        });
    }
}

/// Where a connection's answers go.
type Answers = mpsc::UnboundedSender<DaemonMsg>;

/// One writer per connection; answers are coalesced into one write when several are ready.
fn spawn_writer(mut wr: OwnedWriteHalf) -> (Answers, tokio::task::JoinHandle<()>) {
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
    (tx, writer)
}
