//! The slice of Mach-O that build IDs need: load commands, segments and their sections.
//! Validation follows Go's `debug/macho.NewFile` for the commands it checks (command sizes,
//! segment and section records, relocation/symbol table extents), so the files Go accepts
//! are the files accepted here. All reads are bounded by the file's real size.

use crate::elf::Order;
use crate::io::{ReadAt, read_exact_at, read_vec_at};

pub(crate) const LC_SEGMENT: u32 = 0x1;
pub(crate) const LC_SYMTAB: u32 = 0x2;
pub(crate) const LC_DYSYMTAB: u32 = 0xb;
pub(crate) const LC_LOAD_DYLIB: u32 = 0xc;
pub(crate) const LC_SEGMENT_64: u32 = 0x19;
pub(crate) const LC_UUID: u32 = 0x1b;
pub(crate) const LC_CODE_SIGNATURE: u32 = 0x1d;
pub(crate) const LC_RPATH: u32 = 0x8000_001c;
pub(crate) const MH_EXECUTE: u32 = 2;

/// The four magic prefixes `readBinary` dispatches on.
pub(crate) const PREFIXES: [[u8; 4]; 4] = [
    [0xfe, 0xed, 0xfa, 0xce],
    [0xfe, 0xed, 0xfa, 0xcf],
    [0xce, 0xfa, 0xed, 0xfe],
    [0xcf, 0xfa, 0xed, 0xfe],
];

#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) cmd: u32,
    /// File offset of the load command.
    pub(crate) offset: u64,
    pub(crate) raw: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) name: Vec<u8>,
    pub(crate) offset: u64,
    pub(crate) filesz: u64,
}

#[derive(Debug)]
pub(crate) struct Section {
    pub(crate) name: Vec<u8>,
    pub(crate) size: u64,
    pub(crate) offset: u32,
}

#[derive(Debug)]
pub(crate) struct File {
    pub(crate) order: Order,
    pub(crate) filetype: u32,
    pub(crate) loads: Vec<Load>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) sections: Vec<Section>,
}

/// `LC_CODE_SIGNATURE`: where the signature blob lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeSig {
    pub(crate) dataoff: u32,
    pub(crate) datasize: u32,
}

impl File {
    pub(crate) fn section(&self, name: &[u8]) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub(crate) fn segment(&self, name: &[u8]) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// Go's `codesign.FindCodeSigCmd`. (Go would index out of range on a command shorter
    /// than 16 bytes; we treat it as absent.)
    pub(crate) fn code_signature(&self) -> Option<CodeSig> {
        let l = self.loads.iter().find(|l| l.cmd == LC_CODE_SIGNATURE)?;
        if l.raw.len() < 16 {
            return None;
        }
        Some(CodeSig {
            dataoff: self.order.u32(&l.raw[8..]),
            datasize: self.order.u32(&l.raw[12..]),
        })
    }

    /// The `LC_UUID` payload as `(offset, size)`, computed the way `findHostBuildID` does.
    pub(crate) fn uuid_range(&self) -> Option<(i64, i64)> {
        let l = self.loads.iter().find(|l| l.cmd == LC_UUID)?;
        let len = self.order.u32(&l.raw[4..]);
        Some((l.offset as i64 + 8, i64::from(len.wrapping_sub(8))))
    }
}

fn cstring(b: &[u8]) -> Vec<u8> {
    let end = memchr::memchr(0, b).unwrap_or(b.len());
    b[..end].to_vec()
}

