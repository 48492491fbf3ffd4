//! Requests and responses as the go command spells them (`cmd/go/internal/cacheprog`).
//!
//! Field names are Go's field names with no JSON renames; `[]byte` fields travel as
//! padded standard base64. Unknown request fields are ignored, as Go may add some.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use sgcache_types::{ActionId, OutputId};

/// The commands this cache understands; `KnownCommands` in the handshake.
pub const KNOWN_COMMANDS: &[&str] = &["get", "put", "close"];

/// A request command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Look up an ActionID.
    Get,
    /// Store ActionID -> OutputID plus the body.
    Put,
    /// Orderly shutdown.
    Close,
    /// Anything else: answered with an `Err`.
    Unknown(String),
}

impl Command {
    fn parse(s: &str) -> Self {
        match s {
            "get" => Command::Get,
            "put" => Command::Put,
            "close" => Command::Close,
            other => Command::Unknown(other.to_owned()),
        }
    }
}

/// What is wrong with a request that was framed correctly. It is answered with an
/// `Err` carrying this text, and the request is otherwise ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An id field whose base64 does not decode.
    BadBase64 { field: &'static str },
    /// An id field that decodes to the wrong number of bytes.
    BadIdLength { field: &'static str, len: usize },
    /// A required field is absent.
    Missing { field: &'static str },
    /// `BodySize` below zero.
    NegativeBodySize(i64),
    /// A command we did not declare.
    UnknownCommand(String),
    /// A field of the wrong JSON type (the decoder's message).
    BadField(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::BadBase64 { field } => write!(f, "{field} is not valid base64"),
            Fault::BadIdLength { field, len } => {
                write!(f, "{field} is {len} bytes; want 32 (a SHA-256)")
            }
            Fault::Missing { field } => write!(f, "missing {field}"),
            Fault::NegativeBodySize(n) => write!(f, "negative BodySize {n}"),
            Fault::UnknownCommand(c) => {
                write!(
                    f,
                    "unknown command {c:?}; known commands are get, put, close"
                )
            }
            Fault::BadField(msg) => write!(f, "malformed request: {msg}"),
        }
    }
}

/// One decoded request. A put's body is not part of it: read it with
/// [`crate::RequestReader::read_body`] right after this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Unique per go process; echoed in the response.
    pub id: i64,
    /// What to do.
    pub command: Command,
    /// The cache key (get, put).
    pub action_id: Option<ActionId>,
    /// The put's output id: `OutputID`, or the pre-Go-1.24 `ObjectID`.
    pub output_id: Option<OutputId>,
    /// Bytes of body that follow (0 = no body line).
    pub body_size: u64,
    /// Set when the request is well framed but wrong; answer `Err` with it.
    pub fault: Option<Fault>,
}

/// The JSON object as it arrives. Borrowed where the line allows it.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "ID")]
    id: Option<i64>,
    #[serde(rename = "Command", borrow, default)]
    command: Option<Cow<'a, str>>,
    #[serde(rename = "ActionID", borrow, default)]
    action_id: Option<Cow<'a, str>>,
    #[serde(rename = "OutputID", borrow, default)]
    output_id: Option<Cow<'a, str>>,
    #[serde(rename = "ObjectID", borrow, default)]
    object_id: Option<Cow<'a, str>>,
    #[serde(rename = "BodySize", default)]
    body_size: Option<i64>,
}

/// Why a line could not be turned into a request at all.
#[derive(Debug)]
pub(crate) enum ParseFailure {
    /// Not JSON, or JSON without a usable `ID`/`BodySize`: framing is lost.
    Malformed(String),
}

