//! Measures the explain pipeline on a saved transcript and action graph, for the figures in
//! docs/explain.md:
//!
//! ```sh
//! GODEBUG=gocachehash=1,gocachetest=1 go build -debug-actiongraph=/tmp/g.json std 2>/tmp/t.txt
//! cargo build --workspace --release --examples
//! target/release/examples/measure /tmp/t.txt /tmp/g.json [--out BASELINE] [--against BASELINE] [--godebug VALUE] [--dump]
//! ```
//!
//! Prints the parse, join and encode times and the baseline's size; `--out` writes the
//! baseline, `--against` prints the text report against another one, `--godebug` is the
//! GODEBUG a plain run would have (default: unset), `--dump` prints the test results.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use sgcache_explain::{Graph, Limits, Options, Run, Transcript, baseline, compare, render};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [transcript, graph, rest @ ..] = args.as_slice() else {
        eprintln_usage();
        return;
    };
    let flag = |name: &str| -> Option<&String> {
        rest.iter()
            .position(|a| a == name)
            .and_then(|i| rest.get(i + 1))
    };
    let (out, against) = (flag("--out"), flag("--against"));
    let dump = rest.iter().any(|a| a == "--dump");
    let t_bytes = std::fs::read(transcript).expect("read the transcript");
    let g_bytes = std::fs::read(graph).expect("read the action graph");
    let t0 = Instant::now();
    let t = Transcript::parse(&t_bytes, Limits::default());
    let t1 = Instant::now();
    let g = Graph::parse(&g_bytes).expect("parse the action graph");
    let t2 = Instant::now();
    let opts = Options {
        godebug: flag("--godebug").map(|g| g.clone().into_bytes()),
        ..Options::default()
    };
    let run = Run::build(&t, &g, &opts);
    let t3 = Instant::now();
    let b = baseline::encode(&run);
    let t4 = Instant::now();
    let back = baseline::decode(&b).expect("decode what was encoded");
    let t5 = Instant::now();
    assert_eq!(back.actions, run.actions);
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    println!(
        "transcript {} bytes, {} lines, {} records ({} unverified), {} test lines",
        t_bytes.len(),
        t.stats.lines,
        t.stats.records,
        t.stats.unverified,
        t.stats.test_lines
    );
    for r in t.records.iter().filter(|r| !r.verified) {
        println!("unverified: {} ({} writes)", r.name, r.writes.len());
    }
    println!(
        "action graph {} bytes, {} actions",
        g_bytes.len(),
        g.actions.len()
    );
    println!(
        "run: {} cacheable actions ({} missed); notes: {:?}",
        run.actions.len(),
        run.actions.iter().filter(|a| a.ran).count(),
        run.notes
    );
    println!(
        "parse transcript {:.1} ms, action graph {:.1} ms, join {:.1} ms, encode {:.1} ms, decode {:.1} ms; total parse+join {:.1} ms",
        ms(t0, t1),
        ms(t1, t2),
        ms(t2, t3),
        ms(t3, t4),
        ms(t4, t5),
        ms(t0, t3)
    );
    println!(
        "baseline {} bytes ({:.1} KiB)",
        b.len(),
        b.len() as f64 / 1024.0
    );
    if dump {
        for a in run
            .actions
            .iter()
            .filter(|a| a.mode == sgcache_explain::Mode::Test)
        {
            println!("{a:#?}");
        }
        println!("{:#?}", run.tests);
    }
    if let Some(out) = out {
        std::fs::write(out, &b).expect("write the baseline");
    }
    if let Some(against) = against {
        let base = baseline::decode(&std::fs::read(against).expect("read AGAINST"))
            .expect("decode AGAINST");
        let report = compare(&run, &base, against);
        print!("{}", render::text(&report));
    }
}

fn eprintln_usage() {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "usage: measure TRANSCRIPT ACTION_GRAPH [--out FILE] [--against FILE] [--godebug VALUE] [--dump]"
    );
}
