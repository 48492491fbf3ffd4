//! Go's own cache tests (cmd/go/internal/cache/cache_test.go, Go 1.26) rewritten as black-box
//! tests against `DiskCache`, plus the entry-format, executable-entry and put-path rules.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sgcache_disk::{
    ActionId, DiskCache, Error, IndexEntry, ManualClock, OutputId, README_TEXT, sha256,
};

/// An id of either kind from a small number (little-endian in the first 8 bytes).
fn dummy_id<T: From<[u8; 32]>>(x: u64) -> T {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&x.to_le_bytes());
    id.into()
}

/// The index entry `action → output, size, time`.
fn entry(action: ActionId, output: OutputId, size: u64, time_nanos: i64) -> IndexEntry {
    IndexEntry {
        action,
        output,
        size,
        time_nanos,
    }
}

fn mtime_secs(p: &Path) -> i64 {
    let m = fs::metadata(p).unwrap().modified().unwrap();
    m.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn set_mtime(p: &Path, t: SystemTime) {
    let f = fs::File::open(p).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

fn unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// All names in all subdirectories (to prove nothing was left behind).
fn all_entries(c: &DiskCache) -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..=255u8 {
        let sub = c.dir().join(format!("{i:02x}"));
        for e in fs::read_dir(&sub).unwrap() {
            v.push(format!(
                "{i:02x}/{}",
                e.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    v.sort();
    v
}

#[test]
fn test_basic() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(DiskCache::open_existing(tmp.path().join("notexist")).is_err());
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    assert!(matches!(
        DiskCache::open_existing(&file),
        Err(Error::NotADirectory { .. })
    ));

    let cdir = tmp.path().join("c1");
    fs::create_dir(&cdir).unwrap();
    let c1 = DiskCache::open(&cdir).unwrap();
    c1.put_index_entry(&entry(dummy_id(1), dummy_id(12), 13, 1))
        .unwrap();
    c1.put_index_entry(&entry(dummy_id(1), dummy_id(2), 3, 2))
        .unwrap(); // overwrite
    let e = c1.get(&dummy_id(1)).unwrap().unwrap();
    assert_eq!((e.output, e.size, e.time_nanos), (dummy_id(2), 3, 2));
    assert_eq!(
        fs::metadata(c1.action_path(&dummy_id(1))).unwrap().len(),
        175
    );

    let c2 = DiskCache::open(&cdir).unwrap();
    let e = c2.get(&dummy_id(1)).unwrap().unwrap();
    assert_eq!((e.output, e.size), (dummy_id(2), 3));
    c2.put_index_entry(&entry(dummy_id(2), dummy_id(3), 4, 0))
        .unwrap();
    let e = c1.get(&dummy_id(2)).unwrap().unwrap();
    assert_eq!((e.output, e.size), (dummy_id(3), 4));
    // Get does not require -d files, and none were written.
    assert!(all_entries(&c1).iter().all(|n| n.ends_with("-a")));
    // get_file does need them.
    assert!(c1.get_file(&dummy_id(1)).unwrap().is_none());
    // Open created the 256 subdirectories and the README.
    assert!(cdir.join("00").is_dir() && cdir.join("ff").is_dir());
    assert_eq!(
        fs::read_to_string(cdir.join("README")).unwrap(),
        README_TEXT
    );
}

#[test]
fn open_creates_dir_and_keeps_existing_readme() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/c");
    let c = DiskCache::open(&dir).unwrap();
    assert!(c.dir().is_absolute());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 257);
    fs::write(dir.join("README"), "old text").unwrap();
    DiskCache::open(&dir).unwrap();
    assert_eq!(fs::read_to_string(dir.join("README")).unwrap(), "old text");
}

#[test]
fn test_growth() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    let n = 10_000u64;
    for i in 0..n {
        c.put_index_entry(&entry(dummy_id(i), dummy_id(i * 99), i * 101, 0))
            .unwrap();
        let e = c.get(&dummy_id(i)).unwrap().expect("hit");
        assert_eq!((e.output, e.size), (dummy_id(i * 99), i * 101));
    }
    for i in 0..n {
        let e = c.get(&dummy_id(i)).unwrap().expect("hit");
        assert_eq!((e.output, e.size), (dummy_id(i * 99), i * 101));
    }
}

/// Go's TestCacheTrim, full timeline, with exact mtimes and trim.txt contents.
#[test]
fn test_cache_trim() {
    let tmp = tempfile::tempdir().unwrap();
    const START: u64 = 1_000_000_000;
    let clock = Arc::new(ManualClock::at_unix(START));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    let trim_txt = tmp.path().join("trim.txt");
    let check = |p: &Path, want: u64| assert_eq!(mtime_secs(p), want as i64, "{}", p.display());

    let id1 = dummy_id(1);
    let id2 = dummy_id(2);
    c.put_bytes(&id1, b"abc").unwrap();
    let entry = c.get(&id1).unwrap().unwrap();
    assert_eq!(entry.output, OutputId::from(sha256(b"abc")));
    c.put_bytes(&id2, b"def").unwrap();
    let a1 = c.action_path(&id1);
    let d1 = c.output_path(&entry.output);
    let a2 = c.action_path(&id2);
    let d2 = c.output_path(&sha256(b"def").into());
    check(&a1, START);
    check(&d1, START);

    // Get does not change recent mtimes.
    clock.set_unix(START + 10);
    c.get(&id1).unwrap().unwrap();
    check(&a1, START);
    check(&d1, START);

    // Get (and OutputFile via get_file) change distant mtimes.
    clock.set_unix(START + 5000);
    let (_, path) = c.get_file(&id1).unwrap().unwrap();
    assert_eq!(path, d1);
    check(&a1, START + 5000);
    check(&d1, START + 5000);

    // Trim leaves everything alone: it is all too new. It writes trim.txt.
    let r = c.trim_if_due().unwrap();
    assert!(r.ran);
    assert_eq!(r.removed_entries, 0);
    c.get_file(&id1).unwrap().unwrap();
    let data = fs::read(&trim_txt).unwrap();
    assert_eq!(data, b"1000005000");
    check(&a2, START);

    // Trim less than a day later does no work at all.
    clock.set_unix(START + 80000);
    let r = c.trim_if_due().unwrap();
    assert!(!r.ran);
    c.get_file(&id1).unwrap().unwrap();
    check(&a1, START + 80000);
    check(&d1, START + 80000);
    assert_eq!(fs::read(&trim_txt).unwrap(), data);

    // Five days later: id1 (used at +80000) survives the 5d+1h cutoff, id2 does not.
    clock.set_unix(START + 80000 + 5 * 86400);
    check(&a2, START);
    let r = c.trim_if_due().unwrap();
    assert!(r.ran);
    assert_eq!(r.removed_entries, 2, "{r:?}");
    assert_eq!(r.removed_bytes, 175 + 3);
    assert!(!a2.exists() && !d2.exists());
    assert_eq!(fs::read(&trim_txt).unwrap(), b"1000512000");
    c.get_file(&id1).unwrap().unwrap();
    let mtime3 = START + 80000 + 5 * 86400;
    assert!(c.get(&id2).unwrap().is_none());

    // Another 5 days: trim runs, id1 (mtime3) is exactly at now-5d, newer than the cutoff.
    clock.set_unix(mtime3 + 5 * 86400);
    assert!(c.trim_if_due().unwrap().ran);
    check(&a1, mtime3);
    check(&d1, mtime3);
    assert_eq!(
        fs::read(&trim_txt).unwrap(),
        (mtime3 + 5 * 86400).to_string().as_bytes()
    );

    // Half a day later Trim is a no-op because there was a trim recently.
    clock.set_unix(mtime3 + 5 * 86400 + 43200);
    assert!(!c.trim_if_due().unwrap().ran);
    check(&a1, mtime3);
    check(&d1, mtime3);

    // Another half day (+1s): trim runs and removes id1.
    clock.set_unix(mtime3 + 5 * 86400 + 86401);
    let r = c.trim_if_due().unwrap();
    assert!(r.ran);
    assert_eq!(r.removed_entries, 2);
    assert!(c.get(&id1).unwrap().is_none());
    assert!(!d1.exists());
    assert_eq!(fs::read(&trim_txt).unwrap(), b"1001030401");
}

#[test]
fn trim_txt_in_future_or_garbage_still_trims() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(2_000_000_000));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    let t = tmp.path().join("trim.txt");
    fs::write(&t, "2000003599").unwrap(); // < 1h in the future: skip
    assert!(!c.trim_if_due().unwrap().ran);
    fs::write(&t, "2000003600").unwrap(); // 1h in the future: trim
    assert!(c.trim_if_due().unwrap().ran);
    assert_eq!(fs::read(&t).unwrap(), b"2000000000");
    fs::write(&t, "garbage that is longer than the stamp").unwrap();
    assert!(c.trim_if_due().unwrap().ran);
    assert_eq!(fs::read(&t).unwrap(), b"2000000000");
}

