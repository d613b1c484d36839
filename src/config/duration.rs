//! Durations written as strings in the config: `"90s"`, `"30m"`, `"12h"`, `"30d"`, `"1h30m"`, `"0s"`.
//! A bare number or an unknown unit is an error that names the value.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A configured duration. `Dur::ZERO` is meaningful (e.g. `remember_mfa = "0s"`: never).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const ZERO: Dur = Dur(Duration::ZERO);

    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Parses `"1h30m"`-style durations. Units: ms, s, m, h, d, w.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. \"30m\"".into());
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {s:?}; write e.g. \"30s\", \"15m\", \"12h\", \"30d\""
            ));
        }
        let (num, tail) = rest.split_at(digits);
        let n: u128 = num
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let ms: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => {
                return Err(format!(
                    "invalid duration {s:?}: a unit is required (ms, s, m, h, d, w)"
                ))
            }
            other => return Err(format!("invalid duration {s:?}: unknown unit {other:?}")),
        };
        total = total
            .checked_add(n.saturating_mul(ms))
            .filter(|t| *t <= 10 * 365 * 86_400_000)
            .ok_or_else(|| format!("invalid duration {s:?}: longer than ten years"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(
        u64::try_from(total).unwrap_or(u64::MAX),
    ))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_combinations() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn bad_durations_are_errors_not_panics() {
        for bad in [
            "",
            "30",
            "m",
            "30x",
            "-5m",
            "99999999999999999999999h",
            "1y",
            "5 m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
