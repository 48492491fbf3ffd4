//! Yardsticks for the benches, not caches: GOCACHEPROG helpers that do no file system call per
//! request.
//!
//! - With `PRELOADED_INDEX` (lines "action_hex output_hex size time_ns", written by
//!   bench/floor.sh from GOCACHE, loaded with one read at start): answers every get from
//!   memory. The floor of any helper on a warm build. It returns no `Time` (the go command
//!   then uses now) and supports no puts (a warm build makes none).
//! - With `PRELOADED_INDEX` and `COPY_FROM` (a warm GOCACHE): the same, but a hit first copies
//!   the output from `COPY_FROM` into `GOCACHE` (one `copy_file_range` per get, no hashing, no
//!   index entry), unless a background thread, copying every indexed output in index order
//!   from the start (like sgcache's prefetch), has copied it already. The floor of any
//!   helper that starts from an empty local directory and must put every output there
//!   before answering, with a free, instant remote and no verification
//!   (bench/remote_floor.sh).
//! - Without: answers every get with the same canned hit (useless to the go command; for
//!   bench/roundtrip.sh, it shows what the pipe round trip alone costs on this machine).
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64(data: &[u8]) -> String {
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(B64[(n >> 18) as usize & 63] as char);
        s.push(B64[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

fn unb64(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for ch in s.bytes() {
        let Some(x) = B64.iter().position(|&b| b == ch) else {
            break;
        };
        buf = buf << 6 | x as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            v.push((buf >> bits) as u8);
        }
    }
    v
}

fn main() {
    let dir = std::env::var("GOCACHE").unwrap_or_default();
    let idx = match std::env::var("PRELOADED_INDEX") {
        Ok(p) => std::fs::read_to_string(p).unwrap(),
        Err(_) => String::new(),
    };
    let canned = idx.is_empty();
    let copy_from = std::env::var("COPY_FROM").ok();
    // Outputs copied so far (by the prefetch thread or a get), by destination path.
    let copied = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let dlen = dir.len();
    let copy = move |from: &str, to: &str| {
        if copied.lock().unwrap().contains(to) {
            return;
        }
        let tmp = format!("{to}.tmp{:?}", std::thread::current().id());
        std::fs::copy(format!("{from}{}", &to[dlen..]), &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
        copied.lock().unwrap().insert(to.to_string());
    };
    if let Some(from) = &copy_from {
        for i in 0..256 {
            std::fs::create_dir_all(format!("{dir}/{i:02x}")).unwrap();
        }
        let outs: Vec<String> = idx
            .lines()
            .map(|l| {
                let o = l.split(' ').nth(1).unwrap();
                format!("{dir}/{}/{o}-d", &o[..2])
            })
            .collect();
        let (from, copy) = (from.clone(), copy.clone());
        std::thread::spawn(move || outs.iter().for_each(|o| copy(&from, o)));
    }
    let mut map: HashMap<String, String> = HashMap::new();
    for l in idx.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let out = (0..32)
            .map(|i| u8::from_str_radix(&f[1][2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<u8>>();
        map.insert(
            f[0].to_string(),
            format!(
                "\"OutputID\":\"{}\",\"Size\":{},\"DiskPath\":\"{}/{}/{}-d\"}}\n",
                b64(&out),
                f[2],
                dir,
                &f[1][..2],
                f[1]
            ),
        );
    }
    let mut inp = unsafe { std::fs::File::from_raw_fd(0) };
    let mut out = unsafe { std::fs::File::from_raw_fd(1) };
    out.write_all(b"{\"ID\":0,\"KnownCommands\":[\"get\",\"close\"]}\n")
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = inp.read(&mut buf).unwrap();
        if n == 0 {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut resp = Vec::new();
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            if line.len() < 3 {
                continue;
            }
            let s = String::from_utf8_lossy(&line);
            let id: String = s[6..].chars().take_while(|c| c.is_ascii_digit()).collect();
            if s.contains("\"close\"") {
                resp.extend_from_slice(format!("{{\"ID\":{id}}}\n").as_bytes());
                out.write_all(&resp).unwrap();
                return;
            }
            if canned {
                resp.extend_from_slice(format!("{{\"ID\":{id},\"OutputID\":\"UccQ8SeUJQvzPrt6w1VpZRGTE/MdK5Imabn6taI/J0Q=\",\"Size\":4206,\"DiskPath\":\"/nonexistent/51/51c7-d\"}}\n").as_bytes());
                continue;
            }
            let a = s
                .split("\"ActionID\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("");
            let hexa: String = unb64(a).iter().map(|b| format!("{b:02x}")).collect();
            match map.get(&hexa) {
                Some(hit) if copy_from.is_some() => {
                    // "DiskPath":"DIR/xx/OUT-d": copy it from the warm directory first.
                    let path = hit.split("\"DiskPath\":\"").nth(1).unwrap();
                    copy(copy_from.as_deref().unwrap(), path.split('"').next().unwrap());
                    resp.extend_from_slice(format!("{{\"ID\":{id},{hit}").as_bytes())
                }
                Some(hit) => resp.extend_from_slice(format!("{{\"ID\":{id},{hit}").as_bytes()),
                None => {
                    resp.extend_from_slice(format!("{{\"ID\":{id},\"Miss\":true}}\n").as_bytes())
                }
            }
        }
        if !resp.is_empty() {
            out.write_all(&resp).unwrap();
        }
    }
}
