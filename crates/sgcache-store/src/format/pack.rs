//! A pack: many outputs in one object, so prefetch makes a few large requests instead of one
//! per output.
//!
//! Stored under `cas/<SHA-256 of the pack>`, framed and compressed like any object:
//!
//! | field | bytes | content |
//! |---|---|---|
//! | magic | 4 | `sgp1` |
//! | object count k | 4 | u32 LE, k ≤ [`MAX_OBJECTS`] |
//! | directory | 40 × k | per object: output id (32), size (u64 LE) |
//! | bodies | Σ sizes | the objects' bytes back to back, in directory order |
//!
//! A pack needs no trust: a reader keeps only objects a trusted record names, and verifies
//! each against its own output id ([`PackSplitter`] hands them out one by one).

use sgcache_types::OutputId;

use super::array;

/// First bytes of a pack.
pub const MAGIC: &[u8; 4] = b"sgp1";
/// Most objects in one pack.
pub const MAX_OBJECTS: usize = 100_000;

/// The header of a pack holding `objects` (output id and size each), in that order.
pub fn encode_header(objects: &[(OutputId, u64)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + 40 * objects.len());
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(objects.len() as u32).to_le_bytes());
    for (id, size) in objects {
        b.extend_from_slice(id.as_bytes());
        b.extend_from_slice(&size.to_le_bytes());
    }
    b
}

/// Where [`PackSplitter`] sends the objects of a pack, one at a time.
pub trait PackTarget {
    /// The pack's header has been read: these objects follow, in this order.
    fn listed(&mut self, _objects: &[(OutputId, u64)]) -> std::io::Result<()> {
        Ok(())
    }
    /// An object of `size` bytes claiming to be `output_id` starts; `Ok(false)` skips it.
    fn begin(&mut self, output_id: &OutputId, size: u64) -> std::io::Result<bool>;
    /// The next bytes of the object begun (only for a kept object).
    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// The kept object's last byte was given.
    fn end(&mut self) -> std::io::Result<()>;
}

/// Splits a pack streamed into it (as an [`std::io::Write`]) into its objects. A malformed
/// header, or bytes beyond the objects the header lists, is an error.
#[derive(Debug)]
pub struct PackSplitter<T> {
    target: T,
    header: Vec<u8>,
    /// Objects still to come, last first, once the header is read.
    objects: Option<Vec<(OutputId, u64)>>,
    /// Bytes left of the current object, and whether it is kept.
    current: Option<(u64, bool)>,
}

impl<T: PackTarget> PackSplitter<T> {
    /// A splitter feeding `target`.
    pub fn new(target: T) -> PackSplitter<T> {
        PackSplitter {
            target,
            header: Vec::new(),
            objects: None,
            current: None,
        }
    }

    /// The target, e.g. to collect what it did.
    pub fn into_target(self) -> T {
        self.target
    }

    /// Whether every object the header lists has been given whole.
    pub fn is_complete(&self) -> bool {
        matches!(&self.objects, Some(o) if o.is_empty()) && self.current.is_none()
    }

    fn bad(why: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("pack: {why}"))
    }

    /// Starts objects until one needs bytes (empty ones end at once).
    fn advance(&mut self) -> std::io::Result<()> {
        while self.current.is_none() {
            let Some((id, size)) = self.objects.as_mut().and_then(|o| o.pop()) else {
                return Ok(());
            };
            let keep = self.target.begin(&id, size)?;
            if size == 0 {
                if keep {
                    self.target.end()?;
                }
            } else {
                self.current = Some((size, keep));
            }
        }
        Ok(())
    }
}