/// Go 1.26: a trim.txt that cannot be written does not stop the scan and is not an error
/// (only an unsupported lock is); we report it.
#[test]
fn trim_txt_write_failure_still_scans() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(1_000_000_000));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    c.put_bytes(&dummy_id(1), b"old").unwrap();
    fs::create_dir(tmp.path().join("trim.txt")).unwrap();
    clock.set_unix(1_000_000_000 + 6 * 86400);
    let r = c.trim_if_due().unwrap();
    assert!(r.ran);
    assert!(
        r.stamp_error.as_deref().unwrap_or("").contains("trim.txt"),
        "{r:?}"
    );
    assert_eq!(r.removed_entries, 2);
}

#[test]
fn trim_removes_old_temp_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    let out = OutputId::from(sha256(b"x"));
    let sub = tmp.path().join(format!("{:02x}", out.as_bytes()[0]));
    let old = sub.join(format!("{}.tmp-1-1", hex::encode(out)));
    let young = sub.join(format!("{}.tmp-1-2", hex::encode(out)));
    let foreign = sub.join("notes.txt");
    for p in [&old, &young, &foreign] {
        fs::write(p, "x").unwrap();
    }
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    set_mtime(&old, two_hours_ago);
    set_mtime(&foreign, two_hours_ago - Duration::from_secs(30 * 86400));
    let r = c.trim_if_due().unwrap();
    assert_eq!(r.removed_temp_files, 1);
    assert!(!old.exists() && young.exists() && foreign.exists());
}

