//! `sgcache explain [record]`: run one go command with the hashing transcript and the action
//! graph on, and record its baseline or explain its misses against one.
//!
//! How a run is observed, with no change to the protocol or the go command:
//!
//! - `GODEBUG=gocachehash=1,gocachetest=1` (added to the user's own GODEBUG) makes the go
//!   command print every hash's inputs and the test cache's lookups on stderr. The stderr
//!   pipe is read line by line: transcript lines go to the parser (bounded memory), every
//!   other line to our stderr as the go command wrote it.
//! - `-debug-actiongraph=<tmp>` (inserted after the subcommand) makes it write the action
//!   graph at the end, with the commands each action ran: **an action that ran a command
//!   missed the cache**. This is the go command's own account of its hits and misses, true
//!   for a plain GOCACHE, for GOCACHEPROG=sgcache with or without a remote, and for any
//!   other GOCACHEPROG.
//! - Test results are the exception: GODEBUG is hashed into every test's input id, so the
//!   explained run's own lookups always miss. For each test the transcript gives the exact
//!   bytes of its input hash, so the key a *plain* run (the user's GODEBUG) looks up is
//!   recomputed and checked in the local cache and the remote. After the run, results the
//!   run stored under its GODEBUG keys are also stored under the plain keys (local index
//!   entry, and remote entry when this job writes the remote), so a recorded or explained
//!   `go test` leaves a test cache a plain run can use.
//!
//! The exit status is the go command's; a missing or unreadable baseline is a message.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use sgcache_explain::{
    Graph, Limits, LineKind, Options, Parser, Run, Transcript, baseline, compare, render,
};
use sgcache_store::{BaselineName, Lookup, RemoteCache};
use sgcache_types::{ActionId, IndexEntry, Metrics};

use crate::cli::{ExplainAction, ExplainArgs};
use crate::config::Config;

/// go subcommands that accept `-debug-actiongraph`.
const BUILDING: &[&str] = &["build", "install", "run", "test", "vet", "list"];
/// The largest action graph read.
const MAX_GRAPH: u64 = 512 << 20;
/// How long stderr may stay open after the go command exited (a process it started that
/// keeps the pipe open must not hang explain).
const DRAIN: Duration = Duration::from_secs(3);

/// What the user asked for.
struct Plan {
    record: bool,
    out: Option<PathBuf>,
    against: Option<String>,
    json: bool,
    name: Option<String>,
    command: Vec<OsString>,
}

/// Runs `sgcache explain` or `sgcache explain record`.
pub fn run(cfg: &Config, args: ExplainArgs) -> Result<ExitCode> {
    let plan = Plan::from(args);
    let seen = observe(&plan.command, plan.json)?;
    let code = exit_code(&seen.status);
    let result = match seen.graph {
        Err(e) => Err(format!("{e:#}")),
        Ok(_) if seen.transcript.records.is_empty() => Err(
            "the go command printed no hashing transcript (is it older than Go 1.10, or did it fail before building?)"
                .into(),
        ),
        Ok(ref graph) => {
            let mut run = Run::build(
                &seen.transcript,
                graph,
                &Options {
                    command: seen.command.clone(),
                    recorded_at: SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    godebug: seen.user_godebug.clone().map(OsString::into_encoded_bytes),
                    prefer_saved: plan.record,
                },
            );
            let name = baseline_name(plan.name.as_deref(), &seen.command);
            let caches = Caches::open(cfg)?;
            caches.settle_tests(&mut run);
            if plan.record {
                record(cfg, &plan, &caches, &run, &name, &seen)
            } else {
                explain(cfg, &plan, &caches, &run, &name, &seen.command)
            }
        }
    };
    if let Err(msg) = result {
        if plan.json {
            writeln!(std::io::stdout(), "{}", serde_json::json!({ "error": msg }))?;
        } else {
            writeln!(std::io::stderr(), "sgcache explain: {msg}")?;
        }
    }
    Ok(code)
}

