//! Signed entries with the real go command and a real server (nginx when the harness started
//! it, else a directory): a pull request reads `main` but cannot make `main` or a release
//! job use anything it forged; keys rotate; bad key material is one clear error.
//!
//! Actors (issue: "a reader must not be able to forge"):
//! - A, the `main` job: holds the secret key, writes namespace `main`;
//! - B, a pull request: public key only, writes `pr-7`, reads `main`;
//! - C, a release job: public key only, writes `release`, reads `main`.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use sgcache_store::format::namespace::{encode_namespace, plain_action_key};
use sgcache_store::format::{entry, manifest};
use sgcache_store::{Body, Layout, Manifest, SecretKey, Store, open_store, read_all};
use sgcache_types::{ActionId, IndexEntry, OutputId};

use crate::common::backends::{Backend, backends, go_remote};
use crate::common::{bin, build_x, compiles, have_go, metrics, summary, write_tiny_module};

/// A key pair from `sgcache keygen` (the CLI, as a user gets one).
struct Keys {
    secret: String,
    public: String,
}

fn keygen() -> Keys {
    let out = Command::new(bin()).arg("keygen").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let secret = lines[0]
        .strip_prefix("SGCACHE_SIGNING_KEY=")
        .unwrap()
        .to_owned();
    let public = lines[1]
        .strip_prefix("SGCACHE_TRUSTED_KEYS=")
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("sgsk1_") && public.starts_with("sgpk1_"));
    Keys { secret, public }
}

/// The real server the tests poison: nginx (plain layout) if the harness started it.
fn server(tmp: &Path) -> Backend {
    let all = backends(&tmp.join("remote"));
    let n = all.len();
    all.into_iter()
        .find(|b| b.name == "http")
        .unwrap_or_else(|| {
            eprintln!(
                "trust_e2e: no nginx (SGCACHE_TEST_HTTP_URL); using a directory ({n} backends)"
            );
            backends(&tmp.join("remote")).into_iter().next().unwrap()
        })
}

/// Direct access to the store behind sgcache's back, as an attacker with write access has.
struct Raw {
    store: Arc<dyn Store>,
    layout: Layout,
    rt: tokio::runtime::Runtime,
}

