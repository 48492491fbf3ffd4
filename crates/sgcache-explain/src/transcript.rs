//! The hashing transcript the go command prints with `GODEBUG=gocachehash=1` (and the test
//! cache's narrative with `gocachetest=1`), parsed line by line.
//!
//! What `cmd/go/internal/cache/hash.go` writes on stderr, one `fmt.Fprintf` (one `write(2)`,
//! so lines never tear) per event:
//!
//! ```text
//! HASH[<name>]                      a hash starts (NewHash)
//! HASH[<name>]: "<bytes, %q>"       one Write; the first one of every hash is the salt (runtime.Version())
//! HASH[<name>]: <64 hex>            Sum; a hash may be summed, written and summed again
//! HASH <abs path>: <64 hex>         FileHash of a file (or `: <error>`)
//! HASH subkey <hex> "<desc>" = <hex>   Subkey(parent, desc)
//! testcache: <pkg>: <event>         the test cache's lookups and saves (test/test.go)
//! ```
//!
//! Concurrent hashes interleave, tagged by name. Names carry the package for compiles, links
//! and vets; `testResult`, `testInputs`, `getenv`, `open`, `stat` are shared. Writes go to
//! the most recent open hash of their name; at a sum the attribution is checked by recomputing
//! the SHA-256 (the transcript holds every byte that went in), trying the older open hashes of
//! that name when the newest does not match. A record whose bytes do not give its sum is kept
//! but marked unverified. Hashes abandoned without a sum (the go command gives up on an input
//! file that is too new) stay open until superseded and are counted.
//!
//! Robustness: any line that is not well formed is counted and skipped; nothing panics. Memory
//! is bounded by [`Limits`]: beyond `max_retained` bytes the parser keeps counting but stops
//! keeping, and says so ([`Stats::truncated`]).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::quote::{hex32, is_hex64, take_quoted, unquote};

/// Bounds on what the parser keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line considered; longer ones are counted and skipped.
    pub max_line: usize,
    /// Bytes of hash inputs and test-cache lines kept; beyond, counting only.
    pub max_retained: usize,
    /// Hashes open at once (all names); beyond, the oldest is dropped.
    pub max_open: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 1 << 20,
            max_retained: 512 << 20,
            max_open: 4096,
        }
    }
}

/// Hashes that are never part of an action's inputs (the module index's cache of `go list`
/// results): counted, not kept.
const IGNORED: &[&str] = &["moduleIndex"];

/// Open hashes of one name kept at once (concurrent ones, or ones abandoned without a sum).
const MAX_OPEN_PER_NAME: usize = 16;

/// A completed hash: its name, its sum and every byte written to it, salt first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRecord {
    /// `build <import path>`, `link <import path>`, `vet <import path>`, `testResult`, ….
    pub name: String,
    /// The SHA-256 the go command printed.
    pub sum: [u8; 32],
    /// Each write, in order; the first is the salt (the Go version).
    pub writes: Vec<Box<[u8]>>,
    /// Whether SHA-256 of the writes is `sum` (the attribution of every write is right).
    pub verified: bool,
}

impl HashRecord {
    /// The writes after the salt.
    pub fn inputs(&self) -> &[Box<[u8]>] {
        self.writes.get(1..).unwrap_or(&[])
    }
}

/// One `testcache:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestLine {
    /// The package it is about (`None` for the package-less "caching disabled" lines).
    pub package: Option<String>,
    /// What happened.
    pub event: TestEvent,
}

/// What a `testcache:` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestEvent {
    /// `test ID <id, hex of its text> => <test id>`: the result lookup starts.
    TestId {
        /// The link action id (or test binary content id) the test id derives from.
        binary: String,
        /// The test id (testResult hash).
        test_id: [u8; 32],
    },
    /// `test ID <t> => input ID <i> => <key>`: the input list was found and hashed.
    Lookup {
        /// The test id.
        test_id: [u8; 32],
        /// The test inputs id (testInputs hash).
        inputs_id: [u8; 32],
        /// The key of the cached result.
        key: [u8; 32],
    },
    /// `save test ID <t> => input ID <i> => <key>`: a result was stored.
    Save {
        /// The test id.
        test_id: [u8; 32],
        /// The test inputs id.
        inputs_id: [u8; 32],
        /// The key the result was stored under.
        key: [u8; 32],
    },
    /// `input list not found` (the test never ran with this binary, or it was evicted).
    InputListMissing,
    /// `test output not found`, `test output malformed`, `expired`, `input list malformed`,
    /// `input file …: too new`: the lookup failed after the input list.
    LookupFailed(String),
    /// `caching disabled …`: the test cache does not apply to this run.
    Disabled(String),
    /// Anything else (kept for the record).
    Other(String),
}