impl From<ExplainArgs> for Plan {
    fn from(args: ExplainArgs) -> Plan {
        match args.action {
            Some(ExplainAction::Record(r)) => Plan {
                record: true,
                out: r.out,
                against: None,
                json: false,
                name: r.name,
                command: r.command,
            },
            None => Plan {
                record: false,
                out: None,
                against: args.against,
                json: args.json,
                name: args.name,
                command: args.command,
            },
        }
    }
}

/// One run of the go command, as observed.
struct Observed {
    status: std::process::ExitStatus,
    transcript: Transcript,
    /// The action graph it wrote, or why there is none.
    graph: Result<Graph>,
    /// Its arguments after the program (`build ./...`).
    command: Vec<String>,
    /// The GODEBUG the user's own runs use (hashed into test input ids).
    user_godebug: Option<OsString>,
}

/// Runs the go command (`command`, program first) with the hashing transcript and the
/// action graph on; with `json`, its stdout goes to our stderr.
fn observe(command: &[OsString], json: bool) -> Result<Observed> {
    let (program, go_args, sub) = split_go_command(command)?;
    let tmp = tempfile::Builder::new()
        .prefix("sgcache-explain-")
        .tempdir()
        .context("creating a temporary directory for the action graph")?;
    let graph_path = tmp.path().join("actiongraph.json");
    let mut child_args = go_args.clone();
    child_args.insert(sub + 1, {
        let mut a = OsString::from("-debug-actiongraph=");
        a.push(&graph_path);
        a
    });
    let user_godebug = crate::config::inherited_godebug();
    let godebug = match &user_godebug {
        Some(v) if !v.is_empty() => {
            let mut g = v.clone();
            g.push(",gocachehash=1,gocachetest=1");
            g
        }
        _ => OsString::from("gocachehash=1,gocachetest=1"),
    };

    let started = Instant::now();
    let mut cmd = Command::new(&program);
    cmd.args(&child_args)
        .env("GODEBUG", &godebug)
        .stdin(Stdio::inherit())
        .stderr(Stdio::piped());
    if json {
        // Stdout carries the JSON report alone; the go command's stdout goes to stderr.
        cmd.stdout(stderr_as_stdio()?);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running `{}`", program.to_string_lossy()))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let parser = Arc::new(Mutex::new(Parser::new(Limits::default())));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let parser = parser.clone();
        std::thread::Builder::new()
            .name("explain-stderr".into())
            .spawn(move || {
                read_stderr(stderr, &parser);
                let _ = done_tx.send(());
            })
            .context("starting the stderr reader")?;
    }
    let status = child.wait().context("waiting for the go command")?;
    if done_rx.recv_timeout(DRAIN).is_err() {
        tracing::warn!(
            "the go command's stderr stayed open after it exited; explaining what it wrote"
        );
    }
    let transcript = {
        let mut p = parser.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *p, Parser::new(Limits::default())).finish()
    };
    tracing::debug!(
        stats = ?transcript.stats,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "explain: transcript"
    );
    Ok(Observed {
        status,
        transcript,
        graph: read_graph(&graph_path),
        command: go_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        user_godebug,
    })
}

/// `sgcache explain record`: stores `run` as the baseline `name`, on this machine (or
/// `--out`) and in the remote when this job writes it. `Err` is the message for the user.
fn record(
    cfg: &Config,
    plan: &Plan,
    caches: &Caches,
    run: &Run,
    name: &BaselineName,
    seen: &Observed,
) -> std::result::Result<(), String> {
    if !seen.status.success() {
        // A failed run's actions are partial: keep the last good baseline.
        return Err(format!(
            "the go command failed ({}): no baseline recorded, the last one stays",
            seen.status
        ));
    }
    let blob = baseline::encode(run);
    let path = match &plan.out {
        Some(p) => p.clone(),
        None => local_baseline(cfg, name),
    };
    write_atomic(&path, &blob).map_err(|e| format!("{e:#}"))?;
    let built = run
        .actions
        .iter()
        .filter(|a| a.mode != sgcache_explain::Mode::Link);
    let mut msg = format!(
        "sgcache explain: recorded {} actions ({} missed) of `go {}`: {} ({:.1} KiB)",
        built.clone().count(),
        built.filter(|a| a.ran).count(),
        seen.command.join(" "),
        path.display(),
        blob.len() as f64 / 1024.0
    );
    if let Some(r) = caches.remote.as_ref().filter(|r| r.writes()) {
        match caches.block_on(r.put_baseline(name, &blob)) {
            Ok(()) => msg.push_str(&format!("; remote namespace {}", r.config().namespace)),
            Err(e) => msg.push_str(&format!("; not stored in the remote: {e}")),
        }
    }
    for n in &run.notes {
        msg.push_str(&format!("\n  note: {n}"));
    }
    writeln!(std::io::stderr(), "{msg}").map_err(|e| format!("writing to stderr: {e}"))
}

