//! The remote backends of the test harness: `file://` always, plus every server
//! `.ci/servers.sh` started (it exports `SGCACHE_TEST_*_URL`).

use std::path::Path;
use std::process::Command;

/// Remote URL plus the environment its credentials need.
pub struct Backend {
    pub name: &'static str,
    pub url: String,
    pub env: Vec<(&'static str, String)>,
}

pub fn var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

pub fn backends(file_root: &Path) -> Vec<Backend> {
    let mut v = vec![Backend {
        name: "file",
        url: format!("file://{}", file_root.display()),
        env: vec![],
    }];
    if let Some(url) = var("SGCACHE_TEST_S3_URL") {
        v.push(Backend {
            name: "s3",
            url,
            env: vec![
                (
                    "AWS_ACCESS_KEY_ID",
                    var("SGCACHE_TEST_S3_ACCESS_KEY").unwrap_or_default(),
                ),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    var("SGCACHE_TEST_S3_SECRET_KEY").unwrap_or_default(),
                ),
            ],
        });
    }
    if let Some(url) = var("SGCACHE_TEST_REDIS_URL") {
        v.push(Backend {
            name: "redis",
            url,
            env: vec![],
        });
    }
    if let Some(url) = var("SGCACHE_TEST_HTTP_URL") {
        v.push(Backend {
            name: "http",
            url,
            env: vec![],
        });
    }
    if let Some(url) = var("SGCACHE_TEST_AZBLOB_URL") {
        let key = var("SGCACHE_TEST_AZBLOB_ACCOUNT_KEY").unwrap_or_default();
        v.push(Backend {
            name: "azblob",
            url: format!("{url}&account_key={key}"),
            env: vec![],
        });
    }
    if let Some(url) = var("SGCACHE_TEST_GCS_URL") {
        v.push(Backend {
            name: "gcs",
            url,
            env: vec![],
        });
    }
    let all = [
        "SGCACHE_TEST_S3_URL",
        "SGCACHE_TEST_REDIS_URL",
        "SGCACHE_TEST_HTTP_URL",
        "SGCACHE_TEST_AZBLOB_URL",
        "SGCACHE_TEST_GCS_URL",
    ];
    for k in all {
        if var(k).is_none() {
            eprintln!(
                "SKIP backend {k}: not set (run under scripts/test.sh, which starts the servers)"
            );
        }
    }
    v
}

/// A go command through sgcache with the remote `b` (plus extra environment).
pub fn go_remote(
    module: &Path,
    cache: &Path,
    b: &Backend,
    namespace: &str,
    extra: &[(&str, &str)],
) -> Command {
    let mut c = super::go_remote(module, cache, &b.url, namespace);
    c.envs(b.env.iter().map(|(k, v)| (k, v)));
    c.envs(extra.iter().copied());
    c
}