const GOLDEN: &str = "v1 0100000000000000000000000000000000000000000000000000000000000000 0200000000000000000000000000000000000000000000000000000000000000                    3  1700000000000000000\n";

#[test]
fn entry_golden_bytes_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(1_234_567));
    let c = DiskCache::open(tmp.path()).unwrap().with_clock(clock);
    c.put_index_entry(&entry(
        dummy_id(1),
        dummy_id(2),
        3,
        1_700_000_000_000_000_000,
    ))
    .unwrap();
    let p = tmp
        .path()
        .join("01/0100000000000000000000000000000000000000000000000000000000000000-a");
    assert_eq!(c.action_path(&dummy_id(1)), p);
    // atime and mtime both set to the clock (checked before reading, which moves atime).
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.accessed().unwrap(), unix(1_234_567));
    assert_eq!(md.modified().unwrap(), unix(1_234_567));
    assert_eq!(md.len(), 175);
    assert_eq!(fs::read_to_string(&p).unwrap(), GOLDEN);
}

#[test]
fn put_index_entry_writes_then_truncates() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    let p = c.action_path(&dummy_id(1));
    // A longer (corrupt) previous file is cut to 175 bytes after the write.
    fs::write(&p, vec![b'z'; 400]).unwrap();
    c.put_index_entry(&entry(
        dummy_id(1),
        dummy_id(2),
        3,
        1_700_000_000_000_000_000,
    ))
    .unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), GOLDEN);
    // Same inode: never removed and recreated (no O_TRUNC, no rename).
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(&p).unwrap().ino();
        c.put_index_entry(&entry(dummy_id(1), dummy_id(2), 3, 5))
            .unwrap();
        assert_eq!(fs::metadata(&p).unwrap().ino(), ino);
    }
}

