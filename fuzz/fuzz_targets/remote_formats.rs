//! The remote's byte formats over arbitrary bytes, as a broken or hostile remote could serve
//! them: the manifest decoder (with and without a signing key) and the pack splitter, fed in
//! uneven chunks. Must not panic or allocate in proportion to a claimed count, and the
//! splitter must keep its promises to its target:
//! * `begin` never comes while an object is open;
//! * a kept object gets exactly its declared size in `data` before its `end`;
//! * objects come in the order, and no more than the number, its header listed.
#![no_main]

use std::io::{self, Write};

use libfuzzer_sys::fuzz_target;
use sgcache_store::{PackSplitter, PackTarget, decode_manifest};

#[derive(Default)]
struct Check {
    listed: Vec<([u8; 32], u64)>,
    begun: usize,
    /// Declared size and bytes given so far of the open kept object.
    open: Option<(u64, u64)>,
}

impl PackTarget for Check {
    fn listed(&mut self, objects: &[([u8; 32], u64)]) -> io::Result<()> {
        assert!(self.listed.is_empty() && self.begun == 0, "listed twice");
        self.listed = objects.to_vec();
        Ok(())
    }
    fn begin(&mut self, id: &[u8; 32], size: u64) -> io::Result<bool> {
        assert!(self.open.is_none(), "begin while an object is open");
        assert_eq!(self.listed.get(self.begun), Some(&(*id, size)), "out of order");
        self.begun += 1;
        // Keep every other object, like a target that already has some.
        let keep = id[0] % 2 == 0;
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

fuzz_target!(|data: &[u8]| {
    let name = [7u8; 32];
    if let Ok(m) = decode_manifest(data, "ns", &name, None) {
        assert!(m.records.len() <= sgcache_store::MANIFEST_MAX);
        assert!(m.packs.len() <= sgcache_store::MANIFEST_MAX_PACKS);
    }
    let _ = decode_manifest(data, "ns", &name, Some(b"key"));
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