impl Request {
    /// Decodes one request line. A line that is JSON with a numeric `ID` (and a usable
    /// `BodySize`) always yields a request, possibly carrying a [`Fault`].
    pub(crate) fn parse(line: &[u8]) -> Result<Request, ParseFailure> {
        match serde_json::from_slice::<Wire<'_>>(line) {
            Ok(w) if w.id.is_none() => Err(ParseFailure::Malformed(format!(
                "request has no ID: {}",
                preview(line)
            ))),
            Ok(w) => Ok(Self::from_wire(w)),
            Err(typed_err) => Self::parse_loose(line, typed_err),
        }
    }

    fn from_wire(w: Wire<'_>) -> Request {
        let Some(id) = w.id else {
            // Unreachable through `parse`, which rejects id-less lines first.
            return Request::faulty(0, 0, Fault::Missing { field: "ID" });
        };
        let mut fault = None;
        let body_size = match w.body_size {
            Some(n) if n < 0 => {
                fault = Some(Fault::NegativeBodySize(n));
                0
            }
            Some(n) => n as u64,
            None => 0,
        };
        let command = Command::parse(w.command.as_deref().unwrap_or(""));
        let mut decode = |field: &'static str, v: Option<Cow<'_, str>>| -> Option<[u8; 32]> {
            let v = v?;
            match decode_id(field, &v) {
                Ok(id) => Some(id),
                Err(f) => {
                    fault.get_or_insert(f);
                    None
                }
            }
        };
        let action_id = decode("ActionID", w.action_id).map(ActionId::from_bytes);
        let output_id = match w.output_id {
            Some(v) if !v.is_empty() => decode("OutputID", Some(v)),
            _ => decode("ObjectID", w.object_id),
        }
        .map(OutputId::from_bytes);
        if fault.is_none() {
            fault = match &command {
                Command::Unknown(c) => Some(Fault::UnknownCommand(c.clone())),
                Command::Get | Command::Put if action_id.is_none() => {
                    Some(Fault::Missing { field: "ActionID" })
                }
                Command::Put if output_id.is_none() => Some(Fault::Missing { field: "OutputID" }),
                _ => None,
            };
        }
        Request {
            id,
            command,
            action_id,
            output_id,
            body_size,
            fault,
        }
    }

    fn faulty(id: i64, body_size: u64, fault: Fault) -> Request {
        Request {
            id,
            command: Command::Unknown(String::new()),
            action_id: None,
            output_id: None,
            body_size,
            fault: Some(fault),
        }
    }

    /// The slow path for lines the typed decoder refused: keep the stream in sync if
    /// the line still tells us the ID and how much body follows.
    fn parse_loose(line: &[u8], typed_err: serde_json::Error) -> Result<Request, ParseFailure> {
        let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
            ParseFailure::Malformed(format!("request is not JSON ({e}): {}", preview(line)))
        })?;
        let obj = value.as_object().ok_or_else(|| {
            ParseFailure::Malformed(format!("request is not a JSON object: {}", preview(line)))
        })?;
        let id = obj.get("ID").and_then(|v| v.as_i64()).ok_or_else(|| {
            ParseFailure::Malformed(format!(
                "request has no integer ID ({typed_err}): {}",
                preview(line)
            ))
        })?;
        let body_size = match obj.get("BodySize") {
            None | Some(serde_json::Value::Null) => 0,
            Some(v) => match v.as_i64() {
                Some(n) if n > 0 => n as u64,
                Some(_) => 0,
                None => {
                    return Err(ParseFailure::Malformed(format!(
                        "request {id} has a non-integer BodySize, so its body cannot be framed: {}",
                        preview(line)
                    )));
                }
            },
        };
        Ok(Request::faulty(
            id,
            body_size,
            Fault::BadField(typed_err.to_string()),
        ))
    }
}

fn decode_id(field: &'static str, b64: &str) -> Result<[u8; 32], Fault> {
    let bytes = base64_simd::STANDARD
        .decode_to_vec(b64.as_bytes())
        .map_err(|_| Fault::BadBase64 { field })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| Fault::BadIdLength {
        field,
        len: bytes.len(),
    })
}

/// The first bytes of a bad line, printable, for an error message.
pub(crate) fn preview(line: &[u8]) -> String {
    let cut = &line[..line.len().min(80)];
    let mut s = String::from_utf8_lossy(cut).escape_debug().to_string();
    if line.len() > cut.len() {
        s.push('…');
    }
    s
}

