//! Every rule of DESIGN.md "Findings", each with a case that must fire and
//! one that must not, on certificates generated here.

mod common;

use common::*;
use sensor::analysis::Policy;
use sensor::model::time as timefmt;
use sensor::model::{
    Alert, AlertDescription, CertManagerRef, Correlation, Flow, IssuerRef, ObjectRef, Owner, Peer,
    PeerKind, Rule, Verdict,
};

/// A pod of `namespace` owned by the Deployment `owner`.
fn pod(namespace: &str, owner: &str) -> Peer {
    Peer {
        kind: PeerKind::Pod,
        namespace: Some(namespace.into()),
        name: Some(format!("{owner}-5d9c8b6f5-abcde")),
        workload: Some(Owner {
            kind: "Deployment".into(),
            name: owner.into(),
        }),
        ..Peer::external()
    }
}

/// A trusted, valid, well-formed chain: the "must not fire" baseline.
struct Pki {
    root: Ca,
    inter: Ca,
    leaf: Vec<u8>,
}

fn pki() -> Pki {
    let root = Ca::root("Test Root", T0 - 365 * DAY, T0 + 3650 * DAY);
    let inter = root.intermediate("Test Issuing CA", T0 - 30 * DAY, T0 + 1000 * DAY);
    let leaf = inter.leaf("www.example.test", &["www.example.test"], T0, T0 + 90 * DAY);
    Pki { root, inter, leaf }
}

fn clean(p: &Pki) -> Conn {
    Conn::server(&[&p.leaf, &p.inter.der]).sni("www.example.test")
}

#[test]
fn baseline_chain_has_no_findings() {
    let p = pki();
    let mut a = analysis(T0 + 10 * DAY, Policy::default(), &[&p.root.pem]);
    let e = run(&mut a, &clean(&p));
    assert_eq!(rules(&e), Vec::<&str>::new());
    let v = e.server_verdict.unwrap();
    assert!(v.trusted(), "{:?}", v.status);
    assert_eq!(v.path, vec![0, 1]);
    assert_eq!(v.anchor.as_ref().unwrap().subject, "CN=Test Root");
}

#[test]
fn expired() {
    let p = pki();
    let mut a = analysis(T0 + 100 * DAY, Policy::default(), &[&p.root.pem]);
    let e = run(&mut a, &clean(&p));
    assert_eq!(rules(&e), vec!["cert.expired"]);
    let f = &e.findings[0];
    assert_eq!(f.severity.name(), "critical");
    let na = T0 + 90 * DAY;
    assert_eq!(
        &*f.message,
        format!(
            "leaf CN=www.example.test expired 10 days ago, on {}",
            &timefmt::seconds(na)[..10]
        )
    );
    assert_eq!(
        f.certificate.as_deref(),
        Some(sensor::x509::describe(&p.leaf).sha256.as_str())
    );
    assert_eq!(f.evidence["not_after"], timefmt::seconds(na));
    // One second before not_after: valid.
    let mut a = analysis(na - 1, Policy::default(), &[&p.root.pem]);
    assert!(!rules(&run(&mut a, &clean(&p))).contains(&"cert.expired"));
}

#[test]
fn expired_intermediate_on_the_path_but_not_an_unused_extra() {
    let root = Ca::root("Test Root", T0 - 365 * DAY, T0 + 3650 * DAY);
    let old = root.intermediate("Old CA", T0 - 300 * DAY, T0 - DAY);
    let inter = root.intermediate("Test Issuing CA", T0 - 30 * DAY, T0 + 1000 * DAY);
    let leaf = inter.leaf("www.example.test", &["www.example.test"], T0, T0 + 90 * DAY);
    let mut a = analysis(T0 + 10 * DAY, Policy::default(), &[&root.pem]);
    // An expired certificate that is not on the path (like an old cross-sign) is ignored.
    let e = run(&mut a, &Conn::server(&[&leaf, &old.der, &inter.der]));
    assert_eq!(rules(&e), Vec::<&str>::new());
    let leaf2 = old.leaf(
        "b.example.test",
        &["b.example.test"],
        T0 - 10 * DAY,
        T0 + 50 * DAY,
    );
    let e = run(&mut a, &Conn::server(&[&leaf2, &old.der]));
    assert_eq!(rules(&e), vec!["cert.expired"]);
    assert!(
        e.findings[0]
            .message
            .starts_with("intermediate CN=Old CA expired 11 days ago")
    );
}

