//! Expected records against actual ones, as RECORDS.md says to match them:
//! handshakes by (client ip, client port, server ip, server port), in time
//! order where a 4-tuple repeats; certificates by sha256. Only the fields an
//! expected line has are compared; in nested objects only the expected keys;
//! lists element by element, in order. Extra actual lines and fields are
//! not mismatches here (callers count lines themselves when they want to).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

/// Parses JSON lines; blank lines are skipped.
pub fn parse_lines(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let v: Value =
                serde_json::from_str(l).map_err(|e| format!("line {}: {e}: {l}", n + 1))?;
            if v.is_object() {
                Ok(v)
            } else {
                Err(format!("line {} is not an object: {l}", n + 1))
            }
        })
        .collect()
}

type Key = (String, u64, String, u64);

fn endpoint(v: &Value) -> Option<(String, u64)> {
    let ip = v.get("ip")?.as_str()?;
    // "fd00::1" and "fd00:0::1" are the same address.
    let ip = ip
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| ip.to_string());
    Some((ip, v.get("port")?.as_u64()?))
}

fn key(line: &Value) -> Option<Key> {
    let (ci, cp) = endpoint(line.get("client")?)?;
    let (si, sp) = endpoint(line.get("server")?)?;
    Some((ci, cp, si, sp))
}

fn label(k: &Option<Key>) -> String {
    let ep = |ip: &str, port: u64| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    match k {
        Some((ci, cp, si, sp)) => format!("{} -> {}", ep(ci, *cp), ep(si, *sp)),
        None => "<no 4-tuple>".into(),
    }
}

/// Strict equality: a bool is not a number, 2048 equals 2048.0, lists in
/// order, objects on the expected keys only.
fn same(exp: &Value, act: &Value) -> bool {
    match (exp, act) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => exp == act,
    }
}

/// Mismatches of `act` against the fields of `exp`, pointing at the
/// innermost differing key (`san.dns`).
fn fields(exp: &Value, act: &Value, prefix: &str, skip: &[&str], out: &mut Vec<String>) {
    let Some(exp) = exp.as_object() else {
        return;
    };
    for (k, ev) in exp {
        if skip.contains(&k.as_str()) {
            continue;
        }
        let path = format!("{prefix}{k}");
        match (ev, act.get(k)) {
            (Value::Object(_), Some(av @ Value::Object(_))) => {
                fields(ev, av, &format!("{path}."), &[], out)
            }
            (_, Some(av)) if same(ev, av) => {}
            (_, av) => out.push(format!(
                "{path}: expected {ev}, got {}",
                av.map_or("<absent>".to_string(), |v| v.to_string())
            )),
        }
    }
}

/// Every way `actual` falls short of `expected`, one line each.
pub fn mismatches(expected: &[Value], actual: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let mut exp_hs: BTreeMap<Option<Key>, Vec<&Value>> = BTreeMap::new();
    for l in expected.iter().filter(|l| l["kind"] == "handshake") {
        exp_hs.entry(key(l)).or_default().push(l);
    }
    let mut act_sorted: Vec<&Value> = actual.iter().filter(|l| l["kind"] == "handshake").collect();
    // Stable: lines without a time keep their order, after the timed ones.
    act_sorted.sort_by_key(|l| match l["time"].as_str() {
        Some(t) => (0, t.to_string()),
        None => (1, String::new()),
    });
    let mut act_hs: BTreeMap<Option<Key>, Vec<&Value>> = BTreeMap::new();
    for l in act_sorted {
        act_hs.entry(key(l)).or_default().push(l);
    }
    for (k, elines) in &exp_hs {
        let alines = act_hs.get(k).map(Vec::as_slice).unwrap_or(&[]);
        for (n, el) in elines.iter().enumerate() {
            let conn = if elines.len() > 1 {
                format!("{} (#{})", label(k), n + 1)
            } else {
                label(k)
            };
            let Some(al) = alines.get(n) else {
                out.push(format!("{conn}: no handshake line"));
                continue;
            };
            let mut bad = Vec::new();
            fields(el, al, "", &["kind", "client", "server"], &mut bad);
            out.extend(bad.into_iter().map(|b| format!("{conn}: {b}")));
        }
    }
    let act_certs: BTreeMap<&str, &Value> = actual
        .iter()
        .filter(|l| l["kind"] == "certificate")
        .filter_map(|l| Some((l["sha256"].as_str()?, l)))
        .rev() // the first line of a fingerprint wins
        .collect();
    for el in expected.iter().filter(|l| l["kind"] == "certificate") {
        let fp = el["sha256"].as_str().unwrap_or_default();
        let Some(al) = act_certs.get(fp) else {
            out.push(format!("certificate {fp}: no certificate line"));
            continue;
        };
        let mut bad = Vec::new();
        fields(el, al, "", &["kind", "sha256"], &mut bad);
        out.extend(bad.into_iter().map(|b| format!("certificate {fp}: {b}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hs(port: u64, time: &str, extra: Value) -> Value {
        let mut v = json!({
            "kind": "handshake", "time": time,
            "client": {"ip": "10.0.0.2", "port": port},
            "server": {"ip": "10.0.0.1", "port": 443},
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn only_expected_fields_are_compared() {
        let exp = [hs(1, "t1", json!({"sni": "a", "key": {"bits": 2048}}))];
        let act = [hs(
            1,
            "t1",
            json!({"sni": "a", "ja3": "x", "key": {"bits": 2048.0, "type": "rsa"}}),
        )];
        assert!(mismatches(&exp, &act).is_empty());
    }

    #[test]
    fn differences_are_reported_by_field() {
        let exp = [
            hs(
                1,
                "t1",
                json!({"sni": "a", "san": {"dns": ["x", "y"]}, "resumed": true}),
            ),
            json!({"kind": "certificate", "sha256": "ab", "is_ca": false}),
        ];
        let act = [
            hs(
                1,
                "t1",
                json!({"sni": "b", "san": {"dns": ["y", "x"]}, "resumed": 1}),
            ),
            json!({"kind": "certificate", "sha256": "ab", "is_ca": null}),
        ];
        let m = mismatches(&exp, &act);
        assert_eq!(m.len(), 4, "{m:#?}");
        assert!(m[0].contains("resumed"), "{m:#?}");
        assert!(m.iter().any(|x| x.contains("san.dns")), "{m:#?}");
        assert!(
            m.iter().any(|x| x.contains("certificate ab: is_ca")),
            "{m:#?}"
        );
    }

    #[test]
    fn missing_lines_and_repeated_tuples() {
        let exp = [
            hs(1, "t1", json!({"resumed": false})),
            hs(1, "t2", json!({"resumed": true})),
            hs(2, "t3", json!({})),
            json!({"kind": "certificate", "sha256": "cd"}),
        ];
        // Actual lines out of time order: matched in time order.
        let act = [
            hs(1, "t2", json!({"resumed": true})),
            hs(1, "t1", json!({"resumed": false})),
        ];
        let m = mismatches(&exp, &act);
        assert_eq!(
            m,
            vec![
                "10.0.0.2:2 -> 10.0.0.1:443: no handshake line".to_string(),
                "certificate cd: no certificate line".to_string(),
            ]
        );
    }

    #[test]
    fn ipv6_addresses_compare_as_addresses() {
        let mut e = hs(1, "t", json!({}));
        e["client"]["ip"] = json!("fd00:123::2");
        let mut a = e.clone();
        a["client"]["ip"] = json!("fd00:123:0:0:0:0:0:2");
        assert!(mismatches(&[e], &[a]).is_empty());
    }
}
