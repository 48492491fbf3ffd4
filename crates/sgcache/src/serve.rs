//! The serve loop: GOCACHEPROG requests in, responses out, the local tier in between.
//!
//! Threads and ordering:
//! - The calling thread reads requests. Local work (a get is one 176-byte read and a
//!   stat; a put streams its body, which must be consumed before the next request can
//!   be read anyway) is done right there, because a thread hop costs more than the work.
//! - Replies go through one [`Replies`] sink that owns the output: whoever has a reply
//!   (the reader thread, or a remote lookup finishing on the runtime) takes its lock and
//!   writes it, so replies may go out in any order but never interleave. The reader thread
//!   flushes only when no further request is already buffered, so a burst costs one
//!   write. (A dedicated writer thread fed by a channel was measured first: the wake-up
//!   it costs on every reply made a warm `go build std` 30% slower than the plain go
//!   command on two cores; writing in place keeps the hot path free of thread hops.)
//! - At `close` or end of input: finish in-flight remote work (manifest, uploads), answer
//!   `close`, print the `SGCACHE_VERBOSE` summary, then drop the output (closing stdout,
//!   which is all the go command waits for: it does not wait for this process to exit).
//!   Only then the local bookkeeping: the daily trim and adding this run's counters to the
//!   stats file, so neither is on the go command's critical path. (Counters therefore land
//!   a moment after the go command returns.)
//!
//! Nothing here can make the go command read a wrong byte: a hit is only answered with a
//! path whose size the local tier just checked, and a put is only acknowledged after
//! its content was hashed against its OutputID and renamed into place.

use std::collections::HashSet;
use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::work::RemoteWork;
use sgcache_disk::{Counters, DiskCache, Id};
use sgcache_protocol::{
    BodyError, CodecError, Command, Frame, Request, RequestReader, Response, ResponseWriter,
};

/// Input buffer: large enough that a put body arrives in few reads.
const INPUT_BUFFER: usize = 256 * 1024;

/// What serving needs besides its input and output.
#[derive(Debug)]
pub struct Server {
    disk: Arc<DiskCache>,
    max_size: Option<u64>,
    stats: Arc<Stats>,
    disk_warned: AtomicBool,
    remote: Option<RemoteWork>,
    /// Print the summary line at the end, timed from this instant.
    summary_since: Option<Instant>,
}

/// This run's counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub gets: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub puts: AtomicU64,
    pub put_bytes: AtomicU64,
    pub hit_bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl Stats {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters as the stats file stores them.
    pub fn to_counters(&self) -> Counters {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut c = Counters {
            gets: l(&self.gets),
            hits: l(&self.hits),
            misses: l(&self.misses),
            puts: l(&self.puts),
            put_bytes: l(&self.put_bytes),
            get_bytes: l(&self.hit_bytes),
            ..Counters::default()
        };
        c.add_extra("errors", l(&self.errors));
        c
    }
}

/// How serving ended.
#[derive(Debug)]
pub enum Ending {
    /// The go command sent `close`.
    Close,
    /// Input ended between requests.
    Eof,
}

impl Server {
    /// A server over an opened local tier.
    pub fn new(disk: Arc<DiskCache>, max_size: Option<u64>, remote: Option<RemoteWork>) -> Self {
        Server {
            disk,
            max_size,
            stats: Arc::new(Stats::default()),
            disk_warned: AtomicBool::new(false),
            remote,
            summary_since: None,
        }
    }

    /// Print the `SGCACHE_VERBOSE` summary line on stderr at the end of serving (before the
    /// output is closed, so it comes out before the go command returns).
    pub fn with_summary(mut self, started: Instant) -> Self {
        self.summary_since = Some(started);
        self
    }

    /// Serves until `close`, end of input, or a stream that is no longer the protocol
    /// (returned as `Err`; replies already made still go out, the output is closed).
    pub fn serve<R, W>(&self, input: R, output: W) -> Result<Ending, CodecError>
    where
        R: Read,
        W: Write + Send + 'static,
    {
        let replies: Arc<Replies> = Arc::new(Replies::new(Box::new(output)));
        // The handshake goes first, before any request is read.
        replies.send(&Response::handshake(), true);

        let mut reader = RequestReader::new(BufReader::with_capacity(INPUT_BUFFER, input));
        let mut seen = HashSet::new();
        let result = loop {
            let req = match reader.next_request() {
                Ok(Frame::Request(r)) => r,
                Ok(Frame::Eof) => break Ok(Ending::Eof),
                Err(e) => break Err(e),
            };
            if req.body_size > 0 {
                // A body may take a while to arrive: answer what is pending first.
                replies.flush();
            }
            let fresh = req.id != 0 && seen.insert(req.id);
            if !fresh {
                let reply = Response::error(
                    req.id,
                    format!(
                        "duplicate request ID {}; IDs must be unique and non-zero",
                        req.id
                    ),
                );
                if let Err(e) = self.skip_body(&mut reader, &req) {
                    break Err(e);
                }
                Stats::add(&self.stats.errors, 1);
                replies.send(&reply, !reader.has_buffered_input());
                continue;
            }
            if req.command == Command::Close && req.fault.is_none() {
                self.finish_remote();
                replies.send(&Response::closed(req.id), true);
                break Ok(Ending::Close);
            }
            match self.handle(&mut reader, req, &replies) {
                Ok(Some(reply)) => replies.send(&reply, !reader.has_buffered_input()),
                Ok(None) => {} // answered later, from the remote tier
                Err(e) => break Err(e),
            }
        };
        if matches!(result, Ok(Ending::Eof) | Err(_)) {
            self.finish_remote();
        }
        if let Some(started) = self.summary_since {
            let _ = writeln!(io::stderr(), "{}", self.summary(started));
        }
        // Closing stdout is what the go command waits for.
        replies.close();
        self.finish_local();
        result
    }