/// What the parser saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Lines fed.
    pub lines: u64,
    /// Lines that were not the transcript (the go command's own messages).
    pub other_lines: u64,
    /// Hash records completed.
    pub records: u64,
    /// Records whose bytes did not give their sum.
    pub unverified: u64,
    /// Transcript-looking lines that were not well formed (skipped).
    pub malformed: u64,
    /// Lines longer than the limit (skipped).
    pub oversized: u64,
    /// Writes or sums for a name with no open hash.
    pub orphaned: u64,
    /// Hashes still open at the end (abandoned, or the transcript was cut).
    pub unterminated: u64,
    /// Open hashes dropped to stay within the limit.
    pub dropped_open: u64,
    /// `moduleIndex` lines (not kept).
    pub ignored: u64,
    /// File hash lines.
    pub file_hashes: u64,
    /// Subkey lines.
    pub subkeys: u64,
    /// `testcache:` lines.
    pub test_lines: u64,
    /// Bytes kept.
    pub retained: u64,
    /// The retention limit was reached: what follows was counted, not kept.
    pub truncated: bool,
}

/// A parsed transcript.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// The salt of the first hash (`runtime.Version()` of the go command, e.g. `go1.26.8`).
    pub salt: Option<Vec<u8>>,
    /// Completed hashes, in the order they were summed.
    pub records: Vec<HashRecord>,
    /// `testcache:` lines, in order.
    pub tests: Vec<TestLine>,
    /// Counters.
    pub stats: Stats,
}

impl Transcript {
    /// Parses a whole transcript held in memory (a final line without a newline counts).
    pub fn parse(bytes: &[u8], limits: Limits) -> Transcript {
        let mut p = Parser::new(limits);
        for line in bytes.split(|&b| b == b'\n') {
            p.feed(line);
        }
        p.finish()
    }

    /// The Go version the transcript's hashes are salted with.
    pub fn go_version(&self) -> Option<String> {
        self.salt
            .as_ref()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
}

/// What a fed line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Part of the transcript (kept or counted).
    Transcript,
    /// Not the transcript: the go command's own output, for the user.
    Other,
}

#[derive(Debug)]
struct Open {
    writes: Vec<Box<[u8]>>,
    seq: u64,
}

/// The streaming parser: feed lines (without their newline), then [`Parser::finish`].
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    /// Hashes started and not yet summed, per name, oldest first.
    open: HashMap<String, Vec<Open>>,
    open_count: usize,
    /// The last record of each name, for a hash written again after its sum.
    last_summed: HashMap<String, usize>,
    /// Writes received while two or more hashes of the name were open: whose they are is
    /// decided at the next sum, by the SHA-256.
    pool: HashMap<String, Vec<Box<[u8]>>>,
    seq: u64,
    out: Transcript,
}