impl Raw {
    fn open(b: &Backend) -> Raw {
        let (store, layout) = open_store(&b.url, &BTreeMap::new()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Raw { store, layout, rt }
    }

    fn ac_key(&self, ns: &str, a: &ActionId) -> String {
        match self.layout {
            Layout::Framed => format!("{}/ac/{}", encode_namespace(ns), a.hex()),
            Layout::Plain => format!("ac/{}", hex::encode(plain_action_key(ns, a))),
        }
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.rt.block_on(async {
            let s = self.store.get(key).await.unwrap()?;
            Some(read_all(s, key, 1 << 24).await.unwrap())
        })
    }

    fn put(&self, key: &str, v: Vec<u8>) {
        self.rt
            .block_on(self.store.put(key, Body::from_bytes(v.into())))
            .unwrap();
    }
}

/// The index entries of a local tier (every action it holds).
fn entries(cache: &Path) -> Vec<IndexEntry> {
    let disk = sgcache_disk::DiskCache::open(cache).unwrap();
    let mut v = Vec::new();
    disk.scan(|item| {
        if item.kind == sgcache_disk::ScanKind::Action
            && let Some(id) = item.id
            && let Ok(Some(e)) = disk.get(&ActionId::from(id))
        {
            v.push(e);
        }
    })
    .unwrap();
    v.sort_by_key(|e| e.action);
    v
}

fn build(c: &mut Command) -> Output {
    build_x(c)
}

#[test]
fn a_pull_request_reads_main_but_cannot_poison_main_or_a_release() {
    if !have_go("a_pull_request_reads_main_but_cannot_poison_main_or_a_release") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = server(tmp.path());
    let ns = |s: &str| format!("{s}-{}", std::process::id());
    let (main, pr, release) = (ns("main"), ns("pr-7"), ns("release"));
    let module = tmp.path().join("m");
    write_tiny_module(&module, "trust");
    let k = keygen();

    // A, main: signs what it writes.
    let a_cache = tmp.path().join("a");
    let a = build(&mut go_remote(
        &module,
        &a_cache,
        &b,
        &main,
        &[
            ("SGCACHE_SIGNING_KEY", k.secret.as_str()),
            ("SGCACHE_TRUSTED_KEYS", k.public.as_str()),
        ],
    ));
    assert_eq!(compiles(&a.stderr), 3, "{}", summary(&a));

    // B, a pull request: public key only, reads main: everything from A's signed entries.
    let pr_env = [
        ("SGCACHE_READ_NAMESPACES", main.as_str()),
        ("SGCACHE_TRUSTED_KEYS", k.public.as_str()),
    ];
    let bout = build(&mut go_remote(
        &module,
        &tmp.path().join("b"),
        &b,
        &pr,
        &pr_env,
    ));
    assert_eq!(compiles(&bout.stderr), 0, "B: {}", summary(&bout));

    // B forges, with write access to the store: for each of A's actions an entry in `main`
    // naming another (real, content-valid) output — unsigned, signed with B's own key, and
    // with A's valid signature copied from another action — and an unsigned manifest.
    let raw = Raw::open(&b);
    let honest = entries(&a_cache);
    assert!(honest.len() >= 3, "{honest:?}");
    let b_key = SecretKey::generate().unwrap();
    for (i, e) in honest.iter().enumerate() {
        let mut forged = *e;
        let other = honest[(i + 1) % honest.len()];
        forged.output = other.output;
        forged.size = other.size;
        let bytes = match i {
            0 => entry::encode(&forged, &main, None),
            1 => entry::encode(&forged, &main, Some(&b_key)),
            _ => raw
                .get(&raw.ac_key(&main, &other.action))
                .expect("A's entry"),
        };
        raw.put(&raw.ac_key(&main, &e.action), bytes);
    }
    // Every forgery read as B itself would not trust it either: a fresh PR machine compiles.
    let forged_manifest = Manifest {
        records: honest
            .iter()
            .map(|e| IndexEntry {
                output: honest[0].output,
                size: honest[0].size,
                ..*e
            })
            .collect(),
        packs: vec![],
        misses: vec![],
    };
    // The manifest name is the build context's; B forges the one every job of the context
    // would load (SGCACHE_MANIFEST_KEY pins it here).
    let name = sgcache_store::ManifestName({
        use sha2::Digest;
        sha2::Sha256::digest(b"key=trust-ctx").into()
    });
    raw.put(
        &raw.ac_key(&main, &name.storage_id()),
        manifest::encode(&forged_manifest, &main, &name, None),
    );

    // C, a release: public key only, reads main, prefetch on (it loads the forged manifest).
    let c_cache = tmp.path().join("c");
    let cout = build(&mut go_remote(
        &module,
        &c_cache,
        &b,
        &release,
        &[
            ("SGCACHE_READ_NAMESPACES", main.as_str()),
            ("SGCACHE_TRUSTED_KEYS", k.public.as_str()),
            ("SGCACHE_MANIFEST_KEY", "trust-ctx"),
        ],
    ));
    assert_eq!(
        compiles(&cout.stderr),
        3,
        "C used a forgery: {}",
        summary(&cout)
    );
    let m = metrics(&cout);
    assert!(
        m.remote_rejected_entries >= 4,
        "3 entries and the manifest: {m:?}"
    );
    assert_eq!(m.hits_remote, 0, "{m:?}");
    // What C holds is what it built, which is what A built: no forged output anywhere.
    assert_eq!(
        entries(&c_cache)
            .iter()
            .map(|e| (e.action, e.output))
            .collect::<Vec<_>>(),
        honest
            .iter()
            .map(|e| (e.action, e.output))
            .collect::<Vec<_>>()
    );
    // A itself (holding the key) does not accept the forgeries in its own namespace either.
    let again = build(&mut go_remote(
        &module,
        &tmp.path().join("a2"),
        &b,
        &main,
        &[
            ("SGCACHE_SIGNING_KEY", k.secret.as_str()),
            ("SGCACHE_PREFETCH", "0"),
        ],
    ));
    assert_eq!(
        compiles(&again.stderr),
        3,
        "main used a forgery: {}",
        summary(&again)
    );

    // A pull request may reuse its own earlier runs, unsigned: B's namespace holds unsigned
    // entries of a changed module, and a fresh B machine uses them.
    write_tiny_module(&module, "trust-changed");
    let first = build(&mut go_remote(
        &module,
        &tmp.path().join("b2"),
        &b,
        &pr,
        &pr_env,
    ));
    assert!(compiles(&first.stderr) >= 1, "{}", summary(&first));
    let second = build(&mut go_remote(
        &module,
        &tmp.path().join("b3"),
        &b,
        &pr,
        &pr_env,
    ));
    assert_eq!(
        compiles(&second.stderr),
        0,
        "own namespace, unsigned: {}",
        summary(&second)
    );
    // ... which the release job never reads.
    let c2 = build(&mut go_remote(
        &module,
        &tmp.path().join("c2"),
        &b,
        &release,
        &[
            ("SGCACHE_READ_NAMESPACES", format!("{main},{pr}").as_str()),
            ("SGCACHE_TRUSTED_KEYS", k.public.as_str()),
            ("SGCACHE_PREFETCH", "0"),
        ],
    ));
    assert!(
        compiles(&c2.stderr) >= 1,
        "release used PR entries: {}",
        summary(&c2)
    );
}

#[test]
fn keys_rotate_sign_with_the_new_trust_both_then_drop_the_old() {
    if !have_go("keys_rotate_sign_with_the_new_trust_both_then_drop_the_old") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = server(tmp.path());
    let main = format!("rot-{}", std::process::id());
    let module = tmp.path().join("m");
    write_tiny_module(&module, "v1");
    let (old, new) = (keygen(), keygen());
    let a_cache = tmp.path().join("a");
    // The old key signs a, b and c; then the new key signs what changes (only c: the
    // module's flavour is in c), reusing the same local tier (a and b are local hits).
    build(&mut go_remote(
        &module,
        &a_cache,
        &b,
        &main,
        &[("SGCACHE_SIGNING_KEY", old.secret.as_str())],
    ));
    write_tiny_module(&module, "v2");
    let a2 = build(&mut go_remote(
        &module,
        &a_cache,
        &b,
        &main,
        &[("SGCACHE_SIGNING_KEY", new.secret.as_str())],
    ));
    assert_eq!(compiles(&a2.stderr), 1, "{}", summary(&a2));
    // (Prefetch off: a manifest signed by the new key would vouch for all three records.)
    let reader = |cache: &str, trusted: String| {
        build(&mut go_remote(
            &module,
            &tmp.path().join(cache),
            &b,
            &format!("{main}-c"),
            &[
                ("SGCACHE_READ_NAMESPACES", main.as_str()),
                ("SGCACHE_TRUSTED_KEYS", trusted.as_str()),
                ("SGCACHE_PREFETCH", "0"),
            ],
        ))
    };
    let both = reader("both", format!("{},{}", old.public, new.public));
    assert_eq!(
        compiles(&both.stderr),
        0,
        "trusting both: {}",
        summary(&both)
    );
    let new_only = reader("new", new.public.clone());
    assert_eq!(
        compiles(&new_only.stderr),
        2,
        "old-signed a and b are misses: {}",
        summary(&new_only)
    );
    assert_eq!(metrics(&new_only).remote_rejected_entries, 2);
}

#[test]
fn a_put_that_disagrees_with_a_signed_entry_is_counted_as_a_conflict() {
    if !have_go("a_put_that_disagrees_with_a_signed_entry_is_counted_as_a_conflict") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = server(tmp.path());
    let main = format!("conflict-{}", std::process::id());
    let module = tmp.path().join("m");
    write_tiny_module(&module, "conflict");
    let k = keygen();
    let a_cache = tmp.path().join("a");
    build(&mut go_remote(
        &module,
        &a_cache,
        &b,
        &main,
        &[("SGCACHE_SIGNING_KEY", k.secret.as_str())],
    ));
    // A signed entry (the key holder's: non-determinism, or a stolen key) naming an output
    // the remote does not have: the reader trusts it, cannot fetch it, builds, and its own
    // output disagrees.
    let raw = Raw::open(&b);
    // The largest output: a package archive, so the miss makes the go command compile.
    let e = *entries(&a_cache).iter().max_by_key(|e| e.size).unwrap();
    let lie = IndexEntry {
        output: OutputId::from_bytes([0x5a; 32]),
        ..e
    };
    let secret = SecretKey::parse(&k.secret).unwrap();
    raw.put(
        &raw.ac_key(&main, &e.action),
        entry::encode(&lie, &main, Some(&secret)),
    );
    let out = build(&mut go_remote(
        &module,
        &tmp.path().join("b"),
        &b,
        &format!("{main}-pr"),
        &[
            ("SGCACHE_READ_NAMESPACES", main.as_str()),
            ("SGCACHE_TRUSTED_KEYS", k.public.as_str()),
            ("SGCACHE_PREFETCH", "0"),
        ],
    ));

    assert_eq!(compiles(&out.stderr), 1, "{}", summary(&out));
    assert_eq!(
        metrics(&out).remote_conflicting_entries,
        1,
        "{}",
        summary(&out)
    );
    let warnings = String::from_utf8_lossy(&out.stderr)
        .matches("two outputs")
        .count();
    assert_eq!(warnings, 1, "warned once: {}", summary(&out));
}

/// Bad key material: exit 2 with one line naming the variable and what is expected, before
/// the handshake, touching nothing.
#[test]
fn bad_key_material_is_one_clear_error_before_the_handshake() {
    let k = keygen();
    let cases: Vec<(&str, String, &str)> = vec![
        ("SGCACHE_SIGNING_KEY", k.public.clone(), "public key"),
        (
            "SGCACHE_TRUSTED_KEYS",
            k.secret.clone(),
            "secret signing key",
        ),
        ("SGCACHE_TRUSTED_KEYS", "sgpk1_AAAA".into(), "holds 3 bytes"),
        (
            "SGCACHE_TRUSTED_KEYS",
            format!("{},sgpk1_!!", k.public),
            "base64url",
        ),
        ("SGCACHE_SIGNING_KEY", "hunter2".into(), "sgsk1_"),
        ("SGCACHE_SIGNING_KEY", format!("{}AAA", k.secret), "bytes"),
    ];
    for (var, value, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let out = Command::new(bin())
            .env("SGCACHE_DIR", &dir)
            .env(
                "SGCACHE_REMOTE",
                format!("file://{}", tmp.path().join("r").display()),
            )
            .env(var, &value)
            .stdin(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(out.stdout.is_empty(), "no handshake: {:?}", out.stdout);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(var) && err.contains(needle), "{var}: {err}");
        assert!(
            !err.contains(&value[6..]) || var == "SGCACHE_TRUSTED_KEYS",
            "secret echoed: {err}"
        );
        assert!(
            !dir.exists() && !tmp.path().join("r").exists(),
            "touched the disk"
        );
    }
}
