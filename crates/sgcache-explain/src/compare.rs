//! The comparison: each action this run missed against the baseline's action for the same
//! package and mode, then down the graph to the root causes.
//!
//! 1. **Match.** Actions are keyed by mode, import path and variant (`[p.test]` for a test
//!    copy). When a key names several actions on a side, equal ids pair first, then the
//!    closest input lists.
//! 2. **Same inputs?** A missed action whose id equals the baseline's (for a test: the key
//!    its result is stored under) had the same inputs: the entry was not available (evicted,
//!    never uploaded, in another namespace, refused by verification), nothing changed.
//! 3. **Root causes.** Otherwise its input lines are compared key by key. A change to its
//!    own inputs makes it a root cause; a change to a dependency's content id (`import`,
//!    `packagefile`, a vet's `pkg`, a test's `test binary`) is followed to that dependency,
//!    recursively, whether the dependency hit or missed. Missed actions that are not root
//!    causes are cascades, listed under the root causes they come from.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::classify::{self, Class, DepRef, Effect};
use crate::model::{Action, Mode, Run};

/// An action as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRef {
    /// `build`, `vet`, `test`, `link`.
    pub mode: Mode,
    /// Import path.
    pub package: String,
    /// `[p.test]` for a test copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Action id (hex), or for a test the result's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ActionRef {
    fn of(a: &Action) -> ActionRef {
        ActionRef {
            mode: a.mode,
            package: a.package.clone(),
            variant: a.variant.clone(),
            id: a.id.map(|i| i.hex()),
        }
    }

    /// `example.com/m/leaf`, `example.com/m/leaf (vet)`, `example.com/m/leaf [x.test]`.
    pub fn short(&self) -> String {
        let mut s = self.package.clone();
        if let Some(v) = &self.variant {
            s.push(' ');
            s.push_str(v);
        }
        if self.mode != Mode::Build {
            s.push_str(&format!(" ({})", self.mode.as_str()));
        }
        s
    }
}

/// One changed input line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What the line is (`file leaf.go`, `dir`, `open /m/testdata/x`).
    pub key: String,
    /// What the change means.
    pub class: Class,
    /// In a few words.
    pub what: String,
    /// The line in the baseline (absent: the line is new).
    pub baseline: Option<String>,
    /// The line now (absent: the line went away).
    pub now: Option<String>,
    /// For a test input: the file's stat lines in the baseline and now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<(Vec<String>, Vec<String>)>,
}

/// A root cause: an action whose own inputs changed (or that the baseline lacks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootCause {
    /// The action.
    pub action: ActionRef,
    /// Its class (the most telling of its changes).
    pub class: Class,
    /// Whether it missed itself (a root cause may hit: its new result was cached already).
    pub missed: bool,
    /// Its own changes, the most telling first.
    pub changes: Vec<Change>,
    /// The missed actions it invalidated that are not root causes themselves (cascades).
    pub invalidated: Vec<ActionRef>,
    /// What to do.
    pub remedy: String,
}

/// Root causes of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The class.
    pub class: Class,
    /// What it is.
    pub title: String,
    /// What to do (for the group's first root cause; each root cause has its own).
    pub remedy: String,
    /// The root causes.
    pub root_causes: Vec<RootCause>,
}

/// A missed action that only inherited a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cascade {
    /// The action.
    pub action: ActionRef,
    /// The root causes it comes from (`build example.com/m/leaf`).
    pub because: Vec<String>,
}

/// Counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Cacheable actions of this run (compiles, vets, test results).
    pub actions: usize,
    /// Those that missed the cache.
    pub missed: usize,
    /// Distinct root causes of the misses.
    pub root_causes: usize,
    /// Missed actions that only inherited a change.
    pub cascades: usize,
    /// Missed actions whose inputs equal the baseline's: the entry was not available.
    pub not_available: usize,
    /// Test results the test cache did not apply to.
    pub uncacheable_tests: usize,
}

/// What the baseline was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BaselineInfo {
    /// Where it came from (a file, a namespace), said by the caller.
    pub source: String,
    /// Its Go version.
    pub go_version: String,
    /// Its go command.
    pub command: Vec<String>,
    /// When it was recorded (Unix seconds).
    pub recorded_at: u64,
    /// Its cacheable actions.
    pub actions: usize,
}

