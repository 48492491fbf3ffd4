//! The end-to-end tests of the sgcache binary, as one test binary (one link instead of one per
//! file): every test runs the real `sgcache`, most of them the real go command against it, and
//! the remote ones real servers (`.ci/servers.sh`).

// Tests read where the servers and toolchains of the harness are.
#![allow(clippy::disallowed_methods)]
// Tests say on stderr what they measured and why they skip.
#![allow(clippy::print_stderr)]

mod buildid_cli;
mod ci_e2e;
mod common;
mod daemon_e2e;
mod explain_e2e;
mod go_e2e;
mod metrics_e2e;
mod outage_e2e;
mod prefetch_e2e;
mod protocol;
mod reliability_compat;
mod reliability_concurrency;
mod reliability_crash;
mod reliability_disk;
mod reliability_paths;
mod reliability_protocol;
mod reliability_remote_faults;
mod remote_e2e;
mod toolchains;
mod trust_e2e;