/// One response. Build it with the constructors; unset fields are omitted on the
/// wire exactly as Go's `omitempty` would.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's ID (0 for the handshake).
    #[serde(rename = "ID")]
    pub id: i64,
    /// Non-empty: the request failed. One line.
    #[serde(rename = "Err", skip_serializing_if = "Option::is_none", default)]
    pub err: Option<String>,
    /// Handshake only.
    #[serde(
        rename = "KnownCommands",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub known_commands: Option<Vec<String>>,
    /// Get: a miss.
    #[serde(rename = "Miss", skip_serializing_if = "is_false", default)]
    pub miss: bool,
    /// Get hit: the stored OutputID.
    #[serde(
        rename = "OutputID",
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_id",
        deserialize_with = "de_id",
        default
    )]
    pub output_id: Option<OutputId>,
    /// Get hit: body size.
    #[serde(rename = "Size", skip_serializing_if = "is_zero", default)]
    pub size: u64,
    /// Get hit: when the entry was stored (RFC 3339), for `go clean -testcache`.
    #[serde(rename = "Time", skip_serializing_if = "Option::is_none", default)]
    pub time: Option<String>,
    /// Get hit and put: absolute path of a file holding the body.
    #[serde(rename = "DiskPath", skip_serializing_if = "Option::is_none", default)]
    pub disk_path: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn ser_id<S: Serializer>(id: &Option<OutputId>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&base64_simd::STANDARD.encode_to_string(id.as_bytes())),
        None => s.serialize_none(),
    }
}

fn de_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OutputId>, D::Error> {
    let Some(b64) = Option::<Cow<'de, str>>::deserialize(d)? else {
        return Ok(None);
    };
    decode_id("OutputID", &b64)
        .map(|b| Some(OutputId::from_bytes(b)))
        .map_err(serde::de::Error::custom)
}

