//! Region names and the `REGION=DELAY` syntax that assigns a delay to one.
//!
//! A region name appears in request paths (`/region/<name>`) and headers (`x-stampede-region`), so only
//! names that survive both unescaped are accepted; anything else would be a region no request can select.

use crate::delay::{DelayParseError, DelaySpec};

/// Why a `region=delay` pair could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionDelayParseError {
    /// No `=` separating the region from its delay.
    #[error(
        "invalid region delay {input:?}: expected REGION=DELAY, e.g. \"us-east=5ms\" or \"eu-west=normal(40ms,5ms)\""
    )]
    MissingEquals {
        /// The whole pair.
        input: String,
    },
    /// The region name cannot be used in a request path or header.
    #[error("invalid region name {name:?} in {input:?}: {reason}")]
    InvalidName {
        /// The whole pair.
        input: String,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The delay part is not a valid delay spec.
    #[error("invalid delay for region {region:?}: {source}")]
    Delay {
        /// The region name.
        region: String,
        /// Why the delay failed to parse.
        #[source]
        source: DelayParseError,
    },
}

/// Longest accepted region name; names are path segments and header values, and long ones are a mistake.
pub const MAX_REGION_NAME_LEN: usize = 64;

/// Checks that `name` can name a region in `/region/<name>` and in the `x-stampede-region` header.
///
/// Returns the reason it cannot, for error messages.
pub fn check_region_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > MAX_REGION_NAME_LEN {
        return Err("the name is longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("only ASCII letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

/// Parses a `REGION=DELAY` pair such as `us-east=5ms` or `eu-west=normal(40ms,5ms)`.
///
/// This is the CLI's `--region-delay` syntax; it lives here so that every front end agrees on it.
pub fn parse_region_delay(s: &str) -> Result<(String, DelaySpec), RegionDelayParseError> {
    let Some((name, delay)) = s.split_once('=') else {
        return Err(RegionDelayParseError::MissingEquals {
            input: s.to_owned(),
        });
    };
    let name = name.trim();
    check_region_name(name).map_err(|reason| RegionDelayParseError::InvalidName {
        input: s.to_owned(),
        name: name.to_owned(),
        reason,
    })?;
    let delay = delay
        .parse()
        .map_err(|source| RegionDelayParseError::Delay {
            region: name.to_owned(),
            source,
        })?;
    Ok((name.to_owned(), delay))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_region_delays() {
        assert_eq!(
            parse_region_delay("us-east=5ms"),
            Ok(("us-east".to_owned(), DelaySpec::Fixed(ms(5))))
        );
        assert_eq!(
            parse_region_delay("eu-west=normal(40ms,5ms)"),
            Ok((
                "eu-west".to_owned(),
                DelaySpec::Normal {
                    mean: ms(40),
                    stddev: ms(5)
                }
            ))
        );

        let e = parse_region_delay("us-east")
            .expect_err("no '='")
            .to_string();
        assert!(e.contains("expected REGION=DELAY"), "{e}");
        let e = parse_region_delay("=5ms")
            .expect_err("empty name")
            .to_string();
        assert!(e.contains("name is empty"), "{e}");
        let e = parse_region_delay("us/east=5ms")
            .expect_err("slash")
            .to_string();
        assert!(e.contains("\"us/east\"") && e.contains("only ASCII"), "{e}");
        let e = parse_region_delay("ap-south=gamma(1ms)")
            .expect_err("bad delay")
            .to_string();
        assert!(
            e.contains("region \"ap-south\"") && e.contains("unknown distribution"),
            "{e}"
        );
    }
}
