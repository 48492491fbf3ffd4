//! The floor for bench/roundtrip.sh: a GOCACHEPROG responder that does no work at all (every
//! get is answered with the same canned hit; useless to the go command, but it shows what
//! the pipe round trip alone costs on this machine).
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
fn main() {
    let mut inp = unsafe { std::fs::File::from_raw_fd(0) };
    let mut out = unsafe { std::fs::File::from_raw_fd(1) };
    out.write_all(b"{\"ID\":0,\"KnownCommands\":[\"get\",\"put\",\"close\"]}\n")
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
            if s.contains("close") {
                resp.extend_from_slice(format!("{{\"ID\":{id}}}\n").as_bytes());
                out.write_all(&resp).unwrap();
                return;
            }
            resp.extend_from_slice(format!("{{\"ID\":{id},\"OutputID\":\"UccQ8SeUJQvzPrt6w1VpZRGTE/MdK5Imabn6taI/J0Q=\",\"Size\":4206,\"Time\":\"2026-11-21T08:38:01.020631783Z\",\"DiskPath\":\"/tmp/warmbench/51/51c710f12794250bf33ebb7ac3556965119313f31d2b922669b9fab5a23f2744-d\"}}\n").as_bytes());
        }
        if !resp.is_empty() {
            out.write_all(&resp).unwrap();
        }
    }
}
