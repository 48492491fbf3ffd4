//! The explain transcript parser on arbitrary bytes: no panic, bounded memory, and whatever
//! it parses goes through the rest of the pipeline (join with an action graph, baseline
//! encode → decode round trip, comparison, rendering) without a panic either.
//!
//! Input: transcript bytes, optionally followed by `\0` and an action graph's JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sgcache_explain::{Graph, Limits, Options, Run, Transcript, baseline, compare, render};

fuzz_target!(|input: &[u8]| {
    let (text, graph) = match input.iter().position(|&b| b == 0) {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &b""[..]),
    };
    let limits = Limits {
        max_line: 4096,
        max_retained: 1 << 20,
        max_open: 64,
    };
    let t = Transcript::parse(text, limits);
    assert!(t.stats.retained <= limits.max_retained as u64);
    let g = Graph::parse(graph).unwrap_or_default();
    let run = Run::build(&t, &g, &Options::default());
    let b = baseline::encode(&run);
    let back = baseline::decode(&b).expect("a baseline this code wrote decodes");
    assert_eq!(back.actions, run.actions);
    let _ = render::text(&compare(&run, &back, "fuzz"));
    // The same bytes as a baseline: an error or a run, never a panic.
    let _ = baseline::decode(input);
});
