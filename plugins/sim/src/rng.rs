//! A counter-based generator: every random number is a hash of (seed, tag, step, stream),
//! so a value never depends on how many numbers were drawn before it. That is what makes
//! the stream independent of read boundaries.

/// The splitmix64 finaliser: a bijective 64-bit mix with good avalanche.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Keys a tag by its name rather than its index, so adding or reordering tags does not
/// change the noise of the others (FNV-1a, then mixed).
pub fn name_key(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix64(h)
}

pub(crate) fn hash(seed: u64, key: u64, step: u64, stream: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed ^ stream.rotate_left(29)) ^ key) ^ step)
}

/// Uniform in [0, 1).
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in [-1, 1).
pub(crate) fn symmetric(seed: u64, key: u64, step: u64, stream: u64) -> f64 {
    unit(hash(seed, key, step, stream)) * 2.0 - 1.0
}

/// Standard normal (Box-Muller on two independent streams).
pub(crate) fn gaussian(seed: u64, key: u64, step: u64, stream: u64) -> f64 {
    let u1 = unit(hash(seed, key, step, stream.wrapping_mul(2)));
    let u2 = unit(hash(
        seed,
        key,
        step,
        stream.wrapping_mul(2).wrapping_add(1),
    ));
    // 1 - u1 is in (0, 1], so the logarithm is finite.
    (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_has_unit_moments() {
        let n = 20_000u64;
        let xs: Vec<f64> = (0..n).map(|k| gaussian(7, 1, k, 3)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn streams_differ() {
        assert_ne!(hash(1, 2, 3, 4), hash(1, 2, 3, 5));
        assert_ne!(hash(1, 2, 3, 4), hash(2, 2, 3, 4));
        assert_ne!(name_key("a"), name_key("b"));
    }
}
