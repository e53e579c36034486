//! Times on the command line and in the console's queries: an RFC 3339
//! instant (`2026-11-28T10:00:00Z`) or a duration back from now (`2h`,
//! `30m`, `7d`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses `text` into microseconds since the Unix epoch.
pub fn parse(text: &str) -> Result<i64, String> {
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(at) => at,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| {
                format!("{text:?} is neither an RFC 3339 time (2026-11-28T10:00:00Z) nor a duration ago (2h)")
            })?;
            SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| format!("{text:?} reaches before the Unix epoch"))?
        }
    };
    let micros = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros();
    i64::try_from(micros).map_err(|_| format!("{text:?} is too far in the future"))
}

/// Deserializes an optional time given as [`parse`] reads it.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    text.map(|t| parse(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Formats microseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn format(micros: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_durations_ago_parse() {
        assert_eq!(
            parse("2026-11-28T10:00:00Z").expect("rfc3339"),
            1_795_860_000_000_000
        );
        let now = parse("0s").expect("duration");
        let hour_ago = parse("1h").expect("duration");
        assert!((now - hour_ago - 3_600_000_000).abs() < 5_000_000);
        assert!(parse("yesterday-ish").is_err());
    }

    #[test]
    fn formats_as_rfc3339() {
        assert_eq!(format(1_795_860_000_000_000), "2026-11-28T10:00:00.000Z");
    }
}
