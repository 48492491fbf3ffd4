//! Packs: a manifest's outputs stored a few MiB at a time, so prefetch makes a few large
//! requests instead of one per output. Per request, not per byte, is where a prefetch spends:
//! on loopback in CPU (a request, a response, a file opened on the server), on a far remote
//! in round trips. The byte format is `sgcache_store::format::pack` and `docs/remote.md`.
//!
//! Writing ([`store_packs`], when a session stores its manifest): the outputs it lists that
//! the previous manifest's packs lack are read from the local tier, in record order, into new
//! packs added to the previous ones; when the packs would hold over twice the bytes the
//! manifest needs, all are rebuilt. Cuts are content-defined (after an output whose id starts
//! with a byte below [`CUT_BELOW`], or at [`PACK_TARGET`] bytes), so a rebuild after a small
//! change yields mostly the packs the remote has already (not uploaded again). An output over
//! [`PACK_TARGET`] is not packed: a pack of one object saves no request over the object
//! itself, and would store its bytes (for `std`, 13 outputs and 56 MiB of its 161) a second
//! time and hold them in memory while uploading; prefetch fetches such outputs one by one,
//! and a get fetches it at once. Packs are in record order, the order a build asks for its
//! outputs, and prefetch fetches them in that order.
//!
//! Reading ([`fetch_pack`], in prefetch): as a pack's directory arrives, each output it holds
//! that a trusted record names and the local tier lacks is claimed (no other pack writes it),
//! and a get for it joins the pack's download through the fetcher's download single-flight.
//! Every kept object goes through `PendingPut`, so nothing is visible before its SHA-256
//! equals its output id; its records' index entries are written as soon as it commits. A
//! pack that fails or is cut short releases what it claimed, and those outputs are fetched
//! one by one.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sgcache_disk::{DiskCache, PendingPut};
use sgcache_store::format::pack::encode_header;
use sgcache_store::{Manifest, PackRef, PackSplitter, PackTarget, RemoteCache};
use sgcache_types::{IndexEntry, OutputId};
use tokio::sync::oneshot;

use crate::fetch::Fetcher;
use crate::lock;

/// A pack is cut once it holds this many bytes of outputs.
pub const PACK_TARGET: usize = 2 << 20;
/// A pack is cut after an output whose id's first byte is below this (1 in 32).
pub const CUT_BELOW: u8 = 8;
/// Packs uploaded at once.
const PACK_UPLOADS: usize = 4;

/// Distinct outputs of `records` that go in packs (at most [`PACK_TARGET`] bytes), in
/// record order.
fn outputs(records: &[IndexEntry]) -> Vec<(OutputId, u64)> {
    let mut seen = HashSet::new();
    records
        .iter()
        .map(|r| (r.output, r.size))
        .filter(|&(o, size)| size <= PACK_TARGET as u64 && seen.insert(o))
        .collect()
}

/// The packs to list with `records`: the previous manifest's, plus new packs (stored here)
/// of the outputs they lack; all rebuilt when the previous ones would be mostly dead weight.
/// An upload that fails leaves its outputs out (prefetch then fetches them one by one).
pub async fn store_packs(
    remote: &RemoteCache,
    disk: &Arc<DiskCache>,
    records: &[IndexEntry],
    previous: &Manifest,
    heal: &HashSet<OutputId>,
) -> Vec<PackRef> {
    let all = outputs(records);
    let had: HashSet<OutputId> = if previous.packs.is_empty() {
        HashSet::new()
    } else {
        outputs(&previous.records)
            .into_iter()
            .map(|(o, _)| o)
            .collect()
    };
    let new: Vec<(OutputId, u64)> = all
        .iter()
        .filter(|(o, _)| !had.contains(o))
        .copied()
        .collect();
    if new.is_empty() {
        return previous.packs.clone();
    }
    let needed: u64 = all.iter().map(|(_, s)| s).sum();
    let kept: u64 = previous.packs.iter().map(|p| p.len).sum();
    let added: u64 = new.iter().map(|(_, s)| s).sum();
    let (mut packs, todo) = if kept + added > 2 * needed {
        (Vec::new(), all)
    } else {
        (previous.packs.clone(), new)
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let d = disk.clone();
    let builder = tokio::task::spawn_blocking(move || build(&d, &todo, &tx));
    use futures_util::StreamExt;
    let stored: Vec<_> =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) })
            .map(|pack| remote.put_pack(pack, heal))
            .buffered(PACK_UPLOADS)
            .collect()
            .await;
    let _ = builder.await;
    for r in stored {
        match r {
            Ok(p) => packs.push(p),
            Err(e) => tracing::debug!("remote: storing a pack: {e}"),
        }
    }
    packs
}

