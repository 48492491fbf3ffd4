//! Serving a byte stream: sgcache run on a whole protocol input, its replies and peak RSS.

use std::path::Path;
use std::process::{Command, Stdio};

use super::bin;

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

/// Starts `sgcache` (as [`serve_cmd`]) from a small launcher process that reports the
/// sgcache process's own peak RSS into `rss_file` when it ends. A child forked straight from
/// this test process would report this process's RSS instead: Linux carries the peak RSS of
/// the memory a process had before `exec` (here, the whole test binary's) into its
/// `ru_maxrss`. The launcher (python3, which the test harness needs anyway) is small, and the
/// sgcache it forks starts clean. The launcher exits as sgcache did, or dies of its signal.
fn launch_measured(dir: &Path, rss_file: &Path) -> std::process::Child {
    const LAUNCHER: &str = "import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
open(sys.argv[1], 'w').write(str(ru.ru_maxrss))
if os.WIFSIGNALED(status):
    import signal
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
";
    let serve = serve_cmd(dir);
    let mut c = Command::new("python3");
    c.arg("-c").arg(LAUNCHER).arg(rss_file).arg(bin());
    for (k, v) in serve.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 (the RSS launcher) and sgcache")
}

/// Runs sgcache on `input` (fed from a thread, so a reply-heavy stream cannot deadlock)
/// and measures its own peak RSS.
pub fn serve_input(dir: &Path, input: Vec<u8>) -> Served {
    use std::io::{Read, Write};
    let rss = tempfile::NamedTempFile::new().unwrap();
    let mut child = launch_measured(dir, rss.path());
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
    let status = child.wait().expect("wait for sgcache");
    let _ = feeder.join();
    let raw = String::from_utf8(out_t.join().unwrap()).expect("replies are UTF-8");
    let replies = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("reply {l:?} is not JSON: {e}")))
        .collect();
    use std::os::unix::process::ExitStatusExt;
    let maxrss_kb = std::fs::read_to_string(rss.path())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("the launcher reports sgcache's peak RSS");
    Served {
        code: status.code(),
        signaled: status.signal().is_some(),
        maxrss_kb,
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