#[test]
fn not_yet_valid() {
    let p = pki();
    let mut a = analysis(T0 - 2 * DAY, Policy::default(), &[&p.root.pem]);
    let e = run(&mut a, &clean(&p));
    assert_eq!(rules(&e), vec!["cert.not_yet_valid"]);
    assert_eq!(
        &*e.findings[0].message,
        format!(
            "leaf CN=www.example.test is not valid before {}, 2 days from now",
            timefmt::seconds(T0)
        )
    );
    let mut a = analysis(T0, Policy::default(), &[&p.root.pem]);
    assert_eq!(rules(&run(&mut a, &clean(&p))), Vec::<&str>::new());
}

#[test]
fn expiring_soon_unmanaged() {
    let p = pki();
    let na = T0 + 90 * DAY;
    let mut a = analysis(na - 10 * DAY, Policy::default(), &[&p.root.pem]);
    let e = run(&mut a, &clean(&p));
    assert_eq!(rules(&e), vec!["cert.expiring_soon"]);
    assert_eq!(
        &*e.findings[0].message,
        format!(
            "leaf CN=www.example.test expires in 10 days, on {}",
            &timefmt::seconds(na)[..10]
        )
    );
    // 31 days left: outside the default 30.
    let mut a = analysis(na - 31 * DAY, Policy::default(), &[&p.root.pem]);
    assert_eq!(rules(&run(&mut a, &clean(&p))), Vec::<&str>::new());
    // A threshold from the policy.
    let policy = Policy::parse("thresholds: {expiring_soon_days: 5}", "t").unwrap();
    let mut a = analysis(na - 10 * DAY, policy, &[&p.root.pem]);
    assert_eq!(rules(&run(&mut a, &clean(&p))), Vec::<&str>::new());
}

#[test]
fn expiring_soon_short_lived_uses_a_third_of_the_lifetime() {
    let p = pki();
    let short = p
        .inter
        .leaf("s.example.test", &["s.example.test"], T0, T0 + 30 * DAY);
    let c = Conn::server(&[&short, &p.inter.der]);
    let mut a = analysis(T0 + DAY, Policy::default(), &[&p.root.pem]);
    assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
    let mut a = analysis(T0 + 21 * DAY, Policy::default(), &[&p.root.pem]);
    assert_eq!(rules(&run(&mut a, &c)), vec!["cert.expiring_soon"]);
}

fn managed(renewal: i64) -> Correlation {
    Correlation {
        verdict: Some(Verdict::Managed),
        cert_manager: Some(CertManagerRef {
            certificate: ObjectRef {
                namespace: "shop".into(),
                name: "web-tls".into(),
            },
            issuer: IssuerRef {
                kind: "ClusterIssuer".into(),
                name: "internal".into(),
                group: String::new(),
            },
            renewal_time: Some(renewal),
            not_after: None,
            revision: Some(3),
            current_revision: Some(3),
            issuer_type: None,
            issuer_ready: None,
        }),
        ..Correlation::default()
    }
}

#[test]
fn expiring_soon_managed_is_past_renewal_time() {
    let p = pki();
    let renewal = T0 + 60 * DAY;
    let mut c = clean(&p);
    c.correlation = managed(renewal);
    // 25 days left but before the renewal time: cert-manager is on time.
    let mut a = analysis(T0 + 59 * DAY, Policy::default(), &[&p.root.pem]);
    assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
    // 40 days left (not "soon" by days) but past the renewal time.
    let c2 = {
        let mut c2 = clean(&p);
        c2.correlation = managed(T0 + 45 * DAY);
        c2
    };
    let mut a = analysis(T0 + 50 * DAY, Policy::default(), &[&p.root.pem]);
    let e = run(&mut a, &c2);
    assert_eq!(rules(&e), vec!["cert.expiring_soon"]);
    assert!(
        e.findings[0]
            .message
            .contains("cert-manager Certificate shop/web-tls was due for renewal on"),
        "{}",
        e.findings[0].message
    );
}

#[test]
fn self_signed() {
    let (der, pem) = self_signed_leaf(
        "self.example.test",
        &["self.example.test"],
        T0,
        T0 + 90 * DAY,
    );
    let c = Conn::server(&[&der]).sni("self.example.test");
    let mut a = analysis(T0 + DAY, Policy::default(), &[]);
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), vec!["cert.self_signed"]);
    assert_eq!(
        &*e.findings[0].message,
        "leaf CN=self.example.test is self-signed and is not a trust anchor"
    );
    // Pinned as an anchor (a cluster bundle holding it): trusted, no finding.
    let mut a = analysis(T0 + DAY, Policy::default(), &[&pem]);
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), Vec::<&str>::new());
    assert!(e.server_verdict.unwrap().trusted());
}

