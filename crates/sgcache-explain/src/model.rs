//! One run of a go command as explain sees it: every cacheable action (compile, vet, test
//! result, and the links between them), keyed by package and mode, with its action id and
//! its input lines. Built from a [`Transcript`] and a [`Graph`]; stored as a baseline.
//!
//! Joins:
//!
//! - compile and link actions: the graph's 15-byte `ActionID` prefix and the transcript's
//!   `build <pkg>` / `link <pkg>` hash with that sum;
//! - vet actions: the transcript's `vet <pkg>` hash names its compile action's full id in its
//!   `pkg` line; the graph's vet action depends on that compile action first;
//! - test results: the `testcache:` lines name the package, the test id (a `testResult` hash)
//!   and the test inputs id (a `testInputs` hash), whose `env`/`open`/`stat` lines name the
//!   nested `getenv`/`open`/`stat` hashes by their sums.
//!
//! A test copy of a package (`p [p.test]`) has the same import path as `p`; its compile hash
//! says `forcelibrary`, and the test binary whose link includes it names the copy, so it is
//! keyed as variant `[p.test]`, like `go list` shows it.
//!
//! `GODEBUG` enters every test's input hash (the go command hashes its value first), and an
//! explained run sets `gocachehash=1,gocachetest=1` in it. So test inputs are normalized to
//! what a plain run (the user's own `GODEBUG`) hashes: the `env GODEBUG` line is recomputed
//! and the inputs id and result key with it (SHA-256 of the salt and the writes, and
//! `Subkey`), exactly as `cmd/go/internal/test` does.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sgcache_types::ActionId;
use sha2::{Digest, Sha256};

use crate::graph::{Graph, PREFIX};
use crate::quote::{display, hex32, take_quoted};
use crate::transcript::{HashRecord, TestEvent, Transcript};

/// What kind of action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A compile (`build` in the action graph).
    Build,
    /// A link. The go command does not cache links (it relinks whenever the binary is
    /// needed), so a link is never a miss; it carries a test binary's inputs.
    Link,
    /// A vet run.
    Vet,
    /// A test result.
    Test,
}

impl Mode {
    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Build => "build",
            Mode::Link => "link",
            Mode::Vet => "vet",
            Mode::Test => "test",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Mode::Build => 0,
            Mode::Link => 1,
            Mode::Vet => 2,
            Mode::Test => 3,
        }
    }

    pub(crate) fn from_u8(b: u8) -> Option<Mode> {
        Some(match b {
            0 => Mode::Build,
            1 => Mode::Link,
            2 => Mode::Vet,
            3 => Mode::Test,
            _ => return None,
        })
    }
}

/// Input lines of a nested hash a test input line names (`open <path> <sum>`: the file's
/// size, mode and mtime), keyed like the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    /// `open <path>`, `stat <path>`, `env <NAME>`, `chdir <path>`.
    pub key: String,
    /// Its lines (an environment variable's value is never kept: `set` or `unset`).
    pub lines: Vec<String>,
}

/// One cacheable action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// What it is.
    pub mode: Mode,
    /// Its package's import path (a test binary's link: `<pkg>.test`).
    pub package: String,
    /// `[p.test]` for a test copy.
    pub variant: Option<String>,
    /// The action id; for a test, the key a plain run looks its result up under.
    pub id: Option<ActionId>,
    /// Whether it missed the cache in this run.
    pub ran: bool,
    /// Whether its input lines were recorded and verified against its id.
    pub recorded: bool,
    /// Its input lines, as written to the hash (a trailing newline dropped; the salt left out).
    pub inputs: Vec<String>,
    /// The cacheable actions it depends on (indices into the run's actions).
    pub deps: Vec<u32>,
    /// For tests: what the files and variables they read looked like.
    pub details: Vec<Detail>,
}

impl Action {
    /// `build example.com/m/leaf [example.com/m/leaf.test]`.
    pub fn describe(&self) -> String {
        match &self.variant {
            Some(v) => format!("{} {} {v}", self.mode.as_str(), self.package),
            None => format!("{} {}", self.mode.as_str(), self.package),
        }
    }
}

