//! Durations as written on the command line: `500ms`, `30s`, `5m`, `1h`, or a
//! sum such as `1m30s`. One syntax everywhere (`--resync-interval`,
//! `--timeout`), and the same form back in log lines.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: expected a number and a unit, such as 500ms, 30s or 5m")]
    Empty,
    #[error("invalid duration {0:?}: expected a number and a unit (ms, s, m, h), such as 500ms, 30s or 5m")]
    Invalid(String),
    #[error("duration {0:?} is too long")]
    Overflow(String),
    #[error("duration {0:?} must be longer than zero")]
    Zero(String),
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `1m30s`. A unit is required: a bare
/// `30` is ambiguous (seconds? milliseconds?) and refused.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_owned());
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow(text.to_owned()))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total_ms = value
            .checked_mul(factor)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// [`parse`], refusing zero: an interval of zero would be a busy loop.
pub fn parse_nonzero(text: &str) -> Result<Duration, DurationError> {
    match parse(text)? {
        d if d.is_zero() => Err(DurationError::Zero(text.to_owned())),
        d => Ok(d),
    }
}

/// The inverse of [`parse`] for log lines: `500ms`, `30s`, `5m`, `1m30s`.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Seconds with one decimal, for "postgres is up after 3.2 s".
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 2s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_is_ambiguous_or_wrong() {
        for bad in ["30", "s", "1.5s", "-1s", "5 m", "5min", "1d", "ms5"] {
            assert!(
                matches!(parse(bad), Err(DurationError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(
            parse("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse("9999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert_eq!(parse_nonzero("0s"), Err(DurationError::Zero("0s".into())));
        assert_eq!(parse_nonzero("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse("5x").unwrap_err().to_string().contains("500ms"));
    }

    #[test]
    fn formats_back() {
        for text in ["500ms", "30s", "5m", "1h", "1m30s", "0s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(seconds(Duration::from_millis(3240)), "3.2 s");
    }
}
