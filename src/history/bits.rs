//! Bit-level writing and reading, and the adaptive Rice code the chunk format builds on.
//!
//! Bits go most significant first. The Rice code is the one LOCO-I/JPEG-LS and FLAC use: a
//! value `x` costs `(x >> k) + 1 + k` bits, with `k` chosen from the mean of the values
//! coded so far, so a stream of zeros costs one bit each and a jittery one the few bits its
//! spread needs. Encoder and decoder adapt `k` with the same integer steps.

/// Unary quotients of this many ones or more are escaped: a selector bit follows, then
/// either the value in full ([`RiceCode::Value`]) or nothing ([`RiceCode::Marker`]).
const ESCAPE: u32 = 24;
/// The statistics are halved at this count, so `k` follows a change within a few samples.
const WINDOW: u64 = 16;
/// Bits of the length that precedes a [`BitWriter::write_varbits`] value.
const VARBITS_LEN: u32 = 7;

/// Appends bits to a byte vector.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// The last `used` bits not yet in `bytes`, right-aligned.
    acc: u64,
    used: u32,
}

impl BitWriter {
    /// The low `bits` bits of `value` (`bits` ≤ 64).
    pub fn write(&mut self, value: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        let value = if bits >= 64 {
            value
        } else {
            value & ((1u64 << bits) - 1)
        };
        let free = 64 - self.used;
        if bits < free {
            self.acc = (self.acc << bits) | value;
            self.used += bits;
            return;
        }
        // Fill the accumulator, spill it, keep the rest (fewer than 64 bits).
        let rest = bits - free;
        let head = if rest == 0 { value } else { value >> rest };
        let full = if free == 64 {
            head
        } else {
            (self.acc << free) | head
        };
        self.bytes.extend_from_slice(&full.to_be_bytes());
        self.acc = if rest == 0 {
            0
        } else {
            value & ((1u64 << rest) - 1)
        };
        self.used = rest;
    }

    pub fn write_bit(&mut self, bit: bool) {
        self.write(u64::from(bit), 1);
    }

    /// `value` with its bit length in front: 7 + (significant bits) bits.
    pub fn write_varbits(&mut self, value: u64) {
        let len = 64 - value.leading_zeros();
        self.write(u64::from(len), VARBITS_LEN);
        self.write(value, len);
    }

    pub fn bit_len(&self) -> usize {
        self.bytes.len() * 8 + self.used as usize
    }

    /// Appends what was written to `out`, the last byte padded with zeros.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
        if self.used > 0 {
            let tail = self.acc << (64 - self.used);
            let n = self.used.div_ceil(8) as usize;
            out.extend_from_slice(&tail.to_be_bytes()[..n]);
        }
    }
}

/// Reads bits back from a byte slice; every read fails cleanly past the end.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0 }
    }

    /// The next `bits` bits (≤ 64) as the low bits of the result.
    pub fn read(&mut self, bits: u32) -> Option<u64> {
        if bits == 0 {
            return Some(0);
        }
        if bits > 56 {
            let high = self.read(bits - 32)?;
            let low = self.read(32)?;
            return Some((high << 32) | low);
        }
        let end = self.pos.checked_add(bits as usize)?;
        if end > self.data.len() * 8 {
            return None;
        }
        let byte = self.pos / 8;
        let mut word = [0u8; 8];
        let available = self.data.len().saturating_sub(byte).min(8);
        word[..available].copy_from_slice(&self.data[byte..byte + available]);
        let word = u64::from_be_bytes(word);
        let skip = (self.pos % 8) as u32;
        self.pos = end;
        Some((word << skip) >> (64 - bits))
    }

    pub fn read_bit(&mut self) -> Option<bool> {
        self.read(1).map(|b| b == 1)
    }

    pub fn read_varbits(&mut self) -> Option<u64> {
        let len = u32::try_from(self.read(VARBITS_LEN)?).ok()?;
        if len > 64 {
            return None;
        }
        self.read(len)
    }

    /// Bits not read yet.
    pub fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Ones before the next zero, stopping at `limit` ones (the zero is consumed).
    fn read_unary(&mut self, limit: u32) -> Option<u32> {
        let mut ones = 0;
        while ones < limit {
            if !self.read_bit()? {
                return Some(ones);
            }
            ones += 1;
        }
        Some(limit)
    }
}

/// What a [`Rice`] reader found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiceCode {
    Value(u64),
    /// The out-of-band marker [`Rice::write_marker`] wrote.
    Marker,
}

/// Adaptive Rice coder state; encoder and decoder each keep one and feed it the same values.
#[derive(Debug, Clone)]
pub struct Rice {
    sum: u64,
    count: u64,
}

impl Default for Rice {
    fn default() -> Self {
        Rice { sum: 0, count: 1 }
    }
}

impl Rice {
    /// The smallest `k` with `2^k ≥ ⌈sum / count⌉` (at most 60), i.e. with
    /// `count · 2^k ≥ sum`: found from the bit lengths without a division, which every
    /// sample of every series pays for.
    fn k(&self) -> u32 {
        if self.sum <= self.count {
            return 0;
        }
        // `count · 2^k` has the bit length of `sum` here, so it cannot overflow.
        let k = self.count.leading_zeros() - self.sum.leading_zeros();
        let k = if self.count << k >= self.sum {
            k
        } else {
            k + 1
        };
        k.min(60)
    }

