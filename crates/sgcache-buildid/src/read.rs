//! Reading a build ID: Go's `buildid.ReadFile` (buildid.go, note.go).

use std::fs::File;
use std::path::Path;

use crate::error::Error;
use crate::io::{ReadAt, Section, read_exact_at, read_full_at, read_vec_at};
use crate::strconv::{parse_int_base0, unquote};
use crate::{elf, macho};

/// How much of a binary `read_file` reads up front (Go's `readSize`). Tests use smaller
/// sizes through [`read_from`] to force the paths that look further into the file.
pub const READ_SIZE: usize = 32 * 1024;

/// How much of an archive is read to find its header lines.
const ARCHIVE_HEAD: usize = 1024;

const GO_BUILD_PREFIX: &[u8] = b"\xff Go build ID: \"";
const GO_BUILD_END: &[u8] = b"\"\n \xff";
const MALFORMED: &str = "malformed object file";

/// Reads the build ID of a Go archive or binary (Go's `buildid.ReadFile`).
///
/// `Ok` with an empty ID means the file has no build ID that Go would see: a Go archive built
/// with `-buildid=`, or a file that is not a Go object at all.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    let f = File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    read_from(path, &f, READ_SIZE)
}

/// [`read_file`] on any positional reader, with Go's `readSize` given explicitly. `name` is
/// only used in errors.
pub fn read_from<R: ReadAt + ?Sized>(
    name: &Path,
    f: &R,
    read_size: usize,
) -> Result<Vec<u8>, Error> {
    let mut magic = [0u8; 8];
    read_exact_at(f, &mut magic, 0)
        .map_err(|e| Error::read(name, "file is shorter than 8 bytes", e))?;
    if &magic != b"!<arch>\n" {
        if &magic == b"<bigaf>\n" {
            return Err(Error::malformed(
                name,
                "AIX big archives (gccgo) are not supported",
            ));
        }
        return read_binary(name, f, read_size);
    }

    // Go reads into a zeroed 1 KiB buffer and parses the whole buffer, padding included.
    let mut data = vec![0u8; ARCHIVE_HEAD];
    read_full_at(f, &mut data, 0).map_err(|e| Error::read(name, "archive header", e))?;
    let mut rest: &[u8] = &data;
    for i in 0.. {
        let Some(j) = memchr::memchr(b'\n', rest) else {
            return read_gccgo_archive(name, f);
        };
        let line = &rest[..j];
        rest = &rest[j + 1..];
        let ok = match i {
            0 => line == b"!<arch>",
            1 => line.starts_with(b"__.PKGDEF"),
            2 => line.starts_with(b"go object "),
            _ => {
                let Some(quoted) = line.strip_prefix(b"build id ") else {
                    // A Go object header without a build id line: no build ID.
                    return Ok(Vec::new());
                };
                return match unquote(quoted) {
                    Some(id) => Ok(id),
                    None => read_gccgo_archive(name, f),
                };
            }
        };
        if !ok {
            return read_gccgo_archive(name, f);
        }
    }
    unreachable!("the header loop returns by its fourth line")
}

/// gccgo archives: the ID is the `.go.buildid` section of the `_buildid.o` member.
fn read_gccgo_archive<R: ReadAt + ?Sized>(name: &Path, f: &R) -> Result<Vec<u8>, Error> {
    let bad = || Error::malformed(name, MALFORMED);
    let mut off: u64 = 8;
    loop {
        let mut hdr = [0u8; 60];
        let n = read_full_at(f, &mut hdr, off)
            .map_err(|e| Error::read(name, "archive member header", e))?;
        if n == 0 {
            return Ok(Vec::new());
        }
        if n < hdr.len() {
            return Err(Error::Truncated {
                path: name.to_owned(),
                what: "archive member header",
            });
        }
        off += 60;
        let size_str = std::str::from_utf8(&hdr[48..58]).map_err(|_| bad())?;
        let size = parse_int_base0(size_str.trim()).ok_or_else(bad)?;
        // Go would seek backwards (or loop forever) on a negative size.
        let size = u64::try_from(size).map_err(|_| bad())?;
        let member = String::from_utf8_lossy(&hdr[..16]);
        if member.trim() == "_buildid.o/" {
            let sect = Section {
                r: f,
                off,
                len: size,
            };
            let ef = elf::parse(&sect).map_err(|_| bad())?;
            let s = ef.section(b".go.buildid").ok_or_else(bad)?;
            return read_vec_at(&sect, s.size, s.offset).map_err(|_| bad());
        }
        off = off.checked_add(size).ok_or_else(bad)?;
        off += off & 1;
    }
}

