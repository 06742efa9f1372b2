//! Trust anchors from files, folders and run-time bundles; the bounds of
//! the verification cache and of the learnt-intermediate pool.

mod common;

use common::*;
use sensor::x509::{ChainStatus, ChainVerifier, Role, SystemRoots, TrustStore, describe};

fn certs(ders: &[Vec<u8>]) -> Vec<std::sync::Arc<sensor::model::Certificate>> {
    ders.iter()
        .map(|d| std::sync::Arc::new(describe(d)))
        .collect()
}

#[test]
fn files_and_folders() {
    let a = Ca::root("Anchor A", T0, T0 + 100 * DAY);
    let b = Ca::root("Anchor B", T0, T0 + 100 * DAY);
    let c = Ca::root("Anchor C", T0, T0 + 100 * DAY);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.pem"), &a.pem).unwrap();
    std::fs::write(dir.path().join("bc.crt"), format!("{}{}", b.pem, c.pem)).unwrap();
    std::fs::write(dir.path().join("README"), "not a certificate\n").unwrap();
    let mut s = TrustStore::new(SystemRoots::None).unwrap();
    assert_eq!(s.add_path(dir.path()).unwrap(), 3);
    assert_eq!(s.len(), 3);
    // The same anchors again add nothing.
    assert_eq!(s.add_path(&dir.path().join("a.pem")).unwrap(), 0);
    assert_eq!(s.len(), 3);

    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = s.add_path(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: certificate 1: ", bad.display())),
        "{e}"
    );
    let empty = tempfile::tempdir().unwrap();
    let e = s.add_path(empty.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: no certificate found", empty.path().display())
    );
    let e = s
        .add_path(&dir.path().join("missing.pem"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.pem: "), "{e}");
    assert_eq!(s.len(), 3);
}

#[test]
fn bundled_roots_are_loaded() {
    let s = TrustStore::new(SystemRoots::Bundled).unwrap();
    assert!(s.len() > 100, "{}", s.len());
}

#[test]
fn a_bundle_added_at_run_time_makes_a_chain_trusted() {
    let root = Ca::root("Cluster CA", T0, T0 + 100 * DAY);
    let leaf = root.leaf("svc.ns.svc", &["svc.ns.svc"], T0, T0 + 30 * DAY);
    let chain = vec![leaf];
    let mut v = ChainVerifier::new(TrustStore::new(SystemRoots::None).unwrap(), 10, 10);
    let before = v.verify(Role::Server, &certs(&chain));
    assert_eq!(
        before.status,
        ChainStatus::UnknownIssuer {
            issuer: "CN=Cluster CA".into()
        }
    );
    assert_eq!(
        v.store_mut()
            .add_bundle(root.pem.as_bytes(), "cert-manager/ca-bundle")
            .unwrap(),
        1
    );
    let after = v.verify(Role::Server, &certs(&chain));
    assert!(after.trusted(), "{:?}", after.status);
    assert_eq!(
        after.anchor.as_ref().unwrap().origin,
        "cert-manager/ca-bundle"
    );
}

#[test]
fn verification_cache_bound_is_kept_and_counted() {
    let root = Ca::root("Root", T0, T0 + 100 * DAY);
    let mut store = TrustStore::new(SystemRoots::None).unwrap();
    store.add_bundle(root.pem.as_bytes(), "t").unwrap();
    let mut v = ChainVerifier::new(store, 2, 10);
    let chains: Vec<Vec<Vec<u8>>> = (0..3)
        .map(|i| vec![root.leaf(&format!("h{i}"), &[&format!("h{i}.test")], T0, T0 + DAY)])
        .collect();
    for c in &chains {
        assert!(v.verify(Role::Server, &certs(c)).trusted());
    }
    assert_eq!(v.cached(), 2);
    assert_eq!(v.stats.cache_full, 1);
    // Cached chains are answered from the cache.
    v.verify(Role::Server, &certs(&chains[0]));
    assert_eq!(v.stats.cache_hits, 1);
    assert_eq!(v.stats.verified, 3);
}

#[test]
fn intermediate_pool_bound_is_kept_and_counted() {
    let root = Ca::root("Root", T0, T0 + 100 * DAY);
    let mut store = TrustStore::new(SystemRoots::None).unwrap();
    store.add_bundle(root.pem.as_bytes(), "t").unwrap();
    let mut v = ChainVerifier::new(store, 100, 1);
    let i1 = root.intermediate("I1", T0, T0 + 50 * DAY);
    let i2 = root.intermediate("I2", T0, T0 + 50 * DAY);
    let l1 = i1.leaf("a", &["a.test"], T0, T0 + DAY);
    let l2 = i2.leaf("b", &["b.test"], T0, T0 + DAY);
    for c in [
        vec![l1.clone(), i1.der.clone()],
        vec![l2.clone(), i2.der.clone()],
    ] {
        assert!(v.verify(Role::Server, &certs(&c)).trusted());
    }
    assert_eq!(v.stats.pool_full, 1);
    // I1 was remembered: its leaf alone is an incomplete chain; I2 was not.
    let alone = vec![l1];
    assert!(matches!(
        v.verify(Role::Server, &certs(&alone)).status,
        ChainStatus::Incomplete { .. }
    ));
    let alone = vec![l2];
    assert!(matches!(
        v.verify(Role::Server, &certs(&alone)).status,
        ChainStatus::UnknownIssuer { .. }
    ));
}
