//! Malformed protocol input: a table of hand-written hostile streams fed to the real binary.
//!
//! For every stream: no panic (exit 0 or 1, never 101 or a signal, no "panicked" on stderr),
//! every reply line is JSON answering a request that was sent, the requests that must fail get
//! an `Err`, nothing is written to the cache for a bad request (no `-a`, `-d` or temp file),
//! and peak RSS (from `wait4`) stays small even for a claimed 1 TB `BodySize`.
//! The fuzz targets `fuzz/fuzz_targets/protocol_*.rs` cover the same decoder with random input.
#![allow(clippy::print_stderr)]

use base64_simd::STANDARD as B64;
use sha2::{Digest, Sha256};

fn b64(b: &[u8]) -> String {
    B64.encode_to_string(b)
}

const A: [u8; 32] = [7; 32];

fn a64() -> String {
    b64(&A)
}

fn put_line(id: i64, out: &[u8], size: i64) -> String {
    format!(
        "{{\"ID\":{id},\"Command\":\"put\",\"ActionID\":\"{}\",\"OutputID\":\"{}\",\"BodySize\":{size}}}\n\n",
        a64(),
        b64(out)
    )
}

fn good_put(id: i64, body: &[u8]) -> String {
    let out: [u8; 32] = Sha256::digest(body).into();
    let mut s = put_line(id, &out, body.len() as i64);
    if !body.is_empty() {
        s.push_str(&format!("\"{}\"\n", b64(body)));
    }
    s
}

fn get(id: i64) -> String {
    format!(
        "{{\"ID\":{id},\"Command\":\"get\",\"ActionID\":\"{}\"}}\n\n",
        a64()
    )
}

const CLOSE: &str = "{\"ID\":999,\"Command\":\"close\"}\n\n";

struct Case {
    name: &'static str,
    input: Vec<u8>,
    /// Expected exit code: 0 (served to the end) or 1 (stream was not the protocol).
    exit: i32,
    /// Request IDs that must be answered with `Err`.
    errs: Vec<i64>,
    /// Request IDs that must be answered without `Err`.
    oks: Vec<i64>,
    /// Files expected in the cache afterwards (from the good requests only).
    files: usize,
}

