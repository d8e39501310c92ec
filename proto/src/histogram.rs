//! How latency histograms travel: HdrHistogram's V2 encoding, plain or
//! deflate-compressed (the same bytes `.hlog` interval logs carry, base64'd).
//!
//! Both sides agree on one histogram shape ([`new_latency_histogram`]): values
//! in microseconds from 1 µs to 1 h at 3 significant digits. Decoding checks
//! the size of the input and the shape of what it produced, because the bytes
//! come from a peer.

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer, V2Serializer};
use hdrhistogram::{CreationError, Histogram};
use std::io::Read;

mod cumulative;
pub use cumulative::CumulativeCounts;

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
///
/// It starts covering 0–2 ms and grows (hdrhistogram's auto-resize) to the
/// largest value recorded into it, never past the agreed 1 h: record with
/// [`RecordClamped`], which saturates there. A histogram built for the whole
/// hour up front is 188 KiB that hdrhistogram zero-fills, page by page; one
/// that has only seen sub-millisecond latencies is 16 KiB. Processes that
/// build several per interval (every agent, and a coordinator at each
/// interval's close) stay that much smaller.
pub fn new_latency_histogram() -> Histogram<u64> {
    // The bounds are constants known to be valid.
    let mut h = Histogram::new_with_bounds(LOWEST_MICROS, 2, SIGNIFICANT_DIGITS)
        .unwrap_or_else(|e: CreationError| panic!("constant histogram bounds rejected: {e:?}"));
    h.auto(true);
    h
}

/// Recording into the agreed shape: values above [`HIGHEST_MICROS`] count
/// as `HIGHEST_MICROS`. (hdrhistogram's own `saturating_record` would
/// saturate at whatever a growing histogram covers so far.)
pub trait RecordClamped {
    fn record_clamped(&mut self, value: u64) {
        self.record_n_clamped(value, 1);
    }
    fn record_n_clamped(&mut self, value: u64, count: u64);
}

impl RecordClamped for Histogram<u64> {
    #[inline]
    fn record_n_clamped(&mut self, value: u64, count: u64) {
        let value = value.min(HIGHEST_MICROS);
        // Only a histogram that cannot grow (one decoded as-is from a
        // peer's bytes) refuses; it saturates at its own range.
        if self.record_n(value, count).is_err() {
            self.saturating_record_n(value, count);
        }
    }
}

/// Which V2 variant to produce. Decoding accepts either.
///
/// The wire default is plain: deflate halves the bytes (≈3.4 KB against
/// ≈5.9 KB per interval report, i.e. ~12 MB against ~21 MB per agent-hour)
/// but costs the agent ~150 µs per histogram to encode and the coordinator
/// ~2× the decode time — and the coordinator's CPU is what limits the fleet
/// size (`cargo bench -p stampede-proto`, `--bench coordinator_scale`).
/// Reports and `.hlog` data use deflate, the form other tools expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// V2 with zig-zag LEB128 run-length counts.
    #[default]
    Plain,
    /// V2 wrapped in zlib deflate (what `.hlog` files hold).
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    // (A value in the same bucket as the hour itself is the hour.)
    if !decoded.is_empty() && decoded.lowest_equivalent(decoded.max()) > HIGHEST_MICROS {
        return Err(HistogramCodecError::Shape(format!(
            "holds {} µs, beyond the agreed range (1 h)",
            decoded.max()
        )));
    }
    let mut agreed = new_latency_histogram();
    agreed
        .add(&decoded)
        .map_err(|e| HistogramCodecError::Shape(format!("{e:?}")))?;
    Ok(agreed)
}

/// A decoded histogram kept as its non-zero buckets: each one's index in
/// the agreed shape ([`agreed_index`]) and its count, in ascending order.
/// Adding it into a full histogram or [`DenseCounts`] costs O(non-zero
/// buckets) instead of a walk over all ~23 500 of them, which is what lets
/// one coordinator merge a thousand agents' reports a second. Indices and
/// counts are kept apart (12 bytes a bucket, not 16 with padding): a
/// coordinator holds one of these per agent and histogram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseHistogram {
    indices: Vec<u32>,
    counts: Vec<u64>,
    total: u64,
}