/// The explanation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// This run's go command.
    pub command: Vec<String>,
    /// This run's Go version.
    pub go_version: String,
    /// The baseline.
    pub baseline: BaselineInfo,
    /// Counts.
    pub summary: Summary,
    /// Root causes by class, most missed actions first.
    pub groups: Vec<Group>,
    /// Missed with the baseline's inputs: evicted, never uploaded, another namespace, or
    /// refused by verification.
    pub not_available: Vec<ActionRef>,
    /// Missed because of a root cause below them.
    pub cascades: Vec<Cascade>,
    /// Caveats (transcript problems, toolchain skew).
    pub notes: Vec<String>,
}

/// A key-by-key difference of two input lists: `(key, baseline line, current line)`.
fn diff<'a>(
    base: &'a [String],
    cur: &'a [String],
) -> Vec<(String, Option<&'a str>, Option<&'a str>)> {
    fn keyed(lines: &[String]) -> Vec<(String, &str)> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        lines
            .iter()
            .map(|l| {
                let k = classify::key(l);
                let n = seen.entry(k.clone()).or_insert(0);
                *n += 1;
                let k = if *n > 1 { format!("{k}#{n}") } else { k };
                (k, l.as_str())
            })
            .collect()
    }
    let b = keyed(base);
    let c = keyed(cur);
    let bm: HashMap<&str, &str> = b.iter().map(|(k, l)| (k.as_str(), *l)).collect();
    let cm: HashMap<&str, &str> = c.iter().map(|(k, l)| (k.as_str(), *l)).collect();
    let mut out = Vec::new();
    for (k, l) in &c {
        match bm.get(k.as_str()) {
            Some(bl) if bl == l => {}
            Some(bl) => out.push((k.clone(), Some(*bl), Some(*l))),
            None => out.push((k.clone(), None, Some(*l))),
        }
    }
    for (k, l) in &b {
        if !cm.contains_key(k.as_str()) {
            out.push((k.clone(), Some(*l), None));
        }
    }
    out
}

/// A test's inputs name files by absolute path: in another checkout the same file has
/// another key. Pairs a file that went away with one that appeared when their paths end
/// alike (`/a/m/leaf/testdata/x` and `/b/m/leaf/testdata/x`), returning the common end.
#[allow(clippy::type_complexity)]
fn pair_moved<'a>(
    d: Vec<(String, Option<&'a str>, Option<&'a str>)>,
) -> Vec<(String, Option<&'a str>, Option<&'a str>, Option<String>)> {
    let path = |k: &str| -> Option<(String, String)> {
        let (kind, p) = k.split_once(' ')?;
        (matches!(kind, "open" | "stat" | "chdir") && p.starts_with('/'))
            .then(|| (kind.to_owned(), p.to_owned()))
    };
    let mut removed: Vec<(usize, String, String)> = d
        .iter()
        .enumerate()
        .filter(|(_, (_, b, c))| b.is_some() && c.is_none())
        .filter_map(|(i, (k, _, _))| path(k).map(|(kind, p)| (i, kind, p)))
        .collect();
    let mut out: Vec<_> = d
        .iter()
        .map(|(k, b, c)| (k.clone(), *b, *c, None))
        .collect();
    let mut gone = Vec::new();
    for (i, (k, b, c)) in d.iter().enumerate() {
        let (None, Some(_)) = (b, c) else { continue };
        let Some((kind, p)) = path(k) else { continue };
        let found = removed.iter().position(|(_, rk, rp)| {
            let common = common_suffix(rp, &p);
            *rk == kind
                && common.starts_with('/')
                && common.matches('/').count() >= 2
                && rp.len() > common.len()
        });
        if let Some(pos) = found {
            let (ri, _, rp) = removed.remove(pos);
            let common = common_suffix(&rp, &p).to_owned();
            out[i].1 = d[ri].1;
            out[i].3 = Some(common);
            gone.push(ri);
        }
    }
    out.into_iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, x)| x)
        .collect()
}

fn common_suffix<'a>(a: &'a str, b: &str) -> &'a str {
    let n = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut start = a.len() - n;
    while !a.is_char_boundary(start) {
        start += 1;
    }
    &a[start..]
}

