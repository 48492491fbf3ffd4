//! The slice of ELF that build IDs need: the file header, program headers, and section
//! headers with names. Validation follows Go's `debug/elf.NewFile`, so a file Go refuses to
//! parse is refused here too (that decides, for example, whether `.note.gnu.build-id` is
//! excluded from the content hash). All reads are bounded by the file's real size.

use crate::io::{ReadAt, read_exact_at, read_vec_at};

pub(crate) const PT_NOTE: u32 = 4;
const SHT_NULL: u32 = 0;
const SHT_STRTAB: u32 = 3;
const SHN_LORESERVE: u64 = 0xff00;
const SHN_XINDEX: u64 = 0xffff;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Order {
    big: bool,
}

impl Order {
    pub(crate) fn big() -> Self {
        Order { big: true }
    }
    pub(crate) fn little() -> Self {
        Order { big: false }
    }
    pub(crate) fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }
    pub(crate) fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }
    pub(crate) fn u64(self, b: &[u8]) -> u64 {
        let a: [u8; 8] = b[..8].try_into().unwrap_or_default();
        if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Prog {
    pub(crate) typ: u32,
    pub(crate) off: u64,
    pub(crate) filesz: u64,
    pub(crate) align: u64,
}

#[derive(Debug)]
pub(crate) struct Section {
    pub(crate) name: Vec<u8>,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

#[derive(Debug)]
pub(crate) struct File {
    pub(crate) order: Order,
    pub(crate) progs: Vec<Prog>,
    pub(crate) sections: Vec<Section>,
}

impl File {
    pub(crate) fn section(&self, name: &[u8]) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Parses an ELF file like `debug/elf.NewFile`. The error is Go's reason text.
pub(crate) fn parse<R: ReadAt + ?Sized>(r: &R) -> Result<File, String> {
    let mut ident = [0u8; 16];
    read_exact_at(r, &mut ident, 0).map_err(|e| crate::io::go_text(&e))?;
    if &ident[..4] != b"\x7fELF" {
        return Err("bad magic number".into());
    }
    let class64 = match ident[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let order = match ident[5] {
        1 => Order { big: false },
        2 => Order { big: true },
        d => return Err(format!("unknown ELF data encoding {d}")),
    };
    if ident[6] != 1 {
        return Err(format!("unknown ELF version {}", ident[6]));
    }
    let mut hdr = [0u8; 64];
    let hdr = &mut hdr[..if class64 { 64 } else { 52 }];
    read_exact_at(r, hdr, 0).map_err(|e| crate::io::go_text(&e))?;
    if order.u32(&hdr[20..]) != 1 {
        return Err("mismatched ELF version".into());
    }
    let (phoff, phentsize, phnum, shoff, shentsize, mut shnum, mut shstrndx) = if class64 {
        (
            order.u64(&hdr[32..]),
            u64::from(order.u16(&hdr[54..])),
            u64::from(order.u16(&hdr[56..])),
            order.u64(&hdr[40..]),
            u64::from(order.u16(&hdr[58..])),
            u64::from(order.u16(&hdr[60..])),
            u64::from(order.u16(&hdr[62..])),
        )
    } else {
        (
            u64::from(order.u32(&hdr[28..])),
            u64::from(order.u16(&hdr[42..])),
            u64::from(order.u16(&hdr[44..])),
            u64::from(order.u32(&hdr[32..])),
            u64::from(order.u16(&hdr[46..])),
            u64::from(order.u16(&hdr[48..])),
            u64::from(order.u16(&hdr[50..])),
        )
    };
    if (shoff as i64) < 0 {
        return Err("invalid shoff".into());
    }
    if (phoff as i64) < 0 {
        return Err("invalid phoff".into());
    }
    if shoff == 0 && shnum != 0 {
        return Err("invalid ELF shnum for shoff=0".into());
    }
    if shnum > 0 && shstrndx >= shnum {
        return Err("invalid ELF shstrndx".into());
    }
    let (want_ph, want_sh) = if class64 { (56, 64) } else { (32, 40) };
    if phnum > 0 && phentsize < want_ph {
        return Err("invalid ELF phentsize".into());
    }
    let phdata = read_vec_at(r, phnum * phentsize, phoff).map_err(|e| crate::io::go_text(&e))?;
    let mut progs = Vec::with_capacity(phnum as usize);
    for i in 0..phnum as usize {
        let p = &phdata[i * phentsize as usize..];
        let prog = if class64 {
            Prog {
                typ: order.u32(p),
                off: order.u64(&p[8..]),
                filesz: order.u64(&p[32..]),
                align: order.u64(&p[48..]),
            }
        } else {
            Prog {
                typ: order.u32(p),
                off: u64::from(order.u32(&p[4..])),
                filesz: u64::from(order.u32(&p[16..])),
                align: u64::from(order.u32(&p[28..])),
            }
        };
        if (prog.off as i64) < 0 {
            return Err("invalid program header offset".into());
        }
        if (prog.filesz as i64) < 0 {
            return Err("invalid program header file size".into());
        }
        progs.push(prog);
    }

    if shoff > 0 && shnum == 0 {
        // More than SHN_LORESERVE sections: the real count (and maybe the string table
        // index) live in section header 0.
        let mut sh = [0u8; 64];
        let sh = &mut sh[..want_sh as usize];
        read_exact_at(r, sh, shoff).map_err(|e| crate::io::go_text(&e))?;
        let (typ, size, link) = if class64 {
            (
                order.u32(&sh[4..]),
                order.u64(&sh[32..]),
                order.u32(&sh[40..]),
            )
        } else {
            (
                order.u32(&sh[4..]),
                u64::from(order.u32(&sh[20..])),
                order.u32(&sh[24..]),
            )
        };
        if typ != SHT_NULL {
            return Err("invalid type of the initial section".into());
        }
        shnum = size;
        if shnum < SHN_LORESERVE || shnum > i64::MAX as u64 {
            return Err("invalid ELF shnum contained in sh_size".into());
        }
        if shstrndx == SHN_XINDEX {
            shstrndx = u64::from(link);
            if shstrndx < SHN_LORESERVE {
                return Err("invalid ELF shstrndx contained in sh_link".into());
            }
        }
    }
    if shnum > 0 && shentsize < want_sh {
        return Err("invalid ELF shentsize".into());
    }
    let Some(shbytes) = shnum.checked_mul(shentsize) else {
        return Err("section header overflow".into());
    };
    let shdata = read_vec_at(r, shbytes, shoff).map_err(|e| crate::io::go_text(&e))?;
    let mut names = Vec::new();
    let mut sections = Vec::new();
    let mut types = Vec::new();
    for i in 0..shnum as usize {
        let s = &shdata[i * shentsize as usize..];
        let (name, typ, offset, size) = if class64 {
            (
                order.u32(s),
                order.u32(&s[4..]),
                order.u64(&s[24..]),
                order.u64(&s[32..]),
            )
        } else {
            (
                order.u32(s),
                order.u32(&s[4..]),
                u64::from(order.u32(&s[16..])),
                u64::from(order.u32(&s[20..])),
            )
        };
        if (offset as i64) < 0 {
            return Err("invalid section offset".into());
        }
        if (size as i64) < 0 {
            return Err("invalid section size".into());
        }
        names.push(name);
        types.push(typ);
        sections.push(Section {
            name: Vec::new(),
            offset,
            size,
        });
    }
    if !sections.is_empty() && shstrndx != 0 {
        let Some(shstr) = sections.get(shstrndx as usize) else {
            return Err("invalid ELF shstrndx".into());
        };
        if types[shstrndx as usize] != SHT_STRTAB {
            return Err("invalid ELF section name string table type".into());
        }
        let tab = read_vec_at(r, shstr.size, shstr.offset).map_err(|e| crate::io::go_text(&e))?;
        for (s, &n) in sections.iter_mut().zip(&names) {
            let n = n as usize;
            let name = tab
                .get(n..)
                .filter(|_| n < tab.len())
                .and_then(|t| memchr::memchr(0, t).map(|end| &t[..end]));
            match name {
                Some(name) => s.name = name.to_vec(),
                None => return Err("bad section name index".into()),
            }
        }
    }
    Ok(File {
        order,
        progs,
        sections,
    })
}
