//! Framing: request lines, streamed put bodies, response lines.

use std::io::{self, BufRead, Write};

use crate::message::{ParseFailure, Request, Response, preview};

/// The longest request line accepted (a real one is under 300 bytes).
pub const MAX_LINE: usize = 1 << 20;

/// Decoded bytes handed to a body sink per call (the base64 text is 4/3 of this).
const BODY_CHUNK: usize = 192 * 1024;

/// What the reader produced.
#[derive(Debug)]
pub enum Frame {
    /// A request; for a put with `body_size > 0`, call `read_body` next.
    Request(Request),
    /// Clean end of input between requests.
    Eof,
}

/// The input cannot be read as the protocol any more. The go command treats a helper
/// that stops answering as dead, so the caller reports this once and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Reading stdin failed.
    #[error("reading requests: {0}")]
    Io(#[from] io::Error),
    /// Input ended in the middle of a request line or a put body.
    #[error("input ended in the middle of {0}")]
    Truncated(String),
    /// A line that is not a protocol request.
    #[error("{0}")]
    Malformed(String),
    /// A request line longer than [`MAX_LINE`].
    #[error("request line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// A put body that was read to its end (the stream is still in sync) but is bad.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not standard padded base64.
    #[error("body is not valid base64")]
    InvalidBase64,
    /// Decoded length differs from `BodySize`.
    #[error("body is {got} bytes but BodySize says {declared}")]
    WrongLength {
        /// What the request declared.
        declared: u64,
        /// What arrived (counting stops just past `declared`).
        got: u64,
    },
    /// The sink refused the bytes (a full disk, say); the rest was discarded.
    #[error("storing body: {0}")]
    Sink(io::Error),
}

/// Reads requests and bodies from a buffered byte stream.
#[derive(Debug)]
pub struct RequestReader<R> {
    inner: R,
    line: Vec<u8>,
    decoded: Vec<u8>,
}

impl<R: BufRead> RequestReader<R> {
    /// Wraps a buffered reader; give it a large buffer (e.g. 256 KiB) for fast bodies.
    pub fn new(inner: R) -> Self {
        RequestReader {
            inner,
            line: Vec::with_capacity(512),
            decoded: Vec::new(),
        }
    }

    /// Whether another request is already buffered (so a reply flush can wait for it).
    /// Buffered whitespace (the blank line after a request, the newline after a body) is
    /// consumed and does not count; this never blocks.
    pub fn has_buffered_input(&mut self) -> bool
    where
        R: HasBuffer,
    {
        while self.inner.buffered_len() > 0 {
            let Ok(buf) = self.inner.fill_buf() else {
                return false;
            };
            let ws = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            if ws == 0 {
                return true;
            }
            self.inner.consume(ws);
        }
        false
    }

    /// Reads the next request, skipping blank lines.
    pub fn next_request(&mut self) -> Result<Frame, CodecError> {
        loop {
            if !self.read_line()? {
                return Ok(Frame::Eof);
            }
            let line = trim_ascii(&self.line);
            if line.is_empty() {
                continue;
            }
            return match Request::parse(line) {
                Ok(req) => Ok(Frame::Request(req)),
                Err(ParseFailure::Malformed(msg)) => Err(CodecError::Malformed(msg)),
            };
        }
    }