/// `sgcache explain`: compares `run` with its baseline and prints the report. `Err` is the
/// message for the user (no baseline, an unreadable one).
fn explain(
    cfg: &Config,
    plan: &Plan,
    caches: &Caches,
    run: &Run,
    name: &BaselineName,
    command: &[String],
) -> std::result::Result<(), String> {
    let (source, bytes) = load_baseline(cfg, caches, name, plan.against.as_deref(), command)
        .map_err(|e| format!("{e:#}"))?;
    let base = baseline::decode(&bytes).map_err(|e| format!("baseline {source}: {e}"))?;
    let rep = compare(run, &base, &source);
    let written = if plan.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &rep)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        std::io::stderr().write_all(render::text(&rep).as_bytes())
    };
    written.map_err(|e| format!("writing the report: {e}"))
}

/// `(program, arguments after it, index of the subcommand in them)`.
fn split_go_command(command: &[OsString]) -> Result<(OsString, Vec<OsString>, usize)> {
    let Some((program, rest)) = command.split_first() else {
        bail!("give the go command to run after `--`, e.g. `sgcache explain -- go build ./...`");
    };
    let base = Path::new(program)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !(base == "go" || base.starts_with("go1") || base == "go.exe") {
        bail!(
            "explain runs one go command (`go build`, `go test`, …), not `{}`",
            program.to_string_lossy()
        );
    }
    let mut i = 0;
    while let Some(a) = rest.get(i) {
        let a = a.to_string_lossy();
        if a == "-C" || a == "--C" {
            i += 2;
        } else if a.starts_with("-C=") || a.starts_with("--C=") {
            i += 1;
        } else {
            break;
        }
    }
    let Some(sub) = rest.get(i).map(|s| s.to_string_lossy().into_owned()) else {
        bail!("the go command has no subcommand (build, test, …)");
    };
    if !BUILDING.contains(&sub.as_str()) {
        bail!(
            "explain needs a go command that builds ({}), not `go {sub}`",
            BUILDING.join(", ")
        );
    }
    if rest
        .iter()
        .any(|a| a.to_string_lossy().contains("-debug-actiongraph"))
    {
        bail!("explain sets -debug-actiongraph itself; leave it out of the go command");
    }
    Ok((program.clone(), rest.to_vec(), i))
}

/// The baseline's name: `--name`, else the go command's arguments.
fn baseline_name(name: Option<&str>, command: &[String]) -> BaselineName {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"sgcache-explain-baseline-v1\0");
    match name {
        Some(n) => {
            h.update(b"name\0");
            h.update(n.as_bytes());
        }
        None => {
            h.update(b"command\0");
            for a in command {
                h.update(a.as_bytes());
                h.update([0]);
            }
        }
    }
    BaselineName(h.finalize().into())
}

fn local_baseline(cfg: &Config, name: &BaselineName) -> PathBuf {
    sgcache_disk::layout::state_dir(&cfg.dir)
        .join("explain")
        .join(format!("{}.sgxb", hex::encode(name.0)))
}

