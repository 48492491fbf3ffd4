//! The daemon's Prometheus endpoint (`SGCACHE_METRICS_ADDR`) with the real binary and the real
//! go command: scraped while a build goes through the daemon, its counters move (and never go
//! back); a bare port binds loopback only; an address written out binds where it says; a bad
//! address is one configuration error (exit 2) before anything starts.
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, go, have_go, summary, write_tiny_module};

/// One daemon configuration of its own (runtime dir, local dir, remote).
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("run")).unwrap();
        Setup { _tmp: tmp, root }
    }

    fn env(&self, c: &mut Command) {
        c.env("XDG_RUNTIME_DIR", self.root.join("run"))
            .env(
                "SGCACHE_REMOTE",
                format!("file://{}", self.root.join("remote").display()),
            )
            .env("SGCACHE_DIR", self.root.join("cache"))
            .env("SGCACHE_UPLOAD_DEADLINE", "60s")
            .env_remove("SGCACHE_DAEMON")
            .env_remove("SGCACHE_NAMESPACE")
            .env_remove("SGCACHE_METRICS_ADDR");
    }

    fn sgcache(&self) -> Command {
        let mut c = Command::new(bin());
        self.env(&mut c);
        c
    }

    /// `sgcache daemon` in the foreground with `SGCACHE_METRICS_ADDR=addr`, once it answers.
    fn daemon(&self, addr: &str) -> Daemon {
        let log = self.root.join("daemon.log");
        let mut c = self.sgcache();
        c.arg("daemon")
            .env("SGCACHE_METRICS_ADDR", addr)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let d = Daemon(c.spawn().expect("spawn sgcache daemon"));
        let t0 = Instant::now();
        loop {
            let st = self
                .sgcache()
                .args(["daemon", "--status"])
                .output()
                .unwrap();
            if st.status.success() {
                return d;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the daemon did not answer within 10 s; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A daemon we started: stopped (drained) when dropped, killed if it will not go.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// This machine's address on its default route, if it has one (no packet is sent).
fn non_loopback_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// `GET /metrics`: every sample, by name.
fn scrape(addr: SocketAddr) -> std::io::Result<HashMap<String, f64>> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    c.read_to_string(&mut text)?;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
        .collect())
}

fn at(m: &HashMap<String, f64>, k: &str) -> f64 {
    *m.get(k)
        .unwrap_or_else(|| panic!("no sample {k} in the scrape: {m:?}"))
}

#[test]
fn scraped_during_a_build_the_counters_move() {
    if !have_go("scraped_during_a_build_the_counters_move") {
        return;
    }
    let s = Setup::new();
    let port = free_port();
    let _d = s.daemon(&port.to_string());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let before = scrape(addr).expect("scrape before the build");
    assert_eq!(at(&before, "sgcache_uploads_total"), 0.0);
    // (`daemon --status`, which waited for the daemon, was a client already.)
    let clients_before = at(&before, "sgcache_daemon_clients_total");

    // A go command whose remote work goes through the daemon, scraped all along.
    let m = s.root.join("mod");
    write_tiny_module(&m, "metrics");
    let mut c = go(&m, &s.root.join("cache"), true);
    s.env(&mut c);
    c.env("SGCACHE_VERBOSE", "1")
        .args(["build", "./..."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut during = Vec::new();
    while child.try_wait().unwrap().is_none() {
        during.push(scrape(addr).expect("scrape during the build"));
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", summary(&out));
    assert!(
        summary(&out).contains("daemon pid"),
        "the build did not use the daemon: {}",
        summary(&out)
    );
    // The daemon delivers the uploads (and stores the manifest) after the go command exits.
    let t0 = Instant::now();
    let after = loop {
        let m = scrape(addr).expect("scrape after the build");
        if at(&m, "sgcache_uploads_total") >= 3.0
            && at(&m, "sgcache_daemon_uploads_pending") == 0.0
            && at(&m, "sgcache_manifests_stored_total") >= 1.0
        {
            break m;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "uploads: {m:?}");
        during.push(m);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!during.is_empty(), "no scrape while the build ran");
    assert!(
        during
            .iter()
            .any(|m| at(m, "sgcache_daemon_clients_total") > clients_before),
        "no scrape during the build saw the go command's client"
    );
    // Counters only grow, scrape after scrape.
    let series: Vec<&HashMap<String, f64>> = std::iter::once(&before)
        .chain(during.iter())
        .chain(std::iter::once(&after))
        .collect();
    for w in series.windows(2) {
        for (k, v) in w[0].iter().filter(|(k, _)| k.ends_with("_total")) {
            assert!(at(w[1], k) >= *v, "{k} went back from {v}");
        }
    }
    for k in [
        "sgcache_daemon_clients_total",
        "sgcache_uploads_total",
        "sgcache_remote_bytes_up_total",
        "sgcache_manifests_stored_total",
    ] {
        assert!(
            at(&after, k) > at(&before, k),
            "{k} did not move: {after:?}"
        );
    }
    eprintln!(
        "metrics: {} scrapes; uploads {} bytes up {}",
        series.len(),
        at(&after, "sgcache_uploads_total"),
        at(&after, "sgcache_remote_bytes_up_total")
    );
}

#[test]
fn a_bare_port_binds_loopback_only_and_an_address_binds_where_it_says() {
    let s = Setup::new();
    let port = free_port();
    let d = s.daemon(&port.to_string());
    scrape(SocketAddr::from(([127, 0, 0, 1], port))).expect("loopback scrape");
    // The listening socket, as the kernel has it: 127.0.0.1 only.
    if let Ok(tcp) = std::fs::read_to_string("/proc/net/tcp") {
        let ours = format!("0100007F:{port:04X}");
        let listening: Vec<&str> = tcp
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|a| a.ends_with(&format!(":{port:04X}")))
            .collect();
        assert_eq!(listening, [ours.as_str()], "{port}: {listening:?}");
    }
    match non_loopback_ip() {
        Some(ip) => {
            let r = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2));
            assert!(
                r.is_err(),
                "{ip}:{port} answered: the endpoint is not loopback-only"
            );
            drop(d);
            // Written out, another interface is served.
            let s2 = Setup::new();
            let port2 = free_port();
            let _d2 = s2.daemon(&format!("0.0.0.0:{port2}"));
            scrape(SocketAddr::new(ip, port2)).expect("0.0.0.0 serves other interfaces");
        }
        None => {
            eprintln!("SKIP the non-loopback half: this machine has no address besides loopback")
        }
    }
}

#[test]
fn a_bad_metrics_address_is_one_configuration_error() {
    let s = Setup::new();
    for bad in ["nonsense", "99999", "example.com:9184"] {
        let out = s
            .sgcache()
            .arg("daemon")
            .env("SGCACHE_METRICS_ADDR", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{bad}: {err}");
        assert!(
            err.contains("SGCACHE_METRICS_ADDR") && err.contains(bad),
            "{bad}: {err}"
        );
    }
    // Nothing was started: no socket in the runtime directory.
    let socks = std::fs::read_dir(s.root.join("run/sgcache"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "sock"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(socks, 0);
    // A port already taken: the daemon says so in one line and does not serve.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = s
        .sgcache()
        .arg("daemon")
        .env("SGCACHE_METRICS_ADDR", &port)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("metrics endpoint"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