    fn handle<R: io::BufRead>(
        &self,
        reader: &mut RequestReader<R>,
        req: Request,
        replies: &Arc<Replies>,
    ) -> Result<Option<Response>, CodecError> {
        if let Some(fault) = &req.fault {
            self.skip_body(reader, &req)?;
            Stats::add(&self.stats.errors, 1);
            let what = match &req.command {
                Command::Get => "get",
                Command::Put => "put",
                Command::Close => "close",
                Command::Unknown(_) => "request",
            };
            return Ok(Some(Response::error(req.id, format!("{what}: {fault}"))));
        }
        match req.command {
            Command::Get => Ok(self.get(&req, replies)),
            Command::Put => self.put(reader, &req).map(Some),
            // Close is handled by the loop; Unknown always carries a fault.
            Command::Close | Command::Unknown(_) => Ok(Some(Response::error(req.id, "unexpected"))),
        }
    }

    fn get(&self, req: &Request, replies: &Arc<Replies>) -> Option<Response> {
        Stats::add(&self.stats.gets, 1);
        let action = req.action_id.expect("checked by the codec");
        let local = match self.disk.get_file(&action) {
            Ok(found) => found,
            Err(e) => {
                self.warn_disk(&e);
                None
            }
        };
        if let Some(remote) = &self.remote
            && let Some((entry, _)) = &local
        {
            remote.note_used(action, entry);
        }
        if local.is_none()
            && let Some(remote) = &self.remote
        {
            let (id, replies, stats) = (req.id, replies.clone(), self.stats.clone());
            remote.lookup(action, move |found| {
                replies.send(&reply(&stats, id, found), true);
            });
            return None;
        }
        Some(reply(&self.stats, req.id, local))
    }

    fn put<R: io::BufRead>(
        &self,
        reader: &mut RequestReader<R>,
        req: &Request,
    ) -> Result<Response, CodecError> {
        Stats::add(&self.stats.puts, 1);
        let action = req.action_id.expect("checked by the codec");
        let out = req.output_id.expect("checked by the codec");
        let size = req.body_size;
        let mut pending = match self.disk.begin_put(&out, size) {
            Ok(p) => p,
            Err(e) => {
                self.skip_body(reader, req)?;
                self.warn_disk(&e);
                return Ok(self.put_error(req.id, &out, e));
            }
        };
        if size > 0
            && let Err(bad) = reader.read_body(size, &mut pending)?
        {
            drop(pending);
            let msg = match bad {
                BodyError::Sink(e) => {
                    let e = sgcache_disk::Error::Io {
                        op: "write",
                        path: self.disk.output_path(&out),
                        source: e,
                    };
                    self.warn_disk(&e);
                    e.to_string()
                }
                other => other.to_string(),
            };
            return Ok(self.put_error(req.id, &out, msg));
        }
        let path = match pending.commit() {
            Ok(p) => p,
            Err(e) => return Ok(self.put_error(req.id, &out, e)),
        };
        let now = sgcache_disk::unix_nanos(self.disk.now());
        if let Err(e) = self.disk.put_index_entry(&action, &out, size, now) {
            self.warn_disk(&e);
            return Ok(self.put_error(req.id, &out, e));
        }
        Stats::add(&self.stats.put_bytes, size);
        if let Some(remote) = &self.remote {
            let entry = sgcache_disk::Entry {
                output_id: out,
                size,
                time_nanos: now,
            };
            remote.note_used(action, &entry);
            remote.upload(action, out, size, now, path.clone());
        }
        match path.into_os_string().into_string() {
            Ok(p) => Ok(Response::stored(req.id, p)),
            Err(_) => Ok(self.put_error(req.id, &out, "output path is not UTF-8")),
        }
    }

    fn put_error(&self, id: i64, out: &Id, e: impl std::fmt::Display) -> Response {
        Stats::add(&self.stats.errors, 1);
        Response::error(id, format!("put output {}: {e}", short_hex(out)))
    }