#[test]
fn untrusted() {
    let p = pki();
    // The root is sent but is not an anchor.
    let mut a = analysis(T0 + DAY, Policy::default(), &[]);
    let e = run(&mut a, &Conn::server(&[&p.leaf, &p.inter.der, &p.root.der]));
    assert_eq!(rules(&e), vec!["cert.untrusted"]);
    assert_eq!(
        &*e.findings[0].message,
        "the chain ends at the self-signed root CN=Test Root, which is not a trust anchor"
    );
    // Without the root: its issuer is unknown.
    let e = run(&mut a, &Conn::server(&[&p.leaf, &p.inter.der]));
    assert_eq!(
        messages(&e, "cert.untrusted"),
        vec!["issuer CN=Test Root was not sent and is not a trust anchor"]
    );
    // Another root with the same name: the signature does not verify.
    let impostor = Ca::root("Test Root", T0 - DAY, T0 + 100 * DAY);
    let mut a = analysis(T0 + DAY, Policy::default(), &[&impostor.pem]);
    let e = run(&mut a, &Conn::server(&[&p.leaf, &p.inter.der]));
    assert_eq!(rules(&e), vec!["cert.untrusted"]);
    assert!(
        e.findings[0]
            .message
            .contains("does not verify with that anchor's key")
    );
    // The real root as anchor: trusted.
    let mut a = analysis(T0 + DAY, Policy::default(), &[&p.root.pem]);
    assert_eq!(
        rules(&run(
            &mut a,
            &Conn::server(&[&p.leaf, &p.inter.der, &p.root.der])
        )),
        Vec::<&str>::new()
    );
}

#[test]
fn untrusted_bad_signature() {
    let p = pki();
    // Same issuer name, other key: the leaf does not verify with the sent CA.
    let other = p
        .root
        .intermediate("Test Issuing CA", T0 - DAY, T0 + 100 * DAY);
    let mut a = analysis(T0 + DAY, Policy::default(), &[&p.root.pem]);
    let e = run(&mut a, &Conn::server(&[&p.leaf, &other.der]));
    assert_eq!(
        messages(&e, "cert.untrusted"),
        vec![
            "the signature of CN=www.example.test does not verify with the key of its issuer CN=Test Issuing CA"
        ]
    );
}

#[test]
fn incomplete_chain() {
    let p = pki();
    let mut a = analysis(T0 + DAY, Policy::default(), &[&p.root.pem]);
    // Leaf and root sent, intermediate skipped and known nowhere: nothing
    // completes the path, so the leaf is untrusted (issue 14).
    let e = run(&mut a, &Conn::server(&[&p.leaf, &p.root.der]));
    assert_eq!(rules(&e), vec!["cert.untrusted"]);
    assert_eq!(
        &*e.findings[0].message,
        "issuer CN=Test Issuing CA was not sent and is not a trust anchor"
    );
    // A leaf of an unknown PKI with an unrelated intermediate: untrusted
    // (high), as when it is sent alone, not an incomplete chain.
    let stranger = Ca::root("Stranger Root", T0 - DAY, T0 + 100 * DAY).intermediate(
        "Stranger CA",
        T0 - DAY,
        T0 + 100 * DAY,
    );
    let lost = stranger.leaf(
        "lost.example.test",
        &["lost.example.test"],
        T0,
        T0 + 90 * DAY,
    );
    let unrelated_inter = Ca::root("Other Root", T0 - DAY, T0 + 100 * DAY).intermediate(
        "Other CA",
        T0 - DAY,
        T0 + 100 * DAY,
    );
    for chain in [vec![&lost[..]], vec![&lost[..], &unrelated_inter.der[..]]] {
        let e = run(&mut a, &Conn::server(&chain));
        assert_eq!(rules(&e), vec!["cert.untrusted"]);
        assert_eq!(e.findings[0].severity.name(), "high");
    }
    // Leaf alone before the intermediate is known anywhere: unknown issuer.
    let e = run(&mut a, &Conn::server(&[&p.leaf]));
    assert_eq!(rules(&e), vec!["cert.untrusted"]);
    // Once a complete chain has shown the intermediate, the same leaf alone
    // is an incomplete chain that the known intermediate completes.
    let other = p
        .inter
        .leaf("b.example.test", &["b.example.test"], T0, T0 + 90 * DAY);
    assert_eq!(
        rules(&run(&mut a, &Conn::server(&[&other, &p.inter.der]))),
        Vec::<&str>::new()
    );
    let e = run(&mut a, &Conn::server(&[&p.leaf]));
    assert_eq!(rules(&e), vec!["cert.incomplete_chain"]);
    assert!(e.findings[0].message.starts_with(
        "the server did not send the intermediate CN=Test Issuing CA; it completes the path to the trust anchor CN=Test Root"
    ));
    // Any order, extra certificates: complete.
    let unrelated = Ca::root("Unrelated", T0 - DAY, T0 + 100 * DAY);
    let e = run(
        &mut a,
        &Conn::server(&[&p.leaf, &unrelated.der, &p.root.der, &p.inter.der]),
    );
    assert_eq!(rules(&e), Vec::<&str>::new());
    assert_eq!(e.server_verdict.unwrap().path, vec![0, 3]);
}