impl Parser {
    /// A parser keeping no more than `limits` allow.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            open: HashMap::new(),
            open_count: 0,
            last_summed: HashMap::new(),
            pool: HashMap::new(),
            seq: 0,
            out: Transcript::default(),
        }
    }

    /// Feeds one line (its newline removed; a trailing `\r` is ignored).
    pub fn feed(&mut self, line: &[u8]) -> LineKind {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.out.stats.lines += 1;
        if !(line.starts_with(b"HASH") || line.starts_with(b"testcache: ")) {
            if !line.is_empty() {
                self.out.stats.other_lines += 1;
            }
            return LineKind::Other;
        }
        if line.len() > self.limits.max_line {
            self.out.stats.oversized += 1;
            return LineKind::Transcript;
        }
        let ok = if let Some(rest) = line.strip_prefix(b"HASH[") {
            self.tagged(rest)
        } else if let Some(rest) = line.strip_prefix(b"HASH ") {
            self.untagged(rest)
        } else if let Some(rest) = line.strip_prefix(b"testcache: ") {
            self.test_line(rest)
        } else {
            false
        };
        if !ok {
            self.out.stats.malformed += 1;
        }
        LineKind::Transcript
    }

    /// Ends the transcript: hashes still open are counted as unterminated.
    pub fn finish(mut self) -> Transcript {
        self.out.stats.unterminated += self.open_count as u64;
        self.out
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.out.stats
    }

    fn keep(&mut self, n: usize) -> bool {
        let st = &mut self.out.stats;
        if st.truncated || st.retained + n as u64 > self.limits.max_retained as u64 {
            st.truncated = true;
            return false;
        }
        st.retained += n as u64;
        true
    }

    fn tagged(&mut self, rest: &[u8]) -> bool {
        // `<name>]`, `<name>]: "<write>"` or `<name>]: <hex>`. A name never holds `]: `
        // in practice, but a write's text may: take the first split whose rest parses.
        let mut from = 0;
        while let Some(p) = find(&rest[from..], b"]: ").map(|p| p + from) {
            let (name, payload) = (&rest[..p], &rest[p + 3..]);
            if payload.first() == Some(&b'"') {
                if let Some(bytes) = unquote(payload) {
                    return self.write(name, bytes);
                }
            } else if let Some(sum) = hex32(payload) {
                return self.sum(name, sum);
            }
            from = p + 1;
        }
        match rest.strip_suffix(b"]") {
            Some(name) => self.start(name),
            None => false,
        }
    }

    fn name(name: &[u8]) -> Option<&str> {
        let n = std::str::from_utf8(name).ok()?;
        (!n.is_empty() && n.len() <= 4096).then_some(n)
    }

    fn start(&mut self, name: &[u8]) -> bool {
        let Some(name) = Self::name(name) else {
            return false;
        };
        if IGNORED.contains(&name) {
            self.out.stats.ignored += 1;
            return true;
        }
        self.last_summed.remove(name);
        self.seq += 1;
        let open = Open {
            writes: Vec::new(),
            seq: self.seq,
        };
        self.push_open(name, open);
        true
    }

    fn push_open(&mut self, name: &str, open: Open) {
        if !self.open.contains_key(name) && !self.keep(name.len() + 64) {
            return;
        }
        let stack = self.open.entry(name.to_owned()).or_default();
        if stack.len() >= MAX_OPEN_PER_NAME {
            // The oldest goes; undecided writes stay undecided (two or more remain open).
            stack.remove(0);
            self.open_count -= 1;
            self.out.stats.dropped_open += 1;
        }
        stack.push(open);
        self.open_count += 1;
        if self.open_count > self.limits.max_open {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        let oldest = self
            .open
            .iter()
            .filter_map(|(n, s)| s.first().map(|o| (o.seq, n.clone())))
            .min();
        if let Some((_, n)) = oldest
            && let Some(stack) = self.open.get_mut(&n)
        {
            stack.remove(0);
            if stack.is_empty() {
                self.open.remove(&n);
            }
            self.open_count -= 1;
            self.out.stats.dropped_open += 1;
            self.settle_pool(&n);
        }
    }

    /// With fewer than two hashes of `name` left open, its undecided writes are the one's.
    fn settle_pool(&mut self, name: &str) {
        let Some(pool) = self.pool.remove(name) else {
            return;
        };
        match self.open.get_mut(name) {
            Some(stack) if stack.len() >= 2 => {
                self.pool.insert(name.to_owned(), pool);
            }
            Some(stack) if stack.len() == 1 => stack[0].writes.extend(pool),
            _ => self.out.stats.orphaned += pool.len() as u64,
        }
    }

    fn write(&mut self, name: &[u8], bytes: Vec<u8>) -> bool {
        let Some(name) = Self::name(name) else {
            return false;
        };
        if IGNORED.contains(&name) {
            self.out.stats.ignored += 1;
            return true;
        }
        let keep = self.keep(bytes.len() + 16);
        if self.open.get(name).is_none_or(|s| s.is_empty()) {
            // Written again after its sum (gccCompilerID does): it continues.
            let Some(&idx) = self.last_summed.get(name) else {
                self.out.stats.orphaned += 1;
                return true;
            };
            self.last_summed.remove(name);
            self.seq += 1;
            let open = Open {
                writes: self.out.records[idx].writes.clone(),
                seq: self.seq,
            };
            self.push_open(name, open);
        }
        let Some(stack) = self.open.get_mut(name) else {
            return true;
        };
        if !keep {
            // Past the limit: the hashes of this name can no longer be verified or used.
            for o in stack.iter_mut() {
                o.writes.clear();
            }
            self.pool.remove(name);
        } else if stack.len() >= 2 {
            self.pool
                .entry(name.to_owned())
                .or_default()
                .push(bytes.into_boxed_slice());
        } else if let Some(o) = stack.last_mut() {
            o.writes.push(bytes.into_boxed_slice());
        }
        true
    }

    fn sum(&mut self, name: &[u8], sum: [u8; 32]) -> bool {
        let Some(name) = Self::name(name) else {
            return false;
        };
        if IGNORED.contains(&name) {
            self.out.stats.ignored += 1;
            return true;
        }
        let Some(stack) = self.open.get_mut(name).filter(|s| !s.is_empty()) else {
            let again = self
                .last_summed
                .get(name)
                .is_some_and(|&i| self.out.records[i].sum == sum);
            if !again {
                self.out.stats.orphaned += 1;
            }
            return true;
        };
        let pool = self.pool.remove(name).unwrap_or_default();
        // Which open hash this sum closes, and which of the undecided writes are its: the
        // newest first, and for each, the pool's writes all included first (the usual case:
        // an abandoned hash below a live one), then every subset within a budget.
        let mut found = None;
        for i in (0..stack.len()).rev() {
            let mut h = Sha256::new();
            for w in &stack[i].writes {
                h.update(w);
            }
            if stack[i].writes.is_empty() && pool.is_empty() {
                continue;
            }
            let mut all = h.clone();
            for w in &pool {
                all.update(w);
            }
            if <[u8; 32]>::from(all.finalize()) == sum {
                found = Some((i, vec![true; pool.len()]));
                break;
            }
            let mut budget = SUBSET_BUDGET;
            let mut chosen = Vec::with_capacity(pool.len());
            if pool.len() <= MAX_SEARCHED && subset(h, &pool, &sum, &mut chosen, &mut budget) {
                found = Some((i, chosen));
                break;
            }
        }
        let verified = found.is_some();
        let (i, chosen) = found.unwrap_or_else(|| (stack.len() - 1, vec![true; pool.len()]));
        let mut rest = Vec::new();
        for (w, take) in pool.into_iter().zip(chosen) {
            if take {
                stack[i].writes.push(w);
            } else {
                rest.push(w);
            }
        }
        let open = stack.remove(i);
        match stack.len() {
            0 => {
                self.open.remove(name);
                self.out.stats.orphaned += rest.len() as u64;
            }
            // The one hash left open gets the writes that were not the closed one's.
            1 => stack[0].writes.extend(rest),
            _ => {
                if !rest.is_empty() {
                    self.pool.insert(name.to_owned(), rest);
                }
            }
        }
        self.open_count -= 1;
        if open.writes.is_empty() {
            // Nothing kept (past the retention limit, or a hash with no write at all).
            return true;
        }
        if self.out.salt.is_none() && verified {
            self.out.salt = Some(open.writes[0].to_vec());
        }
        self.out.stats.records += 1;
        if !verified {
            self.out.stats.unverified += 1;
        }
        self.last_summed
            .insert(name.to_owned(), self.out.records.len());
        self.out.records.push(HashRecord {
            name: name.to_owned(),
            sum,
            writes: open.writes,
            verified,
        });
        true
    }

    fn untagged(&mut self, rest: &[u8]) -> bool {
        if let Some(s) = rest.strip_prefix(b"subkey ") {
            // `<hex> "<desc>" = <hex>`
            let ok = s.len() > 65
                && is_hex64(&s[..64])
                && s[64] == b' '
                && take_quoted(&s[65..])
                    .and_then(|(_, r)| r.strip_prefix(b" = "))
                    .is_some_and(is_hex64);
            if ok {
                self.out.stats.subkeys += 1;
            }
            return ok;
        }
        // `<path>: <hex>` or `<path>: <error>`: a file hash (not needed to explain).
        if (rest.first() == Some(&b'/') || rest.get(1) == Some(&b':'))
            && find(rest, b": ").is_some()
        {
            self.out.stats.file_hashes += 1;
            return true;
        }
        false
    }

    fn test_line(&mut self, rest: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(rest) else {
            return false;
        };
        self.out.stats.test_lines += 1;
        let line = match text.split_once(": ") {
            Some((pkg, ev)) if !pkg.starts_with("caching disabled") => TestLine {
                package: Some(pkg.to_owned()),
                event: test_event(ev),
            },
            _ => TestLine {
                package: None,
                event: TestEvent::Disabled(text.to_owned()),
            },
        };
        if let TestEvent::Other(_) = line.event
            && line.package.is_none()
        {
            return false;
        }
        if self.keep(text.len() + 64) {
            self.out.tests.push(line);
        }
        true
    }
}