fn strip_occurrence(k: &str) -> &str {
    match k.rsplit_once('#') {
        Some((base, n)) if n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => k,
    }
}

struct Cmp<'r> {
    cur: &'r Run,
    base: &'r Run,
    matched: Vec<Option<usize>>,
    /// Who depends on each current action.
    rdeps: Vec<Vec<usize>>,
    rc: Vec<Option<BTreeSet<usize>>>,
    visiting: Vec<bool>,
    /// Each compared action's own changes and the dependencies whose lines changed (with
    /// whether the line is new: an added import).
    diffs: HashMap<usize, Diffed>,
    /// The class and changes of each root cause.
    own: HashMap<usize, (Class, Vec<Change>)>,
}

#[derive(Clone)]
struct Diffed {
    own: Vec<Change>,
    deps: Vec<(usize, bool)>,
    unresolved: bool,
    /// One side's input lines are not known (an unverified or missing hash record): the
    /// dependencies that changed are followed instead of lines.
    unrecorded: bool,
}

impl Cmp<'_> {
    fn same(&self, i: usize) -> bool {
        let Some(j) = self.matched[i] else {
            return false;
        };
        let (a, b) = (&self.cur.actions[i], &self.base.actions[j]);
        match (a.id, b.id) {
            (Some(x), Some(y)) => x == y,
            _ => a.recorded && b.recorded && a.inputs == b.inputs && a.details == b.details,
        }
    }

    /// The changes of action `i` against its match, split into own changes and deps.
    fn diffed(&mut self, i: usize) -> Diffed {
        if let Some(d) = self.diffs.get(&i) {
            return d.clone();
        }
        let d = self.changes(i);
        self.diffs.insert(i, d.clone());
        d
    }

    fn changes(&self, i: usize) -> Diffed {
        let a = &self.cur.actions[i];
        let j = self.matched[i].expect("only called for matched actions");
        let b = &self.base.actions[j];
        let mut own = Vec::new();
        let mut deps = Vec::new();
        let mut unresolved = false;
        if !a.recorded || !b.recorded {
            let deps = a
                .deps
                .iter()
                .map(|&d| d as usize)
                .filter(|&d| self.matched[d].is_some() && !self.same(d))
                .map(|d| (d, false))
                .collect();
            return Diffed {
                own,
                deps,
                unresolved,
                unrecorded: true,
            };
        }
        let detail = |act: &Action, k: &str| -> Vec<String> {
            act.details
                .iter()
                .find(|d| d.key == k)
                .map(|d| d.lines.clone())
                .unwrap_or_default()
        };
        for (k, bl, cl, moved) in pair_moved(diff(&b.inputs, &a.inputs)) {
            let base_key = strip_occurrence(&k);
            let old_key = match (&moved, bl) {
                (Some(_), Some(l)) => classify::key(l),
                _ => base_key.to_owned(),
            };
            let (bd, cd) = (detail(b, &old_key), detail(a, base_key));
            let det = (!bd.is_empty() || !cd.is_empty()).then_some((bd, cd));
            let eff = match &moved {
                // The same file under another checkout path, otherwise unchanged.
                Some(rel) if det.as_ref().is_none_or(|(x, y)| x == y) => Effect::Own(
                    Class::Dir,
                    format!("the checkout path of a file the test reads (…{rel})"),
                ),
                _ => classify::effect(
                    base_key,
                    bl,
                    cl,
                    det.as_ref().map(|(x, y)| (x.as_slice(), y.as_slice())),
                ),
            };
            match eff {
                Effect::Own(class, what) => own.push(Change {
                    key: base_key.to_owned(),
                    class,
                    what,
                    baseline: bl.map(str::to_owned),
                    now: cl.map(str::to_owned),
                    detail: det,
                }),
                Effect::Dep(d) => match self.resolve(i, &d) {
                    Some(x) => deps.push((x, bl.is_none())),
                    None => unresolved = true,
                },
                Effect::None => {}
            }
        }
        // Same lines, different details (a file a test opens changed, its line's sum too:
        // caught above); or different ids with the same lines: the salt (Go version).
        if own.is_empty()
            && deps.is_empty()
            && !unresolved
            && self.cur.go_version != self.base.go_version
        {
            own.push(Change {
                key: "salt".into(),
                class: Class::Toolchain,
                what: format!(
                    "the Go version ({} → {})",
                    self.base.go_version, self.cur.go_version
                ),
                baseline: Some(self.base.go_version.clone()),
                now: Some(self.cur.go_version.clone()),
                detail: None,
            });
        }
        own.sort_by_key(|c| c.class);
        Diffed {
            own,
            deps,
            unresolved,
            unrecorded: false,
        }
    }

    /// The current action a dependency line points at.
    fn resolve(&self, i: usize, d: &DepRef) -> Option<usize> {
        let a = &self.cur.actions[i];
        let deps = a.deps.iter().map(|&d| d as usize);
        let find = |mode: Mode, pkg: Option<&str>| {
            deps.clone().find(|&x| {
                let dx = &self.cur.actions[x];
                dx.mode == mode && pkg.is_none_or(|p| dx.package == p)
            })
        };
        match d {
            DepRef::Build(p) => find(Mode::Build, Some(p)),
            DepRef::Vet(p) => find(Mode::Vet, Some(p)),
            DepRef::VetPkg => {
                find(Mode::Build, Some(&a.package)).or_else(|| find(Mode::Build, None))
            }
            DepRef::TestBinary => find(Mode::Link, None),
            DepRef::Main => a.deps.first().map(|&x| x as usize),
        }
    }

    /// Whether `x` is compared with the baseline and has changes of its own.
    fn has_own(&mut self, x: usize) -> bool {
        self.matched[x].is_some() && !self.same(x) && !self.diffed(x).own.is_empty()
    }

    fn root_causes(&mut self, i: usize) -> BTreeSet<usize> {
        if let Some(s) = &self.rc[i] {
            return s.clone();
        }
        if self.visiting[i] {
            return BTreeSet::new();
        }
        self.visiting[i] = true;
        let mut set = BTreeSet::new();
        if self.matched[i].is_none() {
            // Not in the baseline: pulled in by an importer whose own inputs changed (cgo
            // switched on imports runtime/cgo), or new in its own right.
            let importers: Vec<usize> = self.rdeps[i].clone();
            for x in importers {
                if self.has_own(x) {
                    set.extend(self.root_causes(x));
                }
            }
            if set.is_empty() {
                set.insert(i);
                self.own.insert(i, (Class::New, Vec::new()));
            }
        } else if !self.same(i) {
            let d = self.diffed(i);
            if !d.own.is_empty() {
                set.insert(i);
                self.own.insert(i, (d.own[0].class, d.own.clone()));
            }
            for (dep, added) in d.deps {
                if added && (!d.own.is_empty() || self.same(dep)) {
                    // A new dependency of an action that changed itself (that change says
                    // why), or one that is itself unchanged: nothing to follow.
                    continue;
                }
                if self.same(dep) {
                    // A dependency with the baseline's inputs but another output.
                    set.insert(dep);
                    self.own.entry(dep).or_insert((Class::Output, Vec::new()));
                    self.rc[dep].get_or_insert_with(|| BTreeSet::from([dep]));
                } else {
                    set.extend(self.root_causes(dep));
                }
            }
            if set.is_empty() {
                set.insert(i);
                let what = if d.unrecorded {
                    "its hash's inputs are not known (the transcript interleaved two hashes of one name, or lacks it), and none of its dependencies changed"
                } else if d.unresolved {
                    "a dependency's output changed, and the action graph does not say which"
                } else {
                    "the inputs differ in a way the transcript does not show (an unverified record?)"
                };
                let change = Change {
                    key: "?".into(),
                    class: Class::Unknown,
                    what: what.into(),
                    baseline: None,
                    now: None,
                    detail: None,
                };
                self.own.insert(i, (Class::Unknown, vec![change]));
            }
        }
        self.visiting[i] = false;
        self.rc[i] = Some(set.clone());
        set
    }
}