#[test]
fn name_mismatch_rfc6125() {
    let root = Ca::root("Test Root", T0 - DAY, T0 + 1000 * DAY);
    let leaf = root.leaf(
        "cn.other.test",
        &["*.example.test", "example.test", "10.1.2.3"],
        T0,
        T0 + 90 * DAY,
    );
    let mut a = analysis(T0 + DAY, Policy::default(), &[&root.pem]);
    for ok in ["a.example.test", "EXAMPLE.test", "10.1.2.3"] {
        let e = run(&mut a, &Conn::server(&[&leaf]).sni(ok));
        assert_eq!(rules(&e), Vec::<&str>::new(), "{ok}");
    }
    // The CN is never used as a name (no CN fallback).
    for bad in [
        "a.b.example.test",
        "example.org",
        "cn.other.test",
        "10.1.2.4",
    ] {
        let e = run(&mut a, &Conn::server(&[&leaf]).sni(bad));
        assert_eq!(rules(&e), vec!["cert.name_mismatch"], "{bad}");
        assert_eq!(
            &*e.findings[0].message,
            format!(
                "SNI {bad} is not covered by the subjectAltName of leaf CN=cn.other.test (*.example.test, example.test, 10.1.2.3)"
            )
        );
    }
    // No SNI: not evaluated.
    assert_eq!(
        rules(&run(&mut a, &Conn::server(&[&leaf]))),
        Vec::<&str>::new()
    );
}

#[test]
fn weak_key() {
    let (root, leaf) = openssl_chain("rsa:2048", "sha256", "rsa:1024", "sha256");
    let root_pem = pem(&root);
    let mut a = analysis(now(), Policy::default(), &[&root_pem]);
    let e = run(&mut a, &Conn::server(&[&leaf]).sni("leaf.test"));
    assert_eq!(rules(&e), vec!["cert.weak_key"]);
    assert_eq!(
        &*e.findings[0].message,
        "leaf CN=leaf.test has a 1024-bit RSA key; the minimum is 2048"
    );
    // webpki refuses the 1024-bit key; the chain is still linked to its anchor.
    assert!(e.server_verdict.unwrap().trusted());
    let (root, leaf) = openssl_chain("rsa:2048", "sha256", "ec:prime192v1", "sha256");
    let mut a = analysis(now(), Policy::default(), &[&pem(&root)]);
    let e = run(&mut a, &Conn::server(&[&leaf]).sni("leaf.test"));
    assert_eq!(
        messages(&e, "cert.weak_key"),
        vec!["leaf CN=leaf.test has a 192-bit EC key (P-192); the minimum is 256"]
    );
    for key in ["rsa:2048", "ec:P-256"] {
        let (root, leaf) = openssl_chain("rsa:2048", "sha256", key, "sha256");
        let mut a = analysis(now(), Policy::default(), &[&pem(&root)]);
        let e = run(&mut a, &Conn::server(&[&leaf]).sni("leaf.test"));
        assert_eq!(rules(&e), Vec::<&str>::new(), "{key}");
    }
}

#[test]
fn weak_signature_below_the_root_only() {
    for (digest, hash) in [("sha1", "SHA-1"), ("md5", "MD5")] {
        let (root, leaf) = openssl_chain("rsa:2048", "sha256", "rsa:2048", digest);
        let mut a = analysis(now(), Policy::default(), &[&pem(&root)]);
        let e = run(&mut a, &Conn::server(&[&leaf]).sni("leaf.test"));
        assert_eq!(rules(&e), vec!["cert.weak_signature"], "{digest}");
        assert!(
            e.findings[0]
                .message
                .starts_with(&format!("leaf CN=leaf.test is signed with {digest}")),
            "{}",
            e.findings[0].message
        );
        assert!(
            e.findings[0]
                .message
                .contains(&format!("({hash}) by CN=OpenSSL Test CA"))
        );
    }
    // A root self-signed with SHA-1 and a leaf signed with SHA-256: the
    // root's own signature is not a weakness, even when the root is sent.
    let (root, leaf) = openssl_chain("rsa:2048", "sha1", "rsa:2048", "sha256");
    let mut a = analysis(now(), Policy::default(), &[]);
    let e = run(&mut a, &Conn::server(&[&leaf, &root]).sni("leaf.test"));
    assert_eq!(rules(&e), vec!["cert.untrusted"]);
    let mut a = analysis(now(), Policy::default(), &[&pem(&root)]);
    let e = run(&mut a, &Conn::server(&[&leaf, &root]).sni("leaf.test"));
    assert_eq!(rules(&e), Vec::<&str>::new());
}

