//! Times `find_and_hash` on one file (used by `bench/buildid.sh`).
//!
//!     buildid_bench FILE [RUNS]   # best-of-RUNS find_and_hash throughput, MB/s
//!     buildid_bench -w FILE       # one `go tool buildid -w` equivalent, for process timing
//!
//! Throughput is reported against both wall-clock time and this thread's CPU time: on a
//! shared machine the CPU time is what says how fast one core does the work.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    if args.first().map(String::as_str) == Some("-w") {
        let path = Path::new(args.get(1).ok_or("usage: buildid_bench -w FILE")?);
        sgcache_buildid::rewrite_file(path)?;
        return Ok(());
    }
    let path = Path::new(args.first().ok_or("usage: buildid_bench FILE [RUNS]")?);
    let runs: usize = args.get(1).map_or(Ok(5), |s| s.parse())?;
    let id = sgcache_buildid::read_file(path)?;
    let size = std::fs::metadata(path)?.len();
    let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
    let mut matches = 0;
    for _ in 0..runs {
        let (t, c) = (Instant::now(), thread_cpu_seconds());
        let (m, _hash) = sgcache_buildid::find_and_hash_file(path, &id)?;
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(thread_cpu_seconds() - c);
        matches = m.len();
    }
    writeln!(
        out,
        "sgcache find_and_hash: {size} bytes, {matches} matches, best of {runs}: \
         CPU {:.1} ms = {:.0} MB/s; wall {:.1} ms = {:.0} MB/s",
        best_cpu * 1e3,
        size as f64 / best_cpu / 1e6,
        best * 1e3,
        size as f64 / best / 1e6
    )?;
    Ok(())
}

/// CPU time consumed by this thread (user + system).
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
