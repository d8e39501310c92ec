//! Size and cost of the two V2 encodings for realistic interval histograms,
//! to choose the wire default. Run: `cargo bench -p stampede-proto`.
//!
//! Each case records latencies drawn from a log-normal distribution (the
//! usual shape of service latency), as one agent's one-second interval.

use stampede_proto::histogram::{
    Encoding, RecordClamped, decode, decode_sparse, encode_into, new_latency_histogram,
};
use std::time::Instant;

/// A small deterministic PRNG (xorshift64*), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal via Box-Muller.
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.next_f64().max(1e-12), self.next_f64());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn main() {
    println!(
        "{:<44} {:>9} {:>10} {:>12} {:>12}",
        "interval histogram", "encoding", "bytes", "encode µs", "decode µs"
    );
    let cases = [
        (
            "1k samples, median 5 ms, sigma 0.3",
            1_000u64,
            5_000.0f64,
            0.3f64,
        ),
        ("20k samples, median 5 ms, sigma 0.5", 20_000, 5_000.0, 0.5),
        (
            "200k samples, median 1 ms, sigma 1.0",
            200_000,
            1_000.0,
            1.0,
        ),
        (
            "200k samples, median 120 ms, sigma 2.0",
            200_000,
            120_000.0,
            2.0,
        ),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::new();
    for (label, samples, median_us, sigma) in cases {
        let mut h = new_latency_histogram();
        for _ in 0..samples {
            let v = (median_us * (sigma * rng.normal()).exp()).clamp(1.0, 3.6e9) as u64;
            h.record_clamped(v);
        }
        for encoding in [Encoding::Plain, Encoding::Deflate] {
            const ROUNDS: u32 = 200;
            let t = Instant::now();
            for _ in 0..ROUNDS {
                encode_into(&h, encoding, &mut buf).expect("encodes");
            }
            let encode_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
            let t = Instant::now();
            for _ in 0..ROUNDS {
                let back = decode(&buf).expect("decodes");
                assert_eq!(back.len(), h.len());
            }
            let decode_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
            let t = Instant::now();
            for _ in 0..ROUNDS {
                let back = decode_sparse(&buf).expect("decodes");
                assert_eq!(back.len(), h.len());
            }
            let sparse_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
            println!(
                "{label:<44} {:>9} {:>10} {encode_us:>12.1} {decode_us:>12.1} {sparse_us:>14.1}",
                format!("{encoding:?}").to_lowercase(),
                buf.len()
            );
        }
    }
}
