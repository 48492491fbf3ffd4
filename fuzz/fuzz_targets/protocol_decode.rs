//! The request decoder and body reader over arbitrary bytes, driven the way the serve loop
//! drives them: read a request; for a put (or a faulty request) with a body, stream the body
//! into a sink capped at 1 MiB (a refusing sink, like a full disk); repeat until end of input
//! or a framing error. Must not panic, hang or allocate in proportion to a claimed `BodySize`
//! (run with `-malloc_limit_mb`), and must keep the codec's promises:
//! * at most `BodySize` bytes ever reach the sink;
//! * a body reported good delivered exactly `BodySize` bytes;
//! * every step consumes input (no endless loop on a stuck stream).
#![no_main]

use std::io::{self, BufReader, Write};

use libfuzzer_sys::fuzz_target;
use sgcache_protocol::{Command, Frame, RequestReader};

/// Like a cache file on a small disk: accepts up to `cap` bytes, then fails.
struct CappedSink {
    got: u64,
    cap: u64,
}

impl Write for CappedSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.got + b.len() as u64 > self.cap {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "sink full"));
        }
        self.got += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the input buffer size, so frames split at every boundary.
    let (cap, input) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c % 64) + 1, rest),
        None => (1, data),
    };
    let mut reader = RequestReader::new(BufReader::with_capacity(cap, input));
    for _ in 0..=input.len() + 1 {
        let req = match reader.next_request() {
            Ok(Frame::Request(r)) => r,
            Ok(Frame::Eof) | Err(_) => return,
        };
        let has_body =
            req.body_size > 0 && matches!(req.command, Command::Put | Command::Unknown(_));
        if !has_body {
            continue;
        }
        let mut sink = CappedSink {
            got: 0,
            cap: 1 << 20,
        };
        match reader.read_body(req.body_size, &mut sink) {
            Err(_) => return,
            Ok(Ok(())) => assert_eq!(sink.got, req.body_size, "good body of the wrong length"),
            Ok(Err(_)) => assert!(
                sink.got <= req.body_size,
                "more than BodySize reached the sink"
            ),
        }
    }
    panic!("decoder did not make progress");
});
