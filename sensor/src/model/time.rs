use time::OffsetDateTime;
use time::macros::format_description;

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian),
/// after Howard Hinnant's `civil_from_days`.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// `YYYY-MM-DDTHH:MM:SS` into the first 19 bytes of `out`; false for years
/// outside 0000–9999, which the general formatter handles.
fn put_seconds(out: &mut [u8], s: i64) -> bool {
    let (y, mo, d) = civil(s.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return false;
    }
    let sod = s.rem_euclid(86_400) as u32;
    put2(&mut out[0..], (y / 100) as u32);
    put2(&mut out[2..], (y % 100) as u32);
    out[4] = b'-';
    put2(&mut out[5..], mo);
    out[7] = b'-';
    put2(&mut out[8..], d);
    out[10] = b'T';
    put2(&mut out[11..], sod / 3600);
    out[13] = b':';
    put2(&mut out[14..], sod / 60 % 60);
    out[16] = b':';
    put2(&mut out[17..], sod % 60);
    true
}

/// The fixed-width forms live on the stack: records format a time or two
/// per line, and a String each was an allocation each.
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// `f` of RFC 3339 UTC with microseconds: `2024-05-01T12:00:00.123456Z`.
pub fn with_micros<R>(us: i64, f: impl FnOnce(&str) -> R) -> R {
    let mut out = [0u8; 27];
    if !put_seconds(&mut out, us.div_euclid(1_000_000)) {
        return f(&micros_general(us));
    }
    let frac = us.rem_euclid(1_000_000) as u32;
    out[19] = b'.';
    put2(&mut out[20..], frac / 10_000);
    put2(&mut out[22..], frac / 100 % 100);
    put2(&mut out[24..], frac % 100);
    out[26] = b'Z';
    f(ascii(&out))
}

/// `f` of RFC 3339 UTC, whole seconds: `2024-05-01T12:00:00Z`.
pub fn with_seconds<R>(s: i64, f: impl FnOnce(&str) -> R) -> R {
    let mut out = [0u8; 20];
    if !put_seconds(&mut out, s) {
        return f(&seconds_general(s));
    }
    out[19] = b'Z';
    f(ascii(&out))
}

/// RFC 3339 UTC with microseconds: `2024-05-01T12:00:00.123456Z`.
pub fn micros(us: i64) -> String {
    with_micros(us, str::to_string)
}

/// RFC 3339 UTC, whole seconds: `2024-05-01T12:00:00Z`.
pub fn seconds(s: i64) -> String {
    with_seconds(s, str::to_string)
}

fn micros_general(us: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .unwrap_or_default()
}

fn seconds_general(s: i64) -> String {
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

    /// The fast path agrees with the general formatter on every kind of
    /// day: leap days, century years, the epoch, before it, the edges.
    #[test]
    fn fast_path_equals_the_general_formatter() {
        let mut s: i64 = -62_167_219_200; // 0000-01-01
        while s < 253_402_300_800 {
            // 9999-12-31T23:59:59 + 1
            assert_eq!(super::seconds(s), super::seconds_general(s), "{s}");
            let us = s * 1_000_000 + 123_457;
            assert_eq!(super::micros(us), super::micros_general(us), "{us}");
            s += 86_400 * 13 + 3_607;
        }
        for s in [-1, 0, 951_782_400, 4_107_542_400, 253_402_300_799] {
            assert_eq!(super::seconds(s), super::seconds_general(s), "{s}");
            assert_eq!(
                super::micros(s * 1_000_000 - 1),
                super::micros_general(s * 1_000_000 - 1)
            );
        }
        // Outside the years the fast path writes, the general one answers.
        assert_eq!(
            super::seconds(253_402_300_800),
            super::seconds_general(253_402_300_800)
        );
    }
}