/// Matches the current run's actions to the baseline's.
fn match_actions(cur: &Run, base: &Run) -> Vec<Option<usize>> {
    let key = |a: &Action| -> (Mode, String, Option<String>) {
        (a.mode, a.package.clone(), a.variant.clone())
    };
    let mut base_by: HashMap<(Mode, String, Option<String>), Vec<usize>> = HashMap::new();
    for (j, a) in base.actions.iter().enumerate() {
        base_by.entry(key(a)).or_default().push(j);
    }
    let mut cur_by: HashMap<(Mode, String, Option<String>), Vec<usize>> = HashMap::new();
    for (i, a) in cur.actions.iter().enumerate() {
        cur_by.entry(key(a)).or_default().push(i);
    }
    let mut out = vec![None; cur.actions.len()];
    for (k, cs) in cur_by {
        let Some(bs) = base_by.get(&k) else { continue };
        if cs.len() == 1 && bs.len() == 1 {
            out[cs[0]] = Some(bs[0]);
            continue;
        }
        let mut free: Vec<usize> = bs.clone();
        let mut rest = Vec::new();
        // Closest-inputs pairing costs a diff per pair: only for the few copies a real
        // graph has (a package and its test copies), in order beyond that.
        let by_diff = cs.len() * bs.len() <= 4096;
        for &i in &cs {
            let id = cur.actions[i].id;
            match free
                .iter()
                .position(|&j| id.is_some() && base.actions[j].id == id)
            {
                Some(p) => out[i] = Some(free.remove(p)),
                None => rest.push(i),
            }
        }
        for i in rest {
            if !by_diff {
                if !free.is_empty() {
                    out[i] = Some(free.remove(0));
                }
                continue;
            }
            let best = free
                .iter()
                .enumerate()
                .min_by_key(|(_, j)| diff(&base.actions[**j].inputs, &cur.actions[i].inputs).len())
                .map(|(p, _)| p);
            if let Some(p) = best {
                out[i] = Some(free.remove(p));
            }
        }
    }
    out
}

