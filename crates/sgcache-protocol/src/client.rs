//! The go command's side of the protocol: requests encoded byte for byte as
//! `cmd/go/internal/cache/prog.go` writes them, and responses decoded as it reads them.
//!
//! sgcache itself only serves; this side exists so tests, benchmarks and fuzz targets drive
//! a server with real protocol bytes instead of hand-formatted JSON.

use std::io::{self, BufRead, Write};

use serde::Serialize;
use sgcache_types::{ActionId, OutputId};

use crate::message::{Response, encode_id};

/// A request as the go command builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest<'a> {
    /// `get` of an ActionID.
    Get(ActionId),
    /// `put` of ActionID → OutputID with its body.
    Put(ActionId, OutputId, &'a [u8]),
    /// `close`.
    Close,
}

/// The JSON object, with Go's field names and `omitempty`.
#[derive(Serialize)]
struct WireRequest<'a> {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "Command")]
    command: &'a str,
    #[serde(rename = "ActionID", skip_serializing_if = "Option::is_none")]
    action_id: Option<String>,
    #[serde(rename = "OutputID", skip_serializing_if = "Option::is_none")]
    output_id: Option<String>,
    #[serde(rename = "BodySize", skip_serializing_if = "is_zero")]
    body_size: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Encodes one request with id `id`: the JSON line, an empty line, and for a put with a
/// body the base64 body as a JSON string on its own line (Go's framing exactly).
pub fn encode_request(id: i64, r: &ClientRequest<'_>) -> Vec<u8> {
    let (command, action, output, body): (_, _, _, &[u8]) = match r {
        ClientRequest::Get(a) => ("get", Some(a), None, &[]),
        ClientRequest::Put(a, o, b) => ("put", Some(a), Some(o), b),
        ClientRequest::Close => ("close", None, None, &[]),
    };
    let wire = WireRequest {
        id,
        command,
        action_id: action.map(|a| encode_id(a.as_bytes())),
        output_id: output.map(|o| encode_id(o.as_bytes())),
        body_size: body.len() as i64,
    };
    let mut out = serde_json::to_vec(&wire).expect("requests always serialize");
    out.extend_from_slice(b"\n\n");
    if !body.is_empty() {
        out.push(b'"');
        out.extend_from_slice(base64_simd::STANDARD.encode_to_string(body).as_bytes());
        out.extend_from_slice(b"\"\n");
    }
    out
}

/// Writes requests with increasing ids (from 1), as the go command does.
#[derive(Debug)]
pub struct RequestWriter<W: Write> {
    out: W,
    next: i64,
}

impl<W: Write> RequestWriter<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        RequestWriter { out, next: 1 }
    }

    /// Sends one request and flushes; returns its id.
    pub fn send(&mut self, r: &ClientRequest<'_>) -> io::Result<i64> {
        let id = self.next;
        self.next += 1;
        self.out.write_all(&encode_request(id, r))?;
        self.out.flush()?;
        Ok(id)
    }

    /// The underlying writer (drop it to close the server's input).
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Decodes one response line (with or without its newline).
pub fn decode_response(line: &[u8]) -> Result<Response, serde_json::Error> {
    serde_json::from_slice(line.trim_ascii_end())
}

/// Reads response lines.
#[derive(Debug)]
pub struct ResponseReader<R: BufRead> {
    inner: R,
    line: Vec<u8>,
}

impl<R: BufRead> ResponseReader<R> {
    /// Reads from `inner`.
    pub fn new(inner: R) -> Self {
        ResponseReader {
            inner,
            line: Vec::new(),
        }
    }

    /// The next response, or `None` at the end of the stream. A line that is not a response
    /// is an `InvalidData` error.
    pub fn next_response(&mut self) -> io::Result<Option<Response>> {
        self.line.clear();
        if self.inner.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(None);
        }
        decode_response(&self.line)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, Frame, RequestReader};

    #[test]
    fn encoded_requests_read_back_and_match_go_bytes() {
        let a = ActionId::from_bytes([1; 32]);
        let o = OutputId::from_bytes([2; 32]);
        let put = encode_request(1, &ClientRequest::Put(a, o, b"hello"));
        assert_eq!(
            std::str::from_utf8(&put).unwrap(),
            concat!(
                r#"{"ID":1,"Command":"put","ActionID":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","#,
                r#""OutputID":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=","BodySize":5}"#,
                "\n\n\"aGVsbG8=\"\n"
            )
        );
        let mut stream = put.clone();
        stream.extend(encode_request(2, &ClientRequest::Get(a)));
        stream.extend(encode_request(3, &ClientRequest::Close));
        let mut r = RequestReader::new(&stream[..]);
        let Frame::Request(p) = r.next_request().unwrap() else {
            panic!("a put")
        };
        assert_eq!(
            (p.command, p.action_id, p.output_id),
            (Command::Put, Some(a), Some(o))
        );
        let mut body = Vec::new();
        r.read_body(p.body_size, &mut body).unwrap().unwrap();
        assert_eq!(body, b"hello");
        for want in [Command::Get, Command::Close] {
            let Frame::Request(q) = r.next_request().unwrap() else {
                panic!("{want:?}")
            };
            assert_eq!(q.command, want);
        }
        assert!(matches!(r.next_request().unwrap(), Frame::Eof));
    }

    #[test]
    fn responses_round_trip() {
        let hit = Response::hit(2, OutputId::from_bytes([1; 32]), 5, 7, "/p".into());
        for r in [
            Response::handshake(),
            Response::miss(4),
            hit,
            Response::error(9, "x"),
        ] {
            let line = serde_json::to_vec(&r).unwrap();
            assert_eq!(decode_response(&line).unwrap(), r);
        }
        let mut rr = ResponseReader::new(&b"{\"ID\":1,\"Miss\":true}\nnope\n"[..]);
        assert_eq!(rr.next_response().unwrap(), Some(Response::miss(1)));
        assert!(rr.next_response().is_err());
        assert_eq!(rr.next_response().unwrap(), None);
    }
}
