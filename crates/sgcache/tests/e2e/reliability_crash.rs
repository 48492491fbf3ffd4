//! Crash consistency: sgcache is SIGKILLed at random moments, during put storms and during real
//! `go build`s, and after every kill the directory must be one the go command can use.
//!
//! After each kill:
//! * an independent reader with the go command's rules (`crate::common::check_cache`) finds no entry
//!   Go would accept that is wrong (no torn `-d`, no `-a` pointing at a wrong-size output);
//! * every put sgcache acknowledged before the kill is readable, and every index entry names
//!   an output that was put for it at or after the last acknowledged put (last writer wins);
//! * `sgcache verify` reports zero problems (files are aged past its in-progress grace first);
//! * the plain go command with `GOCACHE=<that dir>` builds and the binary prints what it must.
//!
//! Reduced counts by default; `SGCACHE_RELIABILITY_FULL=1` runs the full counts.
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Rng, check_cache, go, have_go, sgcache_verify, trials, write_file};
use base64_simd::STANDARD as B64;
use sha2::{Digest, Sha256};

/// One put of the storm: which action, which blob.
#[derive(Debug, Clone, Copy)]
struct Put {
    action: usize,
    blob: usize,
}

struct Pool {
    actions: Vec<[u8; 32]>,
    blobs: Vec<(Vec<u8>, [u8; 32])>,
}

impl Pool {
    /// 128 actions and 192 blobs: mostly small, some up to 2 MiB, like a build's outputs.
    fn new(rng: &mut Rng) -> Pool {
        let actions = (0..128)
            .map(|_| {
                let mut a = [0u8; 32];
                rng.fill(&mut a);
                a
            })
            .collect();
        let blobs = (0..192)
            .map(|i| {
                let size = match rng.below(100) {
                    _ if i == 0 => 0,
                    0..70 => rng.below(4096),
                    70..95 => 4096 + rng.below(128 << 10),
                    _ => (128 << 10) + rng.below(2 << 20),
                } as usize;
                let mut b = vec![0u8; size];
                rng.fill(&mut b);
                let h: [u8; 32] = Sha256::digest(&b).into();
                (b, h)
            })
            .collect();
        Pool { actions, blobs }
    }
}

/// A storm: the request stream plus, per request ID, the put it carries.
fn storm(rng: &mut Rng, pool: &Pool, n: usize) -> (Vec<u8>, HashMap<i64, Put>) {
    let mut s = Vec::new();
    let mut puts = HashMap::new();
    for i in 0..n {
        let id = i as i64 + 1;
        let action = rng.below(pool.actions.len() as u64) as usize;
        let a64 = B64.encode_to_string(pool.actions[action]);
        if rng.below(100) < 15 {
            s.extend_from_slice(
                format!("{{\"ID\":{id},\"Command\":\"get\",\"ActionID\":\"{a64}\"}}\n\n")
                    .as_bytes(),
            );
            continue;
        }
        let blob = rng.below(pool.blobs.len() as u64) as usize;
        let (body, out) = &pool.blobs[blob];
        s.extend_from_slice(
            format!(
                "{{\"ID\":{id},\"Command\":\"put\",\"ActionID\":\"{a64}\",\"OutputID\":\"{}\",\"BodySize\":{}}}\n\n",
                B64.encode_to_string(out),
                body.len()
            )
            .as_bytes(),
        );
        if !body.is_empty() {
            s.push(b'"');
            s.extend_from_slice(B64.encode_to_string(body).as_bytes());
            s.extend_from_slice(b"\"\n");
        }
        puts.insert(id, Put { action, blob });
    }
    s.extend_from_slice(format!("{{\"ID\":{},\"Command\":\"close\"}}\n\n", n + 1).as_bytes());
    (s, puts)
}

