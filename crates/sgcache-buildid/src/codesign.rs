//! Ad-hoc Mach-O code signing, as the Go linker does it (port of `cmd/internal/codesign`).
//!
//! A signature is a SuperBlob holding one CodeDirectory: a fixed header, the identifier
//! `"a.out\0"`, and the SHA-256 of every 4 KiB page of the file before the signature. After a
//! build ID rewrite the page hashes change, so Go re-signs; we must produce the same bytes.

use sha2::{Digest, Sha256};

use crate::io::{ReadAt, read_full_at};

const PAGE_SIZE_BITS: u8 = 12;
const PAGE_SIZE: u64 = 1 << PAGE_SIZE_BITS;
const CSMAGIC_CODEDIRECTORY: u32 = 0xfade_0c02;
const CSMAGIC_EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
const CSSLOT_CODEDIRECTORY: u32 = 0;
const CS_HASHTYPE_SHA256: u8 = 2;
const CS_EXECSEG_MAIN_BINARY: u64 = 0x1;
const SUPER_BLOB_SIZE: u64 = 3 * 4;
const BLOB_SIZE: u64 = 2 * 4;
const CODE_DIRECTORY_SIZE: u64 = 13 * 4 + 4 + 4 * 8;
const HASH_SIZE: u64 = 32;

/// The identifier the Go linker signs with.
pub(crate) const ID: &str = "a.out";

/// Size of the signature for `code_size` bytes of code (Go's `codesign.Size`).
pub(crate) fn size(code_size: u64, id: &str) -> u64 {
    let nhashes = code_size.div_ceil(PAGE_SIZE);
    let hash_off = CODE_DIRECTORY_SIZE + id.len() as u64 + 1;
    SUPER_BLOB_SIZE + BLOB_SIZE + hash_off + nhashes * HASH_SIZE
}

/// Writes the signature of the first `code_size` bytes of `data` into `out` (Go's
/// `codesign.Sign`). `out` must be zeroed and at least `size(code_size, id)` long.
pub(crate) fn sign<R: ReadAt + ?Sized>(
    out: &mut [u8],
    data: &R,
    id: &str,
    code_size: u64,
    text_off: u64,
    text_size: u64,
    is_main: bool,
) -> std::io::Result<()> {
    let nhashes = code_size.div_ceil(PAGE_SIZE);
    let id_off = CODE_DIRECTORY_SIZE;
    let hash_off = id_off + id.len() as u64 + 1;
    let sz = size(code_size, id);
    let mut w = Vec::with_capacity(hash_off as usize + 32);
    let be32 = |w: &mut Vec<u8>, v: u32| w.extend_from_slice(&v.to_be_bytes());
    // SuperBlob and its one Blob index entry.
    be32(&mut w, CSMAGIC_EMBEDDED_SIGNATURE);
    be32(&mut w, sz as u32);
    be32(&mut w, 1);
    be32(&mut w, CSSLOT_CODEDIRECTORY);
    be32(&mut w, (SUPER_BLOB_SIZE + BLOB_SIZE) as u32);
    // CodeDirectory.
    be32(&mut w, CSMAGIC_CODEDIRECTORY);
    be32(&mut w, (sz - (SUPER_BLOB_SIZE + BLOB_SIZE)) as u32);
    be32(&mut w, 0x20400); // version
    be32(&mut w, 0x20002); // flags: adhoc | linkerSigned
    be32(&mut w, hash_off as u32);
    be32(&mut w, id_off as u32);
    be32(&mut w, 0); // nSpecialSlots
    be32(&mut w, nhashes as u32);
    be32(&mut w, code_size as u32); // codeLimit
    w.extend_from_slice(&[HASH_SIZE as u8, CS_HASHTYPE_SHA256, 0, PAGE_SIZE_BITS]);
    be32(&mut w, 0); // pad2
    be32(&mut w, 0); // scatterOffset
    be32(&mut w, 0); // teamOffset
    be32(&mut w, 0); // pad3
    w.extend_from_slice(&0u64.to_be_bytes()); // codeLimit64
    w.extend_from_slice(&text_off.to_be_bytes());
    w.extend_from_slice(&text_size.to_be_bytes());
    let flags = if is_main { CS_EXECSEG_MAIN_BINARY } else { 0 };
    w.extend_from_slice(&flags.to_be_bytes());
    w.extend_from_slice(id.as_bytes());
    w.push(0);
    let head = w.len().min(out.len());
    out[..head].copy_from_slice(&w[..head]);

    let mut pos = head;
    let mut page = [0u8; PAGE_SIZE as usize];
    let mut p: u64 = 0;
    while p < code_size {
        let n = read_full_at(data, &mut page, p)?;
        if n == 0 {
            break;
        }
        let n = (n as u64).min(code_size - p) as usize;
        p += n as u64;
        let digest = Sha256::digest(&page[..n]);
        let end = (pos + 32).min(out.len());
        out[pos..end].copy_from_slice(&digest[..end - pos]);
        pos = end;
        if n < PAGE_SIZE as usize {
            break;
        }
    }
    Ok(())
}
