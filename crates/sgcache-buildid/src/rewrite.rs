//! `Rewrite`: write a new build ID at the offsets `find_and_hash` returned, then re-sign an
//! ad-hoc Mach-O code signature the way Go does (rewrite.go).

use std::fs::OpenOptions;
use std::path::Path;

use crate::codesign;
use crate::error::Error;
use crate::io::{ReadAt, WriteAt, write_all_at};
use crate::macho;

/// Writes `id` at each offset in `matches` (Go's `buildid.Rewrite`). If the file is a Mach-O
/// with a code signature of exactly the size the Go linker would give it, the signature is
/// recomputed over the new content; otherwise it is left alone, as in Go.
///
/// `name` is only used in errors.
pub fn rewrite<F: ReadAt + WriteAt + ?Sized>(
    name: &Path,
    f: &F,
    matches: &[u64],
    id: &[u8],
) -> Result<(), Error> {
    let werr = |source| Error::Write {
        path: name.to_owned(),
        source,
    };
    for &p in matches {
        write_all_at(f, id, p).map_err(werr)?;
    }
    let Ok(mf) = macho::parse(f) else {
        return Ok(());
    };
    let Some(cs) = mf.code_signature() else {
        return Ok(());
    };
    if codesign::size(u64::from(cs.dataoff), codesign::ID) != u64::from(cs.datasize) {
        return Ok(());
    }
    // Go would dereference a nil segment here; a file without __TEXT is left unsigned.
    let Some(text) = mf.segment(b"__TEXT") else {
        return Ok(());
    };
    let mut out = vec![0u8; cs.datasize as usize];
    codesign::sign(
        &mut out,
        f,
        codesign::ID,
        u64::from(cs.dataoff),
        text.offset,
        text.filesz,
        mf.filetype == macho::MH_EXECUTE,
    )
    .map_err(|e| Error::read(name, "Mach-O content to sign", e))?;
    write_all_at(f, &out, u64::from(cs.dataoff)).map_err(werr)
}

/// What `go tool buildid -w` does: read the ID, hash the file, and if the ID occurs in it,
/// replace its content ID with the new hash. Returns the new ID (equal to the old one when
/// the content was already up to date).
pub fn rewrite_file(path: &Path) -> Result<Vec<u8>, Error> {
    let id = crate::read_file(path)?;
    let (matches, hash) = crate::find_and_hash_file(path, &id)?;
    let Some(slash) = id.iter().rposition(|&b| b == b'/') else {
        return Err(Error::Legacy {
            path: path.to_owned(),
        });
    };
    let mut new_id = id[..slash + 1].to_vec();
    new_id.extend_from_slice(crate::hash_to_string(&hash).as_bytes());
    if new_id.len() != id.len() {
        return Err(Error::LengthMismatch {
            path: path.to_owned(),
            old: String::from_utf8_lossy(&id).into_owned(),
            new: String::from_utf8_lossy(&new_id).into_owned(),
        });
    }
    if matches.is_empty() {
        return Ok(new_id);
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
    rewrite(path, &f, &matches, &new_id)?;
    f.sync_all().map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(new_id)
}