fn test_event(ev: &str) -> TestEvent {
    let arrows = |s: &str| -> Option<Vec<[u8; 32]>> {
        s.split(" => ")
            .map(|h| hex32(h.trim_start_matches("input ID ").as_bytes()))
            .collect()
    };
    if let Some(r) = ev.strip_prefix("save test ID ") {
        if let Some(v) = arrows(r).filter(|v| v.len() == 3) {
            return TestEvent::Save {
                test_id: v[0],
                inputs_id: v[1],
                key: v[2],
            };
        }
    } else if let Some(r) = ev.strip_prefix("test ID ") {
        if r.contains(" => input ID ") {
            if let Some(v) = arrows(r).filter(|v| v.len() == 3) {
                return TestEvent::Lookup {
                    test_id: v[0],
                    inputs_id: v[1],
                    key: v[2],
                };
            }
        } else if let Some((bin, id)) = r.split_once(" => ")
            && let Ok(bin) = hex::decode(bin)
            && let Ok(binary) = String::from_utf8(bin)
            && let Some(test_id) = hex32(id.as_bytes())
        {
            return TestEvent::TestId { binary, test_id };
        }
    } else if ev.starts_with("input list not found") {
        return TestEvent::InputListMissing;
    } else if ev.starts_with("test output")
        || ev.starts_with("input list malformed")
        || ev.starts_with("input file ")
        || ev.starts_with("cached cover profile")
        || ev.starts_with("coverage metadata changed")
    {
        return TestEvent::LookupFailed(ev.to_owned());
    } else if ev.starts_with("caching disabled") {
        return TestEvent::Disabled(ev.to_owned());
    }
    TestEvent::Other(ev.to_owned())
}

