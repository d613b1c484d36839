//! Durations written as strings in the config: `"45s"`, `"90m"`, `"12h"`, `"7d"`, `"1h30m"`, `"0s"`.
//! A bare number or an unknown unit is an error that names the value and shows an example.

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

/// What every duration error ends with.
const EXAMPLE: &str = "expected a duration like \"90m\" or \"1h30m\" (units: ms, s, m, h, d, w)";

/// Parses `"1h30m"`-style durations. Units: ms, s, m, h, d, w.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty duration: {EXAMPLE}"));
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {s:?}: {EXAMPLE}"));
        }
        let (num, tail) = rest.split_at(digits);
        let n: u128 = num
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: the number is too large"))?;
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
                    "invalid duration {s:?}: a unit is missing; {EXAMPLE}"
                ))
            }
            other => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {other:?}; {EXAMPLE}"
                ))
            }
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
        d.deserialize_any(DurVisitor)
    }
}

/// A string parses; a bare number is refused with what to write instead.
struct DurVisitor;

impl serde::de::Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(EXAMPLE)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
        parse_duration(v).map(Dur).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "{v} has no unit: write it as a string such as \"{v}s\" or \"{v}m\"; {EXAMPLE}"
        )))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "{v} has no unit: write it as a string such as \"{v}s\" or \"{v}m\"; {EXAMPLE}"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_combinations() {
        for (text, secs) in [
            ("0s", 0),
            ("45s", 45),
            ("90m", 5400),
            ("30m", 1800),
            ("12h", 43_200),
            ("7d", 604_800),
            ("30d", 2_592_000),
            ("2w", 1_209_600),
            ("1h30m", 5400),
            ("1d12h", 129_600),
            ("1h30m15s", 5415),
            (" 15m ", 900),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text:?}"
            );
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn a_bad_duration_says_what_to_write() {
        for bad in ["ten", "30", "30x", "", "m"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("expected a duration like \"90m\" or \"1h30m\""),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn a_bare_number_in_the_file_is_refused_with_an_example() {
        #[derive(serde::Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            t: Dur,
        }
        let e = toml::from_str::<T>("t = 30").unwrap_err().to_string();
        assert!(e.contains("30 has no unit"), "{e}");
        assert!(e.contains("\"30s\""), "{e}");
        let ok: T = toml::from_str("t = \"1h30m\"").unwrap();
        assert_eq!(ok.t, Dur(Duration::from_secs(5400)));
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
