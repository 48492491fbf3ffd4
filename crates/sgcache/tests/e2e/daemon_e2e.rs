//! The shared daemon with the real go command and the real binary: many go commands
//! served by one daemon, a daemon killed (-9) or wedged (SIGSTOP) mid-build, uploads
//! delivered after the go command exited, refusal of a foreign hello, and auto-start of
//! exactly one daemon that exits when idle.
//!
//! Every test gets its own `XDG_RUNTIME_DIR` (so its sockets are its own), one local
//! directory (the configuration hash covers it) and a `file://` remote. The tests of this
//! file run one at a time: each starts several go commands on a two-core machine.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::{bin, compiles, go, have_go, summary_line, write_file, write_tiny_module};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// One configuration: runtime dir, local dir, remote.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    run: PathBuf,
    cache: PathBuf,
    url: String,
    /// Daemons this test may have to clean up (auto-started ones are not our children).
    pids: Mutex<Vec<i32>>,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let run = root.join("run");
        std::fs::create_dir_all(&run).unwrap();
        Setup {
            url: format!("file://{}", root.join("remote").display()),
            cache: root.join("cache"),
            run,
            root,
            _tmp: tmp,
            pids: Mutex::new(Vec::new()),
        }
    }

    fn env(&self, c: &mut Command) {
        c.env("XDG_RUNTIME_DIR", &self.run)
            .env("SGCACHE_REMOTE", &self.url)
            .env("SGCACHE_VERBOSE", "1")
            .env("SGCACHE_UPLOAD_DEADLINE", "60s")
            .env_remove("SGCACHE_DAEMON")
            .env_remove("SGCACHE_DAEMON_IDLE")
            .env_remove("SGCACHE_NAMESPACE")
            .env_remove("SGCACHE_PREFETCH");
    }

    /// A go command through sgcache with this configuration (daemon mode: default `on`).
    fn go(&self, module: &Path) -> Command {
        let mut c = go(module, &self.cache, true);
        self.env(&mut c);
        c
    }

    fn sgcache(&self) -> Command {
        let mut c = Command::new(bin());
        self.env(&mut c);
        c.env("SGCACHE_DIR", &self.cache);
        c
    }

    /// Machine A: builds a fresh tiny module through daemon `d` (which must serve it);
    /// returns the module and the go command's output.
    fn build_through(&self, d: &Daemon, flavour: &str) -> (PathBuf, Output) {
        let m = self.root.join("a");
        write_tiny_module(&m, flavour);
        let mut c = self.go(&m);
        c.args(["build", "-x", "./..."]);
        let out = c.output().unwrap();
        let line = assert_ok(&out, "machine A through the daemon");
        assert_eq!(daemon_pid(&line), Some(d.pid()), "{line}");
        (m, out)
    }

    /// Machine B: a fresh local directory, the same remote, in-process, must compile
    /// nothing of module `m`; returns its summary line.
    fn machine_b_compiles_nothing(&self, m: &Path) -> String {
        let mut c = go(m, &self.root.join("cache-b"), true);
        self.env(&mut c);
        c.env("SGCACHE_DAEMON", "off")
            .args(["build", "-x", "./..."]);
        let out = c.output().unwrap();
        let line = assert_ok(&out, "machine B");
        assert_eq!(compiles(&out.stderr), 0, "machine B compiled: {line}");
        line
    }

    /// Starts `sgcache daemon` in the foreground (our child) and waits until it answers.
    fn start_daemon(&self, extra: &[(&str, &str)]) -> Daemon {
        let mut c = self.sgcache();
        c.arg("daemon").stdin(Stdio::null()).stdout(Stdio::null());
        c.stderr(std::fs::File::create(self.root.join("daemon.log")).unwrap());
        for (k, v) in extra {
            c.env(k, v);
        }
        let child = c.spawn().expect("spawn sgcache daemon");
        let d = Daemon { child };
        let t0 = Instant::now();
        while self.status().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the daemon did not answer within 10s; log:\n{}",
                std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// `sgcache daemon --status` as JSON, or `None` when no daemon answers.
    fn status(&self) -> Option<serde_json::Value> {
        let out = self.sgcache().args(["daemon", "--status"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The socket files in this setup's runtime directory.
    fn sockets(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.run.join("sgcache"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sock"))
            .collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for pid in self.pids.lock().unwrap().drain(..) {
            if alive(pid) {
                crate::common::sigkill(pid);
            }
        }
    }
}

/// A daemon we started; killed when dropped.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the daemon to exit on its own, failing with `what` after `limit`.
    fn exit_within(&mut self, limit: Duration, what: &str) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(t0.elapsed() < limit, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        signal(self.pid(), libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid of a process this test started; no memory involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => false,
    }
}

/// The daemon pid a go command's summary line names, if it used one.
fn daemon_pid(summary: &str) -> Option<i32> {
    let rest = summary.split("(daemon pid ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Spawns a go command with piped output.
fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().expect("spawn go")
}

/// Waits for a go command, killing it (and failing) after `limit`.
fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?} (a wedged daemon must not hang a build)\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    summary_line(&out.stderr).unwrap_or_else(|| {
        panic!(
            "{what}: no summary line in\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A main package that imports fmt and a package of its own: links, so it takes a while.
fn write_fmt_module(root: &Path, n: usize) {
    write_file(
        root,
        "go.mod",
        &format!("module example.com/f{n}\n\ngo 1.21\n"),
    );
    write_file(
        root,
        "lib/lib.go",
        &format!("package lib\n\n// N is a number.\nfunc N() int {{ return {n} }}\n"),
    );
    write_file(
        root,
        "main.go",
        &format!(
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/f{n}/lib\"\n)\n\nfunc main() {{ fmt.Println(lib.N()) }}\n"
        ),
    );
}

/// Fills the remote with what `fmt` needs, from a separate local directory, in-process.
fn seed_remote_with_fmt(s: &Setup) {
    let m = s.root.join("seed-mod");
    write_fmt_module(&m, 999);
    let mut c = go(&m, &s.root.join("seed-cache"), true);
    s.env(&mut c);
    c.env("SGCACHE_DAEMON", "off")
        .args(["build", "-o", "/dev/null", "."]);
    let out = c.output().unwrap();
    assert_ok(&out, "seeding the remote");
}

#[test]
fn eight_go_commands_share_one_daemon() {
    if !have_go("eight_go_commands_share_one_daemon") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    let d = s.start_daemon(&[]);
    let children: Vec<Child> = (0..8)
        .map(|i| {
            let m = s.root.join(format!("m{i}"));
            write_tiny_module(&m, &format!("flavour-{i}-{}", "x".repeat(i)));
            let mut c = s.go(&m);
            c.args(["build", "-x", "./..."]);
            spawn(c)
        })
        .collect();
    for (i, ch) in children.into_iter().enumerate() {
        let out = wait_within(ch, Duration::from_secs(300), &format!("go build {i}"));
        let line = assert_ok(&out, &format!("go build {i}"));
        assert_eq!(
            daemon_pid(&line),
            Some(d.pid()),
            "go build {i} did not use the daemon: {line}"
        );
        assert!(
            !line.contains("daemon_fallbacks="),
            "go build {i} fell back: {line}"
        );
        assert!(
            compiles(&out.stderr) >= 3,
            "go build {i} compiled nothing (cold)"
        );
    }
    let st = s.status().expect("daemon status");
    assert!(
        st["metrics"]["daemon_clients"].as_u64().unwrap() >= 8,
        "status: {st}"
    );
    assert!(st["lookups"].as_u64().unwrap() >= 8, "status: {st}");
    assert!(
        st["uploads_queued"].as_u64().unwrap() >= 8 * 3,
        "status: {st}"
    );
}

#[test]
fn kill_9_daemon_mid_build_every_go_command_succeeds() {
    if !have_go("kill_9_daemon_mid_build_every_go_command_succeeds") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    seed_remote_with_fmt(&s);
    let d = s.start_daemon(&[]);
    let children: Vec<Child> = (0..8)
        .map(|i| {
            let m = s.root.join(format!("f{i}"));
            write_fmt_module(&m, i);
            let mut c = s.go(&m);
            // No prefetch: every std package is a lookup the go command waits for.
            c.env("SGCACHE_PREFETCH", "0")
                .args(["build", "-o", "/dev/null", "."]);
            spawn(c)
        })
        .collect();
    // Mid-build: once the daemon is answering lookups for several clients, stop it (so
    // lookups pile up unanswered), then kill it.
    let t0 = Instant::now();
    loop {
        let st = s.status();
        let busy = st.as_ref().is_some_and(|st| {
            st["clients_now"].as_u64().unwrap_or(0) >= 3 && st["lookups"].as_u64().unwrap_or(0) >= 1
        });
        if busy {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the builds never got busy: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(d.pid(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(300));
    crate::common::sigkill(d.pid());
    let mut fell_back = 0;
    for (i, ch) in children.into_iter().enumerate() {
        let out = wait_within(ch, Duration::from_secs(300), &format!("go build {i}"));
        let line = assert_ok(&out, &format!("go build {i} after kill -9"));
        if line.contains("then in-process") {
            fell_back += 1;
        }
    }
    assert!(
        fell_back >= 1,
        "no go command was mid-build when the daemon was killed"
    );
    let killed = d.pid();
    drop(d);

    // The killed daemon left its socket behind: a go command still works (in-process) ...
    assert_eq!(s.sockets().len(), 1, "the stale socket is there");
    let m = s.root.join("after");
    write_fmt_module(&m, 100);
    let mut c = s.go(&m);
    c.args(["build", "-o", "/dev/null", "."]);
    let line = assert_ok(&c.output().unwrap(), "go build with a stale socket");
    assert!(line.contains("(in-process)"), "{line}");
    // ... and the next daemon replaces the stale socket.
    let mut c = s.go(&m);
    c.env("SGCACHE_DAEMON", "auto")
        .env("SGCACHE_DAEMON_IDLE", "3s")
        .args(["build", "-o", "/dev/null", "."]);
    let line = assert_ok(&c.output().unwrap(), "go build starting a new daemon");
    let pid = daemon_pid(&line).unwrap_or_else(|| panic!("no new daemon: {line}"));
    s.pids.lock().unwrap().push(pid);
    assert_ne!(pid, killed, "{line}");
}

#[test]
fn uploads_are_delivered_after_the_go_command_exits() {
    if !have_go("uploads_are_delivered_after_the_go_command_exits") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    let d = s.start_daemon(&[]);
    let (m, out) = s.build_through(&d, "after-exit");
    assert!(compiles(&out.stderr) >= 3);
    // The go command has exited; the daemon delivers what it queued.
    let t0 = Instant::now();
    loop {
        let st = s.status().expect("daemon alive");
        let queued = st["uploads_queued"].as_u64().unwrap();
        let done = st["metrics"]["uploads"].as_u64().unwrap();
        if queued >= 3 && st["uploads_pending"] == 0 && done >= queued {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "uploads not delivered: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Machine B: a fresh local directory, the same remote, in-process: zero compiles.
    let line = s.machine_b_compiles_nothing(&m);
    assert!(line.contains("(in-process)"), "{line}");
}

/// `sgcache daemon --stop` returns only once the daemon has delivered its queue and exited
/// (what a CI job's last step needs): right after it, the daemon is gone, and a fresh machine
/// finds everything on the remote.
#[test]
fn stop_returns_after_the_daemon_has_drained_and_exited() {
    if !have_go("stop_returns_after_the_daemon_has_drained_and_exited") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    let mut d = s.start_daemon(&[]);
    let (m, _) = s.build_through(&d, "stop-drains");
    let stop = s.sgcache().args(["daemon", "--stop"]).output().unwrap();
    let said = String::from_utf8_lossy(&stop.stdout);
    assert!(
        stop.status.success(),
        "--stop: {said}{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(said.contains("stopped"), "--stop did not wait: {said}");
    // Gone already: reap it without waiting long.
    d.exit_within(
        Duration::from_secs(2),
        "--stop returned while the daemon still ran",
    );
    assert!(s.status().is_none(), "a daemon still answers");
    s.machine_b_compiles_nothing(&m);
}

/// SIGTERM (what systemd or a CI runner sends) stops the daemon like `--stop`: it exits 0
/// after delivering its queue, and removes its socket.
#[test]
fn sigterm_drains_and_exits() {
    if !have_go("sigterm_drains_and_exits") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    let mut d = s.start_daemon(&[]);
    let (m, _) = s.build_through(&d, "sigterm");
    signal(d.pid(), libc::SIGTERM);
    let status = d.exit_within(
        Duration::from_secs(20),
        "the daemon did not exit on SIGTERM",
    );
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(s.sockets().is_empty(), "socket left: {:?}", s.sockets());
    s.machine_b_compiles_nothing(&m);
}

#[test]
fn wedged_daemon_does_not_hang_the_build() {
    if !have_go("wedged_daemon_does_not_hang_the_build") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    seed_remote_with_fmt(&s);

    // Stopped before the go command starts: the hello times out, in-process from the start.
    let d = s.start_daemon(&[]);
    signal(d.pid(), libc::SIGSTOP);
    let m = s.root.join("w0");
    write_fmt_module(&m, 0);
    let mut c = s.go(&m);
    c.args(["build", "-o", "/dev/null", "."]);
    let out = wait_within(
        spawn(c),
        Duration::from_secs(120),
        "go build, daemon stopped",
    );
    let line = assert_ok(&out, "go build, daemon stopped");
    assert!(line.contains("(in-process)"), "{line}");
    drop(d);

    // Stopped mid-build: overdue lookups (remote timeout 1s + 2s) move in-process.
    let d = s.start_daemon(&[]);
    let m = s.root.join("w1");
    write_fmt_module(&m, 1);
    let mut c = s.go(&m);
    c.env("SGCACHE_PREFETCH", "0")
        .env("SGCACHE_REMOTE_TIMEOUT", "1s")
        .args(["build", "-o", "/dev/null", "."]);
    let t0 = Instant::now();
    let child = spawn(c);
    loop {
        if s.status()
            .is_some_and(|st| st["lookups"].as_u64().unwrap_or(0) >= 1)
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the build never asked the daemon"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(d.pid(), libc::SIGSTOP);
    let out = wait_within(
        child,
        Duration::from_secs(120),
        "go build, daemon stopped mid-build",
    );
    let line = assert_ok(&out, "go build, daemon stopped mid-build");
    assert!(line.contains("then in-process"), "{line}");
    eprintln!("wedged mid-build: {:?}: {line}", t0.elapsed());
}

#[test]
fn foreign_hello_is_refused_and_the_client_serves_in_process() {
    if !have_go("foreign_hello_is_refused_and_the_client_serves_in_process") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    let d = s.start_daemon(&[]);
    let sock = s.sockets().pop().expect("the daemon's socket");
    // The real daemon refuses another configuration hash and another wire version.
    for hello in [
        format!(
            r#"{{"op":"hello","version":1,"config":"{}","manifest":null,"prefetch":false,"pid":1}}"#,
            "00".repeat(32)
        ),
        format!(
            r#"{{"op":"hello","version":999,"config":"{}","manifest":null,"prefetch":false,"pid":1}}"#,
            "00".repeat(32)
        ),
    ] {
        let mut u = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(u, "{hello}").unwrap();
        let mut l = String::new();
        BufReader::new(u).read_line(&mut l).unwrap();
        assert!(l.contains(r#""op":"refused""#), "{hello} -> {l}");
    }
    drop(d);
    // A process on our socket that refuses us: the go command is served in-process.
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let fake = std::thread::spawn(move || {
        let mut served = 0;
        listener.set_nonblocking(false).unwrap();
        if let Ok((u, _)) = listener.accept() {
            let mut r = BufReader::new(u.try_clone().unwrap());
            let mut l = String::new();
            let _ = r.read_line(&mut l);
            let mut w = u;
            let _ = writeln!(w, r#"{{"op":"refused","reason":"test"}}"#);
            served += 1;
        }
        served
    });
    let m = s.root.join("r");
    write_tiny_module(&m, "refused");
    let mut c = s.go(&m);
    c.args(["build", "./..."]);
    let line = assert_ok(&c.output().unwrap(), "go build, refused");
    assert!(line.contains("(in-process)"), "{line}");
    assert_eq!(fake.join().unwrap(), 1, "the client did not try the socket");
}

#[test]
fn auto_starts_exactly_one_daemon_which_exits_when_idle() {
    if !have_go("auto_starts_exactly_one_daemon_which_exits_when_idle") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    let children: Vec<Child> = (0..4)
        .map(|i| {
            let m = s.root.join(format!("auto{i}"));
            write_tiny_module(&m, &format!("auto-{i}"));
            let mut c = s.go(&m);
            c.env("SGCACHE_DAEMON", "auto")
                .env("SGCACHE_DAEMON_IDLE", "2s")
                .args(["build", "./..."]);
            spawn(c)
        })
        .collect();
    let mut pids = Vec::new();
    for (i, ch) in children.into_iter().enumerate() {
        let out = wait_within(ch, Duration::from_secs(300), &format!("go build {i}"));
        let line = assert_ok(&out, &format!("go build {i}"));
        if let Some(p) = daemon_pid(&line) {
            s.pids.lock().unwrap().push(p);
            pids.push(p);
        }
    }
    pids.sort();
    pids.dedup();
    assert_eq!(
        pids.len(),
        1,
        "go commands used several daemons (or none): {pids:?}"
    );
    let pid = pids[0];
    // A second wave joins the same daemon.
    let m = s.root.join("auto0");
    let mut c = s.go(&m);
    c.env("SGCACHE_DAEMON", "auto").args(["build", "./..."]);
    let line = assert_ok(&c.output().unwrap(), "second wave");
    assert_eq!(daemon_pid(&line), Some(pid), "{line}");
    // Idle for 2s with a drained queue: it exits and removes its socket.
    let t0 = Instant::now();
    while alive(pid) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the daemon {pid} did not exit after SGCACHE_DAEMON_IDLE=2s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "exited before the idle timeout"
    );
    assert!(
        s.sockets().is_empty(),
        "socket left behind: {:?}",
        s.sockets()
    );
}

/// A remote outage during the daemon's life switches the remote off (the breaker opens),
/// and once the remote is back and the cool-down has passed, the next request probes it and
/// the daemon uses the remote again — the same daemon, no restart.
#[test]
fn the_breaker_half_opens_and_the_remote_is_used_again() {
    if !have_go("the_breaker_half_opens_and_the_remote_is_used_again") {
        return;
    }
    let _g = serial();
    let s = Setup::new();
    // Seed the remote with module `later` from another machine (in-process).
    let later = s.root.join("later");
    write_tiny_module(&later, "after-the-outage");
    let mut c = go(&later, &s.root.join("cache-seed"), true);
    s.env(&mut c);
    c.env("SGCACHE_DAEMON", "off").args(["build", "./..."]);
    assert_ok(&c.output().unwrap(), "seeding");
    // The outage: the remote's directory is a file for a while.
    let remote = s.root.join("remote");
    let saved = s.root.join("remote.saved");
    std::fs::rename(&remote, &saved).unwrap();
    std::fs::write(&remote, b"not a directory").unwrap();

    let d = s.start_daemon(&[
        ("SGCACHE_BREAKER_THRESHOLD", "2"),
        ("SGCACHE_BREAKER_COOLDOWN", "2s"),
    ]);
    let during = s.root.join("during");
    write_tiny_module(&during, "during-the-outage");
    let mut c = s.go(&during);
    c.env("SGCACHE_PREFETCH", "0")
        .args(["build", "-x", "./..."]);
    let out = c.output().unwrap();
    let line = assert_ok(&out, "go build during the outage");
    assert_eq!(daemon_pid(&line), Some(d.pid()), "{line}");
    let st = s.status().expect("daemon status");
    assert_eq!(st["breaker"], "open", "{st}");
    assert!(st["metrics"]["breaker_trips"].as_u64() >= Some(1), "{st}");

    // The remote is back; after the cool-down the breaker lets one probe through.
    std::fs::remove_file(&remote).unwrap();
    std::fs::rename(&saved, &remote).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(s.status().unwrap()["breaker"], "half-open");
    let mut c = s.go(&later);
    c.env("SGCACHE_PREFETCH", "0")
        .args(["build", "-x", "./..."]);
    let out = c.output().unwrap();
    let line = assert_ok(&out, "go build after the outage");
    assert_eq!(daemon_pid(&line), Some(d.pid()), "same daemon: {line}");
    assert_eq!(
        compiles(&out.stderr),
        0,
        "the remote served the build again: {line}"
    );
    let st = s.status().unwrap();
    assert_eq!(st["breaker"], "closed", "{st}");
    assert!(st["lookups_found"].as_u64() >= Some(3), "{st}");
}
