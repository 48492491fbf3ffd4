//! Size-capped trim, verify/repair and scan.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sgcache_disk::{
    ActionId, DiskCache, IndexEntry, ManualClock, OutputId, ProblemKind, ScanKind, TrimOptions,
    sha256,
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

fn unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn set_mtime(p: &Path, t: SystemTime) {
    let f = fs::File::open(p).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

const NOW: u64 = 2_000_000_000;

#[test]
fn size_cap_removes_lru_first_and_respects_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let c = DiskCache::open(tmp.path()).unwrap().with_clock(clock);
    // Five entries of 1000-byte outputs; entry i last used at NOW - (10 - i) hours.
    let mut paths = Vec::new();
    for i in 0..5u64 {
        let data = vec![i as u8; 1000];
        let (_, d) = c.put_bytes(&dummy_id(i), &data).unwrap();
        let a = c.action_path(&dummy_id(i));
        let t = unix(NOW - (10 - i) * 3600);
        set_mtime(&a, t);
        set_mtime(&d, t);
        paths.push((a, d));
    }
    let total = 5 * (1000 + 175);
    // No cap: nothing removed (all younger than 5 days).
    let r = c.trim(&TrimOptions::default()).unwrap();
    assert_eq!((r.removed_entries, r.kept_bytes), (0, total));
    assert_eq!(
        fs::read_to_string(tmp.path().join("trim.txt")).unwrap(),
        NOW.to_string()
    );

    // Cap that fits three entries: the two least recently used go.
    let cap = 3 * 1175 + 10;
    let r = c
        .trim(&TrimOptions {
            max_age: None,
            max_size: Some(cap),
        })
        .unwrap();
    assert!(r.kept_bytes <= cap, "{r:?}");
    assert_eq!(r.removed_entries, 4, "{r:?}");
    assert_eq!(r.removed_bytes, 2 * 1175);
    for (i, (a, d)) in paths.iter().enumerate() {
        let kept = i >= 2;
        assert_eq!(a.exists(), kept, "entry {i} -a");
        assert_eq!(d.exists(), kept, "entry {i} -d");
    }

    // At equal mtime the -a goes before its -d, and removal stops as soon as the total fits.
    let cap = 2 * 1175 + 1000;
    let r = c
        .trim(&TrimOptions {
            max_age: None,
            max_size: Some(cap),
        })
        .unwrap();
    assert_eq!((r.removed_entries, r.kept_bytes), (1, cap), "{r:?}");
    assert!(!paths[2].0.exists() && paths[2].1.exists());
    let r = c
        .trim(&TrimOptions {
            max_age: None,
            max_size: Some(2 * 1175 + 100),
        })
        .unwrap();
    assert_eq!((r.removed_entries, r.kept_bytes), (1, 2 * 1175), "{r:?}");
    assert!(!paths[2].1.exists() && paths[3].0.exists());

    // max_age: entries unused for more than 7h go (entry 3 at 7h is kept: not before cutoff).
    let r = c
        .trim(&TrimOptions {
            max_age: Some(Duration::from_secs(7 * 3600 - 1)),
            max_size: None,
        })
        .unwrap();
    assert_eq!(r.removed_entries, 2, "{r:?}");
    assert!(!paths[3].0.exists() && paths[4].0.exists());
}

#[test]
fn verify_detects_and_repairs_only_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    let (_, good_d) = c.put_bytes(&dummy_id(1), b"good output").unwrap();
    let (_, bad_d) = c.put_bytes(&dummy_id(2), b"will be corrupted").unwrap();
    c.put_bytes(&dummy_id(3), b"").unwrap();
    // Malformed -a.
    let bad_a = c.action_path(&dummy_id(4));
    fs::write(&bad_a, b"v1 garbage\n").unwrap();
    // -a with the wrong size for a valid -d.
    let wrong_size_a = c.action_path(&dummy_id(5));
    c.put_index_entry(&entry(dummy_id(5), sha256(b"good output").into(), 999, 1))
        .unwrap();
    // Dangling -a (its -d is missing): a normal miss, not corruption.
    let dangling = c.action_path(&dummy_id(6));
    c.put_index_entry(&entry(dummy_id(6), sha256(b"never stored").into(), 12, 1))
        .unwrap();
    // Corrupt -d (same size, different content).
    fs::write(&bad_d, b"WILL be corrupted").unwrap();
    // A foreign file and a temp file are not judged.
    let sub = good_d.parent().unwrap();
    fs::write(sub.join("notes.txt"), "hi").unwrap();
    for p in [&bad_a, &bad_d] {
        set_mtime(p, unix(NOW));
    }

    // Right after writing everything is "recent": nothing is judged.
    let r = c.verify(true).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert!(r.skipped_recent >= 8, "{r:?}");
    assert!(bad_d.exists());

    clock.set_unix(NOW + 3600);
    let r = c.verify(false).unwrap();
    let mut kinds: Vec<_> = r
        .problems
        .iter()
        .map(|p| (p.kind, p.path.clone()))
        .collect();
    kinds.sort_by_key(|k| k.1.clone());
    let mut want = vec![
        (ProblemKind::CorruptOutput, bad_d.clone()),
        (ProblemKind::MalformedAction, bad_a.clone()),
        (ProblemKind::SizeMismatch, wrong_size_a.clone()),
    ];
    want.sort_by_key(|k| k.1.clone());
    assert_eq!(kinds, want, "{r:?}");
    assert_eq!(r.dangling_actions, 1);
    assert_eq!(r.outputs_checked, 3);
    assert_eq!(r.actions_checked, 6);
    assert!(r.problems.iter().all(|p| !p.removed));
    assert!(bad_d.exists() && bad_a.exists() && wrong_size_a.exists());

    let r = c.verify(true).unwrap();
    assert_eq!(r.problems.len(), 3);
    assert!(r.problems.iter().all(|p| p.removed), "{r:?}");
    assert!(!bad_d.exists() && !bad_a.exists() && !wrong_size_a.exists());
    // Everything valid is still there and still works.
    assert!(good_d.exists() && dangling.exists() && sub.join("notes.txt").exists());
    assert!(c.get_file(&dummy_id(1)).unwrap().is_some());
    assert!(c.get_file(&dummy_id(3)).unwrap().is_some());
    let r = c.verify(true).unwrap();
    assert!(r.is_clean(), "{r:?}");
}