impl SparseHistogram {
    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Non-zero buckets: `(lowest value of the bucket, count)`, ascending.
    pub fn entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.indices
            .iter()
            .zip(&self.counts)
            .map(|(&index, &count)| (value_at_agreed_index(index as usize), count))
    }

    /// Adds every count into `histogram` (values beyond its range saturate).
    pub fn add_to(&self, histogram: &mut Histogram<u64>) {
        add_agreed_buckets(
            histogram,
            self.indices
                .iter()
                .zip(&self.counts)
                .map(|(&index, &count)| (index as usize, count)),
        );
    }

    /// Appends a bucket at or after the last one (equal indices combine).
    #[inline]
    fn push(&mut self, index: u32, count: u64) {
        match self.indices.last() {
            Some(&last) if last == index => {
                if let Some(c) = self.counts.last_mut() {
                    *c += count;
                }
            }
            _ => {
                self.indices.push(index);
                self.counts.push(count);
            }
        }
    }

    /// Adds `other` into `self`, in place. O(both sizes), and cheap in the
    /// common case of a cumulative total: once it has seen a few intervals,
    /// nearly every bucket of the next one is already in it. Those counts
    /// are added where they are, in one forward walk; the few new buckets
    /// are then inserted from the back, moving each run of entries between
    /// them once (a `copy_within`), so nothing is reallocated (amortised),
    /// zero-filled or compared twice.
    pub fn merge(&mut self, other: &SparseHistogram) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            self.clone_from(other);
            return;
        }
        let n = self.indices.len();
        // Buckets of `other` that `self` lacks: (index, count, where it
        // goes among `self`'s entries as they are now).
        let mut new_buckets: Vec<(u32, u64, usize)> = Vec::new();
        let mut at = 0usize;
        for (&index, &count) in other.indices.iter().zip(&other.counts) {
            // Both are ascending: `at` only moves forward, usually by a
            // step or two (the walk is O(both sizes), well predicted).
            while self.indices.get(at).is_some_and(|&i| i < index) {
                at += 1;
            }
            match self.indices.get(at) {
                Some(&i) if i == index => {
                    if let Some(c) = self.counts.get_mut(at) {
                        *c += count;
                    }
                }
                _ => new_buckets.push((index, count, at)),
            }
        }
        self.total += other.total;
        if new_buckets.is_empty() {
            return;
        }
        let k = new_buckets.len();
        self.indices.resize(n + k, 0);
        self.counts.resize(n + k, 0);
        // From the last new bucket back: the entries after it (up to the
        // next one) move up by the new buckets at or before it, then it
        // takes its place.
        let mut end = n;
        for (t, &(index, count, at)) in new_buckets.iter().enumerate().rev() {
            self.indices.copy_within(at..end, at + t + 1);
            self.counts.copy_within(at..end, at + t + 1);
            self.indices[at + t] = index;
            self.counts[at + t] = count;
            end = at;
        }
    }

    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut h = new_latency_histogram();
        self.add_to(&mut h);
        h
    }
}

/// Bucket index of `value` in the agreed histogram shape (HdrHistogram's
/// own layout for 1 µs .. 1 h at 3 digits: 2048 sub-buckets, unit 1).
/// Values beyond the range land in the last bucket, as saturating records do.
#[inline]
pub const fn agreed_index(value: u64) -> usize {
    const SUB_BUCKET_COUNT_MAGNITUDE: u32 = 11;
    const HALF_MAGNITUDE: u32 = SUB_BUCKET_COUNT_MAGNITUDE - 1;
    const HALF_COUNT: u64 = 1 << HALF_MAGNITUDE;
    let value = if value < LOWEST_MICROS {
        LOWEST_MICROS
    } else if value > HIGHEST_MICROS {
        HIGHEST_MICROS
    } else {
        value
    };
    let mask = (1u64 << SUB_BUCKET_COUNT_MAGNITUDE) - 1;
    let bucket = (64 - SUB_BUCKET_COUNT_MAGNITUDE) - (value | mask).leading_zeros();
    let sub_bucket = value >> bucket;
    (((bucket as u64 + 1) << HALF_MAGNITUDE) + sub_bucket - HALF_COUNT) as usize
}

/// Counts laid out like the agreed shape's buckets. Adding a sparse
/// histogram is one array add per bucket — the cheapest way for the
/// coordinator to sum hundreds of agents' reports into an interval.
#[derive(Debug, Clone)]
pub struct DenseCounts {
    counts: Vec<u64>,
    total: u64,
}

impl Default for DenseCounts {
    fn default() -> Self {
        Self {
            counts: vec![0; AGREED_BUCKETS],
            total: 0,
        }
    }
}

impl DenseCounts {
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// One array add per bucket: the sparse form's indices are this
    /// layout's (decoding re-homed them).
    pub fn add_sparse(&mut self, sparse: &SparseHistogram) {
        for (&index, &count) in sparse.indices.iter().zip(&sparse.counts) {
            if let Some(c) = self.counts.get_mut(index as usize) {
                *c += count;
            }
        }
        self.total += sparse.total;
    }

    /// The non-zero counts, in sparse form: one pass over the buckets.
    pub fn to_sparse(&self) -> SparseHistogram {
        let mut sparse = SparseHistogram::default();
        if self.total == 0 {
            return sparse;
        }
        for (index, &count) in self.counts.iter().enumerate() {
            if count != 0 {
                sparse.indices.push(index as u32);
                sparse.counts.push(count);
            }
        }
        sparse.total = self.total;
        sparse
    }