fn load_baseline(
    cfg: &Config,
    caches: &Caches,
    name: &BaselineName,
    against: Option<&str>,
    command: &[String],
) -> Result<(String, Vec<u8>)> {
    let from_remote = |ns: Option<&str>| -> Result<Option<(String, Vec<u8>)>> {
        let Some(r) = &caches.remote else {
            return Ok(None);
        };
        match caches.block_on(r.get_baseline(name, ns)) {
            Lookup::Found((ns, b)) => Ok(Some((format!("the remote's namespace {ns}"), b))),
            Lookup::Missing => Ok(None),
            Lookup::Failed => bail!(
                "the remote did not answer for the baseline ({})",
                r.describe()
            ),
        }
    };
    match against {
        Some(a)
            if a.contains(std::path::MAIN_SEPARATOR)
                || a.contains('/')
                || Path::new(a).is_file() =>
        {
            let b = std::fs::read(a).with_context(|| format!("reading the baseline `{a}`"))?;
            Ok((format!("`{a}`"), b))
        }
        Some(ns) => {
            if caches.remote.is_none() {
                bail!(
                    "--against {ns}: no remote is configured (SGCACHE_REMOTE), and no file `{ns}` exists"
                );
            }
            from_remote(Some(ns))?.with_context(|| {
                format!(
                    "the remote has no baseline for `go {}` in namespace {ns} that this job trusts; record one there with `sgcache explain record -- go {}`",
                    command.join(" "),
                    command.join(" ")
                )
            })
        }
        None => {
            let local = local_baseline(cfg, name);
            if let Ok(b) = std::fs::read(&local) {
                return Ok((format!("this machine's baseline `{}`", local.display()), b));
            }
            from_remote(None)?.with_context(|| {
                format!(
                    "no baseline for `go {}` (none on this machine{}): record one with `sgcache explain record -- go {}`, or give --against FILE|NAMESPACE",
                    command.join(" "),
                    if caches.remote.is_some() { ", none in the remote's namespaces" } else { "" },
                    command.join(" ")
                )
            })
        }
    }
}

