//! A fault-injecting HTTP/1.1 TCP proxy on loopback, for tests against a real server
//! (nginx WebDAV from `.ci/servers.sh`).
//!
//! It forwards bytes unchanged and frames both directions just enough to know where each
//! message starts and where its body ends (`Content-Length`; a response to `HEAD`, a 1xx,
//! 204 or 304 has no body; no length means "until close"). That gives:
//!
//! - **Latency:** `set_latency` holds every request head for that long before its first
//!   byte is forwarded (one added round trip per request, whatever its size);
//!   `set_connect_latency` delays each new connection before it is opened upstream.
//! - **Counting:** [`Counts::requests`] is the number of HTTP request heads the clients
//!   sent (one per request/response round trip; keep-alive does not hide any), split by
//!   method in [`Counts::methods`].
//! - **Faults** ([`Fault`]): after `n` bytes of a response body, or of a request body
//!   (an upload), the client connection is reset (`SO_LINGER` 0, then close: the client
//!   sees `ECONNRESET`, not a clean end) and the upstream connection is dropped the same
//!   way, so the server sees the upload end early.
//!
//! Chunked bodies are not framed: such a connection is forwarded as it is, uncounted from
//! then on, and counted in [`Counts::unframed`] so a test can insist on zero.
#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Reset the connection once `n` bytes of a response body have been forwarded (bodies
    /// of at most `n` bytes pass whole).
    ResetResponseAfter(u64),
    /// Reset both sides once `n` bytes of a request body have been forwarded upstream
    /// (uploads of at most `n` bytes pass whole).
    ResetUploadAfter(u64),
}

/// What went through. All counters only grow.
#[derive(Debug, Default)]
pub struct Counts {
    pub connections: AtomicU64,
    /// HTTP request heads seen (= round trips).
    pub requests: AtomicU64,
    /// Connections reset by a [`Fault`].
    pub resets: AtomicU64,
    /// Connections that carried a chunked body (forwarded unframed).
    pub unframed: AtomicU64,
    /// Request heads by method.
    pub methods: Mutex<BTreeMap<String, u64>>,
    /// Request heads by method and path (`"GET /cache/cas/…"`).
    pub paths: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    latency_us: AtomicU64,
    connect_latency_us: AtomicU64,
    fault: Mutex<Fault>,
    counts: Counts,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("proxy bind");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target,
            latency_us: AtomicU64::new(0),
            connect_latency_us: AtomicU64::new(0),
            fault: Mutex::new(Fault::None),
            counts: Counts::default(),
        });
        let s = shared.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(connection(client, s.clone()));
            }
        });
        Proxy {
            addr,
            shared,
            _rt: rt,
        }
    }

    /// A proxy in front of the server of an `http://host:port/prefix` URL, and the same
    /// URL pointing at the proxy.
    pub fn for_http_url(url: &str) -> (Proxy, String) {
        let rest = url.strip_prefix("http://").expect("an http:// URL");
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let target: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .expect("resolve")
            .next()
            .expect("an address");
        let p = Proxy::start(target);
        let url = format!("http://{}/{path}", p.addr);
        (p, url)
    }

    /// Holds each request head for `d` before forwarding it.
    pub fn set_latency(&self, d: Duration) {
        self.shared.latency_us.store(d.as_micros() as u64, Relaxed);
    }

    /// Delays each new connection by `d` before connecting upstream.
    pub fn set_connect_latency(&self, d: Duration) {
        self.shared
            .connect_latency_us
            .store(d.as_micros() as u64, Relaxed);
    }

    /// Applies `f` to requests and responses from now on (connections already open
    /// included).
    pub fn set_fault(&self, f: Fault) {
        *self.shared.fault.lock().unwrap() = f;
    }

    pub fn counts(&self) -> &Counts {
        &self.shared.counts
    }

    /// Request heads seen so far.
    pub fn requests(&self) -> u64 {
        self.shared.counts.requests.load(Relaxed)
    }

    /// Requests of `method` per path whose path contains `part`, e.g. `("GET", "/cas/")`.
    pub fn requests_per_path(&self, method: &str, part: &str) -> BTreeMap<String, u64> {
        let prefix = format!("{method} ");
        self.shared
            .counts
            .paths
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && k.contains(part))
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    /// Requests of `method` seen so far (e.g. `"GET"`: the reads).
    pub fn requests_of(&self, method: &str) -> u64 {
        let m = self.shared.counts.methods.lock().unwrap();
        m.get(method).copied().unwrap_or(0)
    }

    /// Connections reset by a fault so far.
    pub fn resets(&self) -> u64 {
        self.shared.counts.resets.load(Relaxed)
    }

    /// One line: connections, requests by method, resets, unframed.
    pub fn describe(&self) -> String {
        let c = &self.shared.counts;
        format!(
            "{} connections, {} requests {:?}, {} resets, {} unframed",
            c.connections.load(Relaxed),
            c.requests.load(Relaxed),
            c.methods.lock().unwrap(),
            c.resets.load(Relaxed),
            c.unframed.load(Relaxed)
        )
    }
}

/// Why a pump stopped early.
#[derive(Debug)]
enum Stop {
    /// A fault fired: reset both connections.
    Reset,
    /// An I/O error on either side: just close.
    Io,
}

