//! Explain baselines in the remote ([`format::baseline`](crate::format::baseline)): the blob
//! as a `cas/` object, a small header naming it under the namespace, trusted like a
//! manifest.

use bytes::Bytes;

use crate::backend::Layout;
use crate::cache::{Check, Lookup, RemoteCache};
use crate::error::{ErrorKind, StoreError};
use crate::format::baseline::{self, BaselineName, BaselineRef, MAX_BLOB};
use crate::format::object::{CODEC_RAW, OBJECT_MAGIC};
use crate::store::Body;

impl RemoteCache {
    /// Stores the baseline `blob` as `name` in our namespace: the blob as `cas/<its
    /// SHA-256>` (unless the remote has it), then the header naming it (signed with the
    /// signing key, if any). Callers check [`RemoteCache::writes`]. A blob over
    /// [`MAX_BLOB`] is refused.
    pub async fn put_baseline(&self, name: &BaselineName, blob: &[u8]) -> Result<(), StoreError> {
        let s = self.s();
        let r = BaselineRef::of(blob);
        let key = s.cas_key(&r.blob);
        if r.len > MAX_BLOB.min(s.cfg.max_object_size) {
            return Err(StoreError::backend(
                "put",
                key,
                ErrorKind::Permanent,
                format!(
                    "a baseline of {} bytes is over the limit of {MAX_BLOB}",
                    r.len
                ),
            ));
        }
        if !self.has_object(&r.blob).await? {
            let body = match s.layout {
                Layout::Plain => blob.to_vec(),
                Layout::Framed => {
                    // Raw: the blob is zstd already.
                    let mut b = Vec::with_capacity(blob.len() + 4);
                    b.extend_from_slice(&OBJECT_MAGIC);
                    b.push(CODEC_RAW);
                    b.extend_from_slice(blob);
                    b
                }
            };
            s.store
                .put(&key, Body::from_bytes(Bytes::from(body)))
                .await?;
        }
        let ns = &s.cfg.namespace;
        let header = baseline::encode(&r, ns, name, s.cfg.signing_key.as_ref());
        let k = s.ac_key(ns, &name.storage_id());
        s.store.put(&k, Body::from_bytes(Bytes::from(header))).await
    }

    /// Loads the baseline `name` from `namespace`, or when `None` from our namespace and
    /// then the read namespaces; the first header the trust policy accepts and whose blob is
    /// there and matches its SHA-256 wins. Returns the namespace it came from and the blob.
    pub async fn get_baseline(
        &self,
        name: &BaselineName,
        namespace: Option<&str>,
    ) -> Lookup<(String, Vec<u8>)> {
        let s = self.s();
        if !self.reads() {
            return Lookup::Missing;
        }
        let order: Vec<&str> = match namespace {
            Some(ns) if ns.is_empty() || ns.len() > 200 => return Lookup::Missing,
            Some(ns) => vec![ns],
            None => s.cfg.read_order(),
        };
        let id = name.storage_id();
        for ns in order {
            let k = s.ac_key(ns, &id);
            let bytes = match self.get_small(&k, baseline::MAX_BYTES).await {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "remote: baseline lookup failed");
                    return Lookup::Failed;
                }
            };
            let r = match baseline::decode(&bytes, ns, name, &s.trust) {
                Ok(r) => r,
                Err(why) => {
                    self.reject("baseline", &k, why);
                    continue;
                }
            };
            let mut blob = Vec::with_capacity(r.len.min(MAX_BLOB) as usize);
            match self
                .fetch_object(&r.blob, r.len, &mut blob, Check::Here)
                .await
            {
                // `Check::Here`: length and SHA-256 were verified against the header.
                Ok(true) => return Lookup::Found((ns.to_owned(), blob)),
                Ok(false) => {
                    tracing::debug!(key = %k, "remote: baseline header without its blob");
                }
                // Bytes that are not the header's: refused (counted), like any bad object.
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    tracing::debug!(error = %e, "remote: baseline blob refused");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "remote: baseline blob lookup failed");
                    return Lookup::Failed;
                }
            }
        }
        Lookup::Missing
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::keys::SecretKey;
    use crate::testing::FakeStore;

    fn remote(
        store: &Arc<FakeStore>,
        ns: &str,
        read: &[&str],
        key: Option<&SecretKey>,
        trusted: &[&SecretKey],
    ) -> RemoteCache {
        store.remote(|c| {
            c.namespace = ns.to_owned();
            c.read_namespaces = read.iter().map(|s| s.to_string()).collect();
            c.signing_key = key.cloned();
            c.trusted_keys = trusted.iter().map(|k| k.public().clone()).collect();
        })
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_pull_request_reads_mains_signed_baseline() {
        let store = FakeStore::new();
        let key = SecretKey::generate().unwrap();
        let name = BaselineName([3; 32]);
        let blob = b"sgxb\x01 pretend this is a baseline".to_vec();
        rt().block_on(async {
            let main = remote(&store, "main", &[], Some(&key), &[]);
            main.put_baseline(&name, &blob).await.unwrap();
            let pr = remote(&store, "pr-7", &["main"], None, &[&key]);
            assert_eq!(
                pr.get_baseline(&name, None).await,
                Lookup::Found(("main".to_owned(), blob.clone()))
            );
            assert_eq!(
                pr.get_baseline(&name, Some("main")).await,
                Lookup::Found(("main".to_owned(), blob.clone()))
            );
            assert_eq!(pr.get_baseline(&name, Some("other")).await, Lookup::Missing);
            assert_eq!(
                pr.get_baseline(&BaselineName([4; 32]), None).await,
                Lookup::Missing
            );
            // The pull request's own unsigned baseline in main's namespace is not trusted by
            // main's readers.
            let pr_writer = remote(&store, "main", &[], None, &[]);
            pr_writer.put_baseline(&name, b"forged").await.unwrap();
            assert_eq!(pr.get_baseline(&name, Some("main")).await, Lookup::Missing);
        });
    }

    #[test]
    fn a_swapped_blob_is_refused() {
        let store = FakeStore::new();
        let name = BaselineName([3; 32]);
        rt().block_on(async {
            let r = remote(&store, "main", &[], None, &[]);
            r.put_baseline(&name, b"the real baseline").await.unwrap();
            // Someone with write access replaces the object's bytes.
            let id = BaselineRef::of(b"the real baseline").blob;
            let mut evil = OBJECT_MAGIC.to_vec();
            evil.push(CODEC_RAW);
            evil.extend_from_slice(b"the fake baseline");
            store.put_raw(&format!("cas/{}", id.hex()), evil);
            assert!(!matches!(
                r.get_baseline(&name, None).await,
                Lookup::Found(_)
            ));
            // Too large to store.
            let big = vec![0u8; (MAX_BLOB + 1) as usize];
            assert!(r.put_baseline(&name, &big).await.is_err());
        });
    }
}