/// The local cache and the remote, for test results.
struct Caches {
    disk: Option<sgcache_disk::DiskCache>,
    remote: Option<RemoteCache>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Caches {
    fn open(cfg: &Config) -> Result<Caches> {
        let disk = sgcache_disk::DiskCache::open(&cfg.dir).ok();
        let (remote, rt) = match &cfg.remote {
            None => (None, None),
            Some(r) => {
                let remote = RemoteCache::new(r.clone(), Arc::new(Metrics::default()))
                    .context("the remote's configuration")?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the runtime for the remote")?;
                (Some(remote), Some(rt))
            }
        };
        Ok(Caches { disk, remote, rt })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt
            .as_ref()
            .expect("a runtime with a remote")
            .block_on(f)
    }

    /// Whether the entry `k` and its output are in the local cache or the remote.
    fn has(&self, k: &ActionId, remote_failed: &mut bool) -> bool {
        if let Some(d) = &self.disk
            && matches!(d.get_file(k), Ok(Some(_)))
        {
            return true;
        }
        match &self.remote {
            Some(r) => match self.block_on(r.get_entry(k)) {
                Lookup::Found(_) => true,
                Lookup::Missing => false,
                Lookup::Failed => {
                    *remote_failed = true;
                    false
                }
            },
            None => false,
        }
    }

    /// Decides which test results a plain run would have found, then stores this run's
    /// results under the plain keys (after the lookups, so they do not find themselves).
    fn settle_tests(&self, run: &mut Run) {
        let mut remote_failed = false;
        run.resolve_tests(|k| self.has(k, &mut remote_failed));
        if remote_failed {
            run.notes.push(
                "the remote did not answer for some test results; they count as missed".into(),
            );
        }
        self.rekey_test_results(run);
    }

    /// Stores the test results this run saved under its GODEBUG keys under the keys a plain
    /// run uses too (best effort: a failure costs a later test run, nothing else).
    fn rekey_test_results(&self, run: &Run) {
        let Some(disk) = &self.disk else { return };
        for t in &run.tests {
            for (stored, plain) in &t.saved {
                if stored == plain {
                    continue;
                }
                let Ok(Some((e, path))) = disk.get_file(stored) else {
                    continue;
                };
                let entry = IndexEntry {
                    action: *plain,
                    ..e
                };
                if !matches!(disk.get(plain), Ok(Some(_)))
                    && let Err(err) = disk.put_index_entry(&entry)
                {
                    tracing::debug!(error = %err, "explain: storing a test result under its plain key");
                    continue;
                }
                if let Some(r) = self.remote.as_ref().filter(|r| r.writes()) {
                    let res = self.block_on(async {
                        if !r.has_object(&e.output).await? {
                            r.put_object(&e.output, e.size, path.clone()).await?;
                        }
                        r.put_entry(&entry).await
                    });
                    if let Err(err) = res {
                        tracing::debug!(error = %err, "explain: uploading a test result under its plain key");
                    }
                }
            }
        }
    }
}

fn read_stderr(stderr: std::process::ChildStderr, parser: &Mutex<Parser>) {
    let max = Limits::default().max_line;
    let mut r = std::io::BufReader::with_capacity(1 << 16, stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut long = false;
        // One line, kept up to the limit (the rest of a longer one is skipped).
        let eof = loop {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break true,
            };
            if buf.is_empty() {
                break true;
            }
            let (take, end) = match memchr(buf) {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            let room = (max + 1).saturating_sub(line.len());
            line.extend_from_slice(&buf[..take.min(room)]);
            long |= take > room;
            r.consume(take + usize::from(end));
            if end {
                break false;
            }
        };
        if eof && line.is_empty() {
            return;
        }
        let kind = parser.lock().unwrap_or_else(|e| e.into_inner()).feed(&line);
        if kind == LineKind::Other {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&line);
            if long {
                let _ = err.write_all("…".as_bytes());
            }
            let _ = err.write_all(b"\n");
        }
        if eof {
            return;
        }
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn read_graph(path: &Path) -> Result<Graph> {
    let md = std::fs::metadata(path).with_context(|| {
        "the go command wrote no action graph (it failed before building, or does not support -debug-actiongraph)"
    })?;
    if md.len() > MAX_GRAPH {
        bail!(
            "the action graph `{}` is {} bytes, over the limit of {MAX_GRAPH}",
            path.display(),
            md.len()
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the action graph `{}`", path.display()))?;
    Ok(Graph::parse(&bytes)?)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to `{}`", path.display()))
}

fn exit_code(status: &std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                if let Some(sig) = status.signal() {
                    return ExitCode::from(128u8.saturating_add(sig as u8));
                }
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(unix)]
fn stderr_as_stdio() -> Result<Stdio> {
    use std::os::fd::AsFd;
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    Ok(Stdio::from(fd))
}

#[cfg(not(unix))]
fn stderr_as_stdio() -> Result<Stdio> {
    Ok(Stdio::inherit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_the_subcommand() {
        let (p, args, i) = split_go_command(&os(&["go", "test", "./..."])).unwrap();
        assert_eq!((p.to_str().unwrap(), i), ("go", 0));
        assert_eq!(args.len(), 2);
        let (_, _, i) = split_go_command(&os(&[
            "/usr/local/go/bin/go",
            "-C",
            "sub",
            "build",
            "./...",
        ]))
        .unwrap();
        assert_eq!(i, 2);
        let (_, _, i) = split_go_command(&os(&["go1.25.1", "-C=sub", "vet"])).unwrap();
        assert_eq!(i, 1);
        for bad in [
            &["make", "test"][..],
            &["go"],
            &["go", "env"],
            &["go", "build", "-debug-actiongraph=x"],
            &[],
        ] {
            assert!(split_go_command(&os(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_depend_on_the_command_or_the_name() {
        let a = baseline_name(None, &["test".into(), "./...".into()]);
        assert_eq!(a, baseline_name(None, &["test".into(), "./...".into()]));
        assert_ne!(a, baseline_name(None, &["build".into(), "./...".into()]));
        assert_ne!(a, baseline_name(None, &["test./...".into()]));
        assert_eq!(
            baseline_name(Some("ci"), &["x".into()]),
            baseline_name(Some("ci"), &["y".into()])
        );
    }
}
