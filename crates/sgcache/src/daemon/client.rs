//! The go command's side of the daemon: the [`DaemonClient`] the serve loop hands remote
//! work to.
//!
//! Threads: the serve thread writes requests (one `write(2)` per line, under one lock, with
//! a write timeout); one reader thread reads answers, completes lookups (re-reading the
//! entry from the local tier) and watches deadlines. Every pending lookup and unacknowledged
//! upload is kept here until answered, so [`Inner::break_off`] can redo it in-process: the
//! build never depends on the daemon staying alive or responsive.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sgcache_disk::DiskCache;
use sgcache_store::DrainReport;
use sgcache_tier::{Answer, Done, InProcess, RemoteWork, UsedActions};
use sgcache_types::{ActionId, IndexEntry, Metrics};

use super::socket::{self, Endpoint};
use super::wire::{ClientMsg, DaemonMsg, WIRE_VERSION, line};
use crate::cli::DaemonMode;
use crate::config::Config;

/// Connect plus hello: a daemon slower than this is treated as absent.
const HELLO_TIMEOUT: Duration = Duration::from_millis(200);
/// How long an auto-started daemon gets to accept.
const START_TIMEOUT: Duration = Duration::from_secs(1);
/// Reader thread wake-up, for deadline checks.
const TICK: Duration = Duration::from_millis(50);
/// Writes to the daemon: a wedged daemon with a full socket buffer must not hang us.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// Slack added to the remote's first-byte and stall time limits for a lookup's answer.
const LOOKUP_SLACK: Duration = Duration::from_secs(2);
/// Upload acknowledgements (and the answer to `bye`) are immediate in a healthy daemon.
const ACK_DEADLINE: Duration = Duration::from_secs(2);
/// Used actions are sent in batches of this many.
const USED_BATCH: usize = 512;

struct PendingLookup {
    action: ActionId,
    since: Instant,
    done: Done,
}

struct PendingUpload {
    entry: IndexEntry,
    path: PathBuf,
    since: Instant,
}

/// The actions this run used, and how many of them the daemon was sent.
#[derive(Default)]
struct UsedBatch {
    used: UsedActions,
    sent: usize,
}