async fn connection(mut client: TcpStream, s: Arc<Shared>) {
    s.counts.connections.fetch_add(1, Relaxed);
    let delay = s.connect_latency_us.load(Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_micros(delay)).await;
    }
    let Ok(mut upstream) = TcpStream::connect(s.target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let methods = Mutex::new(VecDeque::new());
    let result = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        tokio::try_join!(
            pump(cr, uw, true, &s, &methods),
            pump(ur, cw, false, &s, &methods)
        )
    };
    if let Err(Stop::Reset) = result {
        s.counts.resets.fetch_add(1, Relaxed);
        abort(&client);
        abort(&upstream);
    }
}

/// Sets `SO_LINGER` to 0, so that closing the socket sends RST instead of FIN.
fn abort(sock: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a pointer to a live `linger` and its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Where a direction is inside the current message.
enum State {
    /// Reading a head (bytes so far).
    Head(Vec<u8>),
    /// Inside a body: bytes left, bytes forwarded.
    Body { left: u64, seen: u64 },
    /// Forward everything until the end (no framing).
    Raw { seen: u64 },
}

/// Forwards one direction, framing HTTP messages; `requests` is the client → server side.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    requests: bool,
    s: &Shared,
    methods: &Mutex<VecDeque<String>>,
) -> Result<(), Stop> {
    let mut buf = vec![0u8; 64 << 10];
    let mut state = State::Head(Vec::new());
    loop {
        let n = from.read(&mut buf).await.map_err(|_| Stop::Io)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let mut i = 0;
        while i < n {
            if let State::Head(head) = &mut state {
                if head.is_empty() && requests {
                    s.counts.requests.fetch_add(1, Relaxed);
                    let d = s.latency_us.load(Relaxed);
                    if d > 0 {
                        tokio::time::sleep(Duration::from_micros(d)).await;
                    }
                }
                let searched = head.len().saturating_sub(3);
                head.extend_from_slice(&buf[i..n]);
                let mut take = n - i;
                let mut next = None;
                if let Some(p) = find(&head[searched..], b"\r\n\r\n") {
                    let end = searched + p + 4;
                    take -= head.len() - end;
                    head.truncate(end);
                    next = Some(next_state(head, requests, s, methods));
                }
                to.write_all(&buf[i..i + take])
                    .await
                    .map_err(|_| Stop::Io)?;
                i += take;
                if let Some(next) = next {
                    state = next;
                }
                continue;
            }
            let (left, seen) = match state {
                State::Body { left, seen } => (left, seen),
                State::Raw { seen } => (u64::MAX, seen),
                State::Head(_) => unreachable!(),
            };
            let take = ((n - i) as u64).min(left);
            let limit = match (*s.fault.lock().unwrap(), requests) {
                (Fault::ResetResponseAfter(k), false) | (Fault::ResetUploadAfter(k), true) => {
                    Some(k)
                }
                _ => None,
            };
            if let Some(k) = limit
                && seen + take > k
            {
                // Forward up to the limit, then reset.
                let room = (k - seen) as usize;
                to.write_all(&buf[i..i + room])
                    .await
                    .map_err(|_| Stop::Io)?;
                let _ = to.flush().await;
                return Err(Stop::Reset);
            }
            to.write_all(&buf[i..i + take as usize])
                .await
                .map_err(|_| Stop::Io)?;
            i += take as usize;
            state = match state {
                State::Body { .. } if left == take => State::Head(Vec::new()),
                State::Body { .. } => State::Body {
                    left: left - take,
                    seen: seen + take,
                },
                _ => State::Raw { seen: seen + take },
            };
        }
    }
}

/// What follows a complete head.
fn next_state(head: &[u8], requests: bool, s: &Shared, methods: &Mutex<VecDeque<String>>) -> State {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut lines = text.split("\r\n");
    let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim() {
                "content-length" => length = v.trim().parse::<u64>().ok(),
                "transfer-encoding" => chunked |= v.contains("chunked"),
                _ => {}
            }
        }
    }
    let body = |len: u64| {
        if len == 0 {
            State::Head(Vec::new())
        } else {
            State::Body { left: len, seen: 0 }
        }
    };
    if chunked {
        s.counts.unframed.fetch_add(1, Relaxed);
        return State::Raw { seen: 0 };
    }
    if requests {
        let method = first.first().copied().unwrap_or("").to_ascii_uppercase();
        *s.counts
            .methods
            .lock()
            .unwrap()
            .entry(method.clone())
            .or_default() += 1;
        let path = first.get(1).copied().unwrap_or("");
        *s.counts
            .paths
            .lock()
            .unwrap()
            .entry(format!("{method} {path}"))
            .or_default() += 1;
        methods.lock().unwrap().push_back(method);
        return body(length.unwrap_or(0));
    }
    let status: u16 = first.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if (100..200).contains(&status) {
        return State::Head(Vec::new()); // the final response follows
    }
    let method = methods.lock().unwrap().pop_front().unwrap_or_default();
    if method == "HEAD" || status == 204 || status == 304 {
        return State::Head(Vec::new());
    }
    match length {
        Some(len) => body(len),
        None => State::Raw { seen: 0 },
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