    /// The counts as a histogram of the agreed shape.
    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut h = new_latency_histogram();
        if self.total == 0 {
            return h;
        }
        add_agreed_buckets(
            &mut h,
            self.counts
                .iter()
                .enumerate()
                .filter(|&(_, &count)| count != 0)
                .map(|(index, &count)| (index, count)),
        );
        h
    }
}

/// Adds `(agreed bucket index, count)` pairs, in ascending order, into
/// `histogram`, highest first: a growing histogram then resizes once, to
/// its final size, instead of once for every magnitude it passes.
pub fn add_agreed_buckets(
    histogram: &mut Histogram<u64>,
    ascending: impl DoubleEndedIterator<Item = (usize, u64)>,
) {
    for (index, count) in ascending.rev() {
        histogram.record_n_clamped(value_at_agreed_index(index), count);
    }
}

/// The lowest value of bucket `index` in the agreed shape.
#[inline]
pub fn value_at_agreed_index(index: usize) -> u64 {
    const HALF_MAGNITUDE: u32 = 10;
    const HALF_COUNT: u64 = 1 << HALF_MAGNITUDE;
    let index = index as u64;
    let bucket = (index >> HALF_MAGNITUDE) as i64 - 1;
    let mut sub_bucket = (index & (HALF_COUNT - 1)) + HALF_COUNT;
    let bucket = if bucket < 0 {
        sub_bucket -= HALF_COUNT;
        0
    } else {
        bucket as u32
    };
    sub_bucket << bucket
}

/// The agreed shape's last bucket: where values beyond its range land.
const AGREED_TOP: usize = agreed_index(HIGHEST_MICROS);
/// Buckets in the agreed shape grown to the full hour: HdrHistogram lays
/// them out in blocks of half a sub-bucket count (1024 at 3 digits).
const AGREED_BUCKETS: usize = (AGREED_TOP / 1024 + 1) * 1024;
const _: () = assert!(AGREED_TOP < AGREED_BUCKETS);

/// Cookies of HdrHistogram's V2 encodings (word size 8 in the low byte).
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;
/// V2 header after the cookie: payload length, normalizing offset, digits,
/// lowest, highest, integer-to-double ratio.
const V2_HEADER_BYTES: usize = 4 + 4 + 4 + 8 + 8 + 8;
/// Largest inflated payload accepted (a full-range histogram with every
/// bucket set needs about 210 KB); guards against deflate bombs.
const MAX_INFLATED_BYTES: u64 = 4 << 20;
/// Most buckets a peer's histogram shape may have.
const MAX_BUCKET_INDEX: u64 = 1 << 22;

fn malformed(why: &str) -> HistogramCodecError {
    HistogramCodecError::Malformed(why.to_owned())
}

fn be_u32(b: &[u8], at: usize) -> Result<u32, HistogramCodecError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| malformed("truncated header"))
}

fn be_u64(b: &[u8], at: usize) -> Result<u64, HistogramCodecError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| malformed("truncated header"))
}

/// Decodes V2 (plain or deflate) bytes from a peer straight into sparse
/// form, without materialising a full histogram. Checks sizes, the header
/// and every bucket index; never panics on garbage.
pub fn decode_sparse(bytes: &[u8]) -> Result<SparseHistogram, HistogramCodecError> {
    let mut out = SparseHistogram::default();
    decode_sparse_into(bytes, &mut out)?;
    Ok(out)
}

/// [`decode_sparse`] into `out`, reusing its buffers: a caller that decodes
/// histogram after histogram (the coordinator settling a thousand agents'
/// phase timings) allocates nothing once they are large enough. On an error
/// `out` holds no histogram worth reading (it is left empty).
pub fn decode_sparse_into(
    bytes: &[u8],
    out: &mut SparseHistogram,
) -> Result<(), HistogramCodecError> {
    let decoded = decode_sparse_bytes(bytes, out);
    if decoded.is_err() {
        out.indices.clear();
        out.counts.clear();
        out.total = 0;
    }
    decoded
}

/// Decodes into `out`, whatever it held (its buffers are reused).
fn decode_sparse_bytes(bytes: &[u8], out: &mut SparseHistogram) -> Result<(), HistogramCodecError> {
    if bytes.is_empty() {
        out.indices.clear();
        out.counts.clear();
        out.total = 0;
        return Ok(());
    }
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(HistogramCodecError::TooLarge(bytes.len()));
    }
    match be_u32(bytes, 0)? {
        V2_COOKIE => decode_v2(bytes, out),
        V2_COMPRESSED_COOKIE => {
            let len = be_u32(bytes, 4)? as usize;
            let compressed = bytes
                .get(8..8 + len)
                .ok_or_else(|| malformed("compressed length beyond the input"))?;
            let mut inflated = Vec::new();
            flate2::read::ZlibDecoder::new(compressed)
                .take(MAX_INFLATED_BYTES + 1)
                .read_to_end(&mut inflated)
                .map_err(|e| malformed(&format!("deflate stream: {e}")))?;
            if inflated.len() as u64 > MAX_INFLATED_BYTES {
                return Err(malformed("inflates beyond the size limit"));
            }
            if be_u32(&inflated, 0)? != V2_COOKIE {
                return Err(malformed("compressed payload is not V2"));
            }
            decode_v2(&inflated, out)
        }
        _ => Err(malformed("unknown cookie (not HdrHistogram V2)")),
    }
}