/// How a test's cached result was looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestStatus {
    /// The input list was found: the result's key is known.
    Checked,
    /// The input list was not found: a plain run misses too.
    InputListMissing,
    /// The test cache does not apply (local directory mode, uncacheable flags).
    Disabled(String),
    /// The transcript does not say (unverified or missing records).
    Unknown,
}

/// A test result of the current run, for the caller to check against the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCheck {
    /// Its action.
    pub action: usize,
    /// How the lookup went.
    pub status: TestStatus,
    /// The keys a plain run looks the result up under (the GODEBUG-free ones).
    pub lookups: Vec<ActionId>,
    /// Results this run stored under its own (GODEBUG) key, with the key a plain run uses:
    /// `(stored, plain)`.
    pub saved: Vec<(ActionId, ActionId)>,
}

/// One run: the go command, its version, its actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    /// The Go version (the transcript's salt).
    pub go_version: String,
    /// The go command's arguments, as run.
    pub command: Vec<String>,
    /// When it ran (Unix seconds).
    pub recorded_at: u64,
    /// The cacheable actions.
    pub actions: Vec<Action>,
    /// Test results to check (not stored in a baseline).
    pub tests: Vec<TestCheck>,
    /// What could not be joined or verified (not stored in a baseline).
    pub notes: Vec<String>,
}

/// What [`Run::build`] needs besides the transcript and the graph.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The go command's arguments.
    pub command: Vec<String>,
    /// Now, in Unix seconds.
    pub recorded_at: u64,
    /// The user's own `GODEBUG` (`None`: unset), which a plain run hashes.
    pub godebug: Option<Vec<u8>>,
    /// Describe a test by the inputs its run saved rather than those its lookup hashed
    /// (a baseline: what the test read this time).
    pub prefer_saved: bool,
}

/// `Subkey(parent, desc)`: SHA-256 of `subkey:`, the parent and the description.
pub fn subkey(parent: &[u8; 32], desc: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"subkey:");
    h.update(parent);
    h.update(desc.as_bytes());
    h.finalize().into()
}

fn sha(writes: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for w in writes {
        h.update(w);
    }
    h.finalize().into()
}

/// A write as an input line: the trailing newline dropped, a vet's `pkg "<32 bytes>"` as hex.
fn line(write: &[u8]) -> String {
    let w = write.strip_suffix(b"\n").unwrap_or(write);
    if let Some(q) = w.strip_prefix(b"pkg ")
        && let Some((id, rest)) = take_quoted(q)
        && rest.is_empty()
        && id.len() == 32
    {
        return format!("pkg {}", hex::encode(id));
    }
    display(w)
}

struct Index<'t> {
    by_sum: HashMap<[u8; 32], &'t HashRecord>,
    by_prefix: HashMap<[u8; PREFIX], Vec<&'t HashRecord>>,
    vet_by_build: HashMap<[u8; 32], &'t HashRecord>,
}

impl<'t> Index<'t> {
    fn new(t: &'t Transcript) -> Index<'t> {
        let mut by_sum = HashMap::new();
        let mut by_prefix: HashMap<[u8; PREFIX], Vec<&HashRecord>> = HashMap::new();
        let mut vet_by_build = HashMap::new();
        for r in &t.records {
            // A verified record wins over an unverified one with the same sum.
            let e = by_sum.entry(r.sum).or_insert(r);
            if !e.verified && r.verified {
                *e = r;
            }
            if r.name.starts_with("build ") || r.name.starts_with("link ") {
                let p: [u8; PREFIX] = r.sum[..PREFIX].try_into().expect("15 of 32");
                by_prefix.entry(p).or_default().push(r);
            }
            if r.name.starts_with("vet ") {
                for w in r.inputs() {
                    if let Some(q) = w.strip_prefix(b"pkg ")
                        && let Some((id, _)) = take_quoted(q)
                        && let Ok(id) = <[u8; 32]>::try_from(id.as_slice())
                    {
                        vet_by_build.insert(id, r);
                    }
                }
            }
        }
        Index {
            by_sum,
            by_prefix,
            vet_by_build,
        }
    }

    fn action(&self, prefix: &[u8; PREFIX], name: &str) -> Option<&'t HashRecord> {
        let c = self.by_prefix.get(prefix)?;
        c.iter()
            .filter(|r| r.name == name)
            .max_by_key(|r| r.verified)
            .copied()
    }
}