#[test]
fn miss_rules_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    let id = dummy_id(1);
    let p = c.action_path(&id);
    let good = GOLDEN.as_bytes().to_vec();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let field = |at: usize, s: &'static str| {
        move |v: &mut Vec<u8>| v[at..at + 20].copy_from_slice(s.as_bytes())
    };
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("good", good.clone(), true),
        ("too long", edit(&|v| v.push(b'x')), false),
        ("empty", vec![], false),
        ("174 bytes", good[..174].to_vec(), false),
        ("v", edit(&|v| v[0] = b'x'), false),
        ("1", edit(&|v| v[1] = b'2'), false),
        ("sep2", edit(&|v| v[2] = b'_'), false),
        ("sep67", edit(&|v| v[67] = b'_'), false),
        ("sep132", edit(&|v| v[132] = b'_'), false),
        ("sep153", edit(&|v| v[153] = b'_'), false),
        ("newline", edit(&|v| v[174] = b'\r'), false),
        ("mismatched id", edit(&|v| v[3] = b'2'), false),
        (
            "uppercase hex",
            edit(&|v| v[68..132].make_ascii_uppercase()),
            true,
        ),
        (
            "uppercase action id",
            edit(&|v| {
                v[3..67].copy_from_slice(hex::encode_upper(dummy_id::<[u8; 32]>(1)).as_bytes())
            }),
            true,
        ),
        ("bad hex", edit(&|v| v[70] = b'g'), false),
        ("+5", edit(&field(133, "                  +5")), true),
        (
            "negative size",
            edit(&field(133, "                  -5")),
            false,
        ),
        (
            "negative time",
            edit(&field(154, "                  -1")),
            false,
        ),
        (
            "blank size",
            edit(&field(133, "                    ")),
            false,
        ),
        (
            "blank time",
            edit(&field(154, "                    ")),
            false,
        ),
    ];
    for (name, bytes, hit) in cases {
        fs::write(&p, &bytes).unwrap();
        set_mtime(&p, unix(1000));
        let got = c.get(&id).unwrap();
        assert_eq!(got.is_some(), hit, "case {name}");
        // Only hits refresh the mtime.
        assert_eq!(mtime_secs(&p) != 1000, hit, "case {name} mtime");
    }
    fs::remove_file(&p).unwrap();
    assert!(c.get(&id).unwrap().is_none(), "missing -a");
}

#[test]
fn get_file_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    let id = dummy_id(7);
    let (out, path) = c.put_bytes(&id, b"hello").unwrap();
    assert_eq!(path, c.output_path(&out));
    let (e, p) = c.get_file(&id).unwrap().unwrap();
    assert_eq!((e.output, e.size, p.clone()), (out, 5, path.clone()));
    assert!(p.is_absolute());
    assert_eq!(fs::read(&p).unwrap(), b"hello");
    // -d of wrong size: miss.
    fs::write(&path, b"hell").unwrap();
    assert!(c.get_file(&id).unwrap().is_none());
    // Same size, wrong content: Go's GetFile does not re-hash, neither do we.
    fs::write(&path, b"HELLO").unwrap();
    assert!(c.get_file(&id).unwrap().is_some());
    // Missing -d: miss.
    fs::remove_file(&path).unwrap();
    assert!(c.get_file(&id).unwrap().is_none());
    assert!(c.get(&id).unwrap().is_some());
    // The empty output.
    let (out, _) = c.put_bytes(&dummy_id(8), b"").unwrap();
    assert_eq!(
        out.hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let (e, p) = c.get_file(&dummy_id(8)).unwrap().unwrap();
    assert_eq!((e.size, fs::metadata(&p).unwrap().len()), (0, 0));
}