fn cases() -> Vec<Case> {
    let body = b"hello, cache";
    let out: [u8; 32] = Sha256::digest(body).into();
    let good = good_put(1, body);
    let tb = 1i64 << 40;
    let mut v = vec![
        Case {
            name: "truncated request line",
            input: b"{\"ID\":1,\"Command\":\"get\",\"Acti".to_vec(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "truncated line after a good request",
            input: format!("{}{{\"ID\":2,\"Comm", get(1)).into_bytes(),
            exit: 1,
            errs: vec![],
            oks: vec![1],
            files: 0,
        },
        Case {
            name: "1 TB BodySize, short body: Err, stream stays in sync",
            input: format!("{}\"{}\"\n{}{CLOSE}", put_line(1, &out, tb), b64(body), get(2))
                .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![2, 999],
            files: 0,
        },
        Case {
            name: "1 TB BodySize, stdin closes mid-body",
            input: format!("{}\"{}", put_line(1, &out, tb), "QUFB".repeat(4096)).into_bytes(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "i64::MAX BodySize",
            input: format!("{}\"{}\"\n{CLOSE}", put_line(1, &out, i64::MAX), b64(body))
                .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "body shorter than BodySize",
            input: format!(
                "{}\"{}\"\n{CLOSE}",
                put_line(1, &out, body.len() as i64 + 1),
                b64(body)
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "body longer than BodySize",
            input: format!(
                "{}\"{}\"\n{CLOSE}",
                put_line(1, &out, body.len() as i64 - 1),
                b64(body)
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "body does not hash to OutputID",
            input: format!(
                "{}\"{}\"\n{CLOSE}",
                put_line(1, &[9; 32], body.len() as i64),
                b64(body)
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "invalid base64 body",
            input: format!("{}\"aGVsbG8$Y2FjaGU=\"\n{CLOSE}", put_line(1, &out, 12)).into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "base64 body without padding",
            input: format!("{}\"aGVsbG8\"\n{CLOSE}", put_line(1, &out, 5)).into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "body is not a string",
            input: format!("{}[1,2,3]\n{CLOSE}", put_line(1, &out, 3)).into_bytes(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "ID is a string",
            input: format!("{{\"ID\":\"1\",\"Command\":\"get\",\"ActionID\":\"{}\"}}\n\n", a64())
                .into_bytes(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "ActionID is a number",
            input: format!("{{\"ID\":1,\"Command\":\"get\",\"ActionID\":12}}\n\n{CLOSE}")
                .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "Command is an object",
            input: format!("{{\"ID\":1,\"Command\":{{}}}}\n\n{CLOSE}").into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "BodySize is a string (body cannot be framed)",
            input: format!(
                "{{\"ID\":1,\"Command\":\"put\",\"ActionID\":\"{}\",\"OutputID\":\"{}\",\"BodySize\":\"12\"}}\n\n\"{}\"\n",
                a64(),
                b64(&out),
                b64(body)
            )
            .into_bytes(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "BodySize is a float, with a body",
            input: format!(
                "{{\"ID\":1,\"Command\":\"put\",\"ActionID\":\"{}\",\"OutputID\":\"{}\",\"BodySize\":12.5}}\n\n\"{}\"\n{CLOSE}",
                a64(),
                b64(&out),
                b64(body)
            )
            .into_bytes(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "negative BodySize",
            input: format!("{}{CLOSE}", put_line(1, &out, -5)).into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "ActionID of 31 bytes",
            input: format!(
                "{{\"ID\":1,\"Command\":\"get\",\"ActionID\":\"{}\"}}\n\n{CLOSE}",
                b64(&[1; 31])
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "ActionID of 33 bytes on a put with a body (body skipped)",
            input: format!(
                "{{\"ID\":1,\"Command\":\"put\",\"ActionID\":\"{}\",\"OutputID\":\"{}\",\"BodySize\":12}}\n\n\"{}\"\n{}{CLOSE}",
                b64(&[1; 33]),
                b64(&out),
                b64(body),
                get(2)
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![2, 999],
            files: 0,
        },
        Case {
            name: "OutputID of 16 bytes",
            input: format!("{}\"{}\"\n{CLOSE}", put_line(1, &[3; 16], 12), b64(body)).into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "ActionID not base64",
            input: format!(
                "{{\"ID\":1,\"Command\":\"get\",\"ActionID\":\"../../etc/passwd\"}}\n\n{CLOSE}"
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "put without ActionID",
            input: format!(
                "{{\"ID\":1,\"Command\":\"put\",\"OutputID\":\"{}\",\"BodySize\":12}}\n\n\"{}\"\n{CLOSE}",
                b64(&out),
                b64(body)
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "unknown command with a body (body skipped)",
            input: format!(
                "{{\"ID\":1,\"Command\":\"frobnicate\",\"BodySize\":12}}\n\n\"{}\"\n{}{CLOSE}",
                b64(body),
                get(2)
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![2, 999],
            files: 0,
        },
        Case {
            name: "duplicate request IDs: the second put writes nothing",
            input: format!(
                "{good}{}\"{}\"\n{CLOSE}",
                put_line(1, &Sha256::digest(b"other"), 5),
                b64(b"other")
            )
            .into_bytes(),
            exit: 0,
            errs: vec![1],
            oks: vec![1, 999],
            files: 2,
        },
        Case {
            name: "request ID 0",
            input: format!("{}{CLOSE}", get(0)).into_bytes(),
            exit: 0,
            errs: vec![0],
            oks: vec![999],
            files: 0,
        },
        Case {
            name: "stdin closes mid-body of a valid put",
            input: good.as_bytes()[..good.len() - 6].to_vec(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "stdin closes between request and body",
            input: put_line(1, &out, 12).into_bytes(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "not JSON",
            input: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "JSON array / null / number lines",
            input: b"[1,2]\nnull\n42\n".to_vec(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "deeply nested JSON (no stack overflow)",
            input: {
                let mut s = b"{\"ID\":1,\"X\":".to_vec();
                s.extend(std::iter::repeat_n(b'[', 200_000));
                s.extend_from_slice(b"\n\n");
                s
            },
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "request line longer than 1 MiB",
            input: vec![b'{'; 3 << 20],
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "invalid UTF-8 and NUL bytes in a line",
            input: b"{\"ID\":1,\"Command\":\"g\xff\x00et\"}\n\n".to_vec(),
            exit: 1,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
        Case {
            name: "hostile extra fields (DiskPath, ../) are ignored",
            input: format!(
                "{{\"ID\":1,\"Command\":\"put\",\"ActionID\":\"{}\",\"OutputID\":\"{}\",\"BodySize\":12,\"DiskPath\":\"/etc/passwd\",\"Dir\":\"../..\"}}\n\n\"{}\"\n{CLOSE}",
                a64(),
                b64(&out),
                b64(body)
            )
            .into_bytes(),
            exit: 0,
            errs: vec![],
            oks: vec![1, 999],
            files: 2,
        },
        Case {
            name: "CRLF line endings",
            input: format!("{}{CLOSE}", good.replace('\n', "\r\n")).into_bytes(),
            exit: 0,
            errs: vec![],
            oks: vec![1, 999],
            files: 2,
        },
        Case {
            name: "empty input",
            input: vec![],
            exit: 0,
            errs: vec![],
            oks: vec![],
            files: 0,
        },
    ];
    // Many bad requests in one stream: each answered, none written, the good one still lands.
    let mut storm = String::new();
    for i in 0..200 {
        storm.push_str(&format!(
            "{}\"{}\"\n",
            put_line(100 + i, &[i as u8; 32], 12),
            b64(body)
        ));
    }
    storm.push_str(&good);
    storm.push_str(CLOSE);
    v.push(Case {
        name: "200 puts with wrong OutputIDs, then a good one",
        input: storm.into_bytes(),
        exit: 0,
        errs: (100..300).collect(),
        oks: vec![1, 999],
        files: 2,
    });
    v
}

#[test]
fn hostile_streams() {
    let cases = cases();
    let mut failures = Vec::new();
    let mut max_rss = 0;
    for case in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let o = crate::common::serve_input(tmp.path(), case.input.clone());
        max_rss = max_rss.max(o.maxrss_kb);
        let mut bad = Vec::new();
        if o.signaled || o.stderr.contains("panicked") || o.code == Some(101) {
            bad.push(format!(
                "crashed (code {:?}, signaled {})",
                o.code, o.signaled
            ));
        }
        if o.code != Some(case.exit) {
            bad.push(format!("exit {:?} want {}", o.code, case.exit));
        }
        if o.maxrss_kb > 64 * 1024 {
            bad.push(format!("peak RSS {} KiB", o.maxrss_kb));
        }
        // An ID may be answered twice (duplicate IDs; ID 0 is also the handshake's): look
        // for a reply of the wanted kind.
        let err_reply = |id: i64| {
            o.replies
                .iter()
                .find(|r| r["ID"] == id && r["Err"].is_string())
        };
        let ok_reply = |id: i64| {
            o.replies.iter().find(|r| {
                r["ID"] == id && r.get("Err").is_none() && r.get("KnownCommands").is_none()
            })
        };
        for &id in &case.errs {
            match err_reply(id) {
                Some(r) if r["Err"].is_string() => {
                    let e = r["Err"].as_str().unwrap();
                    if e.contains('\n') || e.is_empty() {
                        bad.push(format!("Err for {id} is not one line: {e:?}"));
                    }
                }
                other => bad.push(format!("request {id}: want an Err reply, got {other:?}")),
            }
        }
        for &id in &case.oks {
            match ok_reply(id) {
                Some(r) if r.get("Err").is_none() => {}
                other => bad.push(format!("request {id}: want success, got {other:?}")),
            }
        }
        for r in &o.replies {
            let id = r["ID"].as_i64().unwrap_or(-1);
            if id != 0 && !case.errs.contains(&id) && !case.oks.contains(&id) && id != 2 {
                bad.push(format!("unexpected reply {r}"));
            }
        }
        let f = crate::common::cache_files(tmp.path());
        if f.len() != case.files || f.iter().any(|n| n.contains(".tmp-")) {
            bad.push(format!("cache holds {f:?}, want {} entries", case.files));
        }
        if !bad.is_empty() {
            failures.push(format!(
                "{}: {}\nstderr: {}",
                case.name,
                bad.join("; "),
                o.stderr
            ));
        }
    }
    eprintln!(
        "protocol: {} hostile streams, {} failures, 0 panics expected; peak RSS {} KiB",
        cases.len(),
        failures.len(),
        max_rss
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
