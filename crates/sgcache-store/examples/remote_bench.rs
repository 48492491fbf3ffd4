//! Rough remote-tier figures for one URL: upload throughput, per-get latency of small
//! objects (entry + object, verified), and download throughput of a large one.
//!
//! `cargo run --release -p sgcache-store --example remote_bench -- <url> [key=value …]`
//! where the key=value pairs go to `RemoteConfig::extra` (credentials), plus the
//! optional `zstd=<level|off>`, `n=<small objects>`, `big_mib=<size>`.
//! `bench/remote_bench.sh` runs it against every server of `.ci/servers.sh`.

#![allow(clippy::print_stdout)] // a bench reports on stdout

use std::time::{Duration, Instant};

use std::sync::Arc;

use sgcache_store::{Check, RemoteCache, RemoteConfig, UploadJob, UploadQueue};
use sgcache_types::{ActionId, IndexEntry, Metrics, OutputId};
use sha2::{Digest, Sha256};

fn noise(len: usize, mut x: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: remote_bench <url> [key=value …]");
    let mut cfg = RemoteConfig::new(url);
    let (mut n, mut big_mib) = (200usize, 64usize);
    for kv in args {
        let (k, v) = kv.split_once('=').expect("key=value");
        match k {
            "zstd" => {
                cfg.compression_level = if v == "off" {
                    None
                } else {
                    Some(v.parse().unwrap())
                }
            }
            "n" => n = v.parse().unwrap(),
            "big_mib" => big_mib = v.parse().unwrap(),
            _ => {
                cfg.extra.insert(k.to_string(), v.to_string());
            }
        }
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    cfg.namespace = format!("bench-{seed:x}");
    cfg.upload_deadline = Duration::from_secs(600);
    let r = RemoteCache::new(cfg, Arc::new(Metrics::default())).unwrap();
    let uploads = UploadQueue::start(r.clone(), &tokio::runtime::Handle::current());
    let dir = tempfile::tempdir().unwrap();

    // n small objects of 16 KiB (half compressible), then one big incompressible one.
    let mut objs = Vec::new();
    for i in 0..n {
        let mut data = noise(8 << 10, seed ^ i as u64);
        data.extend(std::iter::repeat_n(b'a', 8 << 10));
        objs.push(data);
    }
    objs.push(noise(big_mib << 20, seed ^ 0xb16));
    let mut ids = Vec::new();
    let t = Instant::now();
    for (i, data) in objs.iter().enumerate() {
        let out = OutputId::from(<[u8; 32]>::from(Sha256::digest(data)));
        let act = ActionId::from(<[u8; 32]>::from(Sha256::digest(format!(
            "action {seed} {i}"
        ))));
        let path = dir.path().join(i.to_string());
        std::fs::write(&path, data).unwrap();
        let entry = IndexEntry {
            action: act,
            output: out,
            size: data.len() as u64,
            time_nanos: 0,
        };
        uploads
            .enqueue(UploadJob {
                entry,
                path,
                heal: false,
            })
            .unwrap();
        ids.push((act, out, data.len() as u64));
    }
    let rep = uploads.drain(Duration::from_secs(600)).await;
    let up = t.elapsed();
    assert!(rep.is_clean(), "{rep:?}");
    let total: u64 = ids.iter().map(|x| x.2).sum();
    println!("{}", r.describe());
    println!(
        "upload   {n} × 16 KiB + {big_mib} MiB: {up:?} ({:.0} MiB/s)",
        total as f64 / (1 << 20) as f64 / up.as_secs_f64()
    );

    let mut lat = Vec::new();
    for (act, out, size) in &ids[..n] {
        let t = Instant::now();
        let e = r.get_entry(act).await.found().expect("entry");
        let mut sink = Vec::new();
        assert!(
            r.fetch_object(out, e.size, &mut sink, Check::Here)
                .await
                .unwrap()
        );
        assert_eq!(sink.len() as u64, *size);
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    println!(
        "get      16 KiB entry+object, sequential: p50 {:?}  p90 {:?}  p99 {:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );

    let (act, out, size) = ids[n];
    let t = Instant::now();
    let e = r.get_entry(&act).await.found().unwrap();
    let mut sink = std::io::sink();
    assert!(
        r.fetch_object(&out, e.size, &mut sink, Check::Here)
            .await
            .unwrap()
    );
    let d = t.elapsed();
    println!(
        "download {big_mib} MiB verified: {d:?} ({:.0} MiB/s)",
        size as f64 / (1 << 20) as f64 / d.as_secs_f64()
    );
    for f in r.metrics().snapshot().nonzero() {
        println!("  {} = {}", f.name, f.value);
    }
}