#[test]
fn long_validity() {
    let root = Ca::root("Test Root", T0 - 3650 * DAY, T0 + 3650 * DAY);
    let mut a = analysis(T0 + DAY, Policy::default(), &[&root.pem]);
    let long = root.leaf("l.example.test", &["l.example.test"], T0, T0 + 500 * DAY);
    let e = run(&mut a, &Conn::server(&[&long]));
    assert_eq!(rules(&e), vec!["cert.long_validity"]);
    assert_eq!(e.findings[0].severity.name(), "low");
    assert!(e.findings[0].message.contains("is valid for 500 days"));
    // 398 days exactly is allowed.
    let ok = root.leaf(
        "o.example.test",
        &["o.example.test"],
        T0,
        T0 + 398 * DAY - 1,
    );
    assert_eq!(
        rules(&run(&mut a, &Conn::server(&[&ok]))),
        Vec::<&str>::new()
    );
    // One second, or half a day, more than 398 days is over the limit:
    // the comparison is in seconds, not in whole days.
    for (name, extra) in [("s.example.test", 1), ("h.example.test", DAY / 2)] {
        let over = root.leaf(name, &[name], T0, T0 + 398 * DAY - 1 + extra);
        let e = run(&mut a, &Conn::server(&[&over]));
        assert_eq!(rules(&e), vec!["cert.long_validity"], "{name}");
        assert!(
            e.findings[0]
                .message
                .contains("is valid for more than 398 days"),
            "{}",
            e.findings[0].message
        );
    }
    // Issued before 2020-09-01, when the limit did not exist.
    let old = root.leaf(
        "old.example.test",
        &["old.example.test"],
        T0 - 1500 * DAY,
        T0 + 200 * DAY,
    );
    assert_eq!(
        rules(&run(&mut a, &Conn::server(&[&old]))),
        Vec::<&str>::new()
    );
}

#[test]
fn ca_as_leaf() {
    let p = pki();
    let ca_leaf = p.inter.leaf_with(
        "c.example.test",
        &["c.example.test"],
        T0,
        T0 + 90 * DAY,
        true,
    );
    let mut a = analysis(T0 + DAY, Policy::default(), &[&p.root.pem]);
    let e = run(&mut a, &Conn::server(&[&ca_leaf, &p.inter.der]));
    assert_eq!(rules(&e), vec!["cert.ca_as_leaf"]);
    assert_eq!(
        &*e.findings[0].message,
        "leaf CN=c.example.test is a CA certificate (basicConstraints CA:TRUE) used as a server certificate"
    );
    assert_eq!(rules(&run(&mut a, &clean(&p))), Vec::<&str>::new());
}

#[test]
fn unmanaged_and_stale_need_an_inventory() {
    let p = pki();
    let mut a = analysis(T0 + DAY, Policy::default(), &[&p.root.pem]);
    let dest = pod("shop", "web");
    let mut c = clean(&p);
    c.correlation = Correlation {
        verdict: Some(Verdict::Unmanaged),
        destination: Some(dest.clone()),
        ..Correlation::default()
    };
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), vec!["cert.unmanaged"]);
    assert_eq!(
        &*e.findings[0].message,
        "shop/web serves leaf CN=www.example.test, which no cert-manager object issued"
    );
    let mut stale = managed(T0 + 60 * DAY);
    stale.verdict = Some(Verdict::Stale);
    if let Some(cm) = stale.cert_manager.as_mut() {
        cm.revision = Some(2);
    }
    stale.destination = Some(dest);
    c.correlation = stale;
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), vec!["cert.stale"]);
    assert!(e.findings[0].message.contains("(revision 2, current 3)"));
    // Managed, external, or no inventory at all: silent.
    for corr in [
        managed(T0 + 60 * DAY),
        Correlation {
            verdict: Some(Verdict::External),
            ..Correlation::default()
        },
        Correlation::default(),
    ] {
        c.correlation = corr;
        assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
    }
}

