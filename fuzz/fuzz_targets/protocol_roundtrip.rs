//! Requests as the go command writes them (`cmd/go/internal/cache/prog.go` `writeToChild`:
//! JSON line, blank line, then `"<base64>"` for a put with a body), built from fuzz input,
//! then decoded: every field and every body byte must come back exactly, and the stream must
//! stay in sync to the end. Both `OutputID` (Go ≥ 1.24) and `ObjectID` (Go 1.21–1.23) are used.
#![no_main]

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use sgcache_protocol::{Command, Frame, RequestReader};
use sgcache_types::{ActionId, OutputId};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn id(&mut self) -> [u8; 32] {
        let mut a = [0u8; 32];
        for b in &mut a {
            *b = self.byte();
        }
        a
    }
    fn body(&mut self) -> Vec<u8> {
        let n = usize::from(self.byte()) * usize::from(self.byte() % 8 + 1);
        (0..n).map(|_| self.byte()).collect()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let cap = usize::from(inp.byte() % 32) + 1;
    let b64 = &base64_simd::STANDARD;
    let mut stream = Vec::new();
    let mut want = Vec::new();
    let mut id = 0i64;
    while !inp.0.is_empty() && want.len() < 64 {
        id += 1;
        let kind = inp.byte() % 3;
        let action = inp.id();
        match kind {
            0 => {
                stream.extend_from_slice(
                    format!(
                        "{{\"ID\":{id},\"Command\":\"get\",\"ActionID\":\"{}\"}}\n\n",
                        b64.encode_to_string(action)
                    )
                    .as_bytes(),
                );
                want.push((id, Command::Get, Some(action), None, Vec::new()));
            }
            _ => {
                let out = inp.id();
                let body = inp.body();
                let field = if kind == 1 { "OutputID" } else { "ObjectID" };
                stream.extend_from_slice(
                    format!(
                        "{{\"ID\":{id},\"Command\":\"put\",\"ActionID\":\"{}\",\"{field}\":\"{}\",\"BodySize\":{}}}\n\n",
                        b64.encode_to_string(action),
                        b64.encode_to_string(out),
                        body.len()
                    )
                    .as_bytes(),
                );
                if !body.is_empty() {
                    stream.push(b'"');
                    stream.extend_from_slice(b64.encode_to_string(&body).as_bytes());
                    stream.extend_from_slice(b"\"\n");
                }
                want.push((id, Command::Put, Some(action), Some(out), body));
            }
        }
    }
    stream.extend_from_slice(b"{\"ID\":1000000,\"Command\":\"close\"}\n\n");

    let mut reader = RequestReader::new(BufReader::with_capacity(cap, &stream[..]));
    for (id, command, action, out, body) in want {
        let Frame::Request(r) = reader.next_request().expect("well-formed stream") else {
            panic!("early end of input");
        };
        assert_eq!(r.id, id);
        assert_eq!(r.command, command);
        assert!(r.fault.is_none(), "{:?}", r.fault);
        assert_eq!(r.action_id, action.map(ActionId::from));
        assert_eq!(r.output_id, out.map(OutputId::from));
        assert_eq!(r.body_size, body.len() as u64);
        if !body.is_empty() {
            let mut got = Vec::new();
            reader
                .read_body(r.body_size, &mut got)
                .expect("stream in sync")
                .expect("good body");
            assert_eq!(got, body);
        }
    }
    let Frame::Request(r) = reader.next_request().expect("close") else {
        panic!("close missing");
    };
    assert_eq!(r.command, Command::Close);
    assert!(matches!(reader.next_request(), Ok(Frame::Eof)));
});