/// Base64 as the go command writes `[]byte` fields (padded standard alphabet).
pub(crate) fn encode_id(bytes: &[u8; 32]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

impl Response {
    /// The first message: what we understand.
    pub fn handshake() -> Self {
        Response {
            known_commands: Some(KNOWN_COMMANDS.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        }
    }

    /// A get miss.
    pub fn miss(id: i64) -> Self {
        Response {
            id,
            miss: true,
            ..Default::default()
        }
    }

    /// A get hit.
    pub fn hit(
        id: i64,
        output_id: OutputId,
        size: u64,
        time_nanos: i64,
        disk_path: String,
    ) -> Self {
        Response {
            id,
            output_id: Some(output_id),
            size,
            time: Some(format_time(time_nanos)),
            disk_path: Some(disk_path),
            ..Default::default()
        }
    }

    /// A successful put.
    pub fn stored(id: i64, disk_path: String) -> Self {
        Response {
            id,
            disk_path: Some(disk_path),
            ..Default::default()
        }
    }

    /// A failure; the message is flattened to one line.
    pub fn error(id: i64, msg: impl fmt::Display) -> Self {
        let mut text = msg.to_string();
        if text.contains(['\n', '\r']) {
            text = text.replace(['\n', '\r'], " ");
        }
        Response {
            id,
            err: Some(text),
            ..Default::default()
        }
    }

    /// The answer to `close`.
    pub fn closed(id: i64) -> Self {
        Response {
            id,
            ..Default::default()
        }
    }
}

/// Formats Unix nanoseconds as RFC 3339 in UTC with nanoseconds, as Go's `time.Time`
/// marshals (Go parses any fraction length).
pub fn format_time(nanos: i64) -> String {
    let t = if nanos >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos as u64)
    } else {
        std::time::UNIX_EPOCH
    };
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const O: &str = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

    fn parse(s: &str) -> Request {
        Request::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn put_with_output_id() {
        let r = parse(&format!(
            r#"{{"ID":1,"Command":"put","ActionID":"{A}","OutputID":"{O}","BodySize":5}}"#
        ));
        assert_eq!(r.id, 1);
        assert_eq!(r.command, Command::Put);
        assert_eq!(r.action_id, Some(ActionId::from_bytes([1u8; 32])));
        assert_eq!(
            r.output_id.unwrap().as_bytes()[..4],
            [0x2c, 0xf2, 0x4d, 0xba]
        );
        assert_eq!(r.body_size, 5);
        assert_eq!(r.fault, None);
    }

    #[test]
    fn object_id_is_accepted_for_old_toolchains() {
        let r = parse(&format!(
            r#"{{"ID":7,"Command":"put","ActionID":"{A}","ObjectID":"{O}","BodySize":5}}"#
        ));
        assert_eq!(r.fault, None);
        assert_eq!(r.output_id.unwrap().as_bytes()[0], 0x2c);
    }

    #[test]
    fn faults_table() {
        let short = base64_simd::STANDARD.encode_to_string([1u8; 31]);
        let cases: &[(String, Fault)] = &[
            (
                format!(r#"{{"ID":1,"Command":"get","ActionID":"{short}"}}"#),
                Fault::BadIdLength {
                    field: "ActionID",
                    len: 31,
                },
            ),
            (
                r#"{"ID":1,"Command":"get","ActionID":"!!!"}"#.into(),
                Fault::BadBase64 { field: "ActionID" },
            ),
            (
                r#"{"ID":1,"Command":"get"}"#.into(),
                Fault::Missing { field: "ActionID" },
            ),
            (
                format!(r#"{{"ID":1,"Command":"put","ActionID":"{A}"}}"#),
                Fault::Missing { field: "OutputID" },
            ),
            (
                r#"{"ID":1,"Command":"frobnicate"}"#.into(),
                Fault::UnknownCommand("frobnicate".into()),
            ),
            (
                format!(
                    r#"{{"ID":1,"Command":"put","ActionID":"{A}","OutputID":"{O}","BodySize":-3}}"#
                ),
                Fault::NegativeBodySize(-3),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line).fault.as_ref(), Some(want), "{line}");
        }
    }

    #[test]
    fn wrong_types_keep_id_and_body_size() {
        let r = parse(r#"{"ID":3,"Command":42,"BodySize":4}"#);
        assert_eq!(r.id, 3);
        assert_eq!(r.body_size, 4);
        assert!(matches!(r.fault, Some(Fault::BadField(_))));
    }

    #[test]
    fn unframeable_lines_are_malformed() {
        for line in [
            "not json",
            "[1,2]",
            r#"{"Command":"get"}"#,
            r#"{"ID":"x"}"#,
            r#"{"ID":1,"BodySize":"big"}"#,
            r#"{"ID":1} trailing"#,
        ] {
            assert!(Request::parse(line.as_bytes()).is_err(), "{line}");
        }
    }

    #[test]
    fn response_encoding_matches_go() {
        let j = |r: &Response| serde_json::to_string(r).unwrap();
        assert_eq!(
            j(&Response::handshake()),
            r#"{"ID":0,"KnownCommands":["get","put","close"]}"#
        );
        assert_eq!(j(&Response::miss(4)), r#"{"ID":4,"Miss":true}"#);
        assert_eq!(
            j(&Response::stored(1, "/c/2c-d".into())),
            r#"{"ID":1,"DiskPath":"/c/2c-d"}"#
        );
        assert_eq!(
            j(&Response::hit(
                2,
                OutputId::from_bytes([1; 32]),
                5,
                1_700_000_000_123_456_789,
                "/p".into()
            )),
            format!(
                r#"{{"ID":2,"OutputID":"{A}","Size":5,"Time":"2023-11-14T22:13:20.123456789Z","DiskPath":"/p"}}"#
            )
        );
        assert_eq!(
            j(&Response::error(9, "two\nlines")),
            r#"{"ID":9,"Err":"two lines"}"#
        );
    }
}
