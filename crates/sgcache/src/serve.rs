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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sgcache_disk::{DiskCache, IndexEntry, OutputId};
use sgcache_protocol::{
    BodyError, CodecError, Command, Frame, Request, RequestReader, Response, ResponseWriter,
};
use sgcache_tier::{Answer, Hit, RemoteWork};
use sgcache_types::Metrics;

/// Input buffer: large enough that a put body arrives in few reads.
const INPUT_BUFFER: usize = 256 * 1024;

/// The `SGCACHE_VERBOSE` summary at the end of serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// None.
    Off,
    /// One human line.
    Human,
    /// One JSON object (`{"sgcache":{…}}`) with every counter of the run.
    Json,
}

/// What serving needs besides its input and output.
#[derive(Debug)]
pub struct Server {
    disk: Arc<DiskCache>,
    max_size: Option<u64>,
    metrics: Arc<Metrics>,
    disk_warned: AtomicBool,
    remote: Box<dyn RemoteWork>,
    summary: Summary,
    started: Instant,
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
    /// A server over an opened local tier, doing remote work through `remote` and counting
    /// into `metrics` (shared with `remote`).
    pub fn new(
        disk: Arc<DiskCache>,
        max_size: Option<u64>,
        remote: Box<dyn RemoteWork>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Server {
            disk,
            max_size,
            metrics,
            disk_warned: AtomicBool::new(false),
            remote,
            summary: Summary::Off,
            started: Instant::now(),
        }
    }

    /// Print the `SGCACHE_VERBOSE` summary on stderr at the end of serving (before the output
    /// is closed, so it comes out before the go command returns), timed from `started`.
    pub fn with_summary(mut self, summary: Summary, started: Instant) -> Self {
        self.summary = summary;
        self.started = started;
        self
    }

    /// The counters of this run.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
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
                self.metrics.errors.inc();
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
        if let Some(line) = self.summary_line() {
            let _ = writeln!(io::stderr(), "{line}");
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
            self.metrics.errors.inc();
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
        self.metrics.gets.inc();
        let action = req.action_id.expect("checked by the codec");
        let local = match self.disk.get_file(&action) {
            Ok(found) => found,
            Err(e) => {
                self.warn_disk(&e);
                None
            }
        };
        if let Some((entry, _)) = &local {
            self.remote.note_used(entry);
            return Some(reply(&self.metrics, req.id, local, false));
        }
        let (id, replies, metrics) = (req.id, replies.clone(), self.metrics.clone());
        let since = Instant::now();
        let done = Box::new(move |found: Option<Hit>| {
            metrics.remote_waits.inc();
            metrics
                .remote_wait_ms
                .add(since.elapsed().as_millis() as u64);
            replies.send(&reply(&metrics, id, found, true), true);
        });
        match self.remote.lookup(action, done) {
            Answer::Later => None,
            Answer::Now(found) => Some(reply(&self.metrics, req.id, found, true)),
        }
    }

    fn put<R: io::BufRead>(
        &self,
        reader: &mut RequestReader<R>,
        req: &Request,
    ) -> Result<Response, CodecError> {
        self.metrics.puts.inc();
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
        let entry = IndexEntry {
            action,
            output: out,
            size,
            time_nanos: sgcache_disk::unix_nanos(self.disk.now()),
        };
        if let Err(e) = self.disk.put_index_entry(&entry) {
            self.warn_disk(&e);
            return Ok(self.put_error(req.id, &out, e));
        }
        self.metrics.put_bytes.add(size);
        self.remote.note_used(&entry);
        self.remote.upload(entry, path.clone());
        match path.into_os_string().into_string() {
            Ok(p) => Ok(Response::stored(req.id, p)),
            Err(_) => Ok(self.put_error(req.id, &out, "output path is not UTF-8")),
        }
    }

    fn put_error(&self, id: i64, out: &OutputId, e: impl std::fmt::Display) -> Response {
        self.metrics.errors.inc();
        Response::error(id, format!("put output {}: {e}", out.short()))
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
        let report = self.remote.finish();
        let lost = report.dropped + report.abandoned + report.failed + report.skipped_down;
        if lost > 0 {
            tracing::warn!(
                "remote: {lost} uploads not delivered ({} queue full, {} past \
                 SGCACHE_UPLOAD_DEADLINE, {} failed, {} skipped: remote down); they stay in the \
                 local cache",
                report.dropped,
                report.abandoned,
                report.failed,
                report.skipped_down
            );
        }
    }

    /// The daily trim and the stats file, after the go command has its answer.
    fn finish_local(&self) {
        // Go's daily age trim; on the days it runs, the size cap is enforced in the same scan.
        let opts = sgcache_disk::TrimOptions {
            max_age: None,
            max_size: self.max_size,
        };
        if let Err(e) = self.disk.trim_if_due_with(&opts) {
            tracing::warn!("trimming the local cache: {e}");
        }
        if let Err(e) = sgcache_disk::add_counters(self.disk.dir(), &self.metrics.snapshot()) {
            tracing::debug!("saving stats: {e}");
        }
    }

    /// The `SGCACHE_VERBOSE` summary, if asked for.
    pub fn summary_line(&self) -> Option<String> {
        let s = self.metrics.snapshot();
        let ms = self.started.elapsed().as_millis();
        match self.summary {
            Summary::Off => None,
            Summary::Json => Some(
                serde_json::json!({"sgcache": {
                    "elapsed_ms": ms,
                    "remote": self.remote.describe(),
                    "metrics": s,
                }})
                .to_string(),
            ),
            Summary::Human => {
                let mut remote = format!("; remote ({})", self.remote.describe());
                for f in s.nonzero() {
                    if !matches!(
                        f.name,
                        "gets"
                            | "hits"
                            | "hits_remote"
                            | "misses"
                            | "puts"
                            | "put_bytes"
                            | "hit_bytes"
                            | "errors"
                    ) {
                        remote.push_str(&format!(" {}={}", f.name, f.value));
                    }
                }
                Some(format!(
                    "sgcache: {} gets ({} hits, {} of them remote, {} misses), {} puts, {} in, \
                     {} out, {} errors, {ms} ms{remote}",
                    s.gets,
                    s.hits,
                    s.hits_remote,
                    s.misses,
                    s.puts,
                    bytesize::ByteSize(s.put_bytes).display().iec(),
                    bytesize::ByteSize(s.hit_bytes).display().iec(),
                    s.errors,
                ))
            }
        }
    }
}

/// The reply to a get, counting it.
fn reply(metrics: &Metrics, id: i64, found: Option<Hit>, remote: bool) -> Response {
    if let Some((entry, path)) = found
        && let Ok(path) = path.into_os_string().into_string()
    {
        metrics.hits.inc();
        if remote {
            metrics.hits_remote.inc();
        }
        metrics.hit_bytes.add(entry.size);
        return Response::hit(id, entry.output, entry.size, entry.time_nanos, path);
    }
    metrics.misses.inc();
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