impl<T: PackTarget> std::io::Write for PackSplitter<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        if self.objects.is_none() {
            // 8 fixed bytes (magic, count), then 40 per object.
            loop {
                let need = if self.header.len() < 8 {
                    8
                } else {
                    let n = u32::from_le_bytes(array(&self.header, 4));
                    if n as usize > MAX_OBJECTS {
                        return Err(Self::bad("too many objects"));
                    }
                    8 + 40 * n as usize
                };
                if self.header.len() == need {
                    break;
                }
                let take = (need - self.header.len()).min(rest.len());
                self.header.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if self.header.len() >= 4 && &self.header[..4] != MAGIC {
                    return Err(Self::bad("missing pack header"));
                }
                if self.header.len() < need && rest.is_empty() {
                    return Ok(buf.len());
                }
            }
            let mut objects: Vec<(OutputId, u64)> = self.header[8..]
                .chunks_exact(40)
                .map(|c| {
                    (
                        OutputId::from_bytes(array(c, 0)),
                        u64::from_le_bytes(array(c, 32)),
                    )
                })
                .collect();
            self.target.listed(&objects)?;
            objects.reverse();
            self.objects = Some(objects);
            self.header = Vec::new();
            self.advance()?;
        }
        while !rest.is_empty() {
            let Some((left, keep)) = self.current.as_mut() else {
                return Err(Self::bad("longer than its header says"));
            };
            let take = (*left).min(rest.len() as u64) as usize;
            if *keep {
                self.target.data(&rest[..take])?;
            }
            *left -= take as u64;
            rest = &rest[take..];
            if *left == 0 {
                let keep = *keep;
                self.current = None;
                if keep {
                    self.target.end()?;
                }
                self.advance()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what a [`PackSplitter`] hands out.
    #[derive(Default)]
    struct Collect {
        skip: Vec<OutputId>,
        got: Vec<(OutputId, Vec<u8>)>,
        open: Option<(OutputId, Vec<u8>)>,
    }

    impl PackTarget for Collect {
        fn begin(&mut self, id: &OutputId, _size: u64) -> std::io::Result<bool> {
            assert!(self.open.is_none(), "begin while an object is open");
            if self.skip.contains(id) {
                return Ok(false);
            }
            self.open = Some((*id, Vec::new()));
            Ok(true)
        }
        fn data(&mut self, b: &[u8]) -> std::io::Result<()> {
            self.open.as_mut().expect("open").1.extend_from_slice(b);
            Ok(())
        }
        fn end(&mut self) -> std::io::Result<()> {
            self.got.push(self.open.take().expect("open"));
            Ok(())
        }
    }

    #[test]
    fn pack_splits_at_every_chunking_and_rejects_garbage() {
        use std::io::Write;
        let objs: Vec<(OutputId, Vec<u8>)> = vec![
            (OutputId::from_bytes([1; 32]), b"first object".to_vec()),
            (OutputId::from_bytes([2; 32]), Vec::new()),
            (OutputId::from_bytes([3; 32]), vec![9; 1000]),
            (OutputId::from_bytes([4; 32]), b"last".to_vec()),
        ];
        let mut pack = encode_header(
            &objs
                .iter()
                .map(|(i, b)| (*i, b.len() as u64))
                .collect::<Vec<_>>(),
        );
        assert_eq!(&pack[..8], b"sgp1\x04\0\0\0");
        assert_eq!(pack.len(), 8 + 4 * 40);
        for (_, b) in &objs {
            pack.extend_from_slice(b);
        }
        for step in [1, 3, 7, 40, 41, 999, pack.len()] {
            let mut sp = PackSplitter::new(Collect {
                skip: vec![OutputId::from_bytes([3; 32])],
                ..Default::default()
            });
            for c in pack.chunks(step) {
                sp.write_all(c).unwrap();
            }
            assert!(sp.is_complete(), "step {step}");
            let got = sp.into_target().got;
            let want: Vec<_> = objs
                .iter()
                .filter(|(i, _)| *i != OutputId::from_bytes([3; 32]))
                .cloned()
                .collect();
            assert_eq!(got, want, "step {step}");
        }
        // Incomplete, too long, bad magic, absurd count.
        let mut sp = PackSplitter::new(Collect::default());
        sp.write_all(&pack[..pack.len() - 1]).unwrap();
        assert!(!sp.is_complete());
        let mut sp = PackSplitter::new(Collect::default());
        let mut longer = pack.clone();
        longer.push(0);
        assert!(sp.write_all(&longer).is_err());
        let mut sp = PackSplitter::new(Collect::default());
        assert!(sp.write_all(b"sgp2\0\0\0\0").is_err());
        let mut sp = PackSplitter::new(Collect::default());
        assert!(sp.write_all(b"sgp1\xff\xff\xff\xff").is_err());
        // An empty pack is complete at once.
        let mut sp = PackSplitter::new(Collect::default());
        sp.write_all(&encode_header(&[])).unwrap();
        assert!(sp.is_complete());
    }
}
