//! Reading a cache directory with the go command's own rules, independently of sgcache's
//! code, and `sgcache verify`.

use std::path::Path;
use std::process::Command;

use super::bin;

/// What an independent reading of a cache directory found, with the go command's own rules
/// (`cmd/go/internal/cache`), not sgcache's code.
#[derive(Debug, Default)]
pub struct CacheCheck {
    /// `-a` files that the go command would accept.
    pub valid_actions: usize,
    /// `-a` files the go command would reject (torn, short, foreign): a miss for Go, so not
    /// corruption, but counted.
    pub rejected_actions: usize,
    /// `-d` files (or executable `-d/` directories) whose content hashes to their name.
    pub outputs: usize,
    /// Leftover sgcache temp files (`*.tmp-*`): invisible to Go, removed by trim after an hour.
    pub temps: usize,
    /// Entries the go command could read and that are wrong: an accepted `-a` whose `-d` has
    /// the right size but the wrong content, or a `-d` whose content does not hash to its name.
    pub corrupt: Vec<String>,
    /// Accepted `-a` entries, `action hex -> (output hex, size)`.
    pub actions: std::collections::HashMap<String, (String, u64)>,
}

/// Go's index entry rules: 175 bytes, `v1 <action> <output> <size %20d> <time %20d>\n`, the
/// action equal to the file name.
pub fn parse_go_entry(data: &[u8], action_hex: &str) -> Option<(String, u64)> {
    if data.len() != 175 || !data.starts_with(b"v1 ") || data[174] != b'\n' {
        return None;
    }
    let s = std::str::from_utf8(&data[..174]).ok()?;
    let f: Vec<&str> = s.split(' ').filter(|x| !x.is_empty()).collect();
    if f.len() != 5 || f[1] != action_hex || f[2].len() != 64 {
        return None;
    }
    hex::decode(f[2]).ok()?;
    let size: i64 = f[3].parse().ok()?;
    let _time: i64 = f[4].parse().ok()?;
    (size >= 0).then(|| (f[2].to_owned(), size as u64))
}

/// SHA-256 of a file, hex.
pub fn file_sha256_hex(p: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(p)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads every entry of `dir` with the go command's rules; see [`CacheCheck`].
pub fn check_cache(dir: &Path) -> CacheCheck {
    let mut c = CacheCheck::default();
    let mut outs: std::collections::HashMap<String, u64> = Default::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return c;
    };
    for sub in rd.flatten() {
        let name = sub.file_name().to_string_lossy().into_owned();
        if name.len() != 2 || !sub.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let fname = f.file_name().to_string_lossy().into_owned();
            let p = f.path();
            if fname.contains(".tmp-") {
                c.temps += 1;
            } else if let Some(out) = fname.strip_suffix("-d") {
                let file = if p.is_dir() {
                    let inner: Vec<_> = std::fs::read_dir(&p).unwrap().flatten().collect();
                    if inner.len() != 1 {
                        continue; // Go treats it as a miss.
                    }
                    inner[0].path()
                } else {
                    p.clone()
                };
                match file_sha256_hex(&file) {
                    Ok(h) if h == out => {
                        c.outputs += 1;
                        outs.insert(out.to_owned(), std::fs::metadata(&file).unwrap().len());
                    }
                    Ok(h) => c.corrupt.push(format!("`{}` hashes to {h}", p.display())),
                    Err(_) => {}
                }
            } else if let Some(action) = fname.strip_suffix("-a") {
                let data = std::fs::read(&p).unwrap_or_default();
                match parse_go_entry(&data, action) {
                    Some(e) => {
                        c.valid_actions += 1;
                        c.actions.insert(action.to_owned(), e);
                    }
                    None => c.rejected_actions += 1,
                }
            }
        }
    }
    // An accepted index entry whose output exists with the right size must be that output
    // (already hashed above; corrupt outputs are listed once).
    for (action, (out, size)) in &c.actions {
        if let Some(&have) = outs.get(out)
            && have != *size
        {
            // Go: size mismatch is a miss, but the -d itself hashed fine: entry is wrong.
            c.corrupt.push(format!(
                "entry {action} says output {out} has {size} bytes; it has {have}"
            ));
        }
    }
    c
}

/// Sets atime and mtime of every file under `dir` to `secs` seconds ago, so that
/// `sgcache verify` (which skips files modified in the last 5 minutes as possibly in
/// progress) judges everything.
pub fn age_files(dir: &Path, secs: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    let times = std::fs::FileTimes::new().set_accessed(t).set_modified(t);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(f) = std::fs::File::options().write(true).open(&p)
            {
                let _ = f.set_times(times);
            }
        }
    }
}

/// Runs `sgcache verify --json` on `dir` (after [`age_files`]) and returns the number of
/// problems it reports, and its JSON.
pub fn sgcache_verify(dir: &Path) -> (usize, serde_json::Value) {
    age_files(dir, 600);
    let out = Command::new(bin())
        .args(["verify", "--json"])
        .env("SGCACHE_DIR", dir)
        .env_remove("SGCACHE_REMOTE")
        .output()
        .expect("spawn sgcache verify");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sgcache verify --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let n = v["problems"].as_array().map_or(0, |a| a.len());
    (n, v)
}