#[test]
fn get_file_marks_output_used_hourly() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(10_000_000));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    let (out, d) = c.put_bytes(&dummy_id(1), b"abc").unwrap();
    let a = c.action_path(&dummy_id(1));
    clock.set_unix(10_000_000 + 3599);
    c.get_file(&dummy_id(1)).unwrap().unwrap();
    assert_eq!((mtime_secs(&a), mtime_secs(&d)), (10_000_000, 10_000_000));
    clock.set_unix(10_000_000 + 3600);
    c.get_file(&dummy_id(1)).unwrap().unwrap();
    assert_eq!((mtime_secs(&a), mtime_secs(&d)), (10_003_600, 10_003_600));
    assert_eq!(d, c.output_path(&out));
}

/// `<out>-d/<name>` executable entries as the go command writes them (Go ≥ 1.24).
fn make_exe_entry(c: &DiskCache, id: &ActionId, content: &[u8]) -> (OutputId, PathBuf) {
    let out = OutputId::from(sha256(content));
    let dir = c.output_path(&out);
    fs::create_dir(&dir).unwrap();
    let f = dir.join("hello");
    fs::write(&f, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&f, fs::Permissions::from_mode(0o777)).unwrap();
    }
    c.put_index_entry(&entry(*id, out, content.len() as u64, 1))
        .unwrap();
    (out, f)
}

#[test]
fn executable_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(50_000_000));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    let content = b"\x7fELF pretend binary";
    let (out, inner) = make_exe_entry(&c, &dummy_id(3), content);
    let dir = c.output_path(&out);
    set_mtime(&dir, unix(40_000_000));
    let (e, p) = c.get_file(&dummy_id(3)).unwrap().unwrap();
    assert_eq!((p.clone(), e.size), (inner.clone(), content.len() as u64));
    // markUsed touched the directory.
    assert_eq!(mtime_secs(&dir), 50_000_000);

    // A put of the same output leaves the directory alone and returns its file.
    let mut put = c.begin_put(&out, content.len() as u64).unwrap();
    put.write_all(content).unwrap();
    assert_eq!(put.commit().unwrap(), inner);
    assert!(dir.is_dir());

    // verify hashes the inner file.
    clock.set_unix(60_000_000);
    let r = c.verify(false).unwrap();
    assert_eq!(r.executables_checked, 1);
    assert!(r.is_clean(), "{r:?}");
    fs::write(&inner, b"\x7fELF pretend binarY").unwrap();
    set_mtime(&inner, unix(40_000_000));
    let r = c.verify(false).unwrap();
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert_eq!(r.problems[0].kind, sgcache_disk::ProblemKind::CorruptOutput);
    fs::write(&inner, content).unwrap();

    // Two files: miss, and verify flags the directory.
    fs::write(dir.join("second"), b"x").unwrap();
    assert!(c.get_file(&dummy_id(3)).unwrap().is_none());
    let mut put = c.begin_put(&out, content.len() as u64).unwrap();
    put.write_all(content).unwrap();
    assert!(matches!(
        put.commit(),
        Err(Error::InvalidExecutableEntry { .. })
    ));
    set_mtime(&dir, unix(40_000_000));
    let r = c.verify(false).unwrap();
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert_eq!(
        r.problems[0].kind,
        sgcache_disk::ProblemKind::InvalidExecutable
    );
    fs::remove_file(dir.join("second")).unwrap();

    // Empty directory: miss.
    fs::remove_file(&inner).unwrap();
    assert!(c.get_file(&dummy_id(3)).unwrap().is_none());
    fs::write(&inner, content).unwrap();

    // Trim removes the old directory with RemoveAll.
    set_mtime(&dir, unix(1));
    set_mtime(&c.action_path(&dummy_id(3)), unix(1));
    let r = c.trim_if_due().unwrap();
    assert_eq!(r.removed_entries, 2);
    assert_eq!(r.removed_bytes, 175 + content.len() as u64);
    assert!(!dir.exists());
}