/// Runs sgcache on `input`, SIGKILLing it after `kill_after` (None: let it finish). Returns
/// the IDs of the puts acknowledged (a reply with `DiskPath`) before it died.
fn run_storm(dir: &Path, input: Vec<u8>, kill_after: Option<Duration>) -> Vec<i64> {
    let mut child = crate::common::serve_cmd(dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // Fails with EPIPE once the child is dead; that is the point.
        let _ = stdin.write_all(&input);
    });
    let acked = Arc::new(Mutex::new(Vec::new()));
    let acked2 = acked.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                panic!("sgcache wrote a reply line that is not JSON: {line:?}");
            };
            if v.get("DiskPath").is_some() && v.get("Err").is_none() && v.get("Size").is_none() {
                acked2.lock().unwrap().push(v["ID"].as_i64().unwrap());
            }
        }
    });
    if let Some(d) = kill_after {
        std::thread::sleep(d);
        let _ = child.kill(); // SIGKILL
    }
    let _ = child.wait();
    let _ = feeder.join();
    reader.join().unwrap();
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// `sgcache verify` problems split into those the go command could read (a `-d` whose bytes
/// are wrong, a broken executable entry) and those that are only misses for Go (an `-a` Go
/// rejects, e.g. empty after a kill between create and write; a size disagreement, which Go's
/// `GetFile` turns into a miss).
fn verify_split(dir: &Path) -> (Vec<String>, Vec<String>) {
    let (_, v) = sgcache_verify(dir);
    let mut readable = Vec::new();
    let mut miss = Vec::new();
    for p in v["problems"].as_array().into_iter().flatten() {
        let text = format!("{}: {} ({})", p["kind"], p["detail"], p["path"]);
        match p["kind"].as_str() {
            Some("MalformedAction" | "SizeMismatch") => miss.push(text),
            _ => readable.push(text),
        }
    }
    (readable, miss)
}

fn hexs(b: &[u8; 32]) -> String {
    hex::encode(b)
}

/// Checks that acknowledged puts survived and index entries name a put at or after the last
/// acknowledged one for their action. Returns problems.
fn check_acked(
    dir: &Path,
    pool: &Pool,
    puts: &HashMap<i64, Put>,
    acked: &[i64],
    prior: &HashMap<usize, Vec<usize>>,
) -> Vec<String> {
    let check = check_cache(dir);
    let mut bad: Vec<String> = check.corrupt.clone();
    // For each action: the latest acknowledged put ID.
    let mut last_acked: HashMap<usize, i64> = HashMap::new();
    for &id in acked {
        // A get hit on an empty output also has a DiskPath and no Size: not a put.
        let Some(&p) = puts.get(&id) else { continue };
        let (body, out) = &pool.blobs[p.blob];
        let e = last_acked.entry(p.action).or_insert(id);
        *e = (*e).max(id);
        let path = dir.join(format!("{:02x}/{}-d", out[0], hexs(out)));
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == body.len() as u64 => {}
            other => bad.push(format!(
                "acknowledged put {id}: output `{}` is {other:?}",
                path.display()
            )),
        }
    }
    for (&action, &id) in &last_acked {
        let a = hexs(&pool.actions[action]);
        let allowed: Vec<String> = puts
            .iter()
            .filter(|(pid, p)| p.action == action && **pid >= id)
            .map(|(_, p)| hexs(&pool.blobs[p.blob].1))
            .collect();
        match check.actions.get(&a) {
            Some((out, _)) if allowed.contains(out) => {}
            other => bad.push(format!(
                "action {a}: last acknowledged put {id}, index entry now {other:?}, want one of {allowed:?}"
            )),
        }
    }
    // Entries of actions with no acknowledged put in this trial must name some output ever
    // put for that action (this trial or an earlier one): never a torn mix.
    for (a, (out, _)) in &check.actions {
        let Some(action) = pool.actions.iter().position(|x| &hexs(x) == a) else {
            continue;
        };
        let ever = prior
            .get(&action)
            .is_some_and(|v| v.iter().any(|&b| &hexs(&pool.blobs[b].1) == out))
            || puts
                .values()
                .any(|p| p.action == action && &hexs(&pool.blobs[p.blob].1) == out);
        if !ever {
            bad.push(format!("action {a} names output {out}, never put for it"));
        }
    }
    bad
}

/// A module whose output depends on `n`, so each trial compiles, links and puts.
fn write_trial_module(root: &Path, n: usize) {
    crate::common::write_module(root);
    write_file(
        root,
        "lib/a/a.go",
        &format!(
            "package a\n\nimport \"strings\"\n\n// Upper upper-cases.\nfunc Upper(s string) string {{ return strings.ToUpper(s) + \"{n}\" }}\n"
        ),
    );
    write_file(
        root,
        "lib/a/a_test.go",
        &format!(
            "package a\n\nimport \"testing\"\n\nfunc TestUpper(t *testing.T) {{\n\tif Upper(\"x\") != \"X{n}\" {{\n\t\tt.Fatal(\"bad\")\n\t}}\n}}\n"
        ),
    );
}