/// Nodes a search for the writes of one hash among undecided ones may visit: enough for
/// every subset of 16 writes.
const SUBSET_BUDGET: usize = 1 << 17;
/// Undecided writes searched at all (beyond, only "all of them" is tried; the search's
/// depth is this).
const MAX_SEARCHED: usize = 24;

/// Whether some subsequence of `pool`, written after what `h` holds, gives `target`; the
/// choice is left in `chosen` (including comes first, so "all of them" is tried first).
fn subset(
    h: Sha256,
    pool: &[Box<[u8]>],
    target: &[u8; 32],
    chosen: &mut Vec<bool>,
    budget: &mut usize,
) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let i = chosen.len();
    let Some(w) = pool.get(i) else {
        return <[u8; 32]>::from(h.finalize()) == *target;
    };
    let mut with = h.clone();
    with.update(w);
    chosen.push(true);
    if subset(with, pool, target, chosen, budget) {
        return true;
    }
    chosen.pop();
    chosen.push(false);
    if subset(h, pool, target, chosen, budget) {
        return true;
    }
    chosen.pop();
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_of(writes: &[&[u8]]) -> String {
        let mut h = Sha256::new();
        for w in writes {
            h.update(w);
        }
        hex::encode(h.finalize())
    }

    /// Lines as the go command prints them, for one hash.
    fn hash_lines(name: &str, writes: &[&[u8]]) -> Vec<String> {
        let mut v = vec![format!("HASH[{name}]")];
        for w in writes {
            v.push(format!("HASH[{name}]: {}", go_quote(w)));
        }
        v.push(format!("HASH[{name}]: {}", sum_of(writes)));
        v
    }

    fn go_quote(b: &[u8]) -> String {
        let mut s = String::from("\"");
        for &c in b {
            match c {
                b'\n' => s.push_str("\\n"),
                b'"' => s.push_str("\\\""),
                b'\\' => s.push_str("\\\\"),
                0x20..=0x7e => s.push(c as char),
                _ => s.push_str(&format!("\\x{c:02x}")),
            }
        }
        s.push('"');
        s
    }

    fn parse(lines: &[String]) -> Transcript {
        Transcript::parse(lines.join("\n").as_bytes(), Limits::default())
    }

    #[test]
    fn a_real_compile_hash() {
        // Taken from `GODEBUG=gocachehash=1 go build` (Go 1.26.8), with its real sum.
        let t = "HASH[build example.com/m/leaf]
HASH[build example.com/m/leaf]: \"go1.26.8\"
HASH[build example.com/m/leaf]: \"compile\\n\"
HASH[build example.com/m/leaf]: \"dir /tmp/ex/m/leaf\\n\"
HASH[build example.com/m/leaf]: \"go 1.26\\n\"
HASH[build example.com/m/leaf]: \"goos linux goarch amd64\\n\"
HASH[build example.com/m/leaf]: \"import \\\"example.com/m/leaf\\\"\\n\"
HASH[build example.com/m/leaf]: \"omitdebug false standard false local false prefix \\\"\\\"\\n\"
HASH[build example.com/m/leaf]: \"compile compile version go1.26.8 [] []\\n\"
HASH[build example.com/m/leaf]: \"GOAMD64=v1\\n\"
HASH[build example.com/m/leaf]: \"file leaf.go szUVfFE4d4ebpQ9R4u9K\\n\"
HASH[build example.com/m/leaf]: 8197de2177c040b0290a6944e15440ddb5616461115ebf4bed5f85deafdebf55
HASH /usr/local/go/src/unicode/utf8/utf8.go: 0a6e0c6f4b5b4e0d9c4e5c8f0e2c6f3a1b2c3d4e5f60718293a4b5c6d7e8f901
HASH subkey 8197de2177c040b0290a6944e15440ddb5616461115ebf4bed5f85deafdebf55 \"stdout\" = 16a8297af0b049c34ee884ba0668da9eff7a6861c9bd06f39754e49e992884ee
# example.com/m/leaf
leaf/leaf.go:3:1: something the compiler said
";
        let mut p = Parser::new(Limits::default());
        let kinds: Vec<LineKind> = t.lines().map(|l| p.feed(l.as_bytes())).collect();
        let tr = p.finish();
        assert_eq!(kinds.iter().filter(|k| **k == LineKind::Other).count(), 2);
        assert_eq!(tr.records.len(), 1);
        let r = &tr.records[0];
        assert!(r.verified, "the real sum must verify");
        assert_eq!(r.name, "build example.com/m/leaf");
        assert_eq!(r.inputs().len(), 9);
        assert_eq!(&*r.inputs()[1], b"dir /tmp/ex/m/leaf\n");
        assert_eq!(tr.go_version().as_deref(), Some("go1.26.8"));
        assert_eq!(tr.stats.file_hashes, 1);
        assert_eq!(tr.stats.subkeys, 1);
        assert_eq!(tr.stats.malformed, 0);
        assert_eq!(tr.stats.other_lines, 2);
    }

    #[test]
    fn interleaved_names_and_resummed_hashes() {
        let a = hash_lines("build a", &[b"go1", b"file a.go x\n"]);
        let b = hash_lines("build b", &[b"go1", b"file b.go y\n", b"import a z\n"]);
        // a and b interleave line by line.
        let mut lines = Vec::new();
        for i in 0..a.len().max(b.len()) {
            lines.extend(a.get(i).cloned());
            lines.extend(b.get(i).cloned());
        }
        // gccCompilerID: written, summed, written, summed again.
        lines.push("HASH[gccCompilerID]".into());
        lines.push("HASH[gccCompilerID]: \"go1\"".into());
        lines.push("HASH[gccCompilerID]: \"gcc\"".into());
        lines.push(format!(
            "HASH[gccCompilerID]: {}",
            sum_of(&[b"go1", b"gcc"])
        ));
        lines.push("HASH[gccCompilerID]: \"v12\\n\"".into());
        lines.push(format!(
            "HASH[gccCompilerID]: {}",
            sum_of(&[b"go1", b"gcc", b"v12\n"])
        ));
        let t = parse(&lines);
        assert_eq!(t.records.len(), 4);
        assert!(t.records.iter().all(|r| r.verified), "{:?}", t.records);
        assert_eq!(t.records[3].writes.len(), 3);
        assert_eq!(t.stats.unterminated, 0);
    }

    #[test]
    fn same_name_hashes_and_abandoned_ones() {
        // An `open` hash abandoned (file too new), then a complete one: the complete one
        // verifies, the abandoned one is counted.
        let mut lines = vec![
            "HASH[open]".to_owned(),
            "HASH[open]: \"go1\"".to_owned(),
            "HASH[open]: \"stat 1 1a4 2026-01-01 00:00:00 +0000 UTC false\\n\"".to_owned(),
        ];
        lines.extend(hash_lines("open", &[b"go1", b"stat 2 1a4 t false\n"]));
        // Two testResult hashes open at once, the older summed first: found by trying.
        lines.push("HASH[testResult]".into());
        lines.push("HASH[testResult]: \"go1\"".into());
        lines.push("HASH[testResult]: \"test binary A\"".into());
        lines.push("HASH[testResult]".into());
        lines.push("HASH[testResult]: \"go1\"".into());
        lines.push("HASH[testResult]: \"test binary B\"".into());
        lines.push(format!(
            "HASH[testResult]: {}",
            sum_of(&[b"go1", b"test binary B"])
        ));
        lines.push(format!(
            "HASH[testResult]: {}",
            sum_of(&[b"go1", b"test binary A"])
        ));
        let t = parse(&lines);
        assert_eq!(t.records.len(), 3);
        assert!(t.records.iter().all(|r| r.verified), "{:?}", t.records);
        assert_eq!(&*t.records[2].writes[1], b"test binary A");
        assert_eq!(t.stats.unterminated, 1);
    }

    #[test]
    fn truly_interleaved_hashes_of_one_name_are_untangled() {
        // `build p` and its test copy `build p` computed at once, line by line interleaved.
        let a: &[&[u8]] = &[
            b"go1",
            b"compile\n",
            b"dir /m/p\n",
            b"file p.go 1\n",
            b"import fmt x\n",
        ];
        let b: &[&[u8]] = &[
            b"go1",
            b"compile\n",
            b"dir /m/p\n",
            b"forcelibrary\n",
            b"file p.go 1\n",
            b"file p_test.go 2\n",
            b"import testing y\n",
        ];
        let mut lines = vec![
            "HASH[build p]".to_owned(),
            format!("HASH[build p]: {}", go_quote(a[0])),
        ];
        lines.push("HASH[build p]".into());
        let (mut i, mut j) = (1, 0);
        while i < a.len() || j < b.len() {
            if j < b.len() {
                lines.push(format!("HASH[build p]: {}", go_quote(b[j])));
                j += 1;
            }
            if i < a.len() {
                lines.push(format!("HASH[build p]: {}", go_quote(a[i])));
                i += 1;
            }
        }
        lines.push(format!("HASH[build p]: {}", sum_of(a)));
        lines.push(format!("HASH[build p]: {}", sum_of(b)));
        let t = parse(&lines);
        assert_eq!(t.records.len(), 2);
        assert!(t.records.iter().all(|r| r.verified), "{:?}", t.records);
        let writes = |r: &HashRecord| r.writes.iter().map(|w| w.to_vec()).collect::<Vec<_>>();
        assert_eq!(
            writes(&t.records[0]),
            a.iter().map(|w| w.to_vec()).collect::<Vec<_>>()
        );
        assert_eq!(
            writes(&t.records[1]),
            b.iter().map(|w| w.to_vec()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn misattributed_writes_are_unverified_not_wrong() {
        let lines = vec![
            "HASH[x]".to_owned(),
            "HASH[x]: \"go1\"".to_owned(),
            "HASH[x]: \"a\"".to_owned(),
            format!("HASH[x]: {}", sum_of(&[b"go1", b"b"])),
        ];
        let t = parse(&lines);
        assert_eq!(t.records.len(), 1);
        assert!(!t.records[0].verified);
        assert_eq!(t.stats.unverified, 1);
        assert_eq!(t.salt, None, "an unverified record does not set the salt");
    }

    #[test]
    fn garbage_is_counted_never_fatal() {
        let garbage: &[&[u8]] = &[
            b"HASH[",
            b"HASH[]",
            b"HASH[x]: \"unterminated",
            b"HASH[x]: 12ab",
            b"HASH[x]: \"\\q\"",
            b"HASH subkey zz",
            b"HASH subkey 00 \"x\" = 11",
            b"HASH nonsense",
            b"HASH[\xff]",
            b"testcache: \xff",
            b"HASH[a]: \"x\"",
            b"HASH[a]: 0000000000000000000000000000000000000000000000000000000000000000",
        ];
        let mut p = Parser::new(Limits::default());
        for g in garbage {
            assert_eq!(p.feed(g), LineKind::Transcript);
        }
        let t = p.finish();
        assert_eq!(t.records.len(), 0);
        assert_eq!(t.stats.malformed, 10, "{:?}", t.stats);
        assert_eq!(t.stats.orphaned, 2);
    }

    #[test]
    fn truncated_input_ends_cleanly() {
        let lines = hash_lines("build a", &[b"go1", b"file a.go x\n"]);
        let text = lines.join("\n");
        for cut in 0..text.len() {
            let t = Transcript::parse(&text.as_bytes()[..cut], Limits::default());
            assert!(t.records.is_empty(), "cut at {cut}");
        }
        let t = Transcript::parse(text.as_bytes(), Limits::default());
        assert_eq!(t.records.len(), 1);
    }

    #[test]
    fn limits_hold() {
        let mut lines = Vec::new();
        for i in 0..100 {
            lines.extend(hash_lines(
                &format!("build p{i}"),
                &[b"go1", &[b'x'; 100][..]],
            ));
        }
        let limits = Limits {
            max_line: 1 << 10,
            max_retained: 2000,
            max_open: 8,
        };
        let t = Transcript::parse(lines.join("\n").as_bytes(), limits);
        assert!(t.stats.truncated);
        assert!(t.stats.retained <= 2000);
        assert!(t.records.len() < 100);
        let long = format!("HASH[a]: \"{}\"", "y".repeat(2000));
        let t = Transcript::parse(long.as_bytes(), limits);
        assert_eq!(t.stats.oversized, 1);
        // Many abandoned hashes stay bounded.
        let mut p = Parser::new(limits);
        for i in 0..1000 {
            p.feed(format!("HASH[n{i}]").as_bytes());
            p.feed(b"HASH[same]");
        }
        assert!(p.open_count <= 8, "{}", p.open_count);
        assert_eq!(p.open.values().map(Vec::len).sum::<usize>(), p.open_count);
    }

    #[test]
    fn test_cache_lines() {
        let h = |c: char| c.to_string().repeat(64);
        let text = format!(
            "testcache: example.com/m/leaf: test ID {} => {}\n\
             testcache: example.com/m/leaf: input list not found: cache entry not found\n\
             testcache: example.com/m/mid: test ID {} => input ID {} => {}\n\
             testcache: example.com/m/mid: save test ID {} => input ID {} => {}\n\
             testcache: example.com/m/mid: test output not found: cache entry not found\n\
             testcache: caching disabled in local directory mode\n",
            hex::encode("edYPYMAKugK6EFWZVOj9"),
            h('a'),
            h('b'),
            h('c'),
            h('d'),
            h('b'),
            h('e'),
            h('f'),
        );
        let t = Transcript::parse(text.as_bytes(), Limits::default());
        assert_eq!(t.tests.len(), 6);
        assert_eq!(
            t.tests[0].event,
            TestEvent::TestId {
                binary: "edYPYMAKugK6EFWZVOj9".into(),
                test_id: [0xaa; 32]
            }
        );
        assert_eq!(t.tests[1].event, TestEvent::InputListMissing);
        assert!(matches!(t.tests[2].event, TestEvent::Lookup { key, .. } if key == [0xdd; 32]));
        assert!(
            matches!(t.tests[3].event, TestEvent::Save { inputs_id, .. } if inputs_id == [0xee; 32])
        );
        assert!(matches!(t.tests[4].event, TestEvent::LookupFailed(_)));
        assert_eq!(t.tests[5].package, None);
        assert!(matches!(t.tests[5].event, TestEvent::Disabled(_)));
    }
}