#[test]
fn issuer_not_allowed() {
    let p = pki();
    let policy = Policy::parse(
        "issuers:\n  - namespace: shop\n    allowed: ['CN=Test Issuing CA']\n  - namespace: '*'\n    allowed: ['CN=Other*']\n",
        "t",
    )
    .unwrap();
    let mut a = analysis(T0 + DAY, policy, &[&p.root.pem]);
    let mut c = clean(&p);
    // No inventory: only the `*` rule applies, and it does not allow this issuer.
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), vec!["cert.issuer_not_allowed"]);
    c.correlation.destination = Some(pod("shop", "web"));
    assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
}

#[test]
fn legacy_version() {
    let p = pki();
    let mut a = analysis(T0 + DAY, Policy::default(), &[&p.root.pem]);
    let mut c = clean(&p);
    c.version = Some(0x0301);
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), vec!["tls.legacy_version"]);
    assert_eq!(
        &*e.findings[0].message,
        "negotiated TLS 1.0; the minimum is TLS 1.2"
    );
    assert_eq!(e.findings[0].certificate, None);
    for v in [0x0303, 0x0304, 0x7f1c] {
        c.version = Some(v);
        assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
    }
    let mut a = analysis(
        T0 + DAY,
        Policy::parse("tls: {min_version: TLS 1.3}", "t").unwrap(),
        &[&p.root.pem],
    );
    c.version = Some(0x0303);
    assert_eq!(rules(&run(&mut a, &c)), vec!["tls.legacy_version"]);
}

#[test]
fn weak_cipher() {
    let p = pki();
    let mut a = analysis(T0 + DAY, Policy::default(), &[&p.root.pem]);
    let mut c = clean(&p);
    for (id, text) in [
        (0x0005, "negotiated TLS_RSA_WITH_RC4_128_SHA: RC4 weak"),
        (
            0x000a,
            "negotiated TLS_RSA_WITH_3DES_EDE_CBC_SHA: 3DES weak",
        ),
        (0x0002, "negotiated TLS_RSA_WITH_NULL_SHA: NULL weak"),
        (
            0x0034,
            "negotiated TLS_DH_anon_WITH_AES_128_CBC_SHA: anon weak",
        ),
        (
            0x0003,
            "negotiated TLS_RSA_EXPORT_WITH_RC4_40_MD5: RC4 and EXPORT weak",
        ),
    ] {
        c.cipher = Some(id);
        let e = run(&mut a, &c);
        assert_eq!(messages(&e, "tls.weak_cipher"), vec![text.to_string()]);
    }
    for id in [0x1301, 0xc02f, 0xcca8, 0x0a0a] {
        c.cipher = Some(id);
        assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new(), "{id:#x}");
    }
    // A policy that allows AES only.
    let policy = Policy::parse("tls: {allowed_cipher_families: [aes]}", "t").unwrap();
    let mut a = analysis(T0 + DAY, policy, &[&p.root.pem]);
    c.cipher = Some(0xcca8);
    assert_eq!(
        messages(&run(&mut a, &c), "tls.weak_cipher"),
        vec![
            "negotiated TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: ChaCha20 not in the allowed cipher families"
        ]
    );
    c.cipher = Some(0x1301);
    assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
}

#[test]
fn handshake_failure() {
    let mut a = analysis(T0, Policy::default(), &[]);
    let mut c = Conn {
        version: None,
        cipher: None,
        ..Conn::default()
    };
    c.alert = Some(Alert {
        description: AlertDescription(48),
        level: Some(2),
        from_client: Some(true),
    });
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), vec!["tls.handshake_failure"]);
    assert_eq!(
        &*e.findings[0].message,
        "the client sent the alert unknown_ca (48) in clear: the handshake failed"
    );
    for alert in [
        Alert {
            description: AlertDescription(112),
            level: Some(1),
            from_client: Some(false),
        },
        Alert {
            description: AlertDescription(0),
            level: Some(2),
            from_client: Some(false),
        },
    ] {
        c.alert = Some(alert);
        assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
    }
    c.alert = None;
    assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
}

