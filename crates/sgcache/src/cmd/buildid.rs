//! `sgcache buildid [-w] FILE`: what `go tool buildid [-w] FILE` does, in sgcache.
//!
//! Output is byte-for-byte `go tool buildid`'s (`cmd/buildid`): the build ID and a newline,
//! an empty line for a file that has none (a text or data output in the cache, any file that
//! is not a Go object), and nothing for `-w`. Errors are one line on stderr (`sgcache buildid:
//! open x: no such file or directory`) and exit status 1, where Go fails too; `-w` on a file
//! without a build ID fails, as Go's does ("no id specified").

use std::io::Write;
use std::process::ExitCode;

use crate::cli::BuildidArgs;

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
            "{}: no build ID to rewrite (not a Go object, or built with -buildid=)",
            path.display()
        ));
    }
    sgcache_buildid::rewrite_file(path)
        .map(drop)
        .map_err(|e| e.to_string())
}
