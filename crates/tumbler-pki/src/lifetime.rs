//! Certificate lifetimes, written as CockroachDB writes durations: `43800h`, `30m`, `1s`.

use time::Duration;

/// Default lifetime of a CA certificate: 10 years of 366 days, as CockroachDB uses.
pub const DEFAULT_CA_LIFETIME: Duration = Duration::hours(87_840);
/// Default lifetime of node and client certificates: 5 years of 366 days.
pub const DEFAULT_LEAF_LIFETIME: Duration = Duration::hours(43_920);
/// How far in the past `NotBefore` lies, so that a node whose clock lags accepts a fresh
/// certificate.
pub const BACKDATE: Duration = Duration::hours(24);

/// Parses a duration such as `43800h`, `1h30m`, `90s` or `1.5h`.
///
/// # Errors
///
/// Returns a message naming the value when it is empty, has an unknown unit, or is not positive.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: write a number and a unit (h, m or s), for example 10s or 43800h"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(number_end);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let seconds = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(invalid()),
        };
        total += value * seconds;
        rest = next;
    }
    if total < 1.0 {
        return Err(format!("invalid duration {text:?}: it must be at least 1s"));
    }
    Ok(Duration::seconds_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_minutes_seconds() {
        assert_eq!(parse_duration("43800h").unwrap(), Duration::hours(43_800));
        assert_eq!(parse_duration("30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_duration("1s").unwrap(), Duration::seconds(1));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::minutes(90));
    }

    #[test]
    fn bad_durations() {
        for text in ["", "10", "h", "10d", "-5h", "0s"] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }
}
