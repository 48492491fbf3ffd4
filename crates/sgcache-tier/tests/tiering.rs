//! The tiering library driven by the scriptable fake store (`sgcache_store::testing`) and real
//! local tiers in temp directories: lookups and their verification, single-flight, sessions
//! (manifest, packs, prefetch, merge, repack), the breaker, conflicts and healing.

use std::sync::Arc;
use std::time::Duration;

use sgcache_disk::DiskCache;
use sgcache_store::testing::{Behaviour, FakeStore};
use sgcache_store::{
    ErrorKind, Manifest, ManifestName, Mode, RemoteCache, RemoteConfig, UploadJob, UploadQueue,
};
use sgcache_tier::{Fetcher, Session, Stored, UsedActions, merge, nothing_to_store};
use sgcache_types::{ActionId, IndexEntry, OutputId};

/// One machine: a local tier of its own over the shared fake remote.
struct Machine {
    _dir: tempfile::TempDir,
    disk: Arc<DiskCache>,
    remote: RemoteCache,
    fetcher: Fetcher,
}

fn machine(fake: &Arc<FakeStore>, tweak: impl FnOnce(&mut RemoteConfig)) -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(DiskCache::open(dir.path()).unwrap());
    let remote = fake.remote(|c| {
        c.compression_level = None;
        tweak(c)
    });
    let fetcher = Fetcher::new(remote.clone(), disk.clone());
    Machine {
        _dir: dir,
        disk,
        remote,
        fetcher,
    }
}

/// Outputs of varying sizes (some above the 2 MiB pack target), put into `m`'s local tier.
fn build(m: &Machine, n: usize, seed: u8) -> Vec<IndexEntry> {
    (0..n)
        .map(|i| {
            let len = match i % 5 {
                0 => 3 << 20,
                1 => 0,
                _ => 1000 + 37 * i,
            };
            let data: Vec<u8> = (0..len).map(|j| (j as u8) ^ (i as u8) ^ seed).collect();
            let action = ActionId::from_bytes([
                seed, i as u8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                7, 7, 7, 7, 7, 7, 7,
            ]);
            m.disk.put_bytes(&action, &data).unwrap();
            m.disk.get(&action).unwrap().unwrap()
        })
        .collect()
}

/// Uploads `entries` one by one (objects and action entries).
async fn upload_all(m: &Machine, entries: &[IndexEntry]) {
    let q = UploadQueue::start(m.remote.clone(), &tokio::runtime::Handle::current());
    for e in entries {
        let path = m.disk.find_output(&e.output, e.size).unwrap();
        q.enqueue(UploadJob {
            entry: *e,
            path,
            heal: false,
        })
        .unwrap();
    }
    assert!(q.drain(Duration::from_secs(30)).await.is_clean());
}

fn used(entries: &[IndexEntry]) -> UsedActions {
    entries.iter().copied().collect()
}

const NAME: ManifestName = ManifestName([9; 32]);