impl UsedBatch {
    /// The entries not sent yet, marking them sent.
    fn take_unsent(&mut self) -> Vec<IndexEntry> {
        let from = self.sent;
        self.sent = self.used.len();
        self.used.entries()[from..].to_vec()
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    lookups: HashMap<u64, PendingLookup>,
    uploads: HashMap<u64, PendingUpload>,
    bye_acked: bool,
}

struct Inner {
    cfg: Config,
    disk: Arc<DiskCache>,
    pid: u32,
    writer: Mutex<Option<UnixStream>>,
    broken: AtomicBool,
    state: Mutex<State>,
    cv: Condvar,
    used: Mutex<UsedBatch>,
    fallback: OnceLock<Option<InProcess>>,
    lookup_deadline: Duration,
    metrics: Arc<Metrics>,
}

/// Remote work handed to the shared daemon, with in-process fallback.
pub struct DaemonClient {
    inner: Arc<Inner>,
    reader: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for DaemonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonClient")
            .field("pid", &self.inner.pid)
            .field("broken", &self.inner.broken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DaemonClient {
    /// Connects to the daemon for `cfg` (starting one with `SGCACHE_DAEMON=auto`). `None`
    /// when daemons are off, there is no remote, or no daemon answered the hello in time:
    /// the caller then serves in-process.
    pub fn connect(
        cfg: &Config,
        disk: Arc<DiskCache>,
        metrics: Arc<Metrics>,
    ) -> Option<DaemonClient> {
        let key = cfg.daemon_key?;
        if cfg.daemon == DaemonMode::Off {
            return None;
        }
        let ep = match socket::endpoint(cfg.runtime_dir.as_deref(), &key) {
            Ok(ep) => ep,
            Err(e) => {
                tracing::debug!("daemon: {e}");
                return None;
            }
        };
        let stream = match UnixStream::connect(&ep.sock) {
            Ok(s) => s,
            Err(e) if cfg.daemon == DaemonMode::Auto => {
                tracing::debug!("daemon: none running ({e}); starting one");
                start_and_connect(cfg, &ep)?
            }
            Err(_) => return None,
        };
        match hello(cfg, &key, stream) {
            Ok((pid, reader, writer)) => {
                Some(DaemonClient::start(cfg, disk, metrics, pid, reader, writer))
            }
            Err(why) => {
                tracing::debug!(
                    "daemon on `{}`: {why}; serving in-process",
                    ep.sock.display()
                );
                None
            }
        }
    }

    fn start(
        cfg: &Config,
        disk: Arc<DiskCache>,
        metrics: Arc<Metrics>,
        pid: u32,
        reader: BufReader<UnixStream>,
        writer: UnixStream,
    ) -> DaemonClient {
        // A daemon is only used with a remote (its configuration hash needs one).
        let remote = cfg.remote.as_ref().expect("a daemon client has a remote");
        let inner = Arc::new(Inner {
            cfg: cfg.clone(),
            disk,
            pid,
            writer: Mutex::new(Some(writer)),
            broken: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            used: Mutex::new(Default::default()),
            fallback: OnceLock::new(),
            lookup_deadline: remote.first_byte_timeout + remote.stall_timeout + LOOKUP_SLACK,
            metrics,
        });
        let i2 = inner.clone();
        let handle = std::thread::Builder::new()
            .name("sgcache-daemon-client".into())
            .spawn(move || read_loop(&i2, reader));
        let reader = match handle {
            Ok(h) => Some(h),
            Err(e) => {
                inner.break_off(&format!("starting the reader thread: {e}"));
                None
            }
        };
        DaemonClient {
            inner,
            reader: Mutex::new(reader),
        }
    }
}

impl RemoteWork for DaemonClient {
    /// Looks `action` up through the daemon; `done` gets the entry as re-read from the
    /// local tier.
    fn lookup(&self, action: ActionId, done: Done) -> Answer {
        let i = &self.inner;
        let id = {
            let mut st = lock(&i.state);
            if i.broken.load(Ordering::SeqCst) {
                drop(st);
                return i.fallback_lookup(action, done);
            }
            st.next_id += 1;
            let id = st.next_id;
            st.lookups.insert(
                id,
                PendingLookup {
                    action,
                    since: Instant::now(),
                    done,
                },
            );
            id
        };
        i.metrics.daemon_lookups.inc();
        i.send(&ClientMsg::Lookup { id, action });
        Answer::Later
    }

    /// Records a used action and its entry (sent to the daemon in batches).
    fn note_used(&self, entry: &IndexEntry) {
        self.inner.note_used(*entry);
    }

    /// Hands an upload to the daemon (it reads the output from the local tier).
    fn upload(&self, entry: IndexEntry, path: PathBuf) {
        let i = &self.inner;
        let id = {
            let mut st = lock(&i.state);
            if i.broken.load(Ordering::SeqCst) {
                drop(st);
                if let Some(t) = i.fallback() {
                    t.upload(entry, path);
                }
                return;
            }
            st.next_id += 1;
            let id = st.next_id;
            st.uploads.insert(
                id,
                PendingUpload {
                    entry,
                    path,
                    since: Instant::now(),
                },
            );
            id
        };
        i.send(&ClientMsg::Upload { id, entry });
    }

    /// End of the run: sends the last used actions and `bye`, and waits (briefly) until the
    /// daemon has acknowledged every upload. The daemon delivers them after we exit. If the
    /// daemon failed during the run, the in-process fallback finishes its own work here.
    fn finish(&self) -> DrainReport {
        let i = &self.inner;
        let rest = lock(&i.used).take_unsent();
        if !rest.is_empty() {
            i.send(&ClientMsg::Used { entries: rest });
        }
        i.send(&ClientMsg::Bye);
        let deadline = Instant::now() + ACK_DEADLINE;
        let mut timed_out = false;
        {
            let mut st = lock(&i.state);
            loop {
                let settled = st.bye_acked && st.uploads.is_empty() && st.lookups.is_empty();
                if settled || i.broken.load(Ordering::SeqCst) {
                    break;
                }
                // Lookups have their own (longer) deadline, watched by the reader thread.
                let wait = if st.lookups.is_empty() {
                    deadline.saturating_duration_since(Instant::now())
                } else {
                    TICK
                };
                if wait.is_zero() {
                    timed_out = true;
                    break;
                }
                st =
                    i.cv.wait_timeout(st, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
            }
        }
        if timed_out {
            i.break_off("the daemon did not acknowledge the end of the run in time");
        }
        if let Some(h) = lock(&self.reader).take() {
            let _ = h.join();
        }
        match i.fallback.get() {
            Some(Some(t)) => t.finish(),
            _ => DrainReport::default(),
        }
    }

    /// For the summary line.
    fn describe(&self) -> String {
        if self.inner.broken.load(Ordering::Relaxed) {
            format!("daemon pid {}, then in-process", self.inner.pid)
        } else {
            format!("daemon pid {}", self.inner.pid)
        }
    }
}

impl Inner {
    /// Writes one line; a failure switches to in-process work.
    fn send(&self, m: &ClientMsg) {
        if self.broken.load(Ordering::SeqCst) {
            return;
        }
        let bytes = line(m);
        let failed = {
            let mut w = lock(&self.writer);
            match w.as_mut() {
                Some(s) => s.write_all(&bytes).err(),
                None => None,
            }
        };
        if let Some(e) = failed {
            self.break_off(&format!("writing to the daemon: {e}"));
        }
    }

    fn note_used(&self, e: IndexEntry) {
        let batch = {
            let mut u = lock(&self.used);
            if !u.used.note(e) {
                return;
            }
            if self.broken.load(Ordering::SeqCst) {
                drop(u);
                if let Some(Some(t)) = self.fallback.get() {
                    t.note_used(&e);
                }
                return;
            }
            if u.used.len() - u.sent < USED_BATCH {
                return;
            }
            u.take_unsent()
        };
        self.send(&ClientMsg::Used { entries: batch });
    }

    /// The in-process tier, created on first need and told what this run used so far.
    fn fallback(&self) -> Option<&InProcess> {
        self.fallback
            .get_or_init(|| {
                let t = crate::remote::in_process(&self.cfg, self.disk.clone(), &self.metrics)?;
                for e in lock(&self.used).used.entries() {
                    t.note_used(e);
                }
                Some(t)
            })
            .as_ref()
    }

    fn fallback_lookup(&self, action: ActionId, done: Done) -> Answer {
        match self.fallback() {
            Some(t) => t.lookup(action, done),
            None => Answer::Now(None),
        }
    }

    /// Gives up on the daemon for the rest of the run: unanswered lookups and
    /// unacknowledged uploads are redone in-process.
    fn break_off(&self, why: &str) {
        let (lookups, uploads) = {
            let mut st = lock(&self.state);
            if self.broken.swap(true, Ordering::SeqCst) {
                return;
            }
            (
                std::mem::take(&mut st.lookups),
                std::mem::take(&mut st.uploads),
            )
        };
        self.cv.notify_all();
        self.metrics.daemon_fallbacks.inc();
        if let Some(s) = lock(&self.writer).take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        tracing::warn!(
            "sgcache daemon (pid {}): {why}; doing remote work in-process",
            self.pid
        );
        for (_, l) in lookups {
            let PendingLookup { action, done, .. } = l;
            // A fallback that answers at once hands the answer back here.
            let slot: Arc<Mutex<Option<Done>>> = Arc::new(Mutex::new(Some(done)));
            let s2 = slot.clone();
            let relay: Done = Box::new(move |found| {
                if let Some(d) = lock(&s2).take() {
                    d(found);
                }
            });
            if let Answer::Now(found) = self.fallback_lookup(action, relay)
                && let Some(d) = lock(&slot).take()
            {
                d(found);
            }
        }
        if !uploads.is_empty()
            && let Some(t) = self.fallback()
        {
            for (_, u) in uploads {
                t.upload(u.entry, u.path);
            }
        }
    }

    /// Handles one answer; `true` when the conversation is over.
    fn handle(&self, m: DaemonMsg) -> bool {
        match m {
            DaemonMsg::Found { id, found } => {
                let Some(l) = lock(&self.state).lookups.remove(&id) else {
                    return false;
                };
                let entry = if found {
                    // Never trust the socket with a path: read what the daemon wrote.
                    self.disk.get_file(&l.action).ok().flatten()
                } else {
                    None
                };
                if let Some((e, _)) = &entry {
                    self.metrics.daemon_found.inc();
                    self.note_used(*e);
                }
                (l.done)(entry);
                self.cv.notify_all();
                false
            }
            DaemonMsg::Queued { id, ok } => {
                let mut st = lock(&self.state);
                if st.uploads.remove(&id).is_some() && ok {
                    self.metrics.daemon_uploads.inc();
                }
                if st.uploads.is_empty() {
                    self.cv.notify_all();
                }
                false
            }
            DaemonMsg::Bye => {
                lock(&self.state).bye_acked = true;
                self.cv.notify_all();
                true
            }
            _ => false,
        }
    }

    /// Why the daemon is overdue, if it is.
    fn overdue(&self) -> Option<&'static str> {
        let st = lock(&self.state);
        if st
            .lookups
            .values()
            .any(|l| l.since.elapsed() > self.lookup_deadline)
        {
            return Some("a lookup got no answer within the remote's time limits + 2s");
        }
        if st
            .uploads
            .values()
            .any(|u| u.since.elapsed() > ACK_DEADLINE)
        {
            return Some("an upload was not acknowledged within 2s");
        }
        None
    }
}

fn read_loop(i: &Inner, mut r: BufReader<UnixStream>) {
    if let Err(e) = r.get_ref().set_read_timeout(Some(TICK)) {
        return i.break_off(&format!("setting a read timeout: {e}"));
    }
    let mut buf = Vec::new();
    loop {
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => {
                if !lock(&i.state).bye_acked {
                    i.break_off("the daemon closed the connection");
                }
                return;
            }
            Ok(_) if buf.ends_with(b"\n") => {
                let m = serde_json::from_slice::<DaemonMsg>(&buf);
                buf.clear();
                match m {
                    Ok(m) => {
                        if i.handle(m) {
                            return;
                        }
                    }
                    Err(e) => {
                        return i.break_off(&format!("malformed answer from the daemon: {e}"));
                    }
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return i.break_off(&format!("reading from the daemon: {e}")),
        }
        if i.broken.load(Ordering::SeqCst) {
            return;
        }
        if let Some(why) = i.overdue() {
            return i.break_off(why);
        }
    }
}

/// Sends the hello and reads the welcome, both within [`HELLO_TIMEOUT`].
fn hello(
    cfg: &Config,
    key: &[u8; 32],
    stream: UnixStream,
) -> Result<(u32, BufReader<UnixStream>, UnixStream), String> {
    let started = Instant::now();
    let e = |e: std::io::Error| e.to_string();
    stream.set_write_timeout(Some(HELLO_TIMEOUT)).map_err(e)?;
    stream.set_read_timeout(Some(HELLO_TIMEOUT)).map_err(e)?;
    let mut w = stream.try_clone().map_err(e)?;
    w.write_all(&line(&ClientMsg::Hello {
        version: WIRE_VERSION,
        config: hex::encode(key),
        manifest: Some(hex::encode(cfg.manifest.0)),
        prefetch: cfg.prefetch,
        pid: std::process::id(),
    }))
    .map_err(e)?;
    let mut r = BufReader::new(stream);
    let mut buf = Vec::new();
    while !buf.ends_with(b"\n") {
        if started.elapsed() > HELLO_TIMEOUT {
            return Err("no welcome within 200ms".into());
        }
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => return Err("the daemon closed the connection".into()),
            Ok(_) => {}
            Err(x) if x.kind() == std::io::ErrorKind::Interrupted => {}
            Err(x) => return Err(format!("no welcome: {x}")),
        }
    }
    w.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(e)?;
    match serde_json::from_slice::<DaemonMsg>(&buf) {
        Ok(DaemonMsg::Welcome { version, pid }) if version == WIRE_VERSION => Ok((pid, r, w)),
        Ok(DaemonMsg::Refused { reason }) => Err(format!("refused: {reason}")),
        Ok(other) => Err(format!("unexpected answer to hello: {other:?}")),
        Err(x) => Err(format!("malformed welcome: {x}")),
    }
}

/// Starts a detached daemon for `cfg` and connects to it, or `None` after
/// [`START_TIMEOUT`]. Several clients may do this at once: the daemons' lifetime lock
/// lets one of them serve and the others exit.
pub(crate) fn start_and_connect(cfg: &Config, ep: &Endpoint) -> Option<UnixStream> {
    if let Err(e) = spawn_daemon(cfg, ep) {
        tracing::debug!("daemon: starting one: {e}");
        return None;
    }
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(s) = UnixStream::connect(&ep.sock) {
            return Some(s);
        }
        if Instant::now() > deadline {
            tracing::debug!("daemon: the one started did not accept within 1s");
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn_daemon(cfg: &Config, ep: &Endpoint) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ep.log)?;
    let mut c = Command::new(exe);
    c.arg("daemon")
        .arg("--dir")
        .arg(&cfg.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent; it
    // detaches the daemon from the go command's session and process group, so signals
    // aimed at the build (Ctrl-C) do not reach it.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = c.spawn()?;
    // Reap it when it exits (a daemon that lost the start race exits at once).
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}