/// Reads `outputs` from the local tier into packs, sent to `tx` as they fill (blocking).
/// An output missing or changed locally is left out.
fn build(disk: &DiskCache, outputs: &[(OutputId, u64)], tx: &tokio::sync::mpsc::Sender<Vec<u8>>) {
    let mut objs: Vec<(OutputId, u64)> = Vec::new();
    // At most a pack's worth plus one output: one buffer for the whole run.
    let mut body: Vec<u8> = Vec::with_capacity(2 * PACK_TARGET);
    let send = |objs: &mut Vec<(OutputId, u64)>, body: &mut Vec<u8>| {
        if objs.is_empty() {
            return true;
        }
        let header = encode_header(objs);
        let mut pack = Vec::with_capacity(header.len() + body.len());
        pack.extend_from_slice(&header);
        pack.extend_from_slice(body);
        body.clear();
        objs.clear();
        tx.blocking_send(pack).is_ok()
    };
    for &(out, size) in outputs {
        let Some(path) = disk.find_output(&out, size) else {
            continue;
        };
        let at = body.len();
        match std::fs::File::open(&path).and_then(|f| {
            use std::io::Read;
            f.take(size + 1).read_to_end(&mut body)
        }) {
            Ok(n) if n as u64 == size => objs.push((out, size)),
            _ => {
                body.truncate(at);
                continue;
            }
        }
        if (out.as_bytes()[0] < CUT_BELOW || body.len() >= PACK_TARGET)
            && !send(&mut objs, &mut body)
        {
            return;
        }
    }
    send(&mut objs, &mut body);
}

/// An output prefetch wants from a pack: its size and the records naming it.
#[derive(Debug)]
pub(crate) struct Want {
    size: u64,
    records: Vec<IndexEntry>,
}

/// What prefetch wants from packs: the outputs of `records` the local tier lacks.
pub(crate) fn wanted(disk: &DiskCache, records: &[IndexEntry]) -> HashMap<OutputId, Want> {
    let mut w: HashMap<OutputId, Want> = HashMap::new();
    for r in records {
        if let Some(x) = w.get_mut(&r.output) {
            if x.size == r.size {
                x.records.push(*r);
            }
            continue;
        }
        if disk.find_output(&r.output, r.size).is_none() {
            w.insert(
                r.output,
                Want {
                    size: r.size,
                    records: vec![*r],
                },
            );
        }
    }
    w
}

/// How fetching one pack went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PackOutcome {
    /// Streamed to its end, every kept object verified.
    Done,
    /// Streamed to its end, but objects in it failed verification (dropped, counted): the
    /// remote's copy of the pack is bad and must be rewritten.
    Corrupt,
    /// The remote no longer has it (expired): the next manifest must not list it.
    Missing,
    /// Failed or cut short: its claims were released.
    Failed,
}