    /// Escaped values count as if just past the escape, so that one outlier (a gap in the
    /// data) does not leave `k` high for the samples after it.
    fn update(&mut self, x: u64, k: u32) {
        let cap = u64::from(2 * ESCAPE) << k;
        self.sum = self.sum.saturating_add(x.min(cap));
        self.count += 1;
        if self.count >= WINDOW {
            self.sum >>= 1;
            self.count >>= 1;
        }
    }

    pub fn write(&mut self, out: &mut BitWriter, x: u64) {
        let k = self.k();
        let q = x >> k;
        if q < u64::from(ESCAPE) {
            // q ones and a zero, then the k low bits.
            let q = q as u32;
            out.write((1u64 << (q + 1)) - 2, q + 1);
            out.write(x, k);
        } else {
            out.write((1u64 << ESCAPE) - 1, ESCAPE);
            out.write_bit(false);
            out.write_varbits(x);
        }
        self.update(x, k);
    }

    /// An out-of-band signal in the same stream; it leaves the statistics as they were.
    pub fn write_marker(&self, out: &mut BitWriter) {
        out.write((1u64 << ESCAPE) - 1, ESCAPE);
        out.write_bit(true);
    }

    pub fn read(&mut self, input: &mut BitReader<'_>) -> Option<RiceCode> {
        let k = self.k();
        let q = input.read_unary(ESCAPE)?;
        let x = if q < ESCAPE {
            (u64::from(q) << k) | input.read(k)?
        } else if input.read_bit()? {
            return Some(RiceCode::Marker);
        } else {
            input.read_varbits()?
        };
        self.update(x, k);
        Some(RiceCode::Value(x))
    }
}

/// Signed to unsigned so that small magnitudes of either sign stay small.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Rice::k` without a division picks what `⌈log2 ⌈sum / count⌉⌉` does: the stream's
    /// format rests on encoder and decoder agreeing on it.
    #[test]
    fn rice_k_equals_the_ceiling_log_of_the_mean() {
        let by_division = |sum: u64, count: u64| {
            let ratio = sum.div_ceil(count);
            if ratio <= 1 {
                0
            } else {
                (64 - (ratio - 1).leading_zeros()).min(60)
            }
        };
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases: Vec<(u64, u64)> = (1..WINDOW)
            .flat_map(|c| [0, 1, c - 1, c, c + 1, u64::MAX, u64::MAX - 1].map(|s| (s, c)))
            .collect();
        for _ in 0..200_000 {
            let count = next() % WINDOW + 1;
            let sum = next() >> (next() % 64);
            cases.push((sum, count));
            cases.push((count << (next() % 60), count));
            cases.push(((count << (next() % 60)) + 1, count));
        }
        for (sum, count) in cases {
            let rice = Rice { sum, count };
            assert_eq!(rice.k(), by_division(sum, count), "sum {sum} count {count}");
        }
    }

    #[test]
    fn bits_of_every_width_read_back() {
        let mut w = BitWriter::default();
        let mut expected = Vec::new();
        for bits in 0..=64u32 {
            let value = 0xDEAD_BEEF_CAFE_F00Du64.rotate_left(bits);
            w.write(value, bits);
            let masked = if bits == 64 {
                value
            } else {
                value & ((1u64 << bits) - 1)
            };
            expected.push((bits, masked));
        }
        let mut bytes = Vec::new();
        w.append_to(&mut bytes);
        assert_eq!(bytes.len(), w.bit_len().div_ceil(8));
        let mut r = BitReader::new(&bytes);
        for (bits, value) in expected {
            assert_eq!(r.read(bits), Some(value), "{bits} bits");
        }
        assert!(r.remaining() < 8);
        assert_eq!(r.read(8), None);
    }

    #[test]
    fn rice_adapts_and_escapes() {
        let values: Vec<u64> = (0..200u64)
            .map(|i| match i {
                50 => u64::MAX,
                100..=120 => 1000 + i,
                _ => i % 3,
            })
            .collect();
        let mut w = BitWriter::default();
        let mut enc = Rice::default();
        for (i, &v) in values.iter().enumerate() {
            enc.write(&mut w, v);
            if i == 10 {
                enc.write_marker(&mut w);
            }
        }
        let mut bytes = Vec::new();
        w.append_to(&mut bytes);
        let mut r = BitReader::new(&bytes);
        let mut dec = Rice::default();
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(dec.read(&mut r), Some(RiceCode::Value(v)), "value {i}");
            if i == 10 {
                assert_eq!(dec.read(&mut r), Some(RiceCode::Marker));
            }
        }
    }

    #[test]
    fn zeros_cost_one_bit_each() {
        let mut w = BitWriter::default();
        let mut rice = Rice::default();
        for _ in 0..1000 {
            rice.write(&mut w, 0);
        }
        assert_eq!(w.bit_len(), 1000);
    }

    #[test]
    fn zigzag_round_trips() {
        for v in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }
}
