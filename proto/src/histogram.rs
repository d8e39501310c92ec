//! How latency histograms travel: HdrHistogram's V2 encoding, plain or
//! deflate-compressed (the same bytes `.hlog` interval logs carry, base64'd).
//!
//! Both sides agree on one histogram shape ([`new_latency_histogram`]): values
//! in microseconds from 1 µs to 1 h at 3 significant digits. Decoding checks
//! the size of the input and the shape of what it produced, because the bytes
//! come from a peer.

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer, V2Serializer};
use hdrhistogram::{CreationError, Histogram};

/// Lowest discernible latency: 1 µs.
pub const LOWEST_MICROS: u64 = 1;
/// Highest trackable latency: one hour, in µs. Larger values saturate here.
pub const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Precision: 3 significant digits (value error ≤ 0.1%).
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// Largest encoded histogram a decoder accepts. A full-range histogram with
/// every bucket populated encodes to well under this.
pub const MAX_ENCODED_BYTES: usize = 1 << 20;

/// The one latency histogram shape used on the wire and in reports.
pub fn new_latency_histogram() -> Histogram<u64> {
    // The bounds are constants known to be valid.
    Histogram::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
        .unwrap_or_else(|e: CreationError| panic!("constant histogram bounds rejected: {e:?}"))
}

/// Which V2 variant to produce. Decoding accepts either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// V2 with zig-zag LEB128 run-length counts.
    Plain,
    /// V2 wrapped in zlib deflate (what `.hlog` files hold).
    #[default]
    Deflate,
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" | "v2" => Ok(Encoding::Plain),
            "deflate" | "v2-deflate" => Ok(Encoding::Deflate),
            other => Err(format!(
                "unknown histogram encoding {other:?} (expected plain or deflate)"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistogramCodecError {
    #[error("encoded histogram is {0} bytes, over the {MAX_ENCODED_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("histogram does not decode: {0}")]
    Malformed(String),
    #[error("histogram shape differs from the agreed one: {0}")]
    Shape(String),
    #[error("histogram does not encode: {0}")]
    Encode(String),
}

/// Encodes a histogram. Reuse `out` across calls to avoid reallocating.
pub fn encode_into(
    histogram: &Histogram<u64>,
    encoding: Encoding,
    out: &mut Vec<u8>,
) -> Result<(), HistogramCodecError> {
    out.clear();
    match encoding {
        Encoding::Plain => V2Serializer::new()
            .serialize(histogram, out)
            .map_err(|e| HistogramCodecError::Encode(format!("{e:?}")))?,
        Encoding::Deflate => V2DeflateSerializer::new()
            .serialize(histogram, out)
            .map_err(|e| HistogramCodecError::Encode(format!("{e:?}")))?,
    };
    Ok(())
}

/// Encodes a histogram into a fresh buffer.
pub fn encode(
    histogram: &Histogram<u64>,
    encoding: Encoding,
) -> Result<Vec<u8>, HistogramCodecError> {
    let mut out = Vec::new();
    encode_into(histogram, encoding, &mut out)?;
    Ok(out)
}

/// Decodes bytes from a peer (or a saved report) into the agreed shape.
///
/// An empty input decodes to an empty histogram: a proto3 `bytes` field that
/// was never set arrives empty.
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, HistogramCodecError> {
    if bytes.is_empty() {
        return Ok(new_latency_histogram());
    }
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(HistogramCodecError::TooLarge(bytes.len()));
    }
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| HistogramCodecError::Malformed(format!("{e:?}")))?;
    // Re-home the counts into the agreed shape; refuses values beyond range.
    let mut agreed = new_latency_histogram();
    agreed
        .add(&decoded)
        .map_err(|e| HistogramCodecError::Shape(format!("{e:?}")))?;
    Ok(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = new_latency_histogram();
        for v in [1u64, 7, 130, 5_000, 5_001, 40_000, 120_000, 3_000_000] {
            h.record_n(v, v % 7 + 1).expect("in range");
        }
        h
    }

    #[test]
    fn round_trips_both_encodings() {
        let h = sample();
        for enc in [Encoding::Plain, Encoding::Deflate] {
            let bytes = encode(&h, enc).expect("encodes");
            let back = decode(&bytes).expect("decodes");
            assert_eq!(back, h, "{enc:?}");
        }
    }

    #[test]
    fn empty_bytes_are_an_empty_histogram() {
        assert_eq!(decode(&[]).expect("decodes").len(), 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b"not a histogram"[..],
            &[0x1c, 0x84, 0x93, 0x14, 0, 0, 0, 1, 2],
        ] {
            assert!(decode(bytes).is_err());
        }
    }

    #[test]
    fn oversized_input_is_refused() {
        let bytes = vec![0u8; MAX_ENCODED_BYTES + 1];
        assert!(matches!(
            decode(&bytes),
            Err(HistogramCodecError::TooLarge(_))
        ));
    }
}