    /// Consumes the body of a request we are refusing, so the stream stays in sync.
    fn skip_body<R: io::BufRead>(
        &self,
        reader: &mut RequestReader<R>,
        req: &Request,
    ) -> Result<(), CodecError> {
        if req.body_size > 0 && matches!(req.command, Command::Put | Command::Unknown(_)) {
            let _ = reader.read_body(req.body_size, &mut io::sink())?;
        }
        Ok(())
    }

    /// One warning per run for local-tier trouble (a full or read-only disk), so a build
    /// log is not flooded; every occurrence is still counted.
    fn warn_disk(&self, e: &dyn std::fmt::Display) {
        if !self.disk_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("local cache: {e}; continuing (affected entries are misses)");
        }
    }

    /// Delivers what the remote tier still holds (manifest, queued uploads).
    fn finish_remote(&self) {
        if let Some(remote) = &self.remote {
            let report = remote.finish();
            let lost = report.dropped + report.abandoned + report.failed;
            if lost > 0 {
                tracing::warn!(
                    "remote: {lost} uploads not delivered ({} dropped: queue full, {} past \
                     SGCACHE_UPLOAD_DEADLINE, {} failed); they stay in the local cache",
                    report.dropped,
                    report.abandoned,
                    report.failed
                );
            }
        }
    }

    /// The daily trim and the stats file, after the go command has its answer.
    fn finish_local(&self) {
        let mut counters = self.stats.to_counters();
        if let Some(remote) = &self.remote {
            for (name, n) in remote.counters() {
                counters.add_extra(name, n);
            }
        }
        // Go's daily age trim; on the days it runs, the size cap is enforced in the same scan.
        let opts = sgcache_disk::TrimOptions {
            max_age: None,
            max_size: self.max_size,
        };
        if let Err(e) = self.disk.trim_if_due_with(&opts) {
            tracing::warn!("trimming the local cache: {e}");
        }
        if let Err(e) = sgcache_disk::add_counters(self.disk.dir(), &counters) {
            tracing::debug!("saving stats: {e}");
        }
    }

    /// The `SGCACHE_VERBOSE` summary line.
    pub fn summary(&self, started: Instant) -> String {
        let s = &self.stats;
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut remote = String::new();
        if let Some(r) = &self.remote {
            remote.push_str(&format!("; remote ({})", r.describe()));
            for (name, n) in r.counters() {
                let name = name.strip_prefix("remote_").unwrap_or(name);
                remote.push_str(&format!(" {name}={n}"));
            }
        }
        format!(
            "sgcache: {} gets ({} hits, {} misses), {} puts, {} in, {} out, {} errors, {} ms{remote}",
            l(&s.gets),
            l(&s.hits),
            l(&s.misses),
            l(&s.puts),
            bytesize::ByteSize(l(&s.put_bytes)).display().iec(),
            bytesize::ByteSize(l(&s.hit_bytes)).display().iec(),
            l(&s.errors),
            started.elapsed().as_millis()
        )
    }
}

/// The reply to a get, counting it.
fn reply(
    stats: &Stats,
    id: i64,
    found: Option<(sgcache_disk::Entry, std::path::PathBuf)>,
) -> Response {
    if let Some((entry, path)) = found
        && let Ok(path) = path.into_os_string().into_string()
    {
        Stats::add(&stats.hits, 1);
        Stats::add(&stats.hit_bytes, entry.size);
        return Response::hit(id, entry.output_id, entry.size, entry.time_nanos, path);
    }
    Stats::add(&stats.misses, 1);
    Response::miss(id)
}

/// The one owner of the output. Writers take the lock for one reply at a time.
pub struct Replies {
    out: Mutex<Option<ResponseWriter<Box<dyn Write + Send>>>>,
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies").finish_non_exhaustive()
    }
}

impl Replies {
    fn new(out: Box<dyn Write + Send>) -> Self {
        Replies {
            out: Mutex::new(Some(ResponseWriter::new(out))),
        }
    }

    /// Writes one reply, and flushes if asked. If the output is gone (the go command
    /// died), replies are dropped from then on.
    fn send(&self, r: &Response, flush: bool) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = g.as_mut()
            && (w.write(r).is_err() || (flush && w.flush().is_err()))
        {
            tracing::debug!("writing replies failed; the go command has gone");
            *g = None;
        }
    }

    fn flush(&self) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = g.as_mut()
            && w.flush().is_err()
        {
            *g = None;
        }
    }

    /// Flushes and drops the output (closing stdout). Late replies are dropped.
    fn close(&self) {
        if let Some(w) = self.out.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.into_inner();
        }
    }
}

/// First 12 hex digits of an id, for messages.
pub fn short_hex(id: &Id) -> String {
    let mut s = hex::encode(&id[..6]);
    s.push('…');
    s
}