/// Decodes into `out`, whatever it held (its buffers are reused).
fn decode_v2(bytes: &[u8], out: &mut SparseHistogram) -> Result<(), HistogramCodecError> {
    let payload_len = be_u32(bytes, 4)? as usize;
    if be_u32(bytes, 8)? != 0 {
        return Err(malformed("normalizing index offset is not supported"));
    }
    let digits = be_u32(bytes, 12)?;
    let lowest = be_u64(bytes, 16)?;
    let highest = be_u64(bytes, 24)?;
    if be_u64(bytes, 32)? != 1f64.to_bits() {
        return Err(malformed("integer-to-double ratio is not supported"));
    }
    if !(1..=5).contains(&digits) || lowest == 0 || highest < lowest.saturating_mul(2) {
        return Err(HistogramCodecError::Shape(format!(
            "lowest {lowest}, highest {highest}, {digits} digits"
        )));
    }
    let start = 4 + V2_HEADER_BYTES;
    let payload = bytes
        .get(start..start + payload_len)
        .ok_or_else(|| malformed("payload length beyond the input"))?;

    // The bucket layout HdrHistogram derives from (lowest, digits).
    let largest_single_unit = 2 * 10u64.pow(digits);
    let sub_bucket_count_magnitude = 64 - (largest_single_unit - 1).leading_zeros();
    let half_magnitude = sub_bucket_count_magnitude.max(1) - 1;
    let half_count = 1u64 << half_magnitude;
    let unit_magnitude = 63 - lowest.leading_zeros();
    let value_at = |index: u64| -> u64 {
        let bucket = (index >> half_magnitude) as i64 - 1;
        let mut sub_bucket = (index & (half_count - 1)) + half_count;
        let bucket = if bucket < 0 {
            sub_bucket -= half_count;
            0
        } else {
            bucket as u32
        };
        sub_bucket
            .checked_shl(bucket + unit_magnitude)
            .unwrap_or(u64::MAX)
    };
    if u64::from(digits) == u64::from(SIGNIFICANT_DIGITS) && lowest == LOWEST_MICROS {
        return decode_agreed_payload(payload, out);
    }

    // Every bucket takes at least one byte: no regrowing.
    out.indices.clear();
    out.counts.clear();
    out.total = 0;
    out.indices.reserve(payload.len());
    out.counts.reserve(payload.len());
    let mut index = 0u64;
    let mut at = 0usize;
    while at < payload.len() {
        let (zz, used) = read_varint(&payload[at..])?;
        at += used;
        if zz & 1 == 1 {
            // Zig-zag negative: a run of -n empty buckets.
            index = index.saturating_add((zz >> 1) + 1);
            continue;
        }
        if index >= MAX_BUCKET_INDEX {
            return Err(malformed("bucket index beyond any sane histogram"));
        }
        let count = zz >> 1;
        if count > 0 {
            out.total = out
                .total
                .checked_add(count)
                .ok_or_else(|| malformed("total count overflows"))?;
            // Another shape: re-home each bucket by its lowest value
            // (finer buckets combine, values beyond the range saturate).
            out.push(agreed_index(value_at(index)) as u32, count);
        }
        index += 1;
    }
    Ok(())
}

/// Slots the agreed-shape decoder writes every bucket into before keeping
/// the non-zero ones: one set per thread, grown to the longest payload seen
/// (up to [`KEPT_SLOTS_BYTES`]) and never cleared, so decoding a report
/// neither allocates nor zero-fills room for it; the kept buckets are then
/// copied out at their exact size.
#[derive(Default)]
struct DecodeSlots {
    indices: Vec<u32>,
    counts: Vec<u64>,
}

/// Payloads longer than this (a peer's outsized histogram) are decoded into
/// slots of their own, freed after, so a thread's slots stay small.
const KEPT_SLOTS_BYTES: usize = 64 * 1024;

thread_local! {
    static DECODE_SLOTS: std::cell::RefCell<DecodeSlots> =
        std::cell::RefCell::new(DecodeSlots::default());
}

/// Decodes the V2 payload of a histogram of the agents' own shape, whose
/// bucket indices are the agreed ones (up to the top, where values beyond
/// the range saturate), into `out` (its buffers reused).
fn decode_agreed_payload(
    payload: &[u8],
    out: &mut SparseHistogram,
) -> Result<(), HistogramCodecError> {
    if payload.len() > KEPT_SLOTS_BYTES {
        return decode_agreed_into_slots(payload, &mut DecodeSlots::default(), out);
    }
    DECODE_SLOTS.with_borrow_mut(|slots| decode_agreed_into_slots(payload, slots, out))
}