impl Run {
    /// Joins a transcript and an action graph into the run's cacheable actions.
    pub fn build(t: &Transcript, g: &Graph, o: &Options) -> Run {
        let ix = Index::new(t);
        let salt = t.salt.clone().unwrap_or_default();
        let mut run = Run {
            go_version: String::from_utf8_lossy(&salt).into_owned(),
            command: o.command.clone(),
            recorded_at: o.recorded_at,
            ..Run::default()
        };
        let n = g.actions.len();
        let mut unit: Vec<Option<usize>> = vec![None; n];
        let mut full_id: Vec<Option<[u8; 32]>> = vec![None; n];
        let mut missing = 0usize;

        // Compiles and links first (vets refer to their compile's full id).
        for (i, a) in g.actions.iter().enumerate() {
            let mode = match a.mode.as_str() {
                "build" => Mode::Build,
                "link" => Mode::Link,
                _ => continue,
            };
            let Some(prefix) = a.action_prefix else {
                continue;
            };
            let rec = ix.action(&prefix, &format!("{} {}", mode.as_str(), a.package));
            if rec.is_none() {
                missing += 1;
            }
            full_id[i] = rec.map(|r| r.sum);
            unit[i] = Some(run.actions.len());
            run.actions.push(Action {
                mode,
                package: a.package.clone(),
                variant: None,
                id: rec.map(|r| ActionId::from_bytes(r.sum)),
                ran: mode == Mode::Build && a.ran,
                recorded: rec.is_some_and(|r| r.verified),
                inputs: rec.map_or_else(Vec::new, |r| r.inputs().iter().map(|w| line(w)).collect()),
                deps: Vec::new(),
                details: Vec::new(),
            });
        }
        for (i, a) in g.actions.iter().enumerate() {
            if a.mode != "vet" {
                continue;
            }
            let build = a.deps.first().and_then(|&d| full_id[d]);
            let rec = build.and_then(|b| ix.vet_by_build.get(&b).copied());
            if rec.is_none() {
                // A vet that never computed its id (its compile failed, or vet is off).
                if build.is_some() && a.ran {
                    missing += 1;
                }
                if !a.ran {
                    continue;
                }
            }
            unit[i] = Some(run.actions.len());
            run.actions.push(Action {
                mode: Mode::Vet,
                package: a.package.clone(),
                variant: None,
                id: rec.map(|r| ActionId::from_bytes(r.sum)),
                ran: a.ran,
                recorded: rec.is_some_and(|r| r.verified),
                inputs: rec.map_or_else(Vec::new, |r| r.inputs().iter().map(|w| line(w)).collect()),
                deps: Vec::new(),
                details: Vec::new(),
            });
        }
        run.add_tests(t, g, &ix, &salt, o, &mut unit);

        // Dependencies: the cacheable actions reachable through the others.
        let mut memo: Vec<Option<Vec<usize>>> = vec![None; n];
        for i in 0..n {
            let Some(u) = unit[i] else { continue };
            let mut deps = Vec::new();
            for &d in &g.actions[i].deps {
                match unit[d] {
                    Some(du) => deps.push(du),
                    None => deps.extend(reach(g, &unit, &mut memo, d)),
                }
            }
            let mut seen = std::collections::HashSet::new();
            deps.retain(|&d| d != u && seen.insert(d));
            run.actions[u].deps = deps.into_iter().map(|d| d as u32).collect();
        }
        run.name_variants(g, &unit);

        let st = &t.stats;
        if missing > 0 {
            run.notes.push(format!(
                "{missing} actions of the action graph have no hash in the transcript"
            ));
        }
        if st.unverified > 0 {
            run.notes.push(format!(
                "{} hashes of the transcript could not be verified (interleaved output); their inputs may be misattributed",
                st.unverified
            ));
        }
        if st.truncated {
            run.notes.push(
                "the transcript exceeded the memory limit: only its first part was kept".into(),
            );
        }
        if st.malformed + st.oversized > 0 {
            run.notes.push(format!(
                "{} transcript lines were malformed or too long and were skipped",
                st.malformed + st.oversized
            ));
        }
        run
    }

