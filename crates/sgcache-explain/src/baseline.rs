//! The baseline file: a [`Run`] in a compact, versioned, zstd-compressed form.
//!
//! | field | bytes | content |
//! |---|---|---|
//! | magic | 4 | `sgxb` |
//! | version | 1 | [`VERSION`] (`1`); another version is [`BaselineError::Version`] |
//! | body length | 4 | u32 LE, the uncompressed body, ≤ [`MAX_BODY`] |
//! | body | rest | one zstd frame |
//!
//! The body (`varint` = unsigned LEB128; `str` = varint length + UTF-8 bytes):
//!
//! | field | content |
//! |---|---|
//! | go version | str (`go1.26.8`) |
//! | recorded at | varint, Unix seconds |
//! | command | varint n, n × str |
//! | strings | varint n, n × str: every distinct input line, package, variant, detail key and line |
//! | actions | varint n, then per action: mode (1 byte: 0 build, 1 link, 2 vet, 3 test), flags (1 byte: bit 0 missed, bit 1 id present, bit 2 inputs verified), package (varint string index), variant (varint: 0 none, i + 1 string i), id (32 bytes when flagged), inputs (varint n, n × varint string index), deps (varint n, n × varint action index), details (varint n, n × (varint key index, varint m, m × varint line index)) |
//!
//! Most input lines repeat across actions (`goos linux goarch amd64`, the compiler's version,
//! a dependency's content id in every importer), so each is stored once. Every count is
//! checked against the bytes left before anything is allocated, every index against its
//! table, and the body must end exactly: a baseline from another sgcache, cut short or
//! tampered with is an error, never a panic.

use std::io::Read;

use sgcache_types::ActionId;

use crate::model::{Action, Detail, Mode, Run};

/// First bytes of a baseline.
pub const MAGIC: &[u8; 4] = b"sgxb";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// The largest uncompressed body read.
pub const MAX_BODY: usize = 256 << 20;
/// zstd level of the body.
pub const LEVEL: i32 = 3;

/// Why a baseline could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    /// Not a baseline at all.
    #[error("not an sgcache explain baseline (it does not start with `sgxb`)")]
    NotABaseline,
    /// Written by another version of sgcache.
    #[error(
        "the baseline is format version {0}; this sgcache reads version {VERSION}: record the baseline again with this sgcache"
    )]
    Version(u8),
    /// Cut short, or its body is not what its header says.
    #[error("the baseline is damaged: {0}")]
    Damaged(String),
}

fn damaged(what: impl Into<String>) -> BaselineError {
    BaselineError::Damaged(what.into())
}

/// Encodes `run` (its actions; notes and test checks are not kept).
pub fn encode(run: &Run) -> Vec<u8> {
    let mut strings = Strings::default();
    let mut acts = Vec::new();
    for a in &run.actions {
        acts.push(a.mode.to_u8());
        let flags = u8::from(a.ran) | (u8::from(a.id.is_some()) << 1) | (u8::from(a.recorded) << 2);
        acts.push(flags);
        put_var(&mut acts, strings.index(&a.package));
        put_var(
            &mut acts,
            a.variant.as_ref().map_or(0, |v| strings.index(v) + 1),
        );
        if let Some(id) = &a.id {
            acts.extend_from_slice(id.as_bytes());
        }
        put_var(&mut acts, a.inputs.len() as u64);
        for l in &a.inputs {
            put_var(&mut acts, strings.index(l));
        }
        put_var(&mut acts, a.deps.len() as u64);
        for &d in &a.deps {
            put_var(&mut acts, u64::from(d));
        }
        put_var(&mut acts, a.details.len() as u64);
        for d in &a.details {
            put_var(&mut acts, strings.index(&d.key));
            put_var(&mut acts, d.lines.len() as u64);
            for l in &d.lines {
                put_var(&mut acts, strings.index(l));
            }
        }
    }
    let mut body = Vec::with_capacity(acts.len() + strings.bytes + 64);
    put_str(&mut body, &run.go_version);
    put_var(&mut body, run.recorded_at);
    put_var(&mut body, run.command.len() as u64);
    for c in &run.command {
        put_str(&mut body, c);
    }
    put_var(&mut body, strings.list.len() as u64);
    for s in &strings.list {
        put_str(&mut body, s);
    }
    put_var(&mut body, run.actions.len() as u64);
    body.extend_from_slice(&acts);

    let mut out = Vec::with_capacity(body.len() / 4 + 16);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    zstd::stream::copy_encode(&body[..], &mut out, LEVEL).expect("zstd into a Vec cannot fail");
    out
}