    /// Fills `self.line` with the next line (without `\n`); false at clean EOF.
    fn read_line(&mut self) -> Result<bool, CodecError> {
        self.line.clear();
        loop {
            let buf = fill(&mut self.inner)?;
            if buf.is_empty() {
                if self.line.iter().all(u8::is_ascii_whitespace) {
                    return Ok(false);
                }
                return Err(CodecError::Truncated(format!(
                    "a request line: {}",
                    preview(&self.line)
                )));
            }
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    self.line.extend_from_slice(&buf[..i]);
                    self.inner.consume(i + 1);
                    return Ok(true);
                }
                None => {
                    let n = buf.len();
                    self.line.extend_from_slice(buf);
                    self.inner.consume(n);
                    if self.line.len() > MAX_LINE {
                        return Err(CodecError::LineTooLong);
                    }
                }
            }
        }
    }

    /// Reads the base64 body line of a put and streams the decoded bytes into `sink`.
    ///
    /// The outer `Err` means the stream is lost; the inner one that this body is bad
    /// but the stream is still in sync, so the request gets an `Err` reply and serving
    /// goes on. At most `size` bytes ever reach the sink, in chunks of at most 192 KiB,
    /// and nothing is allocated in proportion to `size`.
    pub fn read_body(
        &mut self,
        size: u64,
        sink: &mut dyn Write,
    ) -> Result<Result<(), BodyError>, CodecError> {
        self.skip_to_open_quote()?;
        if self.decoded.len() < BODY_CHUNK + 3 {
            self.decoded.resize(BODY_CHUNK + 3, 0);
        }
        let mut carry = [0u8; 4];
        let mut carry_len = 0usize;
        let mut got: u64 = 0;
        let mut padded = false;
        let mut failure: Option<BodyError> = None;
        loop {
            let buf = fill(&mut self.inner)?;
            if buf.is_empty() {
                return Err(CodecError::Truncated(format!(
                    "the body of a put ({got} of {size} bytes decoded)"
                )));
            }
            let window = &buf[..buf.len().min(BODY_CHUNK / 3 * 4)];
            let (seg, closed) = match memchr::memchr(b'"', window) {
                Some(i) => (&window[..i], true),
                None => (window, false),
            };
            let used = seg.len() + usize::from(closed);
            if failure.is_none() && !seg.is_empty() {
                let step = decode_segment(
                    seg,
                    &mut carry,
                    &mut carry_len,
                    &mut padded,
                    &mut self.decoded,
                );
                match step {
                    Ok(n) => {
                        got += n as u64;
                        if got > size {
                            failure = Some(BodyError::WrongLength {
                                declared: size,
                                got,
                            });
                        } else if let Err(e) = sink.write_all(&self.decoded[..n]) {
                            failure = Some(BodyError::Sink(e));
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
            self.inner.consume(used);
            if closed {
                break;
            }
        }
        if let Some(f) = failure {
            return Ok(Err(f));
        }
        if carry_len != 0 {
            return Ok(Err(BodyError::InvalidBase64));
        }
        if got != size {
            return Ok(Err(BodyError::WrongLength {
                declared: size,
                got,
            }));
        }
        Ok(Ok(()))
    }

    fn skip_to_open_quote(&mut self) -> Result<(), CodecError> {
        loop {
            let buf = fill(&mut self.inner)?;
            if buf.is_empty() {
                return Err(CodecError::Truncated("a put, before its body".into()));
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) if buf[i] == b'"' => {
                    self.inner.consume(i + 1);
                    return Ok(());
                }
                Some(i) => {
                    return Err(CodecError::Malformed(format!(
                        "expected the base64 body string of a put, found: {}",
                        preview(&buf[i..])
                    )));
                }
                None => {
                    let n = buf.len();
                    self.inner.consume(n);
                }
            }
        }
    }
}

/// `fill_buf`, retrying when a signal interrupted the read.
fn fill<R: BufRead>(r: &mut R) -> io::Result<&[u8]> {
    while let Err(e) = r.fill_buf() {
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    r.fill_buf()
}

/// Decodes `seg` (base64 text, possibly split mid-quad) into `out`, keeping a partial
/// quad in `carry`. Returns how many bytes of `out` are valid.
fn decode_segment(
    mut seg: &[u8],
    carry: &mut [u8; 4],
    carry_len: &mut usize,
    padded: &mut bool,
    out: &mut [u8],
) -> Result<usize, BodyError> {
    if *padded {
        // Data after a padded quad.
        return Err(BodyError::InvalidBase64);
    }
    let b64 = &base64_simd::STANDARD;
    let mut n = 0;
    if *carry_len > 0 {
        let take = (4 - *carry_len).min(seg.len());
        carry[*carry_len..*carry_len + take].copy_from_slice(&seg[..take]);
        *carry_len += take;
        seg = &seg[take..];
        if *carry_len < 4 {
            return Ok(0);
        }
        let quad = *carry;
        *carry_len = 0;
        n += decode_into(b64, &quad, &mut out[..3])?;
        if quad[3] == b'=' {
            *padded = true;
            return if seg.is_empty() {
                Ok(n)
            } else {
                Err(BodyError::InvalidBase64)
            };
        }
    }
    let whole = seg.len() / 4 * 4;
    if whole > 0 {
        let part = &seg[..whole];
        n += decode_into(b64, part, &mut out[n..])?;
        if part[whole - 1] == b'=' {
            *padded = true;
        }
    }
    let rest = &seg[whole..];
    if !rest.is_empty() {
        if *padded {
            return Err(BodyError::InvalidBase64);
        }
        carry[..rest.len()].copy_from_slice(rest);
        *carry_len = rest.len();
    }
    Ok(n)
}

fn decode_into(b64: &base64_simd::Base64, src: &[u8], dst: &mut [u8]) -> Result<usize, BodyError> {
    b64.decode(src, base64_simd::Out::from_slice(dst))
        .map(|d| d.len())
        .map_err(|_| BodyError::InvalidBase64)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Readers that can tell how much input is already buffered.
pub trait HasBuffer {
    /// Bytes buffered and not yet consumed.
    fn buffered_len(&self) -> usize;
}

impl<R> HasBuffer for io::BufReader<R> {
    fn buffered_len(&self) -> usize {
        self.buffer().len()
    }
}

impl HasBuffer for &[u8] {
    fn buffered_len(&self) -> usize {
        self.len()
    }
}

/// Writes responses as JSON lines. Owned by exactly one writer.
#[derive(Debug)]
pub struct ResponseWriter<W: Write> {
    out: io::BufWriter<W>,
}

impl<W: Write> ResponseWriter<W> {
    /// Wraps the output stream.
    pub fn new(out: W) -> Self {
        ResponseWriter {
            out: io::BufWriter::with_capacity(64 * 1024, out),
        }
    }

    /// Buffers one response line.
    pub fn write(&mut self, r: &Response) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, r).map_err(io::Error::other)?;
        self.out.write_all(b"\n")
    }

    /// Sends everything buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the stream (so the caller can close it).
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    const A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const O: &str = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

    fn put(id: i64, size: i64, body: &str) -> String {
        format!(
            "{{\"ID\":{id},\"Command\":\"put\",\"ActionID\":\"{A}\",\"OutputID\":\"{O}\",\"BodySize\":{size}}}\n\n\"{body}\"\n"
        )
    }

    fn req(r: &mut RequestReader<&[u8]>) -> Request {
        match r.next_request().unwrap() {
            Frame::Request(q) => q,
            Frame::Eof => panic!("eof"),
        }
    }

    #[test]
    fn reads_go_framing() {
        let input = format!(
            "{}{{\"ID\":2,\"Command\":\"get\",\"ActionID\":\"{A}\"}}\n\n{{\"ID\":3,\"Command\":\"close\"}}\n\n",
            put(1, 5, "aGVsbG8=")
        );
        let mut r = RequestReader::new(input.as_bytes());
        let p = req(&mut r);
        assert_eq!((p.id, p.body_size), (1, 5));
        let mut body = Vec::new();
        r.read_body(5, &mut body).unwrap().unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(req(&mut r).command, Command::Get);
        assert_eq!(req(&mut r).command, Command::Close);
        assert!(matches!(r.next_request().unwrap(), Frame::Eof));
    }

    #[test]
    fn body_errors_keep_stream_in_sync() {
        let cases: &[(i64, &str, &str)] = &[
            (5, "aGVsbG8", "invalid"),      // missing padding
            (5, "aGV$bG8=", "invalid"),     // bad character
            (4, "aGVsbG8=", "WrongLength"), // longer than declared
            (6, "aGVsbG8=", "WrongLength"), // shorter than declared
            (5, "aGVs bG8=", "invalid"),    // embedded space
            (3, "aGk=aGk=", "invalid"),     // data after padding
        ];
        for &(size, body, what) in cases {
            let input = format!("{}{{\"ID\":9,\"Command\":\"close\"}}\n", put(1, size, body));
            let mut r = RequestReader::new(input.as_bytes());
            req(&mut r);
            let mut sink = Vec::new();
            let err = r.read_body(size as u64, &mut sink).unwrap().unwrap_err();
            let dbg = format!("{err:?}");
            assert!(
                dbg.to_lowercase().contains(&what.to_lowercase()),
                "{body}: {dbg}"
            );
            assert!(sink.len() as i64 <= size);
            assert_eq!(req(&mut r).id, 9, "{body}: next request found");
        }
    }

    #[test]
    fn body_split_across_tiny_buffers() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b64 = base64_simd::STANDARD.encode_to_string(&data);
        let input = put(1, data.len() as i64, &b64);
        for cap in [1, 2, 3, 5, 7, 64, 4096] {
            let mut r = RequestReader::new(io::BufReader::with_capacity(cap, input.as_bytes()));
            r.next_request().unwrap();
            let mut sink = Vec::new();
            r.read_body(data.len() as u64, &mut sink).unwrap().unwrap();
            assert_eq!(sink, data, "cap {cap}");
        }
    }

    #[test]
    fn truncation_and_garbage_are_fatal() {
        let full = put(1, 5, "aGVsbG8=");
        let cut = &full[..full.len() - 5];
        let mut r = RequestReader::new(cut.as_bytes());
        r.next_request().unwrap();
        assert!(matches!(
            r.read_body(5, &mut Vec::new()),
            Err(CodecError::Truncated(_))
        ));

        let mut r = RequestReader::new(&b"{\"ID\":1,\"Comm"[..]);
        assert!(matches!(r.next_request(), Err(CodecError::Truncated(_))));

        let mut r = RequestReader::new(&b"hello world\n"[..]);
        assert!(matches!(r.next_request(), Err(CodecError::Malformed(_))));

        let long = vec![b'x'; MAX_LINE + 10];
        let mut r = RequestReader::new(&long[..]);
        assert!(matches!(r.next_request(), Err(CodecError::LineTooLong)));
    }

    /// Regression: the newline after a body must not count as a pending request, or the
    /// put's reply waits unflushed while the client waits for it.
    #[test]
    fn trailing_newlines_are_not_pending_input() {
        let input = format!("{}\n\n", put(1, 5, "aGVsbG8="));
        let mut r = RequestReader::new(io::BufReader::new(input.as_bytes()));
        req_buf(&mut r);
        r.read_body(5, &mut Vec::new()).unwrap().unwrap();
        assert!(!r.has_buffered_input());
        let two = format!("{}{}", put(1, 5, "aGVsbG8="), put(2, 5, "aGVsbG8="));
        let mut r = RequestReader::new(io::BufReader::new(two.as_bytes()));
        req_buf(&mut r);
        r.read_body(5, &mut Vec::new()).unwrap().unwrap();
        assert!(r.has_buffered_input());
    }

    fn req_buf(r: &mut RequestReader<io::BufReader<&[u8]>>) -> Request {
        match r.next_request().unwrap() {
            Frame::Request(q) => q,
            Frame::Eof => panic!("eof"),
        }
    }

    #[test]
    fn huge_claimed_size_allocates_nothing_up_front() {
        let input = put(1, 1 << 40, "aGVsbG8=");
        let mut r = RequestReader::new(input.as_bytes());
        let q = req(&mut r);
        assert_eq!(q.body_size, 1 << 40);
        let err = r
            .read_body(q.body_size, &mut Vec::new())
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, BodyError::WrongLength { got: 5, .. }));
        assert!(r.decoded.len() < 1 << 20);
    }

    #[test]
    fn sink_failure_is_reported_and_body_consumed() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let input = format!(
            "{}{{\"ID\":2,\"Command\":\"close\"}}\n",
            put(1, 5, "aGVsbG8=")
        );
        let mut r = RequestReader::new(input.as_bytes());
        req(&mut r);
        let err = r.read_body(5, &mut Full).unwrap().unwrap_err();
        assert!(matches!(err, BodyError::Sink(_)));
        assert_eq!(req(&mut r).id, 2);
    }
}
