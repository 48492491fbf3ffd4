//! `sgcache buildid [-w] FILE`: what `go tool buildid [-w] FILE` does, in sgcache.
//!
//! Output is byte-for-byte `go tool buildid`'s: the build ID and a newline, and nothing for
//! `-w`. Errors are one line on stderr (`sgcache buildid: open x: no such file or
//! directory`) and exit status 1. One deliberate difference: where Go prints an empty line
//! for a file that is not a Go object at all, we report that as an error, because an empty
//! answer there has misled people into thinking a file was built with `-buildid=`. A Go
//! archive whose header has no build ID line still prints an empty line, as in Go.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `sgcache buildid`.
#[derive(clap::Args, Debug)]
pub struct BuildidArgs {
    /// Rewrite the file's content ID to match its content (like `go tool buildid -w`).
    #[arg(short = 'w')]
    pub write: bool,
    /// A Go package archive or binary.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs the command; a failure is reported on stderr and turned into exit status 1.
pub fn run(args: &BuildidArgs) -> anyhow::Result<ExitCode> {
    match buildid(args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(msg) => {
            let _ = writeln!(std::io::stderr().lock(), "sgcache buildid: {msg}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn buildid(args: &BuildidArgs) -> Result<(), String> {
    let path = &args.file;
    let id = sgcache_buildid::read_file(path).map_err(|e| e.to_string())?;
    if id.is_empty() && !is_go_archive(path) {
        return Err(format!(
            "{}: no Go build ID found (not a Go archive or binary, or linked with -buildid=)",
            path.display()
        ));
    }
    if !args.write {
        let mut out = std::io::stdout().lock();
        out.write_all(&id)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to stdout: {e}"))?;
        return Ok(());
    }
    if id.is_empty() {
        return Err(format!(
            "{}: the archive has no build ID to rewrite",
            path.display()
        ));
    }
    sgcache_buildid::rewrite_file(path)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether the file starts with a Go archive header (`go object …`), build ID line or not.
fn is_go_archive(path: &Path) -> bool {
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path)
        .and_then(|f| f.take(1024).read_to_end(&mut head))
        .is_ok_and(|_| sgcache_buildid::parse_object_header(&head).is_some())
}