/// Decodes a baseline.
pub fn decode(bytes: &[u8]) -> Result<Run, BaselineError> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(BaselineError::NotABaseline)?;
    let (&version, rest) = rest.split_first().ok_or_else(|| damaged("no version"))?;
    if version != VERSION {
        return Err(BaselineError::Version(version));
    }
    let len = rest
        .get(..4)
        .ok_or_else(|| damaged("no length"))?
        .try_into()
        .map(u32::from_le_bytes)
        .expect("4 bytes") as usize;
    if len > MAX_BODY {
        return Err(damaged(format!("its body claims {len} bytes")));
    }
    let mut body = Vec::with_capacity(len.min(bytes.len().saturating_mul(32)));
    zstd::stream::read::Decoder::new(&rest[4..])
        .map_err(|e| damaged(format!("zstd: {e}")))?
        .take(len as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| damaged(format!("zstd: {e}")))?;
    if body.len() != len {
        return Err(damaged(format!(
            "its body has {} bytes, its header says {len}",
            body.len()
        )));
    }
    let mut r = Reader { b: &body, at: 0 };
    let go_version = r.str()?;
    let recorded_at = r.var()?;
    let n = r.count(1)?;
    let command = (0..n).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
    let n = r.count(1)?;
    let strings = (0..n).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
    let s = |i: u64| -> Result<String, BaselineError> {
        strings
            .get(usize::try_from(i).unwrap_or(usize::MAX))
            .cloned()
            .ok_or_else(|| damaged(format!("string {i} of {}", strings.len())))
    };
    let n = r.count(4)?;
    let mut actions = Vec::with_capacity(n);
    for _ in 0..n {
        let mode = Mode::from_u8(r.byte()?).ok_or_else(|| damaged("an unknown action mode"))?;
        let flags = r.byte()?;
        if flags & !0b111 != 0 {
            return Err(damaged("unknown action flags"));
        }
        let package = s(r.var()?)?;
        let variant = match r.var()? {
            0 => None,
            i => Some(s(i - 1)?),
        };
        let id = if flags & 2 != 0 {
            Some(ActionId::from_bytes(r.array()?))
        } else {
            None
        };
        let k = r.count(1)?;
        let inputs = (0..k)
            .map(|_| r.var().and_then(s))
            .collect::<Result<Vec<_>, _>>()?;
        let k = r.count(1)?;
        let mut deps = Vec::with_capacity(k);
        for _ in 0..k {
            let d = r.var()?;
            if d >= n as u64 {
                return Err(damaged(format!("dependency {d} of {n} actions")));
            }
            deps.push(d as u32);
        }
        let k = r.count(2)?;
        let mut details = Vec::with_capacity(k);
        for _ in 0..k {
            let key = s(r.var()?)?;
            let m = r.count(1)?;
            let lines = (0..m)
                .map(|_| r.var().and_then(s))
                .collect::<Result<Vec<_>, _>>()?;
            details.push(Detail { key, lines });
        }
        actions.push(Action {
            mode,
            package,
            variant,
            id,
            ran: flags & 1 != 0,
            recorded: flags & 4 != 0,
            inputs,
            deps,
            details,
        });
    }
    if r.at != body.len() {
        return Err(damaged(format!(
            "{} bytes after the last action",
            body.len() - r.at
        )));
    }
    Ok(Run {
        go_version,
        command,
        recorded_at,
        actions,
        tests: Vec::new(),
        notes: Vec::new(),
    })
}

#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: std::collections::HashMap<String, u64>,
    bytes: usize,
}

impl Strings {
    fn index(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u64;
        self.list.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        self.bytes += s.len() + 2;
        i
    }
}

fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_var(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, BaselineError> {
        let v = *self.b.get(self.at).ok_or_else(|| damaged("cut short"))?;
        self.at += 1;
        Ok(v)
    }

    fn var(&mut self) -> Result<u64, BaselineError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(damaged("a number longer than 64 bits"))
    }

    /// A count of items of at least `min` bytes each: never more than the bytes left allow.
    fn count(&mut self, min: usize) -> Result<usize, BaselineError> {
        let n = self.var()?;
        let left = (self.b.len() - self.at) / min;
        if n > left as u64 {
            return Err(damaged(format!(
                "a count of {n} with {left} items' worth of bytes left"
            )));
        }
        Ok(n as usize)
    }

    fn str(&mut self) -> Result<String, BaselineError> {
        let n = self.count(1)?;
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        String::from_utf8(s.to_vec()).map_err(|_| damaged("a string that is not UTF-8"))
    }

    fn array(&mut self) -> Result<[u8; 32], BaselineError> {
        let s = self
            .b
            .get(self.at..self.at + 32)
            .ok_or_else(|| damaged("cut short"))?;
        self.at += 32;
        Ok(s.try_into().expect("32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Run {
        Run {
            go_version: "go1.26.8".into(),
            command: vec!["build".into(), "./...".into()],
            recorded_at: 1_700_000_000,
            actions: vec![
                Action {
                    mode: Mode::Build,
                    package: "example.com/m/leaf".into(),
                    variant: None,
                    id: Some(ActionId::from_bytes([7; 32])),
                    ran: true,
                    recorded: true,
                    inputs: vec!["compile".into(), "dir /a/leaf".into(), "GOAMD64=v1".into()],
                    deps: vec![],
                    details: vec![],
                },
                Action {
                    mode: Mode::Test,
                    package: "example.com/m/leaf".into(),
                    variant: Some("[x.test]".into()),
                    id: None,
                    ran: false,
                    recorded: false,
                    inputs: vec!["GOAMD64=v1".into(), "open /a/t 00".into()],
                    deps: vec![0],
                    details: vec![Detail {
                        key: "open /a/t".into(),
                        lines: vec!["stat 3 1a4 2026-01-01 00:00:00 +0000 UTC false".into()],
                    }],
                },
            ],
            tests: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn round_trip_and_golden_header() {
        let run = sample();
        let b = encode(&run);
        assert_eq!(&b[..4], b"sgxb");
        assert_eq!(b[4], 1);
        assert_eq!(decode(&b), Ok(run.clone()));
        // The body, uncompressed, starts with the go version and the time.
        let len = u32::from_le_bytes(b[5..9].try_into().unwrap()) as usize;
        let body = zstd::stream::decode_all(&b[9..]).unwrap();
        assert_eq!(body.len(), len);
        assert_eq!(&body[..9], b"\x08go1.26.8");
        assert_eq!(&body[9..14], &[0x80, 0xe2, 0xcf, 0xaa, 0x06]);
        // `GOAMD64=v1` is stored once for both actions.
        assert_eq!(body.windows(10).filter(|w| w == b"GOAMD64=v1").count(), 1);
        assert_eq!(decode(&encode(&Run::default())), Ok(Run::default()));
    }

    #[test]
    fn damaged_and_foreign_baselines_are_errors() {
        let b = encode(&sample());
        assert_eq!(decode(b"nope"), Err(BaselineError::NotABaseline));
        assert_eq!(decode(b""), Err(BaselineError::NotABaseline));
        let mut v2 = b.clone();
        v2[4] = 2;
        assert_eq!(decode(&v2), Err(BaselineError::Version(2)));
        assert!(
            decode(&v2)
                .unwrap_err()
                .to_string()
                .contains("record the baseline again")
        );
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&long), Err(BaselineError::Damaged(_))));
        // Bodies that lie: every byte flipped either decodes to something or is an error.
        let body = zstd::stream::decode_all(&b[9..]).unwrap();
        for at in 0..body.len() {
            for x in [1u8, 0x80, 0xff] {
                let mut bad = body.clone();
                bad[at] ^= x;
                let mut f = b[..9].to_vec();
                f.extend(zstd::stream::encode_all(&bad[..], 1).unwrap());
                let _ = decode(&f);
            }
        }
        // A huge count with few bytes is refused before allocating.
        let mut body = Vec::new();
        put_str(&mut body, "go1");
        put_var(&mut body, 0);
        put_var(&mut body, u64::MAX >> 1);
        let mut f = MAGIC.to_vec();
        f.push(VERSION);
        f.extend_from_slice(&(body.len() as u32).to_le_bytes());
        f.extend(zstd::stream::encode_all(&body[..], 1).unwrap());
        assert!(matches!(decode(&f), Err(BaselineError::Damaged(_))));
    }
}