    fn add_tests(
        &mut self,
        t: &Transcript,
        g: &Graph,
        ix: &Index<'_>,
        salt: &[u8],
        o: &Options,
        unit: &mut [Option<usize>],
    ) {
        let mut by_pkg: HashMap<&str, Vec<&TestEvent>> = HashMap::new();
        let mut disabled_all: Option<&str> = None;
        for l in &t.tests {
            match (&l.package, &l.event) {
                (Some(p), ev) => by_pkg.entry(p.as_str()).or_default().push(ev),
                (None, TestEvent::Disabled(why)) => disabled_all = Some(why),
                _ => {}
            }
        }
        let plain_env = {
            let mut v = Vec::new();
            match &o.godebug {
                None => v.push(0u8),
                Some(val) => {
                    v.push(1u8);
                    v.extend_from_slice(val);
                }
            }
            hex::encode(sha(&[salt, &v]))
        };
        for (i, a) in g.actions.iter().enumerate() {
            if a.mode != "test run" {
                continue;
            }
            let events = by_pkg.get(a.package.as_str());
            let first = events.and_then(|evs| {
                evs.iter().find_map(|e| match e {
                    TestEvent::TestId { test_id, .. } => Some(*test_id),
                    _ => None,
                })
            });
            let Some(test_id) = first else {
                if let Some(why) = disabled_all.filter(|_| events.is_none()) {
                    let idx = self.actions.len();
                    unit[i] = Some(idx);
                    self.actions
                        .push(test_action(&a.package, None, Vec::new(), Vec::new()));
                    self.tests.push(TestCheck {
                        action: idx,
                        status: TestStatus::Disabled(why.to_owned()),
                        lookups: Vec::new(),
                        saved: Vec::new(),
                    });
                }
                continue;
            };
            let events = events.expect("an event was found");
            let mut status = TestStatus::Unknown;
            let mut lookups = Vec::new();
            let mut saved = Vec::new();
            let mut lookup_inputs = None;
            let mut saved_inputs = None;
            for e in events {
                match e {
                    TestEvent::Disabled(why) => status = TestStatus::Disabled(why.clone()),
                    TestEvent::InputListMissing if status == TestStatus::Unknown => {
                        status = TestStatus::InputListMissing;
                    }
                    // A file written less than 2 s before the run: the go command does not
                    // cache the result at all (nor would a plain run).
                    TestEvent::LookupFailed(why) if why.starts_with("input file ") => {
                        status = TestStatus::Disabled(why.clone());
                    }
                    TestEvent::Lookup {
                        test_id: tid,
                        inputs_id,
                        ..
                    } => {
                        if !matches!(status, TestStatus::Disabled(_)) {
                            status = TestStatus::Checked;
                        }
                        if let Some(p) = plain_inputs(ix, inputs_id, salt, &plain_env) {
                            lookups.push(ActionId::from_bytes(result_key(tid, &p.id)));
                            if lookup_inputs.is_none() {
                                lookup_inputs = Some((*tid, p));
                            }
                        }
                    }
                    TestEvent::Save {
                        test_id: tid,
                        inputs_id,
                        key,
                    } => {
                        if let Some(p) = plain_inputs(ix, inputs_id, salt, &plain_env) {
                            let plain = result_key(tid, &p.id);
                            saved.push((ActionId::from_bytes(*key), ActionId::from_bytes(plain)));
                            if saved_inputs.is_none() {
                                saved_inputs = Some((*tid, p));
                            }
                        }
                    }
                    _ => {}
                }
            }
            if status == TestStatus::Checked && lookups.is_empty() {
                status = TestStatus::Unknown;
            }
            let chosen = if o.prefer_saved {
                saved_inputs.or(lookup_inputs)
            } else {
                lookup_inputs.or(saved_inputs)
            };
            let mut inputs = Vec::new();
            if let Some(r) = ix.by_sum.get(&test_id) {
                inputs.extend(r.inputs().iter().map(|w| line(w)));
            }
            let (id, details) = match chosen {
                Some((tid, p)) => {
                    inputs.extend(p.lines);
                    (
                        Some(ActionId::from_bytes(result_key(&tid, &p.id))),
                        p.details,
                    )
                }
                None => (None, Vec::new()),
            };
            let idx = self.actions.len();
            unit[i] = Some(idx);
            let mut act = test_action(&a.package, id, inputs, details);
            act.recorded = id.is_some();
            self.actions.push(act);
            self.tests.push(TestCheck {
                action: idx,
                status,
                lookups,
                saved,
            });
        }
    }

