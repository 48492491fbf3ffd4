//! The daemon's opt-in Prometheus endpoint (`SGCACHE_METRICS_ADDR`), for long-lived daemons on
//! shared build hosts and developer machines.
//!
//! `GET /metrics` answers with every counter of the daemon's [`Metrics`](sgcache_types::Metrics)
//! (the fields `stats --json` shows under `counters`, with the same names and help, as
//! `sgcache_<name>_total` counters) plus a few gauges of its state, in the OpenMetrics text
//! format that Prometheus scrapes (encoded by `prometheus-client`). Values are read at each
//! scrape; nothing is kept here.
//!
//! The server is `tiny_http` on one thread of its own: a scrape every few seconds needs no
//! share of the runtime's two workers, and a slow scraper cannot delay a lookup. It binds
//! loopback unless the configuration names another interface (see
//! [`crate::config::parse_metrics_addr`]); a bind failure stops the daemon before it serves.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::wire::DaemonStatus;

/// What a scrape reads: the daemon's state at that moment.
pub type StatusFn = Arc<dyn Fn() -> DaemonStatus + Send + Sync>;

/// The content type of the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves `/metrics` from `status` on a thread of its own for the life of
/// the process. Returns the bound address (the port is chosen by the system for port 0).
pub fn serve(addr: SocketAddr, status: StatusFn) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("metrics endpoint (SGCACHE_METRICS_ADDR) `{addr}`: {e}"))?;
    let bound = listener.local_addr()?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| anyhow::anyhow!("metrics endpoint `{bound}`: {e}"))?;
    std::thread::Builder::new()
        .name("sgcache-metrics".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                let path = req.url().split('?').next().unwrap_or("");
                let resp = match (req.method(), path) {
                    (tiny_http::Method::Get, "/metrics") => match encode(&status()) {
                        Ok(body) => tiny_http::Response::from_string(body).with_header(
                            tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
                                .expect("a valid header"),
                        ),
                        Err(e) => tiny_http::Response::from_string(format!("encoding: {e}\n"))
                            .with_status_code(500),
                    },
                    _ => tiny_http::Response::from_string("sgcache: try GET /metrics\n")
                        .with_status_code(404),
                };
                if let Err(e) = req.respond(resp) {
                    tracing::debug!("metrics: answering a scrape: {e}");
                }
            }
        })?;
    Ok(bound)
}

/// The text a scrape gets for `status`.
pub fn encode(status: &DaemonStatus) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::with_prefix("sgcache");
    reg.register_collector(Box::new(Scrape(status.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)?;
    Ok(out)
}

/// One scrape's values.
#[derive(Debug)]
struct Scrape(DaemonStatus);

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in self.0.metrics.fields() {
            let c = ConstCounter::new(f.value);
            c.encode(enc.encode_descriptor(f.name, f.help, None, c.metric_type())?)?;
        }
        let s = &self.0;
        let gauges: [(&str, &str, i64); 4] = [
            (
                "daemon_clients_connected",
                "Go commands connected to the daemon now.",
                s.clients_now as i64,
            ),
            (
                "daemon_uploads_pending",
                "Uploads queued or running in the daemon now.",
                s.uploads_pending as i64,
            ),
            (
                "daemon_uptime_seconds",
                "Seconds since the daemon started.",
                (s.uptime_ms / 1000) as i64,
            ),
            (
                "daemon_breaker_open",
                "1 while the circuit breaker keeps the remote switched off (open or half-open), else 0.",
                i64::from(s.breaker != "closed"),
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> DaemonStatus {
        let metrics = sgcache_types::MetricsSnapshot {
            remote_bytes_up: 1234,
            uploads: 7,
            ..Default::default()
        };
        DaemonStatus {
            pid: 1,
            uptime_ms: 5_500,
            clients_now: 2,
            uploads_pending: 3,
            breaker: "closed".into(),
            metrics,
            ..DaemonStatus::default()
        }
    }

    #[test]
    fn every_counter_is_encoded_with_its_help() {
        let s = status();
        let text = encode(&s).unwrap();
        for f in s.metrics.fields() {
            let sample = format!("\nsgcache_{}_total {}\n", f.name, f.value);
            assert!(text.contains(&sample), "no {sample:?} in:\n{text}");
            assert!(
                text.contains(&format!("# HELP sgcache_{} {}", f.name, f.help)),
                "no help for {}",
                f.name
            );
        }
        assert!(
            text.contains("\nsgcache_daemon_uploads_pending 3\n"),
            "{text}"
        );
        assert!(text.contains("\nsgcache_daemon_breaker_open 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn serves_metrics_and_404_elsewhere() {
        use std::io::{Read, Write};
        let addr = serve("127.0.0.1:0".parse().unwrap(), Arc::new(status)).unwrap();
        let get = |path: &str| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            write!(
                c,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("sgcache_remote_bytes_up_total 1234"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(get("/").starts_with("HTTP/1.1 404"));
    }
}
