//! Go's own buildid tests (src/cmd/internal/buildid/buildid_test.go), ported.
//!
//! The fixture files are read from `$(go env GOROOT)/src/cmd/internal/buildid/testdata` on
//! this machine rather than copied into the repository; tests that need them skip, saying
//! why, when there is no Go toolchain. `TestFindAndHash`, `TestExcludedReader` and
//! `TestEmptyID` need no fixtures and always run.

mod common;

use std::io::Read;
use std::path::Path;

use sgcache_buildid::{
    Error, ExcludedReader, find_and_hash, hash_to_string, read_file, read_from, rewrite,
};
use sha2::{Digest, Sha256};

const EXPECTED_ID: &str =
    "abcdefghijklmnopqrstuvwxyz.1234567890123456789012345678901234567890123456789012345678901234";
const NEW_ID: &str =
    "bcdefghijklmnopqrstuvwxyza.2345678901234567890123456789012345678901234567890123456789012341";

/// (file, offsets of the ID, HashToString of the FindAndHash hash).
const FILES: [(&str, &[u64], &str); 4] = [
    ("p.a", &[164, 273, 554], "8d_qLXPGcpc-eg4KPwh4"),
    ("a.elf", &[4004], "TRn6tRJwVGtIxmH55496"),
    ("a.macho", &[4112], "wvyACqUGimGMin5YZw4d"),
    ("a.pe", &[1552], "sAdDdbqgwlrx6RfVJ1Qw"),
];

#[test]
fn test_read_file() {
    let dir = match common::testdata() {
        Ok(d) => d,
        Err(why) => return common::skip("test_read_file", &why),
    };
    let tmp = tempfile::tempdir().unwrap();
    for (name, offsets, content) in FILES {
        let data = common::vector(&dir, name);
        let path = tmp.path().join(name);
        std::fs::write(&path, &data).unwrap();

        assert_eq!(
            read_file(&path).unwrap(),
            EXPECTED_ID.as_bytes(),
            "ReadFile({name})"
        );
        // readSize = 2048 forces the ELF note to be read from the file and the Mach-O
        // __text section to be located by parsing.
        let f = std::fs::File::open(&path).unwrap();
        assert_eq!(
            read_from(&path, &f, 2048).unwrap(),
            EXPECTED_ID.as_bytes(),
            "ReadFile({name}) [readSize=2k]"
        );

        let (m, hash) = find_and_hash(data.as_slice(), EXPECTED_ID.as_bytes(), 1024).unwrap();
        assert_eq!(m, offsets, "FindAndHash({name}) matches");
        assert_eq!(hash_to_string(&hash), content, "FindAndHash({name}) hash");
        // Every buffer size gives the same answer; the default path too.
        assert_eq!(
            find_and_hash(data.as_slice(), EXPECTED_ID.as_bytes(), 0).unwrap(),
            (m.clone(), hash)
        );
        assert_eq!(
            find_and_hash(data.as_slice(), EXPECTED_ID.as_bytes(), 91).unwrap(),
            (m.clone(), hash)
        );

        let copy = tmp.path().join(format!("{name}.rewritten"));
        std::fs::write(&copy, &data).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&copy)
            .unwrap();
        rewrite(&copy, &f, &m, NEW_ID.as_bytes()).unwrap();
        drop(f);
        assert_eq!(
            read_file(&copy).unwrap(),
            NEW_ID.as_bytes(),
            "ReadFile({name} after Rewrite)"
        );

        if name == "a.elf" {
            zero_align_elf(&data, &path);
        }
    }
}

