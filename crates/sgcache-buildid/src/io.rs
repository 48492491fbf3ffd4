//! Positional I/O: the `io.ReaderAt` / `io.WriterAt` shape the Go code is written against.

use std::io;

/// Read at an absolute offset without moving any cursor (Go's `io.ReaderAt`).
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset`; `Ok(0)` means end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

/// Write at an absolute offset (Go's `io.WriterAt`).
pub trait WriteAt {
    /// Writes up to `buf.len()` bytes at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(src) = self.get(start..) else {
            return Ok(0);
        };
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

impl ReadAt for std::fs::File {
    #[cfg(unix)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
    #[cfg(windows)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(self, buf, offset)
    }
}

impl WriteAt for std::fs::File {
    #[cfg(unix)]
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::write_at(self, buf, offset)
    }
    #[cfg(windows)]
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_write(self, buf, offset)
    }
}

impl<T: WriteAt + ?Sized> WriteAt for &T {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        (**self).write_at(buf, offset)
    }
}

/// Fills as much of `buf` as the file holds at `offset` (Go's `io.ReadFull` on a section);
/// returns the number of bytes read, short only at end of file.
pub(crate) fn read_full_at<R: ReadAt + ?Sized>(
    r: &R,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read_at(&mut buf[n..], offset.saturating_add(n as u64)) {
            Ok(0) => break,
            Ok(m) => n += m,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Like Go's `ReadAt`: all of `buf` or an `UnexpectedEof` error.
pub(crate) fn read_exact_at<R: ReadAt + ?Sized>(
    r: &R,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<()> {
    if read_full_at(r, buf, offset)? < buf.len() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads exactly `len` bytes at `offset` into a new vector. The vector grows with the data
/// actually read, so a huge length from a corrupt header cannot make us allocate more than the
/// file holds (Go's `saferio.ReadDataAt`).
pub(crate) fn read_vec_at<R: ReadAt + ?Sized>(r: &R, len: u64, offset: u64) -> io::Result<Vec<u8>> {
    const CHUNK: u64 = 1 << 20;
    let mut out = Vec::new();
    while (out.len() as u64) < len {
        let want = (len - out.len() as u64).min(CHUNK) as usize;
        let start = out.len();
        out.resize(start + want, 0);
        let got = read_full_at(r, &mut out[start..], offset.saturating_add(start as u64))?;
        if got < want {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(out)
}

pub(crate) fn write_all_at<W: WriteAt + ?Sized>(
    w: &W,
    mut buf: &[u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match w.write_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A window `[off, off+len)` of another reader (Go's `io.SectionReader`).
pub(crate) struct Section<'a, R: ?Sized> {
    pub(crate) r: &'a R,
    pub(crate) off: u64,
    pub(crate) len: u64,
}

impl<R: ReadAt + ?Sized> ReadAt for Section<'_, R> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = (self.len - offset).min(buf.len() as u64) as usize;
        self.r
            .read_at(&mut buf[..n], self.off.saturating_add(offset))
    }
}

/// Formats an I/O error the way Go prints the equivalent `error` (`no such file or
/// directory`, `unexpected EOF`), so our messages line up with `go tool buildid`'s.
pub(crate) fn go_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => return "unexpected EOF".into(),
        _ if e.raw_os_error().is_none() => return e.to_string(),
        _ => {}
    }
    let s = e.to_string();
    let s = match s.rfind(" (os error ") {
        Some(i) => &s[..i],
        None => &s[..],
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}
