//! `sgcache inspect [ACTIONID-or-prefix | --all] [--json]`: what a cache entry holds.
//!
//! For each matching index entry: the output ID, size, time, the kind of output (package
//! archive, executable, compiler/linker stdout, test result, …) and, for Go archives and
//! binaries, the build ID and the archive's `go object` header (GOOS, GOARCH, Go version,
//! experiments). This is how a user sees why the go command did or did not reuse something:
//! the build ID's action part is what the go command looks for, its content part what it
//! compares.
//!
//! Read-only by design: it parses `-a` files and stats outputs itself instead of going through
//! `DiskCache::get`, which refreshes mtimes (Go's `markUsed`), so inspecting a cache never
//! keeps an entry alive. Entries that change or vanish while we look are reported as found.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use sgcache_buildid::{ExecFormat, Kind};
use sgcache_disk::{ActionId, IndexEntry, layout};

use crate::cli::InspectArgs;

/// What we found out about one index entry.
#[derive(Debug)]
struct Report {
    action_id: ActionId,
    /// The parsed index entry, or Go's reason for treating it as a miss.
    entry: Result<IndexEntry, String>,
    /// Where the output is, if present with the recorded size.
    output: Option<PathBuf>,
    /// Whether the output is stored as an executable (`<out>-d/<name>`).
    executable: bool,
    kind: Option<Kind>,
    build_id: Option<Result<String, String>>,
    header: Option<sgcache_buildid::ObjectHeader>,
}