/// The hot path of a coordinator: every bucket is written to the next slot
/// whether or not it is kept, so the only data-dependent branch is the rare
/// multi-byte varint.
fn decode_agreed_into_slots(
    payload: &[u8],
    slots: &mut DecodeSlots,
    out: &mut SparseHistogram,
) -> Result<(), HistogramCodecError> {
    let top = AGREED_TOP as u64;
    // Every bucket takes at least one byte: the slots cannot run out. Slots
    // are not cleared: every one below the final `kept` is written before
    // it is kept, the rest is ignored.
    if slots.indices.len() < payload.len() {
        slots.indices.resize(payload.len(), 0);
        slots.counts.resize(payload.len(), 0);
    }
    let (indices, counts) = (&mut slots.indices[..], &mut slots.counts[..]);
    let mut kept = 0usize;
    let mut total = 0u128;
    let mut index = 0u64;
    // Buckets up to here were given a count (zero or not); each must lie
    // within a sane histogram.
    let mut reached = 0u64;
    let mut at = 0usize;
    while let Some(&first) = payload.get(at) {
        // Most counts and zero runs fit one byte.
        let zz = if first & 0x80 == 0 {
            at += 1;
            u64::from(first)
        } else {
            let (zz, used) = read_varint(&payload[at..])?;
            at += used;
            zz
        };
        // Zig-zag negative: a run of -n empty buckets; else a count.
        let run = zz & 1 == 1;
        let count = if run { 0 } else { zz >> 1 };
        if let (Some(i), Some(c)) = (indices.get_mut(kept), counts.get_mut(kept)) {
            *i = index.min(top) as u32;
            *c = count;
        }
        kept += usize::from(count != 0);
        total += u128::from(count);
        reached = if run {
            reached
        } else {
            index.saturating_add(1)
        };
        index = index.saturating_add(if run { (zz >> 1) + 1 } else { 1 });
    }
    if reached > MAX_BUCKET_INDEX {
        return Err(malformed("bucket index beyond any sane histogram"));
    }
    let total = u64::try_from(total).map_err(|_| malformed("total count overflows"))?;
    // Buckets beyond the range all landed in the top one: combine them.
    let beyond = indices[..kept]
        .iter()
        .rev()
        .take_while(|&&i| u64::from(i) == top)
        .count();
    let distinct = if beyond > 1 { kept - beyond + 1 } else { kept };
    out.indices.clear();
    out.indices.extend_from_slice(&indices[..distinct]);
    out.counts.clear();
    out.counts.extend_from_slice(&counts[..distinct]);
    if beyond > 1 {
        if let Some(last) = out.counts.last_mut() {
            *last = counts[kept - beyond..kept].iter().sum();
        }
    }
    out.total = total;
    Ok(())
}