    fn name_variants(&mut self, g: &Graph, unit: &[Option<usize>]) {
        // Which test binaries link each compile.
        let mut linked_by: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for a in &self.actions {
            if a.mode == Mode::Link && a.package.ends_with(".test") {
                for &d in &a.deps {
                    linked_by.entry(d as usize).or_default().push(&a.package);
                }
            }
        }
        let mut variants = vec![None; self.actions.len()];
        for (i, a) in self.actions.iter().enumerate() {
            // `forcelibrary` alone is not enough: go vet compiles main packages that way too.
            // Copies no test binary links (go vet's) share their key with the package and are
            // told apart by their inputs when matched.
            if a.mode == Mode::Build
                && a.inputs.iter().any(|l| l == "forcelibrary")
                && let Some(t) = linked_by.get(&i).and_then(|v| v.iter().min())
            {
                variants[i] = Some(format!("[{t}]"));
            }
        }
        // A vet of a test copy is the test copy's vet.
        for (i, a) in g.actions.iter().enumerate() {
            if a.mode == "vet"
                && let Some(u) = unit[i]
                && let Some(b) = a.deps.first().and_then(|&d| unit[d])
            {
                variants[u] = variants[b].clone();
            }
        }
        for (a, v) in self.actions.iter_mut().zip(variants) {
            a.variant = v;
        }
    }

    /// Marks which test results missed: a plain run hits when the result is available under
    /// any key it looks up. `available` answers from the local cache and the remote.
    pub fn resolve_tests(&mut self, mut available: impl FnMut(&ActionId) -> bool) {
        for t in &self.tests {
            let missed = match t.status {
                TestStatus::Checked => !t.lookups.iter().any(&mut available),
                TestStatus::InputListMissing => !t.lookups.iter().any(&mut available),
                TestStatus::Disabled(_) | TestStatus::Unknown => false,
            };
            self.actions[t.action].ran = missed;
        }
    }
}

fn test_action(
    pkg: &str,
    id: Option<ActionId>,
    inputs: Vec<String>,
    details: Vec<Detail>,
) -> Action {
    Action {
        mode: Mode::Test,
        package: pkg.to_owned(),
        variant: None,
        id,
        ran: false,
        recorded: false,
        inputs,
        deps: Vec::new(),
        details,
    }
}

fn reach(
    g: &Graph,
    unit: &[Option<usize>],
    memo: &mut [Option<Vec<usize>>],
    start: usize,
) -> Vec<usize> {
    if let Some(v) = &memo[start] {
        return v.clone();
    }
    // Iterative post-order over the non-cacheable actions below `start`.
    let mut stack = vec![(start, false)];
    let mut on_stack = vec![false; g.actions.len()];
    while let Some((x, done)) = stack.pop() {
        if memo[x].is_some() {
            continue;
        }
        if done {
            let mut out = Vec::new();
            for &d in &g.actions[x].deps {
                match unit[d] {
                    Some(u) => out.push(u),
                    None => out.extend(memo[d].clone().unwrap_or_default()),
                }
            }
            out.sort_unstable();
            out.dedup();
            memo[x] = Some(out);
            continue;
        }
        if on_stack[x] {
            // A cycle (not something the go command writes): cut it.
            memo[x] = Some(Vec::new());
            continue;
        }
        on_stack[x] = true;
        stack.push((x, true));
        for &d in &g.actions[x].deps {
            if unit[d].is_none() && memo[d].is_none() && !on_stack[d] {
                stack.push((d, false));
            }
        }
    }
    memo[start].clone().unwrap_or_default()
}

