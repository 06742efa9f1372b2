use time::OffsetDateTime;
use time::macros::format_description;

/// RFC 3339 UTC with microseconds: `2024-05-01T12:00:00.123456Z`.
pub fn micros(us: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .unwrap_or_default()
}

/// RFC 3339 UTC, whole seconds: `2024-05-01T12:00:00Z`.
pub fn seconds(s: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(
            super::micros(1_000_000_000_123_456),
            "2001-09-09T01:46:40.123456Z"
        );
        assert_eq!(super::seconds(-631152000), "1950-01-01T00:00:00Z");
    }
}
