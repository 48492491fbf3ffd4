//! A TCP proxy on loopback that holds every client→server chunk for DELAY_MS, so every
//! request pays that much before the server sees it (responses pass straight through).
//!
//!     latency_proxy LISTEN_PORT TARGET_PORT DELAY_MS
//!
//! The benches' latency injector. Plain threads and blocking copies: a Python asyncio
//! version of it burned ~250 ms of CPU relaying `go build std`'s 168 MB, on the same two
//! cores as the build it was measuring. Serves loopback only; stops when killed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: latency_proxy LISTEN_PORT TARGET_PORT DELAY_MS");
        std::process::exit(2);
    }
    let target = format!("127.0.0.1:{}", args[2]);
    let delay = Duration::from_secs_f64(args[3].parse::<f64>().expect("DELAY_MS") / 1000.0);
    let listener = TcpListener::bind(format!("127.0.0.1:{}", args[1])).expect("bind");
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(&target) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (c2, s2) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        std::thread::spawn(move || pipe(client, server, delay));
        std::thread::spawn(move || pipe(s2, c2, Duration::ZERO));
    }
}