fn read_binary<R: ReadAt + ?Sized>(name: &Path, f: &R, read_size: usize) -> Result<Vec<u8>, Error> {
    // Go parses the whole zero-padded buffer even when the file is shorter.
    let mut data = vec![0u8; read_size.max(64)];
    read_full_at(f, &mut data, 0).map_err(|e| Error::read(name, "file header", e))?;
    if data.starts_with(b"\x7fELF") {
        return read_elf(name, f, data);
    }
    if macho::PREFIXES.iter().any(|p| data.starts_with(p)) {
        return read_macho(name, f, &data, read_size);
    }
    read_raw(name, &data)
}

/// The raw `\xff Go build ID: "…"\n \xff` marker, anywhere in `data`.
fn read_raw(name: &Path, data: &[u8]) -> Result<Vec<u8>, Error> {
    let Some(i) = memchr::memmem::find(data, GO_BUILD_PREFIX) else {
        return Ok(Vec::new());
    };
    let body = i + GO_BUILD_PREFIX.len();
    let j = memchr::memmem::find(&data[body..], GO_BUILD_END)
        .ok_or_else(|| Error::malformed(name, MALFORMED))?;
    let quoted = &data[body - 1..body + j + 1];
    unquote(quoted).ok_or_else(|| Error::malformed(name, MALFORMED))
}

/// ELF: the `Go\0\0` note (type 4) in a `PT_NOTE` segment, else a `GNU\0` note (type 3).
fn read_elf<R: ReadAt + ?Sized>(name: &Path, f: &R, mut data: Vec<u8>) -> Result<Vec<u8>, Error> {
    // Like Go, hide the section headers so only the program headers are parsed, from the
    // buffer already in memory.
    match data[4] {
        1 => {
            data[32..36].fill(0);
            data[48..50].fill(0);
        }
        2 => {
            data[40..48].fill(0);
            data[60..62].fill(0);
        }
        _ => {}
    }
    let ef = elf::parse(data.as_slice()).map_err(|e| Error::malformed(name, e))?;
    let order = ef.order;
    let mut gnu: Vec<u8> = Vec::new();
    for p in &ef.progs {
        if p.typ != elf::PT_NOTE || p.filesz < 16 {
            continue;
        }
        let owned;
        let mut note: &[u8] = if p.off + p.filesz < data.len() as u64 {
            &data[p.off as usize..(p.off + p.filesz) as usize]
        } else {
            // The note is beyond what we read (some linkers put it far into the file).
            owned =
                read_vec_at(f, p.filesz, p.off).map_err(|e| Error::read(name, "ELF note", e))?;
            &owned
        };
        let mut filesz = p.filesz;
        let mut off = p.off;
        while filesz >= 16 && note.len() >= 16 {
            let name_size = order.u32(note);
            let val_size = order.u32(&note[4..]);
            let tag = order.u32(&note[8..]);
            let nname = &note[12..16];
            let fits = 16 + u64::from(val_size) <= note.len() as u64;
            if name_size == 4 && fits && tag == 4 && nname == b"Go\0\0" {
                return Ok(note[16..16 + val_size as usize].to_vec());
            }
            if name_size == 4 && fits && tag == 3 && nname == b"GNU\0" {
                gnu = note[16..16 + val_size as usize].to_vec();
            }
            // Go computes the note size in uint32 arithmetic; so do we.
            let name_size = name_size.wrapping_add(3) & !3;
            let val_size = val_size.wrapping_add(3) & !3;
            let mut notesz = u64::from(12u32.wrapping_add(name_size).wrapping_add(val_size));
            if filesz <= notesz {
                break;
            }
            off += notesz;
            if p.align != 0 {
                let aligned = off.wrapping_add(p.align - 1) & !(p.align - 1);
                notesz = notesz.wrapping_add(aligned.wrapping_sub(off));
                off = aligned;
            }
            // Go would slice out of range (or spin) here on a corrupt note; stop instead.
            if notesz == 0 || notesz > note.len() as u64 {
                break;
            }
            filesz -= notesz;
            note = &note[notesz as usize..];
        }
    }
    Ok(gnu)
}

/// Mach-O: the raw marker in the first bytes, else at the start of the `__text` section.
fn read_macho<R: ReadAt + ?Sized>(
    name: &Path,
    f: &R,
    data: &[u8],
    read_size: usize,
) -> Result<Vec<u8>, Error> {
    if let Ok(id) = read_raw(name, data)
        && !id.is_empty()
    {
        return Ok(id);
    }
    let mf = macho::parse(f).map_err(|e| Error::malformed(name, e))?;
    let sect = mf
        .section(b"__text")
        .ok_or_else(|| Error::malformed(name, "cannot find __text section"))?;
    let n = sect.size.min(read_size as u64) as usize;
    let mut buf = vec![0u8; n];
    read_exact_at(f, &mut buf, u64::from(sect.offset))
        .map_err(|e| Error::read(name, "__text section", e))?;
    read_raw(name, &buf)
}
