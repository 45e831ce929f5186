//! RFC 3339 timestamps in UTC, without a date-time crate: the shim needs only "now",
//! formatted two ways.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many fraction digits to write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// Always nine (exit.json's `finished_at`).
    Nanos,
    /// Go's `time.RFC3339Nano`: trailing zeros dropped, and the dot with them when the
    /// fraction is zero. Docker's json-file `time` fields are written this way.
    GoNano,
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
pub fn push_rfc3339(out: &mut Vec<u8>, t: SystemTime, fraction: Fraction) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let mut nanos = d.subsec_nanos();
    let mut digits = 9;
    if fraction == Fraction::GoNano {
        while digits > 0 && nanos.is_multiple_of(10) {
            nanos /= 10;
            digits -= 1;
        }
    }
    if digits > 0 {
        let _ = write!(out, ".{nanos:0digits$}");
    }
    out.push(b'Z');
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fmt(secs: u64, nanos: u32, f: Fraction) -> String {
        let mut out = Vec::new();
        push_rfc3339(&mut out, UNIX_EPOCH + Duration::new(secs, nanos), f);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_like_go() {
        // 2026-11-22T18:00:54Z
        let t = 1_795_370_454;
        assert_eq!(
            fmt(t, 123_456_789, Fraction::Nanos),
            "2026-11-22T18:00:54.123456789Z"
        );
        assert_eq!(
            fmt(t, 123_450_000, Fraction::GoNano),
            "2026-11-22T18:00:54.12345Z"
        );
        assert_eq!(fmt(t, 0, Fraction::GoNano), "2026-11-22T18:00:54Z");
        assert_eq!(fmt(t, 0, Fraction::Nanos), "2026-11-22T18:00:54.000000000Z");
        assert_eq!(
            fmt(t, 5, Fraction::GoNano),
            "2026-11-22T18:00:54.000000005Z"
        );
        assert_eq!(fmt(0, 0, Fraction::GoNano), "1970-01-01T00:00:00Z");
        // A leap day.
        assert_eq!(
            fmt(951_782_400, 0, Fraction::GoNano),
            "2000-02-29T00:00:00Z"
        );
    }
}