fn cas(out: &OutputId) -> String {
    format!("cas/{}", out.hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_fetches_verifies_and_indexes() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let entries = build(&a, 4, 1);
    upload_all(&a, &entries).await;
    let b = machine(&fake, |_| {});
    for e in &entries {
        let (got, path) = b.fetcher.lookup(e.action).await.expect("remote hit");
        assert_eq!(got, *e);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), e.size);
        assert_eq!(b.disk.get_file(&e.action).unwrap().unwrap().0, *e);
    }
    assert!(
        b.fetcher
            .lookup(ActionId::from_bytes([0xee; 32]))
            .await
            .is_none()
    );
    let m = b.remote.metrics().snapshot();
    assert_eq!(m.remote_hits, 4, "{m:?}");
    assert_eq!(m.remote_misses, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_share_one_lookup_and_one_download() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let e = build(&a, 3, 2)[2];
    upload_all(&a, &[e]).await;
    let b = machine(&fake, |_| {});
    fake.set(Behaviour::Slow(Duration::from_millis(100)));
    let before = fake.requests("get", "");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let f = b.fetcher.clone();
        tasks.push(tokio::spawn(async move { f.lookup(e.action).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_some());
    }
    assert_eq!(
        fake.requests("get", "") - before,
        2,
        "one entry get, one object get"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_object_is_never_committed_and_a_put_heals_it() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let e = build(&a, 3, 3)[2];
    upload_all(&a, &[e]).await;
    // Same length, one byte flipped, raw framing: only the hash can tell.
    let key = cas(&e.output);
    let mut stored = fake.raw(&key).unwrap().to_vec();
    stored[10] ^= 0xff;
    fake.put_raw(&key, stored);
    let b = machine(&fake, |_| {});
    assert!(b.fetcher.lookup(e.action).await.is_none());
    assert!(
        b.disk.find_output(&e.output, e.size).is_none(),
        "nothing committed"
    );
    assert!(b.disk.get(&e.action).unwrap().is_none(), "no index entry");
    assert_eq!(b.remote.metrics().snapshot().remote_corrupt_objects, 1);
    // B rebuilds the output (the same bytes) and puts it: the upload overwrites the object.
    let data = std::fs::read(a.disk.find_output(&e.output, e.size).unwrap()).unwrap();
    b.disk.put_bytes(&e.action, &data).unwrap();
    let put = b.disk.get(&e.action).unwrap().unwrap();
    assert!(
        b.fetcher.on_put(&put),
        "B found the remote copy corrupt: it must heal it"
    );
    let q = UploadQueue::start(b.remote.clone(), &tokio::runtime::Handle::current());
    let path = b.disk.find_output(&e.output, e.size).unwrap();
    q.enqueue(UploadJob {
        entry: put,
        path,
        heal: true,
    })
    .unwrap();
    assert!(q.drain(Duration::from_secs(10)).await.is_clean());
    assert_eq!(b.remote.metrics().snapshot().uploads_healed, 1);
    // A third machine now gets good bytes.
    let c = machine(&fake, |_| {});
    assert!(c.fetcher.lookup(e.action).await.is_some());
    assert!(
        !c.fetcher.on_put(&put),
        "a machine that saw no corruption does not rewrite"
    );
}

/// The other order: B's go command puts the output (its upload finds the object present and
/// skips it), then B's prefetch finds the remote copy corrupt: the healer gets the put entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_found_after_the_put_heals_from_the_put() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let e = build(&a, 3, 4)[2];
    upload_all(&a, &[e]).await;
    let key = cas(&e.output);
    let mut stored = fake.raw(&key).unwrap().to_vec();
    stored[10] ^= 0xff;
    fake.put_raw(&key, stored);
    let b = machine(&fake, |c| {
        c.first_byte_timeout = Duration::from_secs(5);
        c.stall_timeout = Duration::from_secs(5);
    });
    let healed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = healed.clone();
    b.fetcher
        .on_corrupt_put(move |entry, path| h.lock().unwrap().push((entry, path)));
    // B's lookup (as prefetch's) is downloading the object when the go command's put
    // arrives: 400 ms for the entry, then 400 ms before the object's first byte.
    fake.set(Behaviour::Slow(Duration::from_millis(400)));
    let f = b.fetcher.clone();
    let lookup = tokio::spawn(async move { f.lookup(e.action).await });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let data = std::fs::read(a.disk.find_output(&e.output, e.size).unwrap()).unwrap();
    b.disk.put_bytes(&e.action, &data).unwrap();
    let put = b.disk.get(&e.action).unwrap().unwrap();
    assert!(!b.fetcher.on_put(&put), "no corruption seen yet");
    assert!(lookup.await.unwrap().is_none());
    let healed = healed.lock().unwrap().clone();
    assert_eq!(healed.len(), 1, "one healing upload asked for");
    assert_eq!(healed[0].0, put);
    assert_eq!(
        std::fs::read(&healed[0].1).unwrap(),
        data,
        "the local output"
    );
}

/// A writes a manifest with packs; B prefetches it all, the outputs up to 2 MiB from packs in
/// record order with no request per object, the larger ones one by one; its gets are then
/// local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_takes_outputs_from_packs_in_record_order() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let entries = build(&a, 12, 4);
    upload_all(&a, &entries).await;
    let sa = Session::new(a.fetcher.clone(), NAME);
    assert_eq!(
        sa.store_run(&used(&entries), Duration::from_secs(30)).await,
        Stored::Stored
    );
    let distinct: std::collections::HashSet<_> = entries.iter().map(|e| e.output).collect();
    let big: std::collections::HashSet<_> = entries
        .iter()
        .filter(|e| e.size > 2 << 20)
        .map(|e| e.output)
        .collect();
    assert!(!big.is_empty());
    let listed = a.remote.get_manifest(&NAME).await.found().unwrap().packs;
    let objects = fake.keys().iter().filter(|k| k.starts_with("cas/")).count();
    assert_eq!(
        objects,
        distinct.len() + listed.len(),
        "an output over 2 MiB is in no pack (a pack of one would store it twice): {listed:?}"
    );

    let b = machine(&fake, |_| {});
    let sb = Session::new(b.fetcher.clone(), NAME);
    let log_from = fake.log().len();
    sb.start_prefetch(&tokio::runtime::Handle::current(), false);
    sb.prefetch_finished().await;
    for e in &entries {
        assert_eq!(b.disk.get_file(&e.action).unwrap().map(|h| h.0), Some(*e));
    }
    let m = b.remote.metrics().snapshot();
    assert_eq!(
        m.prefetch_pack_objects as usize,
        distinct.len() - big.len(),
        "{m:?}"
    );
    assert_eq!(m.prefetch_found as usize, big.len(), "{m:?}");
    // The manifest first, then objects only, the first pack (the first packed record's
    // output) among the first in flight (4 at a time against a near remote).
    let log: Vec<_> = fake.log()[log_from..].to_vec();
    assert!(log[0].1.contains("/ac/"), "{log:?}");
    assert!(
        log[1..]
            .iter()
            .all(|(op, k)| *op == "get" && k.starts_with("cas/"))
    );
    let first_packed = entries.iter().find(|e| e.size <= 2 << 20).unwrap();
    let first = fake.raw(&cas(&listed[0].id)).unwrap();
    assert_eq!(&first[4..8], b"sgp1");
    assert_eq!(
        &first[12..44],
        first_packed.output.as_bytes(),
        "record order"
    );
    assert!(
        log[1..5].iter().any(|(_, k)| *k == cas(&listed[0].id)),
        "{listed:?} {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_object_in_a_pack_is_dropped_and_fetched_alone() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let entries: Vec<IndexEntry> = build(&a, 9, 5)
        .into_iter()
        .filter(|e| e.size > 0 && e.size < 1 << 20)
        .collect();
    upload_all(&a, &entries).await;
    let sa = Session::new(a.fetcher.clone(), NAME);
    assert_eq!(
        sa.store_run(&used(&entries), Duration::from_secs(30)).await,
        Stored::Stored
    );
    // Flip a byte of the last object of the (single, small) pack.
    let manifest = a.remote.get_manifest(&NAME).await.found().unwrap();
    assert_eq!(manifest.packs.len(), 1);
    let key = cas(&manifest.packs[0].id);
    let mut p = fake.raw(&key).unwrap().to_vec();
    let last = p.len() - 1;
    p[last] ^= 1;
    fake.put_raw(&key, p);

    let b = machine(&fake, |_| {});
    let sb = Session::new(b.fetcher.clone(), NAME);
    sb.start_prefetch(&tokio::runtime::Handle::current(), false);
    sb.prefetch_finished().await;
    let m = b.remote.metrics().snapshot();
    assert_eq!(m.remote_corrupt_objects, 1, "{m:?}");
    assert_eq!(m.prefetch_pack_objects as usize, entries.len() - 1);
    assert_eq!(m.prefetch_found, 1, "the corrupt one, fetched alone: {m:?}");
    for e in &entries {
        let (got, path) = b
            .disk
            .get_file(&e.action)
            .unwrap()
            .expect("every output local");
        assert_eq!(got, *e);
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(OutputId::from(sgcache_disk::sha256(&bytes)), e.output);
    }
    // B's next manifest rebuilds the pack from its verified outputs and overwrites the
    // corrupt copy (healing): a third machine takes everything from it.
    assert_eq!(
        sb.store_run(&used(&entries), Duration::from_secs(30)).await,
        Stored::Stored
    );
    let c = machine(&fake, |_| {});
    let sc = Session::new(c.fetcher.clone(), NAME);
    sc.start_prefetch(&tokio::runtime::Handle::current(), true);
    sc.prefetch_finished().await;
    let m = c.remote.metrics().snapshot();
    assert_eq!(m.remote_corrupt_objects, 0, "{m:?}");
    assert_eq!(m.prefetch_pack_objects as usize, entries.len(), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_pack_makes_the_next_store_rebuild_the_packs() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let entries = build(&a, 6, 6);
    upload_all(&a, &entries).await;
    let sa = Session::new(a.fetcher.clone(), NAME);
    sa.store_run(&used(&entries), Duration::from_secs(30)).await;
    let before = a.remote.get_manifest(&NAME).await.found().unwrap();
    let gone = before.packs[0].id;
    assert!(fake.remove(&cas(&gone)));

    // B prefetches (finds a pack gone, fetches its outputs alone), then runs the same build.
    let b = machine(&fake, |_| {});
    let sb = Session::new(b.fetcher.clone(), NAME);
    sb.start_prefetch(&tokio::runtime::Handle::current(), false);
    sb.prefetch_finished().await;
    assert_eq!(b.remote.metrics().snapshot().prefetch_packs_missing, 1);
    for e in &entries {
        assert!(b.disk.get_file(&e.action).unwrap().is_some());
    }
    // Same records: without the expired pack this would be Unchanged.
    assert_eq!(
        sb.store_run(&used(&entries), Duration::from_secs(30)).await,
        Stored::Stored
    );
    let after = b.remote.get_manifest(&NAME).await.found().unwrap();
    assert_eq!(after.records, before.records);
    // Cuts are content-defined: the rebuilt pack is the same pack, uploaded again.
    assert!(after.packs.iter().any(|p| p.id == gone));
    for p in &after.packs {
        assert!(fake.raw(&cas(&p.id)).is_some(), "every listed pack exists");
    }
    // And once stored, the need is gone.
    assert_eq!(
        sb.store_run(&used(&entries), Duration::from_secs(30)).await,
        Stored::Unchanged
    );
}

#[test]
fn merge_puts_this_run_first_keeps_misses_and_skips_unchanged() {
    let e = |i: u8| IndexEntry {
        action: ActionId::from_bytes([i; 32]),
        output: OutputId::from_bytes([i; 32]),
        size: u64::from(i),
        time_nanos: 1,
    };
    let a = |i: u8| ActionId::from_bytes([i; 32]);
    let previous = Manifest {
        records: vec![e(1), e(2), e(3)],
        packs: vec![],
        misses: vec![a(9)],
    };
    let all_definite = |_: &ActionId| true;
    let m = merge(&used(&[e(3), e(4)]), &previous, false, all_definite).unwrap();
    assert_eq!(m.records, vec![e(3), e(4), e(1), e(2)]);
    assert_eq!(m.misses, vec![a(9)]);
    assert!(
        merge(&used(&[e(2), e(1)]), &previous, false, all_definite).is_none(),
        "nothing new (the order does not count)"
    );
    assert_eq!(
        merge(&used(&[e(1), e(2)]), &previous, true, all_definite).map(|m| m.records),
        Some(previous.records.clone()),
        "repack stores anyway"
    );
    // A new never-stored key is news; one that was put later, or that only failed, is not.
    let mut u = used(&[e(1)]);
    u.note_miss(a(7));
    u.note_miss(a(8));
    u.note(e(8));
    u.note_miss(a(6));
    let m = merge(&u, &previous, false, |x| *x != a(6)).unwrap();
    assert_eq!(m.misses, vec![a(7), a(9)]);
    let mut u = used(&[e(1)]);
    u.note_miss(a(9));
    assert!(merge(&u, &previous, false, all_definite).is_none());
    assert!(merge(&UsedActions::default(), &previous, true, all_definite).is_none());
}

/// What a run that never needed the remote decides alone (`nothing_to_store`, from this
/// machine's manifest copy) is what its session would have decided after loading that copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_store_agrees_with_the_session() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let entries = build(&a, 6, 6);
    let cfg = a.remote.config().clone();
    let dir = a.disk.dir().to_path_buf();
    let t = Duration::from_secs(30);
    // No copy yet: only a load from the remote could tell.
    assert!(!nothing_to_store(&dir, &cfg, &NAME, &entries[..3]));
    assert!(nothing_to_store(&dir, &cfg, &NAME, &[]));
    upload_all(&a, &entries[..4]).await;
    let s = Session::new(a.fetcher.clone(), NAME);
    assert_eq!(s.store_run(&used(&entries[..4]), t).await, Stored::Stored);

    // The copy lists what the run used (a subset, in another order): nothing to store, and a
    // new session agrees.
    let mut some = entries[..3].to_vec();
    some.reverse();
    assert!(nothing_to_store(&dir, &cfg, &NAME, &some));
    let s2 = Session::new(a.fetcher.clone(), NAME);
    assert_eq!(s2.store_run(&used(&some), t).await, Stored::Unchanged);

    // A hit the manifest lacks (say, from another build context): something to store, and
    // the session stores it.
    assert!(!nothing_to_store(&dir, &cfg, &NAME, &entries[..5]));
    assert_eq!(s2.store_run(&used(&entries[..5]), t).await, Stored::Stored);
    assert!(nothing_to_store(&dir, &cfg, &NAME, &entries[..5]));
    // Another context's copy does not count; a job that does not write stores nothing.
    assert!(!nothing_to_store(
        &dir,
        &cfg,
        &ManifestName([8; 32]),
        &entries[..3]
    ));
    let mut ro = cfg.clone();
    ro.mode = Mode::ReadOnly;
    assert!(nothing_to_store(&dir, &ro, &NAME, &entries));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_is_skipped_when_the_previous_manifest_could_not_be_read() {
    let fake = FakeStore::new();
    let a = machine(&fake, |c| c.first_byte_timeout = Duration::from_millis(100));
    let entries = build(&a, 3, 7);
    fake.set(Behaviour::Hang);
    let s = Session::new(a.fetcher.clone(), NAME);
    s.start_prefetch(&tokio::runtime::Handle::current(), false);
    s.prefetch_finished().await;
    fake.set(Behaviour::Healthy);
    let puts = fake.requests("put", "");
    assert_eq!(
        s.store_run(&used(&entries), Duration::from_secs(5)).await,
        Stored::Skipped
    );
    assert_eq!(fake.requests("put", ""), puts, "no manifest, no packs");
    assert_eq!(a.remote.metrics().snapshot().manifests_skipped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_then_half_opens_and_closes_again() {
    let fake = FakeStore::new();
    let a = machine(&fake, |c| {
        c.breaker_threshold = 2;
        c.breaker_cooldown = Duration::from_millis(300);
    });
    fake.set(Behaviour::Fail(ErrorKind::Temporary));
    for i in 0..2 {
        assert!(
            a.fetcher
                .lookup(ActionId::from_bytes([i; 32]))
                .await
                .is_none()
        );
    }
    assert!(a.remote.breaker().is_open());
    let n = fake.total_requests();
    assert!(
        a.fetcher
            .lookup(ActionId::from_bytes([3; 32]))
            .await
            .is_none()
    );
    assert_eq!(fake.total_requests(), n, "open: no request at all");
    // Cool-down over, remote healthy again: the next operation is the probe, and it closes.
    fake.set(Behaviour::Healthy);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        a.remote.breaker().position(),
        sgcache_store::layers::BreakerPosition::HalfOpen
    );
    assert!(
        a.fetcher
            .lookup(ActionId::from_bytes([4; 32]))
            .await
            .is_none()
    );
    assert!(fake.total_requests() > n, "the probe went out");
    assert_eq!(
        a.remote.breaker().position(),
        sgcache_store::layers::BreakerPosition::Closed
    );
    assert_eq!(a.remote.metrics().snapshot().breaker_trips, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_mid_body_counts_toward_the_breaker() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let entries: Vec<IndexEntry> = build(&a, 8, 8)
        .into_iter()
        .filter(|e| e.size > 100)
        .collect();
    upload_all(&a, &entries).await;
    let b = machine(&fake, |c| c.breaker_threshold = 3);
    // Entries are small (one chunk), objects are cut: every lookup fails mid-object.
    fake.set(Behaviour::CutAfter(64));
    for e in &entries {
        assert!(b.fetcher.lookup(e.action).await.is_none());
    }
    assert!(
        b.remote.breaker().is_open(),
        "{:?}",
        b.remote.metrics().snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_disagrees_with_a_trusted_entry_is_a_conflict() {
    let fake = FakeStore::new();
    let a = machine(&fake, |_| {});
    let entries = build(&a, 3, 9);
    upload_all(&a, &entries).await;
    let b = machine(&fake, |_| {});
    let e = entries[2];
    b.fetcher.lookup(e.action).await.unwrap();
    let mut other = e;
    other.output = OutputId::from_bytes([0x42; 32]);
    assert!(!b.fetcher.on_put(&e));
    assert_eq!(b.remote.metrics().snapshot().remote_conflicting_entries, 0);
    b.fetcher.on_put(&other);
    assert_eq!(b.remote.metrics().snapshot().remote_conflicting_entries, 1);
}