#[test]
fn plaintext_needs_flow_accounting_and_workloads() {
    let mut a = analysis(T0, Policy::default(), &[]);
    let mut c = Conn::default();
    // Handshake evaluation never claims plaintext.
    assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new());
    let mut f = flow(1000, 0);
    a.plaintext(&mut f);
    assert!(f.findings.is_empty());
    c.correlation.source = Some(pod("a", "client"));
    c.correlation.destination = Some(pod("b", "server"));
    let mut f = flow(1000, 24);
    f.source = c.correlation.source.clone();
    f.destination = c.correlation.destination.clone();
    a.plaintext(&mut f);
    let e = Evaluation {
        findings: f.findings.clone(),
        server_verdict: None,
    };
    assert_eq!(rules(&e), vec!["tls.plaintext"]);
    assert_eq!(
        &*e.findings[0].message,
        "1024 bytes between 10.0.0.1:40000 and 10.0.0.2:8080 without TLS (1000 to the server, 24 back)"
    );
    assert_eq!(e.first(), vec![true]);
    // Another client of the same server in the same window: no new line.
    f.client = "10.0.0.7:41000".parse().unwrap();
    f.bytes_to_server = 5;
    f.bytes_to_client = 5;
    a.plaintext(&mut f);
    assert_eq!(
        f.findings.iter().map(|x| x.first).collect::<Vec<_>>(),
        vec![false]
    );
}

#[test]
fn client_chain_gets_validity_and_key_rules_not_trust_rules() {
    let p = pki();
    let (client_self, _) = self_signed_leaf("client", &[], T0 - 100 * DAY, T0 - DAY);
    let mut a = analysis(T0, Policy::default(), &[&p.root.pem]);
    let mut c = clean(&p);
    c.client = vec![client_self];
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), vec!["cert.expired"]);
    assert!(
        e.findings[0]
            .message
            .starts_with("client leaf CN=client expired 1 day ago")
    );
}

#[test]
fn finding_lines_once_per_certificate_per_window() {
    let p = pki();
    let mut a = analysis(T0 + 100 * DAY, Policy::default(), &[&p.root.pem]);
    let first = run(&mut a, &clean(&p));
    let again = run(&mut a, &clean(&p));
    assert_eq!(first.first(), vec![true]);
    assert_eq!(again.first(), vec![false]);
    assert_eq!(rules(&again), vec!["cert.expired"]);
}

/// Exceptions: by fingerprint, SNI, namespace; with an expiry.
#[test]
fn exceptions_suppress_until_they_expire() {
    let (der, _) = self_signed_leaf("dev.example.test", &["dev.example.test"], T0, T0 + 90 * DAY);
    let fp = sensor::x509::describe(&der).sha256;
    let c = Conn::server(&[&der]).sni("dev.example.test");
    let expiry = &timefmt::seconds(T0 + 10 * DAY)[..10];
    for matcher in [
        format!("fingerprint: \"{}\"", fp.to_uppercase()),
        "sni: '*.example.test'".to_string(),
    ] {
        let policy = Policy::parse(
            &format!(
                "exceptions:\n  - rules: [cert.self_signed]\n    {matcher}\n    reason: dev server\n    expires: {expiry}\n"
            ),
            "t",
        )
        .unwrap();
        let mut a = analysis(T0 + 10 * DAY, policy.clone(), &[]);
        assert_eq!(rules(&run(&mut a, &c)), Vec::<&str>::new(), "{matcher}");
        assert_eq!(a.stats.suppressed[Rule::CertSelfSigned.index()], 1);
        // The day after the expiry date, the finding is back.
        let mut a = analysis(T0 + 11 * DAY, policy, &[]);
        assert_eq!(
            rules(&run(&mut a, &c)),
            vec!["cert.self_signed"],
            "{matcher}"
        );
    }
    // An exception for another rule, or another namespace, does not apply.
    let policy = Policy::parse(
        "exceptions:\n  - rules: [cert.expired]\n    sni: dev.example.test\n    reason: r\n  - namespace: dev\n    reason: r\n",
        "t",
    )
    .unwrap();
    let mut a = analysis(T0 + DAY, policy, &[]);
    let mut c2 = Conn::server(&[&der]).sni("dev.example.test");
    assert_eq!(rules(&run(&mut a, &c2)), vec!["cert.self_signed"]);
    c2.correlation.destination = Some(pod("dev", "web"));
    assert_eq!(rules(&run(&mut a, &c2)), Vec::<&str>::new());
}

#[test]
fn policy_disables_and_reweights_rules() {
    let p = pki();
    let policy = Policy::parse(
        "rules:\n  cert.expired: {severity: low}\n  tls.legacy_version: {enabled: false}\n",
        "t",
    )
    .unwrap();
    let mut a = analysis(T0 + 100 * DAY, policy, &[&p.root.pem]);
    let mut c = clean(&p);
    c.version = Some(0x0301);
    let e = run(&mut a, &c);
    assert_eq!(rules(&e), vec!["cert.expired"]);
    assert_eq!(e.findings[0].severity.name(), "low");
}