/// `Subkey(testID, "inputs:<hex>")`: where a result is stored.
fn result_key(test_id: &[u8; 32], inputs_id: &[u8; 32]) -> [u8; 32] {
    subkey(test_id, &format!("inputs:{}", hex::encode(inputs_id)))
}

struct Plain {
    id: [u8; 32],
    lines: Vec<String>,
    details: Vec<Detail>,
}

/// A `testInputs` hash as a plain run computes it: the `env GODEBUG` line with the user's
/// own value. `None` when the record is missing or unverified.
fn plain_inputs(
    ix: &Index<'_>,
    inputs_id: &[u8; 32],
    salt: &[u8],
    plain_env: &str,
) -> Option<Plain> {
    let r = ix.by_sum.get(inputs_id).filter(|r| r.verified)?;
    if r.writes.first().map(|s| &s[..]) != Some(salt) {
        return None;
    }
    let mut writes: Vec<Vec<u8>> = r.writes.iter().map(|w| w.to_vec()).collect();
    if let Some(w) = writes.get_mut(1)
        && w.starts_with(b"env GODEBUG ")
    {
        *w = format!("env GODEBUG {plain_env}\n").into_bytes();
    }
    let refs: Vec<&[u8]> = writes.iter().map(|w| w.as_slice()).collect();
    let id = sha(&refs);
    let mut lines = Vec::new();
    let mut details = Vec::new();
    for w in &writes[1..] {
        let l = line(w);
        if let Some((key, sum)) = l.rsplit_once(' ')
            && let Some(sum) = hex32(sum.as_bytes())
        {
            let nested = ix.by_sum.get(&sum);
            let dl = if key == "env GODEBUG" {
                // Normalized above: the line itself differs when the user's value does.
                Vec::new()
            } else if key.starts_with("env ") {
                // Only whether it is set: values (secrets, tokens) are never kept.
                match nested.and_then(|n| n.inputs().first()) {
                    Some(b) if &b[..] == b"\x00" => vec!["unset".to_owned()],
                    Some(_) => vec!["set".to_owned()],
                    None => Vec::new(),
                }
            } else {
                nested.map_or_else(Vec::new, |n| n.inputs().iter().map(|w| line(w)).collect())
            };
            if !dl.is_empty() {
                details.push(Detail {
                    key: key.to_owned(),
                    lines: dl,
                });
            }
        }
        lines.push(l);
    }
    Some(Plain { id, lines, details })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::Limits;

    #[test]
    fn subkey_matches_go() {
        // From a real transcript: HASH subkey 8197…bf55 "stdout" = 16a8…4ee.
        let parent =
            hex32(b"8197de2177c040b0290a6944e15440ddb5616461115ebf4bed5f85deafdebf55").unwrap();
        assert_eq!(
            hex::encode(subkey(&parent, "stdout")),
            "16a8297af0b049c34ee884ba0668da9eff7a6861c9bd06f39754e49e992884ee"
        );
    }

    #[test]
    fn vet_pkg_line_shows_hex() {
        let mut w = b"pkg \"".to_vec();
        for b in 0..32u8 {
            w.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
        w.extend_from_slice(b"\"\n");
        assert_eq!(
            line(&w),
            format!("pkg {}", hex::encode((0..32u8).collect::<Vec<_>>()))
        );
        assert_eq!(line(b"dir /a\n"), "dir /a");
    }

    /// The test-cache part of a real `go test ./...` transcript (Go 1.26.8, run with
    /// `GODEBUG=gocachehash=1,gocachetest=1`): with that GODEBUG the keys computed here are
    /// the go command's own; with the user's (unset) GODEBUG they are a plain run's.
    const LEAF: &str = include_str!("../testdata/go1.26.8-test-leaf.txt");

    fn leaf_graph() -> Graph {
        Graph::parse(
            br#"[{"ID":0,"Mode":"test run","Package":"example.com/m/leaf","Deps":[1]},
                 {"ID":1,"Mode":"link","Package":"example.com/m/leaf.test","ActionID":"QQlYUHbE1uyaknJY76q3"},
                 {"ID":2,"Mode":"test run","Package":"example.com/m/mid"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn test_result_keys_are_the_go_commands() {
        let t = Transcript::parse(LEAF.as_bytes(), Limits::default());
        assert_eq!(t.stats.unverified, 0, "{:?}", t.stats);
        let hex = |s: &str| ActionId::from_bytes(hex32(s.as_bytes()).unwrap());
        let as_run = Options {
            godebug: Some(b"gocachehash=1,gocachetest=1".to_vec()),
            ..Options::default()
        };
        let r = Run::build(&t, &leaf_graph(), &as_run);
        let leaf = r
            .tests
            .iter()
            .find(|c| r.actions[c.action].package == "example.com/m/leaf")
            .unwrap();
        assert_eq!(leaf.status, TestStatus::Checked);
        // `testcache: …: test ID 82e3… => input ID 2726… => 5cad…`
        assert_eq!(
            leaf.lookups,
            vec![hex(
                "5cade46167f51163040de97e7c82dfa60da4bcded6ef91662077877dc2eca4ff"
            )]
        );
        // `testcache: …: save test ID b139… => input ID 2726… => dfd8…`: with the GODEBUG it
        // ran with, the stored key is the plain key.
        assert!(leaf.saved.iter().any(|(stored, plain)| stored == plain
            && *stored == hex("dfd8192cc0cd97e49e9c412d44578ce10666888bbd31dd7aad4a98b67728d1db")));

        // As a plain run (GODEBUG unset) sees it: other keys, and the inputs say which file
        // and variable the test read.
        let plain = Run::build(&t, &leaf_graph(), &Options::default());
        let leaf = plain
            .tests
            .iter()
            .find(|c| plain.actions[c.action].package == "example.com/m/leaf")
            .unwrap();
        assert_ne!(
            leaf.lookups[0],
            hex("5cade46167f51163040de97e7c82dfa60da4bcded6ef91662077877dc2eca4ff")
        );
        assert!(leaf.saved.iter().all(|(stored, plain)| stored != plain));
        let a = &plain.actions[leaf.action];
        assert_eq!(a.id, Some(leaf.lookups[0]));
        assert!(a.inputs[0].starts_with("test binary QQlYUHbE1uyaknJY76q3 args"));
        assert!(
            a.inputs
                .iter()
                .any(|l| l.starts_with("open /tmp/ex/m/leaf/testdata/x.txt "))
        );
        let open = a
            .details
            .iter()
            .find(|d| d.key == "open /tmp/ex/m/leaf/testdata/x.txt")
            .unwrap();
        assert_eq!(
            open.lines,
            ["stat 3 1a4 2020-01-01 00:00:00 +0000 UTC false"]
        );
        let env = a.details.iter().find(|d| d.key == "env FOO").unwrap();
        assert_eq!(env.lines, ["unset"]);
        // No value of an environment variable is kept anywhere.
        assert!(!format!("{:?}", plain.actions).contains("gocachehash"));

        // Resolving: available under its plain key → a hit; not → a miss.
        let mut r2 = plain.clone();
        let key = leaf.lookups[0];
        r2.resolve_tests(|k| *k == key);
        assert!(!r2.actions[leaf.action].ran);
        r2.resolve_tests(|_| false);
        assert!(r2.actions[leaf.action].ran);
    }

    #[test]
    fn empty_inputs_build_an_empty_run() {
        let t = Transcript::parse(b"", Limits::default());
        let g = Graph::default();
        let r = Run::build(&t, &g, &Options::default());
        assert!(r.actions.is_empty());
    }
}
