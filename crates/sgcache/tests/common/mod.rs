//! Helpers shared by the integration tests: the built binary, the go command, and a
//! small Go module to build.
#![allow(dead_code, clippy::print_stderr)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The sgcache binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sgcache"))
}

/// Whether the go command is available; prints why a test skips when it is not.
pub fn have_go(test: &str) -> bool {
    let ok = Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP {test}: the go command is not on PATH (these tests run the real go)");
    }
    ok
}

/// A go command with a clean, hermetic environment.
pub fn go(dir: &Path, cache: &Path, prog: bool) -> Command {
    let mut c = Command::new("go");
    c.current_dir(dir)
        .env("GOCACHE", cache)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off")
        .env("GOTELEMETRY", "off")
        .env_remove("SGCACHE_DIR")
        .env_remove("SGCACHE_MAX_SIZE")
        .env_remove("SGCACHE_REMOTE")
        .env_remove("GOCACHEPROG");
    if prog {
        c.env("GOCACHEPROG", bin());
    } else {
        c.env("GOCACHEPROG", "");
    }
    c
}

/// Runs and requires success, returning the output.
pub fn run_ok(mut c: Command) -> Output {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        c,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A go command through sgcache with the remote `url` in `namespace`, with the summary
/// line on (`SGCACHE_VERBOSE`) and a generous upload deadline.
pub fn go_remote(dir: &Path, cache: &Path, url: &str, namespace: &str) -> Command {
    let mut c = go(dir, cache, true);
    c.env("SGCACHE_REMOTE", url)
        .env("SGCACHE_NAMESPACE", namespace)
        .env("SGCACHE_VERBOSE", "1")
        .env("SGCACHE_UPLOAD_DEADLINE", "60s");
    c
}

/// `go build -x ./...`, required to succeed.
pub fn build_x(c: &mut Command) -> Output {
    c.args(["build", "-x", "./..."]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The sgcache lines (summary, warnings) of a go command's stderr.
pub fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("sgcache"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A counter from the `SGCACHE_VERBOSE` summary line (`name=N`; remote counters appear
/// without their `remote_` prefix), summed over every sgcache the go command started.
pub fn summary_counter(out: &Output, name: &str) -> u64 {
    let key = format!(" {name}=");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("sgcache: "))
        .filter_map(|l| l.split(&key).nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Number of compiler invocations in `go build -x` output.
pub fn compiles(stderr: &[u8]) -> usize {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("/compile ") || l.contains("/compile\" "))
        .count()
}

/// Writes a module with two library packages, a main package and a test.
pub fn write_module(root: &Path) {
    let files: &[(&str, &str)] = &[
        ("go.mod", "module example.com/m\n\ngo 1.21\n"),
        (
            "lib/a/a.go",
            "package a\n\nimport \"strings\"\n\n// Upper upper-cases.\nfunc Upper(s string) string { return strings.ToUpper(s) }\n",
        ),
        (
            "lib/a/a_test.go",
            "package a\n\nimport \"testing\"\n\nfunc TestUpper(t *testing.T) {\n\tif Upper(\"x\") != \"X\" {\n\t\tt.Fatal(\"bad\")\n\t}\n}\n",
        ),
        (
            "lib/b/b.go",
            "package b\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/m/lib/a\"\n)\n\n// Greet greets.\nfunc Greet(n string) string { return fmt.Sprintf(\"hello %s\", a.Upper(n)) }\n",
        ),
        (
            "cmd/hello/main.go",
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/m/lib/b\"\n)\n\nfunc main() { fmt.Println(b.Greet(\"gopher\")) }\n",
        ),
    ];
    for (name, body) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// Three packages that import nothing from std: a cold build is three compiles, so every
/// backend can run the full A → B round trip in seconds.
pub fn write_tiny_module(root: &Path, flavour: &str) {
    let files = [
        ("go.mod", "module example.com/tiny\n\ngo 1.21\n".to_owned()),
        ("a/a.go", format!("package a\n\n// V is a value.\nfunc V() int {{ return {} }}\n", flavour.len())),
        ("b/b.go", "package b\n\nimport \"example.com/tiny/a\"\n\n// W doubles.\nfunc W() int { return 2 * a.V() }\n".to_owned()),
        ("c/c.go", format!("package c\n\nimport \"example.com/tiny/b\"\n\n// X names.\nfunc X() (string, int) {{ return {flavour:?}, b.W() }}\n")),
    ];
    for (name, body) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// A package that imports "C" (seed 000's regression test).
pub fn write_cgo_module(root: &Path) {
    let files: &[(&str, &str)] = &[
        ("go.mod", "module example.com/cgo\n\ngo 1.21\n"),
        (
            "x.go",
            "package x\n\n// int twice(int v) { return 2*v; }\nimport \"C\"\n\n// Twice doubles.\nfunc Twice(v int) int { return int(C.twice(C.int(v))) }\n",
        ),
    ];
    for (name, body) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Serving a byte stream (tests/protocol.rs, tests/reliability_*.rs).

/// `sgcache` serving the local tier `dir` (no remote, no size cap), stdin and stdout
/// piped, stderr piped.
pub fn serve_cmd(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("SGCACHE_DIR", dir)
        .env_remove("SGCACHE_REMOTE")
        .env_remove("SGCACHE_MAX_SIZE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// One run of sgcache over a whole input stream.
#[derive(Debug)]
pub struct Served {
    /// Exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    pub signaled: bool,
    /// Peak RSS of the sgcache process itself (`wait4`), KiB.
    pub maxrss_kb: i64,
    /// Stdout as it came.
    pub raw: String,
    /// Stdout, one JSON value per line.
    pub replies: Vec<serde_json::Value>,
    pub stderr: String,
}

impl Served {
    /// The reply with `ID` `id`.
    pub fn reply(&self, id: i64) -> &serde_json::Value {
        self.replies
            .iter()
            .find(|r| r["ID"] == id)
            .unwrap_or_else(|| panic!("no reply to {id}: {}", self.raw))
    }

    /// The `Err` of the reply to `id`.
    pub fn err(&self, id: i64) -> String {
        self.reply(id)["Err"]
            .as_str()
            .unwrap_or_else(|| panic!("reply {id} is not an error: {}", self.raw))
            .to_owned()
    }
}

/// Runs sgcache on `input` (fed from a thread, so a reply-heavy stream cannot deadlock)
/// and reaps it with `wait4` to get its own peak RSS.
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std cannot see
pub fn serve_input(dir: &Path, input: Vec<u8>) -> Served {
    use std::io::{Read, Write};
    let mut child = serve_cmd(dir).spawn().expect("spawn sgcache");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // Fails with EPIPE if sgcache stops reading early; what it answered still counts.
        let _ = stdin.write_all(&input);
    });
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; status and ru are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4");
    let _ = feeder.join();
    let raw = String::from_utf8(out_t.join().unwrap()).expect("replies are UTF-8");
    let replies = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("reply {l:?} is not JSON: {e}")))
        .collect();
    Served {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signaled: libc::WIFSIGNALED(status),
        maxrss_kb: ru.ru_maxrss,
        raw,
        replies,
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

/// Names of the files in the 256 subdirectories of a local tier (entries and temp
/// files), sorted.
pub fn cache_files(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = sub.file_name().to_string_lossy().into_owned();
        if name.len() == 2 && sub.path().is_dir() {
            for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
                v.push(f.file_name().to_string_lossy().into_owned());
            }
        }
    }
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Reliability harness helpers (tests/reliability_*.rs).

/// Whether the full trial counts were asked for (`SGCACHE_RELIABILITY_FULL=1`); CI runs the
/// reduced counts.
pub fn full() -> bool {
    std::env::var("SGCACHE_RELIABILITY_FULL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `reduced` trials by default, `full_n` with `SGCACHE_RELIABILITY_FULL=1`.
pub fn trials(reduced: usize, full_n: usize) -> usize {
    if full() { full_n } else { reduced }
}

/// A small deterministic PRNG (xorshift64*), seeded from `SGCACHE_RELIABILITY_SEED` or the
/// clock; the seed is printed so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from `SGCACHE_RELIABILITY_SEED` or the clock, printing the seed for `test`.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("SGCACHE_RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (replay with SGCACHE_RELIABILITY_SEED={seed})");
        Rng::new(seed)
    }

    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// What an independent reading of a cache directory found, with the go command's own rules
/// (`cmd/go/internal/cache`), not sgcache's code.
#[derive(Debug, Default)]
pub struct CacheCheck {
    /// `-a` files that the go command would accept.
    pub valid_actions: usize,
    /// `-a` files the go command would reject (torn, short, foreign): a miss for Go, so not
    /// corruption, but counted.
    pub rejected_actions: usize,
    /// `-d` files (or executable `-d/` directories) whose content hashes to their name.
    pub outputs: usize,
    /// Leftover sgcache temp files (`*.tmp-*`): invisible to Go, removed by trim after an hour.
    pub temps: usize,
    /// Entries the go command could read and that are wrong: an accepted `-a` whose `-d` has
    /// the right size but the wrong content, or a `-d` whose content does not hash to its name.
    pub corrupt: Vec<String>,
    /// Accepted `-a` entries, `action hex -> (output hex, size)`.
    pub actions: std::collections::HashMap<String, (String, u64)>,
}

/// Go's index entry rules: 175 bytes, `v1 <action> <output> <size %20d> <time %20d>\n`, the
/// action equal to the file name.
pub fn parse_go_entry(data: &[u8], action_hex: &str) -> Option<(String, u64)> {
    if data.len() != 175 || !data.starts_with(b"v1 ") || data[174] != b'\n' {
        return None;
    }
    let s = std::str::from_utf8(&data[..174]).ok()?;
    let f: Vec<&str> = s.split(' ').filter(|x| !x.is_empty()).collect();
    if f.len() != 5 || f[1] != action_hex || f[2].len() != 64 {
        return None;
    }
    hex::decode(f[2]).ok()?;
    let size: i64 = f[3].parse().ok()?;
    let _time: i64 = f[4].parse().ok()?;
    (size >= 0).then(|| (f[2].to_owned(), size as u64))
}

/// SHA-256 of a file, hex.
pub fn file_sha256_hex(p: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(p)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads every entry of `dir` with the go command's rules; see [`CacheCheck`].
pub fn check_cache(dir: &Path) -> CacheCheck {
    let mut c = CacheCheck::default();
    let mut outs: std::collections::HashMap<String, u64> = Default::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return c;
    };
    for sub in rd.flatten() {
        let name = sub.file_name().to_string_lossy().into_owned();
        if name.len() != 2 || !sub.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let fname = f.file_name().to_string_lossy().into_owned();
            let p = f.path();
            if fname.contains(".tmp-") {
                c.temps += 1;
            } else if let Some(out) = fname.strip_suffix("-d") {
                let file = if p.is_dir() {
                    let inner: Vec<_> = std::fs::read_dir(&p).unwrap().flatten().collect();
                    if inner.len() != 1 {
                        continue; // Go treats it as a miss.
                    }
                    inner[0].path()
                } else {
                    p.clone()
                };
                match file_sha256_hex(&file) {
                    Ok(h) if h == out => {
                        c.outputs += 1;
                        outs.insert(out.to_owned(), std::fs::metadata(&file).unwrap().len());
                    }
                    Ok(h) => c.corrupt.push(format!("`{}` hashes to {h}", p.display())),
                    Err(_) => {}
                }
            } else if let Some(action) = fname.strip_suffix("-a") {
                let data = std::fs::read(&p).unwrap_or_default();
                match parse_go_entry(&data, action) {
                    Some(e) => {
                        c.valid_actions += 1;
                        c.actions.insert(action.to_owned(), e);
                    }
                    None => c.rejected_actions += 1,
                }
            }
        }
    }
    // An accepted index entry whose output exists with the right size must be that output
    // (already hashed above; corrupt outputs are listed once).
    for (action, (out, size)) in &c.actions {
        if let Some(&have) = outs.get(out)
            && have != *size
        {
            // Go: size mismatch is a miss, but the -d itself hashed fine: entry is wrong.
            c.corrupt.push(format!(
                "entry {action} says output {out} has {size} bytes; it has {have}"
            ));
        }
    }
    c
}

/// Sets atime and mtime of every file under `dir` to `secs` seconds ago, so that
/// `sgcache verify` (which skips files modified in the last 5 minutes as possibly in
/// progress) judges everything.
pub fn age_files(dir: &Path, secs: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    let times = std::fs::FileTimes::new().set_accessed(t).set_modified(t);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(f) = std::fs::File::options().write(true).open(&p)
            {
                let _ = f.set_times(times);
            }
        }
    }
}

/// Runs `sgcache verify --json` on `dir` (after [`age_files`]) and returns the number of
/// problems it reports, and its JSON.
pub fn sgcache_verify(dir: &Path) -> (usize, serde_json::Value) {
    age_files(dir, 600);
    let out = Command::new(bin())
        .args(["verify", "--json"])
        .env("SGCACHE_DIR", dir)
        .env_remove("SGCACHE_REMOTE")
        .output()
        .expect("spawn sgcache verify");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sgcache verify --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let n = v["problems"].as_array().map_or(0, |a| a.len());
    (n, v)
}

/// A tmpfs mounted for the life of the value (unmounted on drop). `None`, with the reason
/// printed, when mounting is not possible (not root, no mount command).
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8m") on `dir` (created if missing).
    pub fn mount(test: &str, dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0777"))
            .arg("tmpfs")
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "SKIP {test}: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIP {test}: cannot run mount: {e}");
                None
            }
        }
    }

    /// Remounts read-only (`ro = true`) or read-write.
    pub fn remount(&self, ro: bool) -> bool {
        Command::new("mount")
            .args(["-o", if ro { "remount,ro" } else { "remount,rw" }])
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes `src` to `root/rel`, creating directories.
pub fn write_file(root: &Path, rel: &str, src: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, src).unwrap();
}

/// A GOCACHEPROG wrapper script that records the pid of the sgcache it execs into
/// `$SGCACHE_PIDFILE` (so a test can SIGKILL exactly that process).
pub fn pid_wrapper(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("sgcache-pid-wrapper.sh");
    let body = format!(
        "#!/bin/sh\necho $$ >> \"$SGCACHE_PIDFILE\"\nexec '{}' \"$@\"\n",
        bin().display()
    );
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// SIGKILLs one process by pid (ours: a child or an sgcache our go command started).
pub fn sigkill(pid: i32) {
    // SAFETY: kill(2) with a pid we read from our own pid file; no memory involved.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// The `SGCACHE_VERBOSE` summary line in a go command's stderr.
pub fn summary_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| l.starts_with("sgcache: "))
        .map(str::to_owned)
}
