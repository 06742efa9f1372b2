//! The policy file: error messages with line and key, `sensor policy
//! check`, and bad configuration stopping `sensor analyze` at start-up.

use std::process::Command;

use sensor::analysis::Policy;

fn err(text: &str) -> String {
    Policy::parse(text, "p.yaml").unwrap_err().to_string()
}

#[test]
fn errors_name_line_and_key() {
    assert_eq!(
        err("rules: {}\nrulez: {}\n"),
        "p.yaml: line 2, column 1: rulez: unknown field `rulez`, expected one of `rules`, `thresholds`, `tls`, `issuers`, `exceptions`"
    );
    assert_eq!(
        err("rules:\n  cert.expired: {severity: urgent}\n"),
        "p.yaml: line 2, column 28: rules.cert.expired.severity: unknown variant `urgent`, expected one of `info`, `low`, `medium`, `high`, `critical`"
    );
    assert!(
        err("rules:\n  cert.expird: {enabled: false}\n").starts_with(
            "p.yaml: line 2, column 3: rules.cert.expird: unknown rule `cert.expird`, expected one of cert.expired,"
        )
    );
    assert_eq!(
        err("thresholds:\n  expiring_soon_days: soon\n"),
        "p.yaml: line 2, column 23: thresholds.expiring_soon_days: invalid type: string \"soon\", expected u32"
    );
    assert_eq!(
        err(
            "exceptions:\n  - sni: a\n    reason: r\n  - sni: b\n    reason: r\n    expires: 2026-13-01\n"
        ),
        "p.yaml: line 6, column 14: exceptions[1].expires: `2026-13-01` is not a date (YYYY-MM-DD) or an RFC 3339 time"
    );
    assert_eq!(
        err("exceptions:\n  - sni: a\n    reason: r\n    owner: me\n"),
        "p.yaml: line 4, column 5: exceptions[0].owner: unknown field `owner`, expected one of `rules`, `namespace`, `workload`, `sni`, `fingerprint`, `reason`, `expires`"
    );
    assert!(
        err("exceptions:\n  - rules: [cert.expired]\n    reason: r\n")
            .starts_with("p.yaml: line 2, column 3: exceptions[0]: an exception needs at least one of `namespace`, `workload`, `sni`, `fingerprint`")
    );
    assert!(
        err("exceptions:\n  - sni: a\n    reason: ' '\n")
            .contains("exceptions[0]: an exception needs a non-empty `reason`")
    );
    assert_eq!(
        err("exceptions:\n  - fingerprint: abc\n    reason: r\n"),
        "p.yaml: line 2, column 18: exceptions[0].fingerprint: `abc` is not a SHA-256 fingerprint (64 hex digits)"
    );
    assert_eq!(
        err("tls:\n  min_version: TLS 1.4\n"),
        "p.yaml: line 2, column 16: tls.min_version: `TLS 1.4` is not a TLS version (SSL 3.0, TLS 1.0, TLS 1.1, TLS 1.2, TLS 1.3)"
    );
    assert!(
        err("tls:\n  allowed_cipher_families: [aes, rot13]\n").starts_with(
            "p.yaml: line 2, column 34: tls.allowed_cipher_families[1]: unknown variant `rot13`"
        )
    );
    assert!(
        err("issuers:\n  - namespace: 'a[b'\n    allowed: [x]\n")
            .starts_with("p.yaml: line 2, column 16: issuers[0].namespace: bad pattern `a[b`")
    );
    // YAML syntax: a tab where indentation is expected.
    assert_eq!(
        err("rules:\n\tcert.expired: {}\n"),
        "p.yaml: line 2, column 1: rules: found character that cannot start any token"
    );
}

#[test]
fn valid_files() {
    let p = Policy::parse(
        "# comments only\nrules:\n  cert.long_validity: {enabled: false}\n  cert.expiring_soon: {severity: high}\nthresholds: {expiring_soon_days: 21, rsa_min_bits: 3072}\ntls: {min_version: TLS1.3, allowed_cipher_families: [aes, chacha20]}\nexceptions:\n  - rules: [cert.self_signed]\n    namespace: dev-*\n    reason: dev clusters\n    expires: 2026-12-31\n",
        "p.yaml",
    )
    .unwrap();
    assert!(!p.enabled(sensor::analysis::Rule::CertLongValidity));
    assert_eq!(
        p.severity(sensor::analysis::Rule::CertExpiringSoon).name(),
        "high"
    );
    assert_eq!(p.thresholds.expiring_soon_days, 21);
    assert_eq!(p.thresholds.rsa_min_bits, 3072);
    assert_eq!(p.thresholds.long_validity_days, 398);
    assert_eq!(p.min_version, 0x0304);
    // Through the end of the day given.
    assert_eq!(p.exceptions[0].expires, Some(1_798_761_599));
    assert_eq!(p.overrides(), 2);
    // Empty and comment-only files are the default policy.
    assert_eq!(Policy::parse("", "e").unwrap().overrides(), 0);
    assert_eq!(Policy::parse("# nothing\n", "e").unwrap().overrides(), 0);
}

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

#[test]
fn policy_check_command() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "exceptions:\n  - sni: '*.dev'\n    reason: old exception\n    expires: 2020-01-01\n",
    )
    .unwrap();
    let out = sensor()
        .args(["policy", "check"])
        .arg(&good)
        .args(["--now", "2024-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("valid: 0 rule override(s), 1 exception(s), 0 issuer rule(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("note: exceptions[0] expired on 2020-01-01T23:59:59Z and no longer applies (old exception)"),
        "{stdout}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "rules:\n  cert.expired: {enabeld: true}\n").unwrap();
    let out = sensor()
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: line 2, column 18: rules.cert.expired.enabeld: unknown field `enabeld`, expected `enabled` or `severity`",
            bad.display()
        )),
        "{stderr}"
    );
}

#[test]
fn analyze_refuses_bad_configuration_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "tls: {min_version: 2}\n").unwrap();
    let capture = dir.path().join("none.pcap");
    let out = sensor()
        .arg("analyze")
        .arg("--policy")
        .arg(&bad)
        .arg(&capture)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--policy: "), "{stderr}");
    assert!(
        stderr.contains("line 1, column 20: tls.min_version"),
        "{stderr}"
    );

    let missing = dir.path().join("no-such-anchors.pem");
    let out = sensor()
        .arg("analyze")
        .arg("--trust-anchors")
        .arg(&missing)
        .arg(&capture)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--trust-anchors: "), "{stderr}");
    assert!(stderr.contains("no-such-anchors.pem"), "{stderr}");

    let out = sensor()
        .args(["analyze", "--now", "yesterday"])
        .arg(&capture)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an RFC 3339 time"));
}