/// HdrHistogram's LEB128 variant: up to 9 bytes, the 9th taken whole.
#[inline]
fn read_varint(b: &[u8]) -> Result<(u64, usize), HistogramCodecError> {
    // Most counts and zero-runs fit one byte.
    if let Some(&first) = b.first() {
        if first & 0x80 == 0 {
            return Ok((u64::from(first), 1));
        }
    }
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *b.get(i).ok_or_else(|| malformed("truncated varint"))?;
        if i == 8 {
            value |= u64::from(byte) << 56;
            return Ok((value, 9));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(malformed("truncated varint"))
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

    #[test]
    fn sparse_decoding_equals_the_library_decoding() {
        let h = sample();
        for enc in [Encoding::Plain, Encoding::Deflate] {
            let bytes = encode(&h, enc).expect("encodes");
            let sparse = decode_sparse(&bytes).expect("decodes");
            assert_eq!(sparse.len(), h.len());
            assert_eq!(sparse.to_histogram(), decode(&bytes).expect("decodes"));
            for (value, _) in sparse.entries() {
                assert_eq!(
                    value,
                    h.lowest_equivalent(value),
                    "{value} is a bucket's lowest value"
                );
            }
        }
    }

    #[test]
    fn reused_decode_slots_leave_nothing_behind() {
        // The thread's slots keep what a long histogram left in them; a short
        // one decoded after must read as itself alone, fresh or into a reused
        // output.
        let long = encode(&sample(), Encoding::Plain).expect("encodes");
        let mut small = new_latency_histogram();
        small.record_n(7, 3).expect("in range");
        small.record_n(90_000, 1).expect("in range");
        let short = encode(&small, Encoding::Plain).expect("encodes");
        let mut reused = decode_sparse(&long).expect("decodes");
        decode_sparse_into(&short, &mut reused).expect("decodes");
        assert_eq!(reused.to_histogram(), small);
        assert_eq!(reused.entries().count(), 2);
        assert_eq!(
            decode_sparse(&short).expect("decodes").to_histogram(),
            small
        );
        assert_eq!(
            decode_sparse(&long).expect("decodes").to_histogram(),
            sample()
        );
    }

    #[test]
    fn sparse_merge_adds_like_histograms_do() {
        let mut a = new_latency_histogram();
        let mut b = new_latency_histogram();
        for v in [1u64, 5, 5, 900, 70_000] {
            a.record(v).expect("in range");
        }
        for v in [5u64, 6, 900, 3_000_000] {
            b.record(v).expect("in range");
        }
        let sparse = |h: &Histogram<u64>| {
            decode_sparse(&encode(h, Encoding::Plain).expect("encodes")).expect("decodes")
        };
        let mut merged = sparse(&a);
        merged.merge(&sparse(&b));
        a.add(&b).expect("same shape");
        assert_eq!(merged.to_histogram(), a);
        assert_eq!(merged.len(), 9);
        let mut empty = SparseHistogram::default();
        empty.merge(&merged);
        assert_eq!(empty, merged);
    }

    #[test]
    fn sparse_decoding_refuses_garbage_and_bombs() {
        for bytes in [
            &b"not a histogram"[..],
            &[0x1c, 0x84, 0x93, 0x13, 0, 0, 0, 1, 2],
            &[0x1c, 0x84, 0x93, 0x14, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(decode_sparse(bytes).is_err());
        }
        // A tiny deflate stream that inflates to megabytes of zeros.
        let mut inner = V2_COOKIE.to_be_bytes().to_vec();
        inner.extend(vec![0u8; (MAX_INFLATED_BYTES + 100) as usize]);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &inner).expect("compresses");
        let compressed = z.finish().expect("compresses");
        let mut bomb = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        bomb.extend((compressed.len() as u32).to_be_bytes());
        bomb.extend(compressed);
        assert!(decode_sparse(&bomb).is_err());
    }

    proptest::proptest! {
        #[test]
        fn sparse_round_trip_of_any_histogram(values in proptest::collection::vec((1u64..HIGHEST_MICROS, 1u64..1000), 0..300), deflate: bool) {
            let mut h = new_latency_histogram();
            for (v, n) in values {
                h.record_n(v, n).expect("in range");
            }
            let enc = if deflate { Encoding::Deflate } else { Encoding::Plain };
            let sparse = decode_sparse(&encode(&h, enc).expect("encodes")).expect("decodes");
            proptest::prop_assert_eq!(sparse.to_histogram(), h);
        }

        #[test]
        fn sparse_merge_equals_histogram_addition(
            a in proptest::collection::vec(1u64..10_000_000, 0..200),
            b in proptest::collection::vec(1u64..10_000_000, 0..200),
        ) {
            let hist = |values: &[u64]| {
                let mut h = new_latency_histogram();
                for &v in values {
                    h.record(v).expect("in range");
                }
                h
            };
            let (ha, hb) = (hist(&a), hist(&b));
            let sparse = |h: &Histogram<u64>| decode_sparse(&encode(h, Encoding::Plain).expect("encodes")).expect("decodes");
            let mut merged = sparse(&ha);
            merged.merge(&sparse(&hb));
            let mut sum = ha.clone();
            sum.add(&hb).expect("same shape");
            proptest::prop_assert_eq!(merged.to_histogram(), sum);
            let values: Vec<u64> = merged.entries().map(|(v, _)| v).collect();
            proptest::prop_assert!(values.windows(2).all(|w| w[0] < w[1]));
        }

        /// The usual merge into a cumulative total: most buckets shared,
        /// a few new ones anywhere (before, between, after).
        #[test]
        fn merging_mostly_shared_buckets_equals_histogram_addition(
            a in proptest::collection::vec(1u64..10_000_000, 1..300),
            shared in proptest::collection::vec(0usize..300, 0..300),
            new in proptest::collection::vec(1u64..10_000_000, 0..10),
        ) {
            let hist = |values: &[u64]| {
                let mut h = new_latency_histogram();
                for &v in values {
                    h.record(v).expect("in range");
                }
                h
            };
            let b: Vec<u64> = shared.iter().map(|&i| a[i % a.len()]).chain(new).collect();
            let (ha, hb) = (hist(&a), hist(&b));
            let sparse = |h: &Histogram<u64>| decode_sparse(&encode(h, Encoding::Plain).expect("encodes")).expect("decodes");
            let mut merged = sparse(&ha);
            merged.merge(&sparse(&hb));
            let mut sum = ha.clone();
            sum.add(&hb).expect("same shape");
            proptest::prop_assert_eq!(merged.to_histogram(), sum);
            proptest::prop_assert!(merged.indices.windows(2).all(|w| w[0] < w[1]));
            proptest::prop_assert_eq!(merged.indices.len(), merged.counts.len());
            proptest::prop_assert!(merged.counts.iter().all(|&c| c > 0));
        }

        /// Decoding into the agreed layout and adding into dense counts
        /// equals the library's decoding, for the agents' shape and for
        /// any other (finer or coarser buckets, another lowest value),
        /// plain or deflate.
        #[test]
        fn dense_counts_from_the_wire_equal_the_library_decoding(
            values in proptest::collection::vec((1u64..HIGHEST_MICROS, 1u64..1000), 0..300),
            shape in 0usize..4,
            deflate: bool,
        ) {
            let (lowest, digits) = [(1, 3), (1, 2), (1, 4), (1000, 3)][shape];
            let mut h = Histogram::<u64>::new_with_bounds(lowest, HIGHEST_MICROS, digits).expect("valid bounds");
            for (v, n) in values {
                h.record_n(v, n).expect("in range");
            }
            let enc = if deflate { Encoding::Deflate } else { Encoding::Plain };
            let bytes = encode(&h, enc).expect("encodes");
            let reference = decode(&bytes).expect("decodes");
            let sparse = decode_sparse(&bytes).expect("decodes");
            proptest::prop_assert_eq!(sparse.len(), reference.len());
            let mut dense = DenseCounts::default();
            dense.add_sparse(&sparse);
            proptest::prop_assert_eq!(dense.to_histogram(), reference.clone());
            proptest::prop_assert_eq!(sparse.to_histogram(), reference);
        }

        /// One buffer reused for histogram after histogram (larger, then
        /// smaller, another shape, garbage in between) decodes each exactly
        /// as a fresh decode does: nothing of an earlier one is left in it.
        #[test]
        fn decoding_into_a_reused_buffer_equals_a_fresh_decode(
            histograms in proptest::collection::vec(
                (proptest::collection::vec((1u64..HIGHEST_MICROS, 1u64..1000), 0..200), 0usize..3, proptest::prelude::any::<bool>()),
                1..6,
            ),
        ) {
            let mut reused = SparseHistogram::default();
            for (values, shape, deflate) in histograms {
                let (lowest, digits) = [(1, 3), (1, 2), (1000, 3)][shape];
                let mut h = Histogram::<u64>::new_with_bounds(lowest, HIGHEST_MICROS, digits).expect("valid bounds");
                for (v, n) in values {
                    h.record_n(v, n).expect("in range");
                }
                let enc = if deflate { Encoding::Deflate } else { Encoding::Plain };
                let bytes = encode(&h, enc).expect("encodes");
                decode_sparse_into(&bytes, &mut reused).expect("decodes");
                proptest::prop_assert_eq!(&reused, &decode_sparse(&bytes).expect("decodes"));
                // Garbage leaves the buffer empty, never half a histogram.
                proptest::prop_assert!(decode_sparse_into(&bytes[..bytes.len() / 2], &mut reused).is_err() || bytes.len() < 2);
                if bytes.len() >= 2 {
                    proptest::prop_assert_eq!(&reused, &SparseHistogram::default());
                }
            }
        }

        #[test]
        fn sparse_decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = decode_sparse(&bytes);
            let mut prefixed = V2_COOKIE.to_be_bytes().to_vec();
            prefixed.extend(&bytes);
            let _ = decode_sparse(&prefixed);
        }
    }

    #[test]
    fn agreed_index_matches_hdrhistogram_layout() {
        let h =
            Histogram::<u64>::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
                .expect("valid");
        assert_eq!(h.distinct_values(), AGREED_BUCKETS);
        let mut grown = new_latency_histogram();
        grown.record_clamped(u64::MAX);
        assert_eq!(
            grown.distinct_values(),
            AGREED_BUCKETS,
            "grows to the hour, no further"
        );
        let mut v = 1u64;
        while v < HIGHEST_MICROS {
            let index = agreed_index(v);
            assert!(index < h.distinct_values(), "{v}");
            assert_eq!(
                value_at_agreed_index(index),
                h.lowest_equivalent(v),
                "value {v}"
            );
            v = v + v / 997 + 1;
        }
        assert_eq!(
            agreed_index(HIGHEST_MICROS * 10),
            agreed_index(HIGHEST_MICROS)
        );
    }

    #[test]
    fn histograms_grow_only_as_far_as_their_values_and_clamp_at_the_hour() {
        let mut h = new_latency_histogram();
        h.record_clamped(900);
        // Sub-millisecond values: 2048 buckets (16 KiB), not the hour's 24 064.
        assert_eq!(h.distinct_values(), 2048);
        h.record_n_clamped(25_000, 3);
        assert!(h.distinct_values() < AGREED_BUCKETS / 2);
        h.record_n_clamped(5 * HIGHEST_MICROS, 2);
        assert_eq!(h.distinct_values(), AGREED_BUCKETS);
        assert_eq!(
            h.count_at(HIGHEST_MICROS),
            2,
            "beyond the hour counts as the hour"
        );
        assert_eq!(h.len(), 6);
        // A histogram fixed at the whole hour (older agents send these) and a
        // grown one encode the same counts and decode to the same figures.
        let mut fixed =
            Histogram::<u64>::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
                .expect("valid");
        fixed.record_n(900, 1).expect("in range");
        fixed.record_n(25_000, 3).expect("in range");
        fixed.record_n(HIGHEST_MICROS, 2).expect("in range");
        for encoding in [Encoding::Plain, Encoding::Deflate] {
            let from_fixed = decode(&encode(&fixed, encoding).expect("encodes")).expect("decodes");
            let from_grown = decode(&encode(&h, encoding).expect("encodes")).expect("decodes");
            assert_eq!(from_fixed, from_grown);
            assert_eq!(from_grown, h);
        }
    }

    #[test]
    fn decoding_refuses_values_beyond_the_hour() {
        let mut wide =
            Histogram::<u64>::new_with_bounds(1, 100 * HIGHEST_MICROS, 3).expect("valid");
        wide.record_n(2 * HIGHEST_MICROS, 1).expect("in range");
        let err = decode(&encode(&wide, Encoding::Plain).expect("encodes"))
            .expect_err("beyond the agreed range");
        assert!(matches!(err, HistogramCodecError::Shape(_)), "{err}");
        // The hour itself (and its bucket) is in range.
        let mut edge = wide.clone();
        edge.reset();
        edge.record_n(HIGHEST_MICROS, 4).expect("in range");
        let back = decode(&encode(&edge, Encoding::Plain).expect("encodes")).expect("decodes");
        assert_eq!(back.count_at(HIGHEST_MICROS), 4);
    }

    #[test]
    fn values_beyond_the_agreed_range_saturate_into_its_last_bucket() {
        // A peer's histogram reaching past one hour: its top buckets land in
        // the agreed shape's last one, as a saturating record would.
        let mut wide =
            Histogram::<u64>::new_with_bounds(1, 100 * HIGHEST_MICROS, 3).expect("valid");
        wide.record_n(5, 2).expect("in range");
        wide.record_n(10 * HIGHEST_MICROS, 3).expect("in range");
        wide.record_n(90 * HIGHEST_MICROS, 4).expect("in range");
        let sparse =
            decode_sparse(&encode(&wide, Encoding::Plain).expect("encodes")).expect("decodes");
        let mut expected = new_latency_histogram();
        expected.record_n_clamped(5, 2);
        expected.record_n_clamped(HIGHEST_MICROS, 7);
        assert_eq!(sparse.to_histogram(), expected);
        assert_eq!(sparse.entries().count(), 2, "the saturated buckets combine");
    }

    #[test]
    fn malformed_varints_are_refused() {
        let h = sample();
        let mut bytes = encode(&h, Encoding::Plain).expect("encodes");
        // Cut the payload inside a multi-byte varint: the header still
        // claims the full length, so the payload is beyond the input.
        bytes.truncate(bytes.len() - 1);
        assert!(decode_sparse(&bytes).is_err());
        // A payload ending on a continuation byte.
        let mut header = V2_COOKIE.to_be_bytes().to_vec();
        header.extend(1u32.to_be_bytes());
        header.extend(0u32.to_be_bytes());
        header.extend(3u32.to_be_bytes());
        header.extend(1u64.to_be_bytes());
        header.extend(HIGHEST_MICROS.to_be_bytes());
        header.extend(1f64.to_bits().to_be_bytes());
        let mut cut = header.clone();
        cut.push(0x80);
        assert!(matches!(
            decode_sparse(&cut),
            Err(HistogramCodecError::Malformed(_))
        ));
        // A zero run past any sane histogram, then a count.
        let mut far = header;
        far[4..8].copy_from_slice(&6u32.to_be_bytes());
        far.extend([0xfd, 0xff, 0xff, 0xff, 0x0f, 0x02]);
        assert!(matches!(
            decode_sparse(&far),
            Err(HistogramCodecError::Malformed(_))
        ));
    }

    #[test]
    fn dense_counts_add_like_histograms() {
        let h = sample();
        let sparse =
            decode_sparse(&encode(&h, Encoding::Plain).expect("encodes")).expect("decodes");
        let mut dense = DenseCounts::default();
        dense.add_sparse(&sparse);
        dense.add_sparse(&sparse);
        let mut twice = h.clone();
        twice.add(&h).expect("same shape");
        assert_eq!(dense.to_histogram(), twice);
        assert_eq!(dense.len(), 2 * h.len());
        let mut doubled = sparse.clone();
        doubled.merge(&sparse);
        assert_eq!(dense.to_sparse(), doubled);
        assert_eq!(
            DenseCounts::default().to_sparse(),
            SparseHistogram::default()
        );
    }
}