/// Parses a Mach-O file like `debug/macho.NewFile`. The error is Go's reason text.
pub(crate) fn parse<R: ReadAt + ?Sized>(r: &R) -> Result<File, String> {
    let text = |e: std::io::Error| crate::io::go_text(&e);
    let mut ident = [0u8; 4];
    read_exact_at(r, &mut ident, 0).map_err(text)?;
    let be = u32::from_be_bytes(ident);
    let le = u32::from_le_bytes(ident);
    let (order, magic) = if be & !1 == 0xfeed_face {
        (Order::big(), be)
    } else if le & !1 == 0xfeed_face {
        (Order::little(), le)
    } else {
        return Err("invalid magic number".into());
    };
    let mut hdr = [0u8; 28];
    read_exact_at(r, &mut hdr, 0).map_err(text)?;
    let filetype = order.u32(&hdr[12..]);
    let ncmd = order.u32(&hdr[16..]);
    let cmdsz = order.u32(&hdr[20..]);
    let mut offset: u64 = if magic == 0xfeed_facf { 32 } else { 28 };
    let is64 = magic == 0xfeed_facf;
    let mut dat: &[u8] = &read_vec_at(r, u64::from(cmdsz), offset).map_err(text)?;
    let mut f = File {
        order,
        filetype,
        loads: Vec::new(),
        segments: Vec::new(),
        sections: Vec::new(),
    };
    for _ in 0..ncmd {
        if dat.len() < 8 {
            return Err("command block too small".into());
        }
        let cmd = order.u32(dat);
        let siz = order.u32(&dat[4..]);
        if siz < 8 || siz as usize > dat.len() {
            return Err("invalid command block size".into());
        }
        let (cmddat, rest) = dat.split_at(siz as usize);
        dat = rest;
        let cmd_off = offset;
        offset += u64::from(siz);
        match cmd {
            LC_RPATH => {
                if cmddat.len() < 12 {
                    return Err("unexpected EOF".into());
                }
                if order.u32(&cmddat[8..]) as usize >= cmddat.len() {
                    return Err("invalid path in rpath command".into());
                }
            }
            LC_LOAD_DYLIB => {
                if cmddat.len() < 24 {
                    return Err("unexpected EOF".into());
                }
                if order.u32(&cmddat[8..]) as usize >= cmddat.len() {
                    return Err("invalid name in dynamic library command".into());
                }
            }
            LC_SYMTAB => {
                if cmddat.len() < 24 {
                    return Err("unexpected EOF".into());
                }
                let symoff = order.u32(&cmddat[8..]);
                let nsyms = order.u32(&cmddat[12..]);
                let stroff = order.u32(&cmddat[16..]);
                let strsize = order.u32(&cmddat[20..]);
                let symsz: u64 = if is64 { 16 } else { 12 };
                let strtab = read_vec_at(r, u64::from(strsize), u64::from(stroff)).map_err(text)?;
                let symdat =
                    read_vec_at(r, u64::from(nsyms) * symsz, u64::from(symoff)).map_err(text)?;
                for sym in symdat.chunks_exact(symsz as usize) {
                    if order.u32(sym) as usize >= strtab.len() {
                        return Err("invalid name in symbol table".into());
                    }
                }
            }
            LC_DYSYMTAB => {
                if cmddat.len() < 80 {
                    return Err("unexpected EOF".into());
                }
                let indoff = order.u32(&cmddat[56..]);
                let nind = order.u32(&cmddat[60..]);
                read_vec_at(r, u64::from(nind) * 4, u64::from(indoff)).map_err(text)?;
            }
            LC_SEGMENT | LC_SEGMENT_64 => {
                let seg64 = cmd == LC_SEGMENT_64;
                let (seg_len, sect_len) = if seg64 { (72, 80) } else { (56, 68) };
                if cmddat.len() < seg_len {
                    return Err("unexpected EOF".into());
                }
                let (soff, sfilesz, nsect) = if seg64 {
                    (
                        order.u64(&cmddat[40..]),
                        order.u64(&cmddat[48..]),
                        order.u32(&cmddat[64..]),
                    )
                } else {
                    (
                        u64::from(order.u32(&cmddat[32..])),
                        u64::from(order.u32(&cmddat[36..])),
                        order.u32(&cmddat[48..]),
                    )
                };
                f.segments.push(Segment {
                    name: cstring(&cmddat[8..24]),
                    offset: soff,
                    filesz: sfilesz,
                });
                let mut rest = &cmddat[seg_len..];
                for _ in 0..nsect {
                    if rest.len() < sect_len {
                        return Err("unexpected EOF".into());
                    }
                    let s = &rest[..sect_len];
                    rest = &rest[sect_len..];
                    let (size, soffset, reloff, nreloc) = if seg64 {
                        (
                            order.u64(&s[40..]),
                            order.u32(&s[48..]),
                            order.u32(&s[56..]),
                            order.u32(&s[60..]),
                        )
                    } else {
                        (
                            u64::from(order.u32(&s[36..])),
                            order.u32(&s[40..]),
                            order.u32(&s[48..]),
                            order.u32(&s[52..]),
                        )
                    };
                    f.sections.push(Section {
                        name: cstring(&s[..16]),
                        size,
                        offset: soffset,
                    });
                    if nreloc > 0 {
                        read_vec_at(r, u64::from(nreloc) * 8, u64::from(reloff)).map_err(text)?;
                    }
                }
                if (soff as i64) < 0 {
                    return Err("invalid section offset".into());
                }
                if (sfilesz as i64) < 0 {
                    return Err("invalid section file size".into());
                }
            }
            _ => {}
        }
        f.loads.push(Load {
            cmd,
            offset: cmd_off,
            raw: cmddat.to_vec(),
        });
    }
    Ok(f)
}