/// Streams one pack into the local tier, counting each output as it commits (so a run that
/// ends mid-pack still counts what it got) in `prefetch_pack_objects`.
pub(crate) async fn fetch_pack(
    fetcher: &Fetcher,
    wanted: &Arc<Mutex<HashMap<OutputId, Want>>>,
    pack: &PackRef,
) -> PackOutcome {
    let sink = PackSink {
        fetcher: fetcher.clone(),
        wanted: wanted.clone(),
        claimed: HashMap::new(),
        current: None,
        corrupt: false,
    };
    let Some(_room) = fetcher.reserve(pack.len).await else {
        return PackOutcome::Failed;
    };
    let mut splitter = PackSplitter::new(sink);
    let fetched = fetcher.remote().fetch_pack(pack, &mut splitter).await;
    let corrupt = splitter.into_target().corrupt;
    match fetched {
        Ok(true) if corrupt => PackOutcome::Corrupt,
        Ok(true) => PackOutcome::Done,
        Ok(false) => {
            tracing::debug!("remote: pack {} is gone", pack.id.short());
            fetcher.remote().metrics().prefetch_packs_missing.inc();
            PackOutcome::Missing
        }
        Err(e) => {
            tracing::debug!("remote: pack {}: {e}", pack.id.short());
            PackOutcome::Failed
        }
    }
}

/// Writes the claimed objects of one pack into the local tier. Dropping it (the pack ended
/// or failed) releases unfinished claims: their waiters get `None` and fetch on their own.
struct PackSink {
    fetcher: Fetcher,
    wanted: Arc<Mutex<HashMap<OutputId, Want>>>,
    /// Outputs of this pack that are ours to write, with whoever waits for them.
    claimed: HashMap<OutputId, (Want, oneshot::Sender<Option<PathBuf>>)>,
    current: Option<(OutputId, PendingPut)>,
    /// Whether an object failed verification.
    corrupt: bool,
}

impl PackTarget for PackSink {
    fn listed(&mut self, objects: &[(OutputId, u64)]) -> std::io::Result<()> {
        let mut wanted = lock(&self.wanted);
        for (out, size) in objects {
            if wanted.get(out).is_none_or(|w| w.size != *size) {
                continue;
            }
            let w = wanted.remove(out).expect("checked above");
            let (tx, rx) = oneshot::channel();
            // Gets for `out` join this wait instead of downloading it themselves.
            let fetcher = self.fetcher.clone();
            let out = *out;
            tokio::spawn(async move {
                fetcher
                    .downloads()
                    .run(out, async move { rx.await.ok().flatten() })
                    .await
            });
            self.claimed.insert(out, (w, tx));
        }
        Ok(())
    }

    fn begin(&mut self, out: &OutputId, size: u64) -> std::io::Result<bool> {
        if !self.claimed.contains_key(out) {
            return Ok(false);
        }
        let disk = self.fetcher.disk();
        if let Some(path) = disk.find_output(out, size) {
            // A get fetched it meanwhile.
            if let Some((_, tx)) = self.claimed.remove(out) {
                let _ = tx.send(Some(path));
            }
            return Ok(false);
        }
        match disk.begin_put(out, size) {
            Ok(p) => {
                self.current = Some((*out, p));
                Ok(true)
            }
            Err(e) => {
                tracing::debug!("pack: {e}");
                self.claimed.remove(out);
                Ok(false)
            }
        }
    }

    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let (_, p) = self.current.as_mut().expect("begin kept an object");
        p.write_all(bytes)
    }

    fn end(&mut self) -> std::io::Result<()> {
        let (out, p) = self.current.take().expect("begin kept an object");
        let Some((want, tx)) = self.claimed.remove(&out) else {
            return Ok(());
        };
        if let Some(path) = self.fetcher.commit_download(p, &out, " (in a pack)") {
            let disk = self.fetcher.disk();
            for r in &want.records {
                if let Err(e) = disk.put_index_entry(r) {
                    tracing::debug!("pack: output not indexed locally: {e}");
                }
            }
            self.fetcher.remote().metrics().prefetch_pack_objects.inc();
            let _ = tx.send(Some(path));
        } else {
            self.corrupt = true;
        }
        Ok(())
    }
}