#[test]
fn put_mismatch_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    let out = OutputId::from(sha256(b"abc"));
    let mut p = c.begin_put(&out, 3).unwrap();
    let temp = p.temp_path().to_path_buf();
    let name = temp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        !name.ends_with("-a") && !name.ends_with("-d") && name.contains(".tmp-"),
        "{name}"
    );
    assert_eq!(temp.parent(), c.output_path(&out).parent());
    assert!(temp.exists());
    p.write_all(b"abd").unwrap();
    match p.commit() {
        Err(Error::HashMismatch { expected, got }) => {
            assert_eq!(expected, hex::encode(out));
            assert_eq!(got, hex::encode(sha256(b"abd")));
        }
        other => panic!("{other:?}"),
    }
    assert!(all_entries(&c).is_empty(), "{:?}", all_entries(&c));

    let mut p = c.begin_put(&out, 3).unwrap();
    p.write_all(b"ab").unwrap();
    match p.commit() {
        Err(
            e @ Error::SizeMismatch {
                expected: 3,
                got: 2,
                ..
            },
        ) => {
            assert!(e.to_string().contains(&hex::encode(out)));
        }
        other => panic!("{other:?}"),
    }
    let mut p = c.begin_put(&out, 3).unwrap();
    p.write_all(b"abcd").unwrap();
    assert!(matches!(
        p.commit(),
        Err(Error::SizeMismatch { got: 4, .. })
    ));
    assert!(all_entries(&c).is_empty());

    // Drop = abort.
    let mut p = c.begin_put(&out, 3).unwrap();
    p.write_all(b"ab").unwrap();
    drop(p);
    assert!(all_entries(&c).is_empty());
}

#[test]
fn reput_keeps_mtime_and_corrupt_output_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(100_000));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    let (out, d) = c.put_bytes(&dummy_id(1), b"payload").unwrap();
    assert_eq!(mtime_secs(&d), 100_000);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = fs::metadata(&d).unwrap().mode() & 0o777;
        // 0o666 & !umask: never executable, always owner-writable.
        assert_eq!(mode & 0o111, 0);
        assert_eq!(mode & 0o600, 0o600);
    }
    clock.set_unix(200_000);
    c.put_bytes(&dummy_id(2), b"payload").unwrap();
    assert_eq!(
        mtime_secs(&d),
        100_000,
        "valid existing output keeps its mtime"
    );
    assert_eq!(mtime_secs(&c.action_path(&dummy_id(2))), 200_000);

    // Corrupted, same size: replaced, with the new mtime.
    fs::write(&d, b"PAYLOAD").unwrap();
    clock.set_unix(300_000);
    c.put_bytes(&dummy_id(3), b"payload").unwrap();
    assert_eq!(fs::read(&d).unwrap(), b"payload");
    assert_eq!(mtime_secs(&d), 300_000);
    // Longer garbage: replaced.
    fs::write(&d, b"payload and more").unwrap();
    c.put_bytes(&dummy_id(3), b"payload").unwrap();
    assert_eq!(fs::read(&d).unwrap(), b"payload");
    assert_eq!(c.output_path(&out), d);
    assert_eq!(all_entries(&c).len(), 4, "{:?}", all_entries(&c));
}

/// With the wall clock a put does not stamp mtimes itself (the write does): an index entry and a
/// corrupt output rewritten over files a day old must still come out with "now" as mtime, which
/// is what trim and markUsed read.
#[test]
fn wall_clock_puts_leave_now_as_mtime() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    let (_, d) = c.put_bytes(&dummy_id(1), b"payload").unwrap();
    let a = c.action_path(&dummy_id(1));
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    fs::write(&d, b"PAYLOAD").unwrap();
    set_mtime(&d, day_ago);
    set_mtime(&a, day_ago);
    let before = SystemTime::now() - Duration::from_secs(2);
    c.put_bytes(&dummy_id(1), b"payload").unwrap();
    for p in [&d, &a] {
        let m = fs::metadata(p).unwrap().modified().unwrap();
        assert!(
            m >= before,
            "{}: mtime {m:?} older than the put",
            p.display()
        );
    }
    assert_eq!(fs::read(&d).unwrap(), b"payload");
    // An empty output (no write at all) is created now too.
    let (_, e) = c.put_bytes(&dummy_id(2), b"").unwrap();
    assert!(fs::metadata(&e).unwrap().modified().unwrap() >= before);
}

