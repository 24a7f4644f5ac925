//! A length of time as people write it: `90s`, `30m`, `24h`, `7d`, `2w`, or a
//! bare number of seconds. One grammar, parsed once at the edge, for every
//! command option and query parameter that takes one (`keys usage --since`,
//! `alerts list --since`, the admin API's `?since=`).

use chrono::Duration;
use std::fmt;
use std::str::FromStr;

/// A positive length of time of at most [`Period::LONGEST`].
///
/// Text form ([`Period::parse`]): a positive whole number with an optional
/// unit, `s`, `m` or `min`, `h`, `d` or `w`, in any case (`90s`, `30m`,
/// `24H`, `7d`, `2w`); a bare number is seconds. Surrounding whitespace is
/// ignored; nothing may stand between the number and its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period(Duration);

/// Why a text is not a [`Period`]. The messages never repeat the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Not a whole number with an optional known unit.
    #[error(
        "a period is a whole number with an optional unit s, m, h, d or w \
         (e.g. 90s, 30m, 24h, 7d; a bare number is seconds)"
    )]
    Malformed,
    /// Zero.
    #[error("the period must be positive")]
    NotPositive,
    /// Longer than [`Period::LONGEST`].
    #[error("the period is too long (at most 10 years)")]
    TooLong,
}

impl Period {
    /// The longest period accepted: ten years (3,660 days), longer than any
    /// data assetpool keeps.
    pub const LONGEST: Period = Period(Duration::days(3_660));

    /// Parses the text form described on [`Period`].
    pub fn parse(text: &str) -> Result<Self, PeriodError> {
        let seconds = parse_seconds(text)?;
        if seconds == 0 {
            return Err(PeriodError::NotPositive);
        }
        let seconds = i64::try_from(seconds).map_err(|_| PeriodError::TooLong)?;
        let period = Period(Duration::seconds(seconds));
        if period > Period::LONGEST {
            return Err(PeriodError::TooLong);
        }
        Ok(period)
    }

    /// The length of time.
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// A length of time in whole seconds, in the grammar of [`Period`] but with
/// zero allowed and no upper bound of its own (`0`, `90s`, `15m`, `24h`, `7d`):
/// for settings and options that take a duration and check their own range.
/// [`PeriodError::TooLong`] only when the number does not fit in 64 bits.
pub fn parse_seconds(text: &str) -> Result<u64, PeriodError> {
    let text = text.trim();
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_seconds: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(PeriodError::Malformed),
    };
    if number.is_empty() {
        return Err(PeriodError::Malformed);
    }
    // Only digits remain, so a number that does not parse is too large.
    let count: u64 = number.parse().map_err(|_| PeriodError::TooLong)?;
    count.checked_mul(unit_seconds).ok_or(PeriodError::TooLong)
}

impl From<Period> for Duration {
    fn from(period: Period) -> Self {
        period.0
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Period::parse(text)
    }
}

/// The text form in the largest unit that is exact (days only from two days
/// on: `24h`, `2d`, `90m`, `61s`); [`Period::parse`] reads it back.
impl fmt::Display for Period {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.num_seconds();
        for (unit, length) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if seconds % length == 0 && (unit != "d" || seconds >= 2 * length) {
                return write!(formatter, "{}{unit}", seconds / length);
            }
        }
        write!(formatter, "{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Duration, PeriodError> {
        Period::parse(text).map(Period::duration)
    }

    #[test]
    fn a_number_with_an_optional_unit_in_any_case() {
        assert_eq!(parsed("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parsed("90"), Ok(Duration::seconds(90)));
        assert_eq!(parsed("30m"), Ok(Duration::minutes(30)));
        assert_eq!(parsed("30min"), Ok(Duration::minutes(30)));
        assert_eq!(parsed("24h"), Ok(Duration::hours(24)));
        assert_eq!(parsed("7d"), Ok(Duration::days(7)));
        assert_eq!(parsed("2w"), Ok(Duration::weeks(2)));
        assert_eq!(parsed("7D"), Ok(Duration::days(7)));
        assert_eq!(parsed("30MIN"), Ok(Duration::minutes(30)));
        assert_eq!(parsed(" 24h "), Ok(Duration::hours(24)));
        assert_eq!(parsed("007d"), Ok(Duration::days(7)));
    }

    #[test]
    fn anything_else_is_malformed() {
        for bad in [
            "", " ", "h", "-1h", "+1h", "1.5h", "24 h", "24x", "24hours", "1e3", "h24", "٣h",
            "24h1", "1mi",
        ] {
            assert_eq!(Period::parse(bad), Err(PeriodError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn zero_is_not_positive() {
        for zero in ["0", "0s", "0h", "000d"] {
            assert_eq!(Period::parse(zero), Err(PeriodError::NotPositive), "{zero}");
        }
    }

    #[test]
    fn at_most_ten_years() {
        assert_eq!(parsed("3660d"), Ok(Duration::days(3_660)));
        assert_eq!(parsed("316224000"), Ok(Duration::days(3_660)));
        for long in [
            "3661d",
            "523w",
            "316224001",
            "99999999999999999999d",
            "9223372036854775807w",
            "99999999999999999999",
        ] {
            assert_eq!(Period::parse(long), Err(PeriodError::TooLong), "{long}");
        }
    }

    #[test]
    fn seconds_take_the_same_grammar_with_zero_and_no_ceiling() {
        assert_eq!(parse_seconds("0"), Ok(0));
        assert_eq!(parse_seconds("0s"), Ok(0));
        assert_eq!(parse_seconds("90"), Ok(90));
        assert_eq!(parse_seconds("90s"), Ok(90));
        assert_eq!(parse_seconds("15m"), Ok(900));
        assert_eq!(parse_seconds("24h"), Ok(86_400));
        assert_eq!(parse_seconds("7d"), Ok(604_800));
        assert_eq!(parse_seconds("36500d"), Ok(3_153_600_000));
        assert_eq!(parse_seconds("24 h"), Err(PeriodError::Malformed));
        assert_eq!(parse_seconds("-1"), Err(PeriodError::Malformed));
        assert_eq!(
            parse_seconds("99999999999999999999"),
            Err(PeriodError::TooLong)
        );
        assert_eq!(
            parse_seconds("9999999999999999999w"),
            Err(PeriodError::TooLong)
        );
    }

    #[test]
    fn messages_never_repeat_the_text() {
        for text in ["sekrit", "0", "99999999999d"] {
            let message = Period::parse(text).unwrap_err().to_string();
            assert!(!message.contains(text), "{message}");
        }
    }

    #[test]
    fn displayed_in_the_largest_exact_unit_and_read_back() {
        for (text, shown) in [
            ("48h", "2d"),
            ("24h", "24h"),
            ("90m", "90m"),
            ("61", "61s"),
            ("2w", "14d"),
            ("3660d", "3660d"),
        ] {
            let period = Period::parse(text).unwrap();
            assert_eq!(period.to_string(), shown);
            assert_eq!(Period::parse(shown), Ok(period));
        }
    }
}