/// Runs the command against the cache in `cache_dir`.
pub fn run(args: &InspectArgs, cache_dir: &Path) -> Result<ExitCode> {
    let prefix = match (&args.id, args.all) {
        (_, true) => String::new(),
        (Some(p), false) => {
            let p = p.trim().to_ascii_lowercase();
            if p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!(
                    "`{p}` is not an action ID or a hex prefix of one (up to 64 hex digits)"
                );
            }
            p
        }
        (None, false) => anyhow::bail!("give an action ID (or a prefix of one), or --all"),
    };
    if !cache_dir.is_dir() {
        anyhow::bail!("no cache at `{}`", cache_dir.display());
    }
    let ids = list_actions(cache_dir, &prefix)
        .with_context(|| format!("listing entries in `{}`", cache_dir.display()))?;
    if ids.is_empty() {
        let what = if prefix.is_empty() {
            "the cache is empty".to_string()
        } else {
            format!("no entry matches `{prefix}`")
        };
        writeln!(
            std::io::stderr().lock(),
            "sgcache inspect: {what} (`{}`)",
            cache_dir.display()
        )?;
        return Ok(ExitCode::FAILURE);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        // One object per entry, written as we go so `--all` on a big cache streams.
        writeln!(out, "[")?;
        for (i, id) in ids.iter().enumerate() {
            let r = inspect(cache_dir, id);
            let sep = if i + 1 < ids.len() { "," } else { "" };
            writeln!(out, "{}{sep}", serde_json::to_string(&to_json(&r))?)?;
        }
        writeln!(out, "]")?;
    } else if ids.len() == 1 {
        write_detail(&mut out, &inspect(cache_dir, &ids[0]))?;
    } else {
        for id in &ids {
            write_line(&mut out, &inspect(cache_dir, id))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The action IDs whose hex starts with `prefix`, sorted. With two or more prefix digits
/// only the one subdirectory is read.
fn list_actions(dir: &Path, prefix: &str) -> std::io::Result<Vec<ActionId>> {
    let subdirs: Vec<u8> = match u8::from_str_radix(prefix.get(..2).unwrap_or(""), 16) {
        Ok(b) => vec![b],
        Err(_) => (0..=255u8).collect(),
    };
    let mut ids = Vec::new();
    for b in subdirs {
        let rd = match std::fs::read_dir(layout::subdir_path(dir, b)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            if let Some((id, layout::EntryKind::Action)) =
                layout::parse_entry_name(name.as_encoded_bytes())
                && name.as_encoded_bytes().starts_with(prefix.as_bytes())
            {
                ids.push(ActionId::from(id));
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn inspect(dir: &Path, id: &ActionId) -> Report {
    let mut r = Report {
        action_id: *id,
        entry: Err(String::new()),
        output: None,
        executable: false,
        kind: None,
        build_id: None,
        header: None,
    };
    let apath = layout::action_path(dir, id);
    let mut buf = Vec::with_capacity(sgcache_disk::ENTRY_SIZE + 1);
    let read = std::fs::File::open(&apath).and_then(|f| {
        f.take(sgcache_disk::ENTRY_SIZE as u64 + 1)
            .read_to_end(&mut buf)
    });
    r.entry = match read {
        Err(e) => Err(format!("reading `{}`: {e}", apath.display())),
        Ok(_) => sgcache_disk::parse_index_entry(&buf, id).map_err(|m| m.to_string()),
    };
    let Ok(entry) = &r.entry else {
        return r;
    };
    let dpath = layout::output_path(dir, &entry.output);
    let Ok(md) = std::fs::metadata(&dpath) else {
        return r;
    };
    let file = if md.is_dir() {
        r.executable = true;
        let mut inner = std::fs::read_dir(&dpath)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path());
        match (inner.next(), inner.next()) {
            (Some(p), None) => p,
            _ => return r,
        }
    } else {
        dpath
    };
    if std::fs::metadata(&file).map(|m| m.len()).ok() != Some(entry.size) {
        return r;
    }
    let mut head = Vec::with_capacity(1024);
    if std::fs::File::open(&file)
        .and_then(|f| f.take(1024).read_to_end(&mut head))
        .is_err()
    {
        return r;
    }
    let mut kind = sgcache_buildid::classify(&head, entry.size);
    if r.executable && !matches!(kind, Kind::Executable(_)) {
        kind = Kind::Executable(ExecFormat::Unknown);
    }
    if matches!(kind, Kind::PackageArchive | Kind::Executable(_)) {
        r.header = sgcache_buildid::parse_object_header(&head);
        r.build_id = Some(
            sgcache_buildid::read_file(&file)
                .map(|id| String::from_utf8_lossy(&id).into_owned())
                .map_err(|e| e.to_string()),
        );
    }
    r.kind = Some(kind);
    r.output = Some(file);
    r
}

fn time_of(nanos: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

fn kind_label(r: &Report) -> &'static str {
    match (&r.entry, r.kind) {
        (Err(_), _) => "unreadable index entry",
        (Ok(_), None) => "output missing",
        (Ok(_), Some(k)) => k.label(),
    }
}

fn write_detail(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(out, "action id   {}", r.action_id.hex())?;
    let e = match &r.entry {
        Ok(e) => e,
        Err(why) => {
            return writeln!(
                out,
                "entry       unusable: {why} (the go command treats this as a miss)"
            );
        }
    };
    writeln!(out, "output id   {}", e.output.hex())?;
    writeln!(
        out,
        "size        {} ({} bytes)",
        bytesize::ByteSize(e.size).display().iec(),
        e.size
    )?;
    writeln!(
        out,
        "time        {}",
        humantime::format_rfc3339_nanos(time_of(e.time_nanos))
    )?;
    writeln!(out, "kind        {}", kind_label(r))?;
    match &r.output {
        Some(p) => writeln!(out, "file        {}", p.display())?,
        None => writeln!(
            out,
            "file        missing or of the wrong size (the go command treats this as a miss)"
        )?,
    }
    if let Some(h) = &r.header {
        writeln!(out, "target      {}/{}", h.goos, h.goarch)?;
        writeln!(out, "go version  {}", h.version)?;
        if !h.settings.is_empty() {
            writeln!(out, "settings    {}", h.settings.join(" "))?;
        }
        writeln!(
            out,
            "experiments {}",
            if h.experiments.is_empty() {
                "none".into()
            } else {
                h.experiments.join(",")
            }
        )?;
        writeln!(out, "main        {}", if h.main { "yes" } else { "no" })?;
    }
    match &r.build_id {
        Some(Ok(id)) if !id.is_empty() => {
            writeln!(out, "build id    {id}")?;
            writeln!(
                out,
                "            action {}  content {}",
                sgcache_buildid::action_id(id),
                sgcache_buildid::content_id(id)
            )?;
        }
        Some(Ok(_)) => writeln!(out, "build id    none")?,
        Some(Err(e)) => writeln!(out, "build id    unreadable: {e}")?,
        None => {}
    }
    Ok(())
}

fn write_line(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let a = hex::encode(&r.action_id.as_bytes()[..8]);
    let Ok(e) = &r.entry else {
        return writeln!(out, "{a}  unusable index entry");
    };
    let when = humantime::format_rfc3339_seconds(time_of(e.time_nanos));
    let size = bytesize::ByteSize(e.size).display().iec().to_string();
    write!(
        out,
        "{a}  {}  {size:>10}  {when}  {}",
        hex::encode(&e.output.as_bytes()[..8]),
        kind_label(r)
    )?;
    if let Some(h) = &r.header {
        write!(out, "  {}/{} {}", h.goos, h.goarch, h.version)?;
    }
    if let Some(Ok(id)) = &r.build_id
        && !id.is_empty()
    {
        write!(out, "  {id}")?;
    }
    writeln!(out)
}

fn to_json(r: &Report) -> serde_json::Value {
    let mut v = serde_json::json!({ "action_id": r.action_id.hex() });
    let m = v.as_object_mut().expect("object");
    match &r.entry {
        Err(why) => {
            m.insert("error".into(), why.clone().into());
        }
        Ok(e) => {
            m.insert("output_id".into(), e.output.hex().into());
            m.insert("size".into(), e.size.into());
            m.insert("time_nanos".into(), e.time_nanos.into());
            m.insert(
                "time".into(),
                humantime::format_rfc3339_nanos(time_of(e.time_nanos))
                    .to_string()
                    .into(),
            );
        }
    }
    m.insert("kind".into(), kind_label(r).into());
    m.insert("executable".into(), r.executable.into());
    m.insert(
        "path".into(),
        r.output.as_ref().map(|p| p.display().to_string()).into(),
    );
    if let Some(b) = &r.build_id {
        match b {
            Ok(id) => {
                m.insert("build_id".into(), id.clone().into());
                if !id.is_empty() {
                    m.insert(
                        "build_action_id".into(),
                        sgcache_buildid::action_id(id).into(),
                    );
                    m.insert(
                        "build_content_id".into(),
                        sgcache_buildid::content_id(id).into(),
                    );
                }
            }
            Err(e) => {
                m.insert("build_id_error".into(), e.clone().into());
            }
        }
    }
    if let Some(h) = &r.header {
        m.insert(
            "go_object".into(),
            serde_json::json!({
                "goos": h.goos,
                "goarch": h.goarch,
                "version": h.version,
                "settings": h.settings,
                "experiments": h.experiments,
                "main": h.main,
            }),
        );
    }
    v
}