/// Regression test for golang/go#62097: a PT_NOTE with Align 0 must not crash the note walk.
fn zero_align_elf(orig: &[u8], path: &Path) {
    let mut data = orig.to_vec();
    assert_eq!(data[4], 2, "a.elf is ELFCLASS64");
    assert_eq!(data[5], 1, "a.elf is little-endian");
    let u16_at = |d: &[u8], o: usize| u16::from_le_bytes([d[o], d[o + 1]]) as usize;
    let u64_at = |d: &[u8], o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
    let mut phoff = u64_at(&data, 32) as usize;
    let phentsize = u16_at(&data, 54);
    let phnum = u16_at(&data, 56);
    for _ in 0..phnum {
        let typ = u32::from_le_bytes(data[phoff..phoff + 4].try_into().unwrap());
        if typ == 4 {
            let off = u64_at(&data, phoff + 8) as usize;
            let filesz = u64_at(&data, phoff + 32);
            data[phoff + 32..phoff + 40].copy_from_slice(&(filesz + 1).to_le_bytes());
            data[phoff + 48..phoff + 56].copy_from_slice(&0u64.to_le_bytes());
            data[off + 12..off + 16].copy_from_slice(&0u32.to_le_bytes());
        }
        phoff += phentsize;
    }
    std::fs::write(path, &data).unwrap();
    assert_eq!(
        read_file(path).unwrap(),
        b"",
        "ReadFile with zero ELF Align"
    );
    let f = std::fs::File::open(path).unwrap();
    assert_eq!(
        read_from(path, &f, 2048).unwrap(),
        b"",
        "ReadFile with zero ELF Align [readSize=2k]"
    );
}

#[test]
fn test_find_and_hash() {
    let id: Vec<u8> = (0..8).collect();
    let mut checked = 0;
    for buf_size in id.len()..=64 {
        for j in 0..64 {
            let mut k = 0;
            while k < 2 * id.len() && j + k < 64 {
                let mut buf = [1u8; 64];
                let n = id.len().min(64 - j);
                buf[j..j + n].copy_from_slice(&id[..n]);
                let n = id.len().min(64 - (j + k));
                buf[j + k..j + k + n].copy_from_slice(&id[..n]);
                let mut m = Vec::new();
                if j + id.len() <= j + k {
                    m.push(j as u64);
                }
                if j + k + id.len() <= 64 {
                    m.push((j + k) as u64);
                }
                let mut buf2 = buf;
                for &p in &m {
                    buf2[p as usize..p as usize + 8].fill(0);
                }
                let want: [u8; 32] = Sha256::digest(buf2).into();
                let (matches, hash) = find_and_hash(buf.as_slice(), &id, buf_size).unwrap();
                assert_eq!(matches, m, "bufSize={buf_size} j={j} k={k}: matches");
                assert_eq!(hash, want, "bufSize={buf_size} j={j} k={k}: hash");
                checked += 1;
                k += 1;
            }
        }
    }
    assert!(checked > 40_000);
}

#[test]
fn test_excluded_reader() {
    const S: &[u8] = b"0123456789abcdefghijklmn";
    let tests: [(i64, i64, [&[u8]; 3]); 5] = [
        (12, 15, [b"0123456789", b"ab\0\0\0fghij", b"klmn"]),
        (8, 21, [b"01234567\0\0", &[0; 10], b"\0lmn"]),
        (10, 20, [b"0123456789", &[0; 10], b"klmn"]),
        (0, 5, [b"\0\0\0\0\x0056789", b"abcdefghij", b"klmn"]),
        (12, 24, [b"0123456789", b"ab\0\0\0\0\0\0\0\0", b"\0\0\0\0"]),
    ];
    for (start, end, results) in tests {
        let mut r = ExcludedReader::new(S, start, end);
        let mut p = [0u8; 10];
        for want in results {
            let n = r.read(&mut p).unwrap();
            assert_eq!(&p[..n], want, "exclude [{start},{end})");
        }
    }
}

#[test]
fn test_empty_id() {
    let err = find_and_hash(b"aha!".as_slice(), b"", 1000).unwrap_err();
    assert!(matches!(err, Error::NoId));
    assert!(err.to_string().contains("no id"), "{err}");
}

#[test]
fn buffer_too_small() {
    let err = find_and_hash(b"aha!".as_slice(), b"abc", 2).unwrap_err();
    assert!(err.to_string().contains("buffer too small"), "{err}");
    let long = vec![b'x'; 31 * 1024 + 1];
    assert!(matches!(
        find_and_hash(b"x".as_slice(), &long, 0),
        Err(Error::BufferTooSmall { .. })
    ));
}