#[test]
fn put_recreates_subdir_removed_by_go_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    c.clean().unwrap();
    assert!(!tmp.path().join("00").exists());
    let (_, p) = c.put_bytes(&dummy_id(1), b"abc").unwrap();
    assert!(p.exists());
    assert!(c.get_file(&dummy_id(1)).unwrap().is_some());
}

#[test]
fn concurrent_reader_never_sees_full_size_wrong_content() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let c = Arc::new(DiskCache::open(tmp.path()).unwrap());
    let data: Vec<u8> = (0..(2u32 << 20)).map(|i| (i * 7 + i / 251) as u8).collect();
    let out = OutputId::from(sha256(&data));
    let d = c.output_path(&out);
    let stop = Arc::new(AtomicBool::new(false));
    let full_reads = Arc::new(AtomicU32::new(0));
    let reader = {
        let (d, stop, full_reads, len) = (d.clone(), stop.clone(), full_reads.clone(), data.len());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if fs::metadata(&d)
                    .map(|m| m.len() as usize == len)
                    .unwrap_or(false)
                    && let Ok(bytes) = fs::read(&d)
                    && bytes.len() == len
                {
                    // Whatever is visible at full size must be the right content.
                    assert_eq!(
                        OutputId::from(sha256(&bytes)),
                        out,
                        "reader saw wrong content at full size"
                    );
                    full_reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    for i in 0..20 {
        let _ = fs::remove_file(&d);
        if i % 2 == 1 {
            // A truncated leftover the put must replace.
            fs::write(&d, &data[..data.len() / 2]).unwrap();
        }
        let mut p = c.begin_put(&out, data.len() as u64).unwrap();
        for chunk in data.chunks(64 * 1024) {
            p.write_all(chunk).unwrap();
        }
        p.commit().unwrap();
    }
    // Let the reader see the final output at least once, so the assertion above ran.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while full_reads.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(
        full_reads.load(Ordering::Relaxed) > 0,
        "reader never observed the output"
    );
}

#[test]
fn clean_matches_go_clean_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let c = DiskCache::open(tmp.path()).unwrap();
    c.put_bytes(&dummy_id(1), b"abc").unwrap();
    c.trim(&Default::default()).unwrap();
    fs::write(tmp.path().join("log.txt"), "x").unwrap();
    fs::write(tmp.path().join("testexpire.txt"), "1").unwrap();
    fs::create_dir_all(tmp.path().join("fuzz/x")).unwrap();
    sgcache_disk::add_counters(tmp.path(), &Default::default()).unwrap();
    fs::create_dir(tmp.path().join("AB")).unwrap();
    c.clean().unwrap();
    let mut names: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "AB",
            "README",
            "fuzz",
            "sgcache",
            "testexpire.txt",
            "trim.txt"
        ]
    );
    c.ensure_subdirs().unwrap();
    assert!(c.get(&dummy_id(1)).unwrap().is_none());
}

/// golang/go#29667: rewriting an identical index entry must never expose an empty or short
/// file to a concurrent reader (write, then truncate; never O_TRUNC first).
#[test]
fn regression_29667_rewrite_never_exposes_empty_entry() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let c = Arc::new(DiskCache::open(tmp.path()).unwrap());
    let id = dummy_id(42);
    c.put_index_entry(&entry(id, dummy_id(43), 10, 7)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let misses = Arc::new(AtomicU32::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (c, stop, misses) = (c.clone(), stop.clone(), misses.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if c.get(&id).unwrap().is_none() {
                        misses.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_millis(700);
    while std::time::Instant::now() < deadline {
        c.put_index_entry(&entry(id, dummy_id(43), 10, 7)).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(misses.load(Ordering::Relaxed), 0);
}
