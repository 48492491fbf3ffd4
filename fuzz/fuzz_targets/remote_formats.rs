//! The remote's byte formats over arbitrary bytes, as a broken or hostile remote could serve
//! them: the action entry and manifest decoders (trusting anything, and with a trusted key,
//! as the job's own namespace and as another's) and the pack splitter, fed in uneven chunks. Must not panic or allocate in proportion to a claimed count, and the
//! splitter must keep its promises to its target:
//! * `begin` never comes while an object is open;
//! * a kept object gets exactly its declared size in `data` before its `end`;
//! * objects come in the order, and no more than the number, its header listed.
#![no_main]

use std::io::{self, Write};

use libfuzzer_sys::fuzz_target;
use sgcache_store::format::{entry, manifest};
use sgcache_store::{ManifestName, PackSplitter, PackTarget, SecretKey, Trust};
use sgcache_types::{ActionId, OutputId};

#[derive(Default)]
struct Check {
    listed: Vec<(OutputId, u64)>,
    begun: usize,
    /// Declared size and bytes given so far of the open kept object.
    open: Option<(u64, u64)>,
}

impl PackTarget for Check {
    fn listed(&mut self, objects: &[(OutputId, u64)]) -> io::Result<()> {
        assert!(self.listed.is_empty() && self.begun == 0, "listed twice");
        self.listed = objects.to_vec();
        Ok(())
    }
    fn begin(&mut self, id: &OutputId, size: u64) -> io::Result<bool> {
        assert!(self.open.is_none(), "begin while an object is open");
        assert_eq!(self.listed.get(self.begun), Some(&(*id, size)), "out of order");
        self.begun += 1;
        // Keep every other object, like a target that already has some.
        let keep = id.as_bytes()[0] % 2 == 0;
        if keep {
            self.open = Some((size, 0));
        }
        Ok(keep)
    }
    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        let (size, got) = self.open.as_mut().expect("data without begin");
        *got += bytes.len() as u64;
        assert!(*got <= *size, "more bytes than declared");
        Ok(())
    }
    fn end(&mut self) -> io::Result<()> {
        let (size, got) = self.open.take().expect("end without begin");
        assert_eq!(got, size, "end before the declared size");
        Ok(())
    }
}

/// A fixed key, so a run can be replayed.
fn key() -> &'static SecretKey {
    static K: std::sync::OnceLock<SecretKey> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        SecretKey::parse("sgsk1_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA").expect("a valid key")
    })
}

fuzz_target!(|data: &[u8]| {
    let name = ManifestName([7; 32]);
    let action = ActionId::from_bytes([5; 32]);
    let open = Trust::new(&[], None, "ns");
    let keyed = [
        Trust::new(&[key().public().clone()], None, "ns"),
        Trust::new(&[key().public().clone()], None, "other"),
        Trust::new(&[], Some(key()), "ns"),
    ];
    if let Ok(m) = manifest::decode(data, "ns", &name, &open) {
        assert!(m.records.len() <= manifest::MAX_RECORDS);
        assert!(m.packs.len() <= manifest::MAX_PACKS);
        // What decodes re-encodes to the same bytes (unsigned).
        if data.len() == 16 + 80 * m.records.len() + 40 * m.packs.len() + 32 * m.misses.len() {
            assert_eq!(manifest::encode(&m, "ns", &name, None), data);
        }
    }
    if let Ok(e) = entry::decode(data, "ns", &action, &open) {
        assert_eq!(e.action, action);
    }
    for t in &keyed {
        let _ = manifest::decode(data, "ns", &name, t);
        let _ = entry::decode(data, "ns", &action, t);
    }
    let step = data.len() % 61 + 1;
    let mut sp = PackSplitter::new(Check::default());
    for c in data.chunks(step) {
        if sp.write_all(c).is_err() {
            return;
        }
    }
    if sp.is_complete() {
        let c = sp.into_target();
        assert_eq!(c.begun, c.listed.len());
        assert!(c.open.is_none());
    }
});
