//! The GOCACHEPROG wire protocol: typed messages and a streaming JSON-lines codec.
//!
//! The go command (the parent) writes requests to our stdin; we write responses to
//! stdout. This crate knows the framing and nothing about what a cache does with a
//! request:
//!
//! ```text
//! parent -> child   {"ID":1,"Command":"put","ActionID":"…","OutputID":"…","BodySize":5}\n
//!                   \n                                    (blank line after every request)
//!                   "aGVsbG8="\n                          (only for a put with BodySize > 0)
//! child -> parent   {"ID":0,"KnownCommands":["get","put","close"]}\n   (handshake, first)
//!                   {"ID":1,"DiskPath":"/abs/path"}\n     (any order, matched by ID)
//! ```
//!
//! Invariants the codec keeps:
//! - A put body is never held in memory: [`RequestReader::read_body`] decodes base64 in
//!   bounded chunks straight into a caller's sink, so a 1 TB `BodySize` allocates nothing.
//! - Framing errors are told apart: a clean end of input ([`Frame::Eof`]), input that
//!   stops in the middle of a request or body ([`CodecError::Truncated`]), input that is
//!   not the protocol at all ([`CodecError::Malformed`]), and a well-framed request whose
//!   fields are wrong ([`Request::fault`], answered with an `Err` to its ID).
//! - After a bad body (invalid base64, wrong length) the whole body line is still
//!   consumed, so the next request is read from the right place.

//!
//! The go command's side ([`encode_request`], [`RequestWriter`], [`ResponseReader`]) is here
//! too, so tests and benchmarks speak the protocol with the same bytes the go command sends.

mod client;
mod codec;
mod message;

pub use client::{ClientRequest, RequestWriter, ResponseReader, decode_response, encode_request};
pub use codec::{BodyError, CodecError, Frame, MAX_LINE, RequestReader, ResponseWriter};
pub use message::{Command, Fault, KNOWN_COMMANDS, Request, Response, format_time};
pub use sgcache_types::{ActionId, OutputId};
