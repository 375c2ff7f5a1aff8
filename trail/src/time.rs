//! CloudTrail times: `YYYY-MM-DDTHH:MM:SSZ` to seconds since the Unix epoch and back, in
//! integer arithmetic (the civil-calendar algorithm of Howard Hinnant's `days_from_civil`).

/// Seconds since the Unix epoch of `text`, which is `YYYY-MM-DDTHH:MM:SS` followed by `Z`
/// (CloudTrail's form), optionally with fractional seconds (dropped) or a `+00:00` offset.
/// A date alone (`YYYY-MM-DD`) is its midnight. `None` for anything else.
pub fn parse(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(days * 86_400);
    }
    if b.len() < 19 || (b[10] != b'T' && b[10] != b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, m, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" | "+00:00" | "" => 0,
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || (ob[0] != b'+' && ob[0] != b'-') || ob[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let sign = if ob[0] == b'+' { 1 } else { -1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch.
pub fn format(epoch_s: i64) -> String {
    let days = epoch_s.div_euclid(86_400);
    let secs = epoch_s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_values() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("2026-12-06T00:12:24Z"), Some(1_796_515_944));
        assert_eq!(parse("2026-12-06"), Some(1_796_515_944 - 744));
        assert_eq!(parse("2026-12-06T01:12:24+01:00"), Some(1_796_515_944));
        assert_eq!(parse("2026-12-06T00:12:24.123Z"), Some(1_796_515_944));
        for t in [0, 951_782_400, 1_796_515_944, 4_102_444_799] {
            assert_eq!(parse(&format(t)), Some(t));
        }
        assert_eq!(format(951_782_400), "2000-02-29T00:00:00Z");
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-12-06T25:00:00Z",
            "yesterday",
            "2026-12-06T00:12",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
