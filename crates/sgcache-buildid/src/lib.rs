//! Go build IDs: read them, find and hash them, rewrite them.
//!
//! This is a port of the Go toolchain's `cmd/internal/buildid` (plus the ad-hoc Mach-O signer
//! from `cmd/internal/codesign`), written from the Go sources as the specification. Results
//! are byte-for-byte what `go tool buildid` and the go command compute; where Go would panic
//! or loop forever on a malformed file, this crate returns an error or stops instead.
//!
//! A build ID is `actionID/contentID` for package archives and
//! `actionID(binary)/actionID(main.a)/contentID(main.a)/contentID(binary)` for binaries. Each
//! component is [`hash_to_string`] of a SHA-256; the final content ID is the hash of the file
//! with every occurrence of the build ID replaced by zeros ([`find_and_hash`]), which the go
//! command then writes back over the placeholder ([`rewrite`]).
//!
//! Build IDs are byte strings (a Go `string`): real ones are ASCII, but an ELF note may hold
//! anything, so the readers return `Vec<u8>`.
//!
//! Where each format keeps its ID:
//! - Go archives: the `build id "…"` line after `go object …` in the `__.PKGDEF` member;
//! - ELF: a `PT_NOTE` note named `Go\0\0` with type 4 (GNU build-id note as gccgo fallback);
//! - Mach-O, PE and everything else: the raw `\xff Go build ID: "…"\n \xff` marker at the start
//!   of the text segment (Mach-O: located through the `__text` section when not in the first
//!   32 KiB).

mod classify;
mod codesign;
mod elf;
mod error;
mod find;
mod hash;
mod io;
mod macho;
mod read;
mod rewrite;
mod strconv;

pub use classify::{ExecFormat, Kind, ObjectHeader, classify, parse_object_header};
pub use error::Error;
pub use find::{DEFAULT_BUF_SIZE, ExcludedReader, find_and_hash, find_and_hash_file};
pub use hash::{action_id, content_id, hash_to_string};
pub use io::{ReadAt, WriteAt};
pub use read::{READ_SIZE, read_file, read_from};
pub use rewrite::{rewrite, rewrite_file};
pub use strconv::unquote;