/// The plain go command (no GOCACHEPROG) on `cache` must build the module and the binary must
/// print the trial's greeting; and `go test` must pass. Returns an error text on failure.
fn plain_go_ok(
    module: &Path,
    cache: &Path,
    exe: &Path,
    n: usize,
    test: bool,
) -> Result<(), String> {
    let mut c = go(module, cache, false);
    c.args(["build", "-o"]).arg(exe).arg("./cmd/hello");
    let out = c.output().unwrap();
    if !out.status.success() {
        return Err(format!(
            "plain go build: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let run = Command::new(exe).output().unwrap();
    let want = format!("hello GOPHER{n}\n");
    if String::from_utf8_lossy(&run.stdout) != want {
        return Err(format!(
            "binary printed {:?}, want {want:?}",
            String::from_utf8_lossy(&run.stdout)
        ));
    }
    if test {
        let mut c = go(module, cache, false);
        c.args(["test", "./lib/..."]);
        let out = c.output().unwrap();
        if !out.status.success() {
            return Err(format!(
                "plain go test: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    Ok(())
}

/// SIGKILL during put storms.
#[test]
fn sigkill_during_put_storm() {
    if !have_go("sigkill_during_put_storm") {
        return;
    }
    let n = trials(12, 200);
    let mut rng = Rng::from_env("sigkill_during_put_storm");
    let pool = Pool::new(&mut rng);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let module = tmp.path().join("m");
    let exe = tmp.path().join("hello");
    write_trial_module(&module, 0);
    // The directory survives all trials, like a real cache surviving many crashes; the
    // module's own entries are in it from the start, so each plain build reads it.
    plain_go_ok(&module, &dir, &exe, 0, false).unwrap();

    // Calibrate: how long does an uninterrupted storm take?
    let (input, calib) = storm(&mut rng, &pool, 150);
    let t = Instant::now();
    run_storm(&dir, input, None);
    let full = t.elapsed().max(Duration::from_millis(20));

    let mut prior: HashMap<usize, Vec<usize>> = HashMap::new();
    for p in calib.values() {
        prior.entry(p.action).or_default().push(p.blob);
    }
    let (mut corrupt, mut failed_builds, mut verify_problems, mut acked_total, mut temps) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut verify_misses = 0usize;
    let mut details = Vec::new();
    for trial in 0..n {
        let (input, puts) = storm(&mut rng, &pool, 150);
        let kill = Duration::from_micros(rng.below(full.as_micros() as u64 * 11 / 10 + 1));
        let acked = run_storm(&dir, input, Some(kill));
        acked_total += acked.len();
        let bad = check_acked(&dir, &pool, &puts, &acked, &prior);
        for p in puts.values() {
            prior.entry(p.action).or_default().push(p.blob);
        }
        temps = check_cache(&dir).temps;
        if !bad.is_empty() {
            corrupt += bad.len();
            details.push(format!("trial {trial} (kill at {kill:?}): {bad:?}"));
        }
        // verify hashes everything; every trial in the full run, every 3rd in the reduced one.
        if crate::common::full() || trial % 3 == 0 || trial + 1 == n {
            let (readable, miss_only) = verify_split(&dir);
            verify_misses += miss_only.len();
            if !readable.is_empty() {
                verify_problems += readable.len();
                details.push(format!("trial {trial}: verify: {readable:?}"));
            }
        }
        if let Err(e) = plain_go_ok(&module, &dir, &exe, 0, false) {
            failed_builds += 1;
            details.push(format!("trial {trial}: {e}"));
        }
    }
    eprintln!(
        "crash (put storm): {n} trials, SIGKILL within {full:?} (an uninterrupted storm of 150 \
         requests), {acked_total} puts acknowledged before a kill, {corrupt} corrupt entries, \
         {verify_problems} verify problems Go could read, {verify_misses} verify problems that \
         are misses for Go (torn index entries), {failed_builds} failed builds, {temps} temp files \
         left (invisible to Go, trimmed after 1 h)"
    );
    assert!(
        corrupt == 0 && verify_problems == 0 && failed_builds == 0,
        "{}",
        details.join("\n")
    );
}

/// SIGKILL of the sgcache a real `go build` (or `go test`) started, at a random moment.
#[test]
fn sigkill_during_go_build() {
    if !have_go("sigkill_during_go_build") {
        return;
    }
    let n = trials(6, 100);
    let mut rng = Rng::from_env("sigkill_during_go_build");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let module = tmp.path().join("m");
    let exe = tmp.path().join("hello");
    let wrapper = crate::common::pid_wrapper(tmp.path());
    let pidfile: PathBuf = tmp.path().join("pids");

    let through_sgcache = |n: usize, test: bool| {
        write_trial_module(&module, n);
        let _ = std::fs::remove_file(&pidfile);
        let mut c = go(&module, &dir, true);
        c.env("GOCACHEPROG", &wrapper)
            .env("SGCACHE_PIDFILE", &pidfile)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if test {
            c.args(["test", "./lib/..."]);
        } else {
            c.args(["build", "-o"]).arg(&exe).arg("./cmd/hello");
        }
        c.spawn().unwrap()
    };
    // Warm the std entries, then time a build that compiles the module's three packages.
    let mut warm = through_sgcache(0, false);
    assert!(
        warm.wait().unwrap().success(),
        "warm-up build through sgcache"
    );
    let t = Instant::now();
    let mut one = through_sgcache(1, false);
    assert!(one.wait().unwrap().success());
    let full = t.elapsed();

    let (mut corrupt, mut failed_builds, mut verify_problems, mut killed, mut go_failed) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut verify_misses = 0usize;
    let mut details = Vec::new();
    for trial in 0..n {
        let v = trial + 2;
        let test = trial % 3 == 2;
        let kill = Duration::from_micros(rng.below(full.as_micros() as u64 * 12 / 10 + 1));
        let mut child = through_sgcache(v, test);
        std::thread::sleep(kill);
        let pids = std::fs::read_to_string(&pidfile).unwrap_or_default();
        let mut any = false;
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            crate::common::sigkill(pid);
            any = true;
        }
        killed += usize::from(any);
        let st = child.wait().unwrap();
        go_failed += usize::from(!st.success());
        let check = check_cache(&dir);
        if !check.corrupt.is_empty() {
            corrupt += check.corrupt.len();
            details.push(format!(
                "trial {trial} (kill at {kill:?}): {:?}",
                check.corrupt
            ));
        }
        if crate::common::full() || trial % 2 == 0 || trial + 1 == n {
            let (readable, miss_only) = verify_split(&dir);
            verify_misses += miss_only.len();
            for m in &miss_only {
                eprintln!("trial {trial} (kill at {kill:?}): verify, a miss for Go: {m}");
            }
            if !readable.is_empty() {
                verify_problems += readable.len();
                details.push(format!("trial {trial}: verify: {readable:?}"));
            }
        }
        if let Err(e) = plain_go_ok(&module, &dir, &exe, v, test) {
            failed_builds += 1;
            details.push(format!("trial {trial} (kill at {kill:?}): {e}"));
        }
    }
    eprintln!(
        "crash (go build/test): {n} trials, SIGKILL within {full:?} (one rebuild), {killed} \
         kills landed while sgcache ran ({go_failed} go commands died with it), {corrupt} \
         corrupt entries, {verify_problems} verify problems Go could read, {verify_misses} \
         verify problems that are misses for Go (torn index entries), {failed_builds} failed \
         plain go builds after the kill"
    );
    assert!(
        corrupt == 0 && verify_problems == 0 && failed_builds == 0,
        "{}",
        details.join("\n")
    );
}

/// Regression test for F1 (docs/reliability.md): a kill between the create and the write of
/// an index entry (sgcache's or the go command's own `putIndexEntry`) leaves an empty `-a`.
/// The go command treats it as a miss; so must `sgcache verify`, instead of reporting
/// corruption and exiting 1 after every such crash.
#[test]
fn empty_index_entry_left_by_a_kill_is_a_miss_not_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    // Let sgcache create the layout, then leave what a kill leaves.
    run_storm(&dir, Vec::new(), None);
    let action = [0x5a; 32];
    let a = dir.join(format!("5a/{}-a", hexs(&action)));
    std::fs::write(&a, b"").unwrap();
    let get = format!(
        "{{\"ID\":1,\"Command\":\"get\",\"ActionID\":\"{}\"}}\n\n",
        B64.encode_to_string(action)
    );
    let out = crate::common::serve_input(&dir, get.into_bytes());
    assert!(out.raw.contains("\"Miss\":true"), "{}", out.raw);
    let (problems, v) = sgcache_verify(&dir);
    assert_eq!(
        problems, 0,
        "verify reports an empty index entry (a miss for Go) as corruption: {}",
        v["problems"]
    );
}
