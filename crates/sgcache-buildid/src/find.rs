//! `FindAndHash`: the offsets of every occurrence of a build ID, and the SHA-256 of the file
//! with those occurrences zeroed (Go's rewrite.go).
//!
//! Go's loop reads `bufSize` bytes at a time and keeps a fringe of the previous read so an
//! ID split across two reads is still found. Its result does not depend on `bufSize` (Go's
//! own test sweeps it): it is the leftmost, non-overlapping occurrences in the whole stream,
//! after the excluded ranges (Mach-O code signature, host build ID) have been read as zeros.
//! We compute the same thing with `memchr::memmem` and, by default, 1 MiB reads, which is
//! what makes it fast; an explicit `buf_size` is honoured so Go's small-buffer tests
//! exercise the boundary handling.

use std::io::{self, Read};
use std::path::Path;

use memchr::memmem;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::io::{ReadAt, read_full_at};
use crate::{elf, macho};

/// Go's default buffer size (`31*1024`); an ID longer than this is refused, as in Go.
pub const DEFAULT_BUF_SIZE: usize = 31 * 1024;

/// The read size we actually use when the caller asks for the default.
const FAST_BUF_SIZE: usize = 1 << 20;

/// Finds every occurrence of `id` in `r` and hashes `r` with them zeroed (Go's
/// `buildid.FindAndHash`). `buf_size == 0` means the default.
///
/// The Mach-O code signature, the ELF `.note.gnu.build-id` contents and the Mach-O `LC_UUID`
/// payload are read as zeros, as in Go, because they are derived from the content being
/// hashed.
pub fn find_and_hash<R: ReadAt + ?Sized>(
    r: &R,
    id: &[u8],
    buf_size: usize,
) -> Result<(Vec<u64>, [u8; 32]), Error> {
    let (limit, chunk) = if buf_size == 0 {
        (DEFAULT_BUF_SIZE, FAST_BUF_SIZE)
    } else {
        (buf_size, buf_size)
    };
    if id.is_empty() {
        return Err(Error::NoId);
    }
    if id.len() > limit {
        return Err(Error::BufferTooSmall {
            id_len: id.len(),
            buf_size: limit,
        });
    }
    let mut excluded = Vec::with_capacity(2);
    let mf = macho::parse(r).ok();
    if let Some(cs) = mf.as_ref().and_then(macho::File::code_signature) {
        // Go adds the two uint32s before widening.
        excluded.push((
            i64::from(cs.dataoff),
            i64::from(cs.dataoff.wrapping_add(cs.datasize)),
        ));
    }
    if let Some((off, size)) = host_build_id(r, mf.as_ref()) {
        excluded.push((off, off.wrapping_add(size)));
    }
    let mut stream = Sequential { r, off: 0 };
    match excluded.as_slice() {
        [] => scan(&mut stream, id, chunk),
        [(s, e)] => scan(&mut ExcludedReader::new(&mut stream, *s, *e), id, chunk),
        [(s1, e1), (s2, e2), ..] => {
            let mut inner = ExcludedReader::new(&mut stream, *s1, *e1);
            scan(&mut ExcludedReader::new(&mut inner, *s2, *e2), id, chunk)
        }
    }
}

/// [`find_and_hash`] on a file by path, with errors naming it.
pub fn find_and_hash_file(path: &Path, id: &[u8]) -> Result<(Vec<u64>, [u8; 32]), Error> {
    let f = std::fs::File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    find_and_hash(&f, id, 0).map_err(|e| match e {
        Error::Stream { source } => Error::read(path, "content", source),
        e => e,
    })
}

/// Go's `findHostBuildID`: the ELF `.note.gnu.build-id` contents past the note header, or
/// the Mach-O `LC_UUID` payload, as `(offset, size)` in Go's signed arithmetic.
fn host_build_id<R: ReadAt + ?Sized>(r: &R, mf: Option<&macho::File>) -> Option<(i64, i64)> {
    if let Ok(ef) = elf::parse(r) {
        let s = ef.section(b".note.gnu.build-id")?;
        return Some((
            (s.offset as i64).wrapping_add(16),
            (s.size as i64).wrapping_sub(16),
        ));
    }
    mf?.uuid_range()
}

fn scan<R: Read>(r: &mut R, id: &[u8], chunk: usize) -> Result<(Vec<u64>, [u8; 32]), Error> {
    let finder = memmem::Finder::new(id);
    let zeros = vec![0u8; id.len()];
    // Bytes kept from one read to the next: enough for an ID that straddles the boundary.
    let keep = id.len() - 1;
    let mut buf = vec![0u8; keep + chunk];
    let mut h = Sha256::new();
    let mut matches = Vec::new();
    // File offset of buf[0]; bytes in buf[..filled] are valid; buf[..start] already hashed.
    let mut base: u64 = 0;
    let mut filled = 0;
    loop {
        let n = read_full(r, &mut buf[filled..filled + chunk])
            .map_err(|source| Error::Stream { source })?;
        let end = filled + n;
        let mut start = 0;
        while let Some(i) = finder.find(&buf[start..end]) {
            let at = start + i;
            matches.push(base + at as u64);
            h.update(&buf[start..at]);
            h.update(&zeros);
            start = at + id.len();
        }
        if n < chunk {
            h.update(&buf[start..end]);
            break;
        }
        let tail = start.max(end - keep);
        h.update(&buf[start..tail]);
        buf.copy_within(tail..end, 0);
        base += tail as u64;
        filled = end - tail;
    }
    Ok((matches, h.finalize().into()))
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(m) => n += m,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A `ReadAt` read front to back.
struct Sequential<'a, R: ?Sized> {
    r: &'a R,
    off: u64,
}

impl<R: ReadAt + ?Sized> Read for Sequential<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_full_at(self.r, buf, self.off)?;
        self.off += n as u64;
        Ok(n)
    }
}

/// Reads from an inner reader but returns zeros for the bytes at stream offsets
/// `[start, end)` (Go's `excludedReader`). An empty or inverted range excludes nothing.
#[derive(Debug)]
pub struct ExcludedReader<R> {
    r: R,
    off: i64,
    start: i64,
    end: i64,
}

impl<R: Read> ExcludedReader<R> {
    /// Wraps `r`, excluding `[start, end)`.
    pub fn new(r: R, start: i64, end: i64) -> Self {
        ExcludedReader {
            r,
            off: 0,
            start,
            end,
        }
    }
}

impl<R: Read> Read for ExcludedReader<R> {
    fn read(&mut self, p: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(p)?;
        let len = n as i64;
        if n > 0 && self.off.saturating_add(len) > self.start && self.off < self.end {
            let cstart = (self.start.saturating_sub(self.off)).max(0);
            let cend = (self.end.saturating_sub(self.off)).min(len);
            if cstart < cend {
                p[cstart as usize..cend as usize].fill(0);
            }
        }
        self.off = self.off.saturating_add(len);
        Ok(n)
    }
}