/// A plaintext flow between two endpoints, before correlation.
fn flow(bytes_to_server: u64, bytes_to_client: u64) -> Flow {
    Flow::new(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        T0 * 1_000_000,
        T0 * 1_000_000,
        bytes_to_server,
        bytes_to_client,
    )
}

fn pem(der: &[u8]) -> String {
    use base64_pem::encode;
    encode(der)
}

/// Now, for certificates openssl made valid from now on.
fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + 60
}

mod base64_pem {
    /// PEM for a DER certificate, through the openssl command.
    pub fn encode(der: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-outform", "PEM"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(der).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Connections that show one chain in one second share its certificate
/// findings (the analysis memoizes them): the same facts give the same
/// findings; any fact the rules read that differs, or the next second,
/// is judged afresh.
#[test]
fn one_chain_is_judged_once_a_second_and_anew_when_any_fact_differs() {
    let p = pki();
    let mut store = sensor::x509::TrustStore::new(sensor::x509::SystemRoots::None).unwrap();
    store
        .add_bundle(p.root.pem.as_bytes(), "test anchor")
        .unwrap();
    let cfg = sensor::analysis::AnalysisConfig {
        clock: sensor::analysis::Clock::PacketTime,
        ..Default::default()
    };
    let mut a = sensor::analysis::Analysis::new(cfg, Policy::default(), store);
    let first = connection(&clean(&p));
    // Every connection holds the same certificates, as the certificate
    // cache hands them out.
    let judge = |a: &mut sensor::analysis::Analysis, at: i64, sni: &str, cor: Correlation| {
        let mut c = connection(&clean(&p).sni(sni));
        c.server_chain = first.server_chain.clone();
        c.time_us = at * 1_000_000;
        c.correlation = cor;
        a.evaluate(&mut c);
        let hits = a.stats.memo_hits;
        let found: Vec<_> = c
            .findings
            .iter()
            .map(|f| (f.rule.id(), f.message.to_string()))
            .collect();
        (found, hits)
    };
    let expired_at = T0 + 100 * DAY;
    let expired = |days: i64| {
        (
            "cert.expired",
            format!(
                "leaf CN=www.example.test expired {days} days ago, on {}",
                &timefmt::seconds(T0 + 90 * DAY)[..10]
            ),
        )
    };
    let none = Correlation::default;
    assert_eq!(
        judge(&mut a, expired_at, "www.example.test", none()),
        (vec![expired(10)], 0)
    );
    assert_eq!(
        judge(&mut a, expired_at, "www.example.test", none()),
        (vec![expired(10)], 1),
        "the same facts in the same second"
    );
    let (found, hits) = judge(&mut a, expired_at, "other.example.test", none());
    assert_eq!(
        found.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec!["cert.expired", "cert.name_mismatch"]
    );
    assert_eq!(hits, 1, "another SNI");
    let unmanaged = Correlation {
        verdict: Some(Verdict::Unmanaged),
        destination: Some(pod("shop", "web")),
        ..Correlation::default()
    };
    let (found, hits) = judge(&mut a, expired_at, "www.example.test", unmanaged.clone());
    assert_eq!(
        found.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec!["cert.expired", "cert.unmanaged"]
    );
    assert_eq!(hits, 1, "another destination");
    let mut elsewhere = unmanaged;
    elsewhere.destination = Some(pod("shop", "api"));
    let (found, hits) = judge(&mut a, expired_at, "www.example.test", elsewhere);
    assert!(found[1].1.starts_with("shop/api serves"), "{found:?}");
    assert_eq!(hits, 1, "another workload");
    assert_eq!(
        judge(&mut a, expired_at + DAY, "www.example.test", none()),
        (vec![expired(11)], 1),
        "a later second"
    );
    assert_eq!(
        judge(&mut a, expired_at + DAY, "www.example.test", none()),
        (vec![expired(11)], 2)
    );
    // As many servers in one second as the memo holds, and one more: it
    // starts over once, counted, and judges every one alike.
    assert_eq!(a.stats.memo_full, 0);
    for port in 0..=1024u16 {
        let mut c = connection(&clean(&p));
        c.server_chain = first.server_chain.clone();
        c.server.set_port(10_000 + port);
        c.time_us = expired_at * 1_000_000;
        a.evaluate(&mut c);
        let found: Vec<_> = c
            .findings
            .iter()
            .map(|f| (f.rule.id(), f.message.to_string()))
            .collect();
        assert_eq!(found, vec![expired(10)], "server port {}", c.server.port());
    }
    assert_eq!(a.stats.memo_full, 1);
}
