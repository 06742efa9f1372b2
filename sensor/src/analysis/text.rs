//! Wording shared by the rules' messages: dates, spans, names.

use crate::model::time as timefmt;

/// `2014-03-04`.
pub fn date(unix: i64) -> String {
    timefmt::seconds(unix)[..10].to_string()
}

/// A length of time the way people say it: "12 days", "5 hours".
pub fn span(secs: i64) -> String {
    let s = secs.abs();
    let (n, unit) = if s >= 2 * 86_400 {
        (s / 86_400, "days")
    } else if s >= 86_400 {
        (1, "day")
    } else if s >= 2 * 3_600 {
        (s / 3_600, "hours")
    } else if s >= 3_600 {
        (1, "hour")
    } else if s >= 120 {
        (s / 60, "minutes")
    } else {
        (s, if s == 1 { "second" } else { "seconds" })
    };
    format!("{n} {unit}")
}

/// The most specific RDN of an RFC 4514 name (`CN=www.example.com`), or
/// the whole name when it is short or has no CN first.
pub fn short_name(subject: &str) -> String {
    if subject.is_empty() {
        return "(empty subject)".into();
    }
    if !subject.starts_with("CN=") {
        return subject.to_string();
    }
    let bytes = subject.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' | b'+' => return subject[..i].to_string(),
            _ => i += 1,
        }
    }
    subject.to_string()
}

/// A list for a message, cut after `max` items.
pub fn list(items: &[String], max: usize) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let mut s = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        s.push_str(&format!(" and {} more", items.len() - max));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        assert_eq!(span(12 * 86_400 + 5), "12 days");
        assert_eq!(span(86_400 + 7_000), "1 day");
        assert_eq!(span(-5 * 3_600), "5 hours");
        assert_eq!(span(59), "59 seconds");
        assert_eq!(date(1_393_977_599), "2014-03-04");
        assert_eq!(short_name("CN=a\\,b,O=x"), "CN=a\\,b");
        assert_eq!(short_name("C=CH,O=LO,CN=MO"), "C=CH,O=LO,CN=MO");
        assert_eq!(
            list(&["a".into(), "b".into(), "c".into()], 2),
            "a, b and 1 more"
        );
    }
}