#[test]
fn scan_counts_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    c.put_bytes(&dummy_id(1), b"abc").unwrap();
    clock.set_unix(NOW + 100);
    c.put_bytes(&dummy_id(2), b"defg").unwrap();
    let exe = b"binary";
    let out = OutputId::from(sha256(exe));
    let dir = c.output_path(&out);
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("tool"), exe).unwrap();
    set_mtime(&dir, unix(NOW - 50));
    let pending = c.begin_put(&sha256(b"x").into(), 1).unwrap();
    let mut kinds = Vec::new();
    let s = c.scan(|item| kinds.push((item.kind, item.size))).unwrap();
    drop(pending);
    assert_eq!(
        (s.actions, s.outputs, s.executables, s.temp_files),
        (2, 2, 1, 1)
    );
    assert_eq!(s.total_bytes, 2 * 175 + 3 + 4 + 6);
    assert_eq!(s.output_bytes, 13);
    assert_eq!(s.oldest, Some(unix(NOW - 50)));
    assert_eq!(s.newest, Some(unix(NOW + 100)));
    assert!(kinds.contains(&(ScanKind::Executable, 6)));
    assert_eq!(kinds.len(), 6);
}

#[test]
fn trim_if_due_with_size_cap_runs_only_when_due() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let c = DiskCache::open(tmp.path())
        .unwrap()
        .with_clock(clock.clone());
    for i in 0..4u64 {
        let (_, d) = c.put_bytes(&dummy_id(i), &vec![i as u8; 825]).unwrap();
        let t = unix(NOW - (10 - i) * 3600);
        set_mtime(&d, t);
        set_mtime(&c.action_path(&dummy_id(i)), t);
    }
    let opts = TrimOptions {
        max_age: None,
        max_size: Some(2 * 1000),
    };
    let r = c.trim_if_due_with(&opts).unwrap();
    assert!(r.ran);
    assert_eq!((r.removed_entries, r.kept_bytes), (4, 2000), "{r:?}");
    assert!(c.get(&dummy_id(1)).unwrap().is_none() && c.get(&dummy_id(2)).unwrap().is_some());
    // Not due again for 24h: nothing happens even though the cap is now smaller.
    let r = c
        .trim_if_due_with(&TrimOptions {
            max_age: None,
            max_size: Some(0),
        })
        .unwrap();
    assert!(!r.ran);
    assert!(c.get(&dummy_id(3)).unwrap().is_some());
}

/// Regression test for reliability finding F2: the size cap removed entries a running go
/// command had just been handed (mtimes are refreshed at most hourly), failing its compile.
#[test]
fn size_cap_never_removes_recently_used_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let c = DiskCache::open(tmp.path()).unwrap().with_clock(clock);
    // Entry 0 last used 3 h ago, entries 1 and 2 within the last hour.
    for (i, age) in [(0u64, 3 * 3600), (1, 50 * 60), (2, 60)] {
        let (_, d) = c.put_bytes(&dummy_id(i), &vec![i as u8; 1000]).unwrap();
        set_mtime(&d, unix(NOW - age));
        set_mtime(&c.action_path(&dummy_id(i)), unix(NOW - age));
    }
    let r = c
        .trim(&TrimOptions {
            max_age: None,
            max_size: Some(0),
        })
        .unwrap();
    assert_eq!(
        r.removed_entries, 2,
        "only the 3-hour-old entry goes: {r:?}"
    );
    assert!(c.get(&dummy_id(0)).unwrap().is_none());
    assert!(c.get_file(&dummy_id(1)).unwrap().is_some());
    assert!(c.get_file(&dummy_id(2)).unwrap().is_some());
    assert_eq!(
        r.kept_bytes,
        2 * 1175,
        "the cap is not met, and the report says so"
    );
}