/// Explains the misses of `cur` against `base`. `source` says where the baseline came from.
pub fn compare(cur: &Run, base: &Run, source: &str) -> Report {
    let n = cur.actions.len();
    let mut rdeps = vec![Vec::new(); n];
    for (i, a) in cur.actions.iter().enumerate() {
        for &d in &a.deps {
            rdeps[d as usize].push(i);
        }
    }
    let mut cmp = Cmp {
        cur,
        base,
        matched: match_actions(cur, base),
        rdeps,
        rc: vec![None; n],
        visiting: vec![false; n],
        diffs: HashMap::new(),
        own: HashMap::new(),
    };
    let mut report = Report {
        command: cur.command.clone(),
        go_version: cur.go_version.clone(),
        baseline: BaselineInfo {
            source: source.to_owned(),
            go_version: base.go_version.clone(),
            command: base.command.clone(),
            recorded_at: base.recorded_at,
            actions: base.actions.iter().filter(|a| a.mode != Mode::Link).count(),
        },
        notes: cur.notes.clone(),
        ..Report::default()
    };
    if cur.go_version != base.go_version {
        report.notes.insert(
            0,
            format!(
                "the baseline was recorded with {}, this run uses {}: every action id differs (toolchain skew)",
                base.go_version, cur.go_version
            ),
        );
    }
    let uncacheable: usize = cur
        .tests
        .iter()
        .filter(|t| matches!(t.status, crate::model::TestStatus::Disabled(_)))
        .count();
    report.summary.uncacheable_tests = uncacheable;
    for t in &cur.tests {
        if let crate::model::TestStatus::Disabled(why) = &t.status {
            report.notes.push(format!(
                "{}: test result not cacheable: {why}",
                cur.actions[t.action].package
            ));
        }
    }
    let missed: Vec<usize> = (0..n)
        .filter(|&i| cur.actions[i].mode != Mode::Link && cur.actions[i].ran)
        .collect();
    report.summary.actions = cur.actions.iter().filter(|a| a.mode != Mode::Link).count();
    report.summary.missed = missed.len();

    let mut roots: BTreeSet<usize> = BTreeSet::new();
    let mut by_root: HashMap<usize, Vec<usize>> = HashMap::new();
    for &m in &missed {
        if cmp.matched[m].is_some() && cmp.same(m) {
            report.not_available.push(ActionRef::of(&cur.actions[m]));
            continue;
        }
        let rcs = cmp.root_causes(m);
        if !rcs.contains(&m) {
            report.cascades.push(Cascade {
                action: ActionRef::of(&cur.actions[m]),
                because: rcs.iter().map(|&r| cur.actions[r].describe()).collect(),
            });
        }
        for &r in &rcs {
            roots.insert(r);
            if !rcs.contains(&m) {
                by_root.entry(r).or_default().push(m);
            }
        }
    }
    report.summary.not_available = report.not_available.len();
    report.summary.cascades = report.cascades.len();
    report.summary.root_causes = roots.len();

    let mut groups: Vec<Group> = Vec::new();
    for r in roots {
        let (class, changes) = cmp
            .own
            .get(&r)
            .cloned()
            .unwrap_or((Class::Unknown, Vec::new()));
        let what = changes.first().map_or("", |c| c.what.as_str()).to_owned();
        let invalidated: Vec<ActionRef> = by_root
            .get(&r)
            .map(|v| v.iter().map(|&m| ActionRef::of(&cur.actions[m])).collect())
            .unwrap_or_default();
        let rc = RootCause {
            action: ActionRef::of(&cur.actions[r]),
            class,
            missed: cur.actions[r].ran,
            changes,
            invalidated,
            remedy: classify::remedy(class, &what),
        };
        match groups.iter_mut().find(|g| g.class == class) {
            Some(g) => g.root_causes.push(rc),
            None => groups.push(Group {
                class,
                title: class.title().to_owned(),
                remedy: rc.remedy.clone(),
                root_causes: vec![rc],
            }),
        }
    }
    for g in &mut groups {
        g.root_causes.sort_by(|a, b| {
            b.invalidated
                .len()
                .cmp(&a.invalidated.len())
                .then_with(|| a.action.package.cmp(&b.action.package))
        });
        g.remedy = g.root_causes[0].remedy.clone();
    }
    groups.sort_by_key(|g| {
        let hits: usize = g
            .root_causes
            .iter()
            .map(|r| r.invalidated.len() + usize::from(r.missed))
            .sum();
        (std::cmp::Reverse(hits), g.class)
    });
    report.groups = groups;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgcache_types::ActionId;

    fn act(mode: Mode, pkg: &str, id: u8, ran: bool, inputs: &[&str], deps: &[u32]) -> Action {
        Action {
            mode,
            package: pkg.into(),
            variant: None,
            id: Some(ActionId::from_bytes([id; 32])),
            ran,
            recorded: true,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            deps: deps.to_vec(),
            details: vec![],
        }
    }

    fn run(actions: Vec<Action>) -> Run {
        Run {
            go_version: "go1.26.8".into(),
            actions,
            ..Run::default()
        }
    }

    /// leaf ← mid ← top, and a vet of top.
    fn chain(leaf_file: &str, ids: [u8; 4], ran: bool, dir: &str) -> Run {
        let leaf_cid = format!("cid-{leaf_file}");
        run(vec![
            act(
                Mode::Build,
                "m/leaf",
                ids[0],
                ran,
                &[
                    &format!("dir {dir}/leaf"),
                    &format!("file leaf.go {leaf_file}"),
                ],
                &[],
            ),
            act(
                Mode::Build,
                "m/mid",
                ids[1],
                ran,
                &[
                    &format!("dir {dir}/mid"),
                    "file mid.go m",
                    &format!("import m/leaf {leaf_cid}"),
                ],
                &[0],
            ),
            act(
                Mode::Build,
                "m/top",
                ids[2],
                ran,
                &[
                    &format!("dir {dir}/top"),
                    "file top.go t",
                    &format!("import m/mid mid-{leaf_cid}"),
                ],
                &[1],
            ),
            act(
                Mode::Vet,
                "m/top",
                ids[3],
                ran,
                &[&format!("pkg {}", hex::encode([ids[2]; 32]))],
                &[2],
            ),
        ])
    }

    #[test]
    fn a_leaf_change_is_the_one_root_cause() {
        let base = chain("aaa", [1, 2, 3, 4], false, "/a");
        let cur = chain("bbb", [11, 12, 13, 14], true, "/a");
        let r = compare(&cur, &base, "test");
        assert_eq!(r.summary.missed, 4);
        assert_eq!(r.summary.root_causes, 1, "{r:#?}");
        assert_eq!(r.summary.cascades, 3);
        assert_eq!(r.groups.len(), 1);
        let g = &r.groups[0];
        assert_eq!(g.class, Class::Source);
        let rc = &g.root_causes[0];
        assert_eq!(rc.action.package, "m/leaf");
        assert_eq!(rc.changes[0].key, "file leaf.go");
        assert_eq!(rc.changes[0].baseline.as_deref(), Some("file leaf.go aaa"));
        assert_eq!(rc.changes[0].now.as_deref(), Some("file leaf.go bbb"));
        let inv: Vec<String> = rc.invalidated.iter().map(ActionRef::short).collect();
        assert_eq!(inv, ["m/mid", "m/top", "m/top (vet)"]);
        assert!(r.cascades.iter().all(|c| c.because == ["build m/leaf"]));
    }

    #[test]
    fn another_directory_makes_every_package_a_dir_root_cause() {
        let base = chain("aaa", [1, 2, 3, 4], false, "/a");
        let cur = chain("aaa", [11, 12, 13, 14], true, "/b");
        let r = compare(&cur, &base, "test");
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].class, Class::Dir);
        assert_eq!(r.summary.root_causes, 3);
        assert!(r.groups[0].remedy.contains("-trimpath"));
    }

    #[test]
    fn same_inputs_are_not_available_not_changed() {
        let base = chain("aaa", [1, 2, 3, 4], false, "/a");
        let cur = chain("aaa", [1, 2, 3, 4], true, "/a");
        let r = compare(&cur, &base, "test");
        assert_eq!(r.summary.not_available, 4);
        assert_eq!(r.summary.root_causes, 0);
        assert!(r.groups.is_empty());
    }

    #[test]
    fn new_actions_and_toolchain_skew() {
        let base = chain("aaa", [1, 2, 3, 4], false, "/a");
        let mut cur = chain("aaa", [11, 12, 13, 14], true, "/a");
        cur.go_version = "go1.27.0".into();
        cur.actions
            .push(act(Mode::Build, "m/extra", 9, true, &["file x.go x"], &[]));
        let r = compare(&cur, &base, "test");
        assert!(r.notes[0].contains("go1.27.0"));
        let classes: Vec<Class> = r.groups.iter().map(|g| g.class).collect();
        assert!(classes.contains(&Class::Toolchain), "{classes:?}");
        assert!(classes.contains(&Class::New), "{classes:?}");
    }

    #[test]
    fn unverified_records_follow_the_graph() {
        let base = chain("aaa", [1, 2, 3, 4], false, "/a");
        let mut cur = chain("bbb", [11, 12, 13, 14], true, "/a");
        // mid's hash could not be attributed: its lines are not trusted, its graph deps are.
        cur.actions[1].recorded = false;
        cur.actions[1].inputs = vec!["garbage".into()];
        let r = compare(&cur, &base, "test");
        assert_eq!(r.summary.root_causes, 1, "{r:#?}");
        assert_eq!(r.groups[0].root_causes[0].action.package, "m/leaf");
        assert!(r.cascades.iter().any(|c| c.action.package == "m/mid"));
        // Unverified, and nothing below it changed: unknown, said so.
        let mut cur = chain("aaa", [1, 12, 3, 4], true, "/a");
        cur.actions[1].recorded = false;
        let r = compare(&cur, &base, "test");
        assert_eq!(r.groups.len(), 1, "{r:#?}");
        assert_eq!(r.groups[0].class, Class::Unknown);
        assert!(
            r.groups[0].root_causes[0].changes[0]
                .what
                .contains("not known")
        );
    }

    #[test]
    fn diff_is_keyed() {
        let b: Vec<String> = [
            "compile",
            "dir /a",
            "file a.go 1",
            "file gone.go 2",
            "compile compile version go1 [] []",
        ]
        .map(String::from)
        .to_vec();
        let c: Vec<String> = [
            "compile",
            "dir /b",
            "file a.go 1",
            "file new.go 3",
            "compile compile version go1 [] []",
        ]
        .map(String::from)
        .to_vec();
        let d = diff(&b, &c);
        assert_eq!(
            d,
            vec![
                ("dir".to_owned(), Some("dir /a"), Some("dir /b")),
                ("file new.go".to_owned(), None, Some("file new.go 3")),
                ("file gone.go".to_owned(), Some("file gone.go 2"), None),
            ]
        );
    }
}
