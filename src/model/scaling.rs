//! Linear scaling from a device's raw value to engineering units, and back for writes.
//!
//! A gain is nearly always written as a decimal (`gain: 0.1`, `offset: -40.5`), and most
//! raws are integers from registers. Binary floating point cannot hold 0.1, so the plain
//! `raw * gain` shows a plant engineer `21.700000000000003` where they wrote 217 × 0.1.
//! [`Gain`] keeps the decimal places the config wrote and, for an integer raw, computes
//! in whole numbers and divides by the power of ten once: one correctly rounded division,
//! so the result is the double nearest the decimal the user meant (`21.7`).

/// Linear scaling from the device's raw value to engineering units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    /// `raw` range maps onto `eng` range; with `clamp`, values outside stay at the ends.
    Range {
        raw: [f64; 2],
        eng: [f64; 2],
        clamp: bool,
    },
    /// `eng = raw * gain + offset`.
    Gain(Gain),
}

impl Scaling {
    pub fn to_eng(&self, raw: f64) -> f64 {
        match self {
            Scaling::Range {
                raw: r,
                eng: e,
                clamp,
            } => map_range(raw, *r, *e, *clamp),
            Scaling::Gain(g) => g.to_eng(raw),
        }
    }

    pub fn to_raw(&self, eng: f64) -> f64 {
        match self {
            Scaling::Range {
                raw: r,
                eng: e,
                clamp,
            } => map_range(eng, *e, *r, *clamp),
            Scaling::Gain(g) => g.to_raw(eng),
        }
    }

    /// The engineering range, where the scaling defines one.
    pub fn eng_range(&self) -> Option<[f64; 2]> {
        match *self {
            Scaling::Range { eng, .. } => Some(eng),
            Scaling::Gain(_) => None,
        }
    }
}

/// Maps `x` from the range `from` onto the range `to`, linearly; with `clamp`, results stay
/// inside `to`.
fn map_range(x: f64, from: [f64; 2], to: [f64; 2], clamp: bool) -> f64 {
    let mut t = (x - from[0]) / (from[1] - from[0]);
    if clamp {
        t = t.clamp(0.0, 1.0);
    }
    to[0] + t * (to[1] - to[0])
}

/// Decimal places beyond which a gain is not taken for a decimal (1/3 written out, say).
const MAX_PLACES: u32 = 15;
/// Integers up to this are exact in an f64.
const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// `eng = raw * gain + offset`, exact to the decimal places the config wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gain {
    gain: f64,
    offset: f64,
    /// When gain and offset are decimals of at most [`MAX_PLACES`] places: those places,
    /// and gain and offset times 10^places, which are whole numbers.
    decimal: Option<Decimal>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Decimal {
    scale: f64,
    gain: f64,
    offset: f64,
}

impl Gain {
    pub fn new(gain: f64, offset: f64) -> Gain {
        let decimal = places(gain).zip(places(offset)).and_then(|(g, o)| {
            let scale = 10f64.powi(i32::try_from(g.max(o)).ok()?);
            let (gain, offset) = ((gain * scale).round(), (offset * scale).round());
            (gain.abs() < EXACT && offset.abs() < EXACT).then_some(Decimal {
                scale,
                gain,
                offset,
            })
        });
        Gain {
            gain,
            offset,
            decimal,
        }
    }

    pub fn gain(&self) -> f64 {
        self.gain
    }

    pub fn offset(&self) -> f64 {
        self.offset
    }

    pub fn to_eng(&self, raw: f64) -> f64 {
        if let Some(d) = self.decimal.filter(|_| raw.fract() == 0.0) {
            let whole = raw * d.gain + d.offset;
            // Exact only while every step stays an integer an f64 holds.
            if (raw * d.gain).abs() < EXACT && whole.abs() < EXACT {
                return whole / d.scale;
            }
        }
        raw * self.gain + self.offset
    }

    pub fn to_raw(&self, eng: f64) -> f64 {
        match self.decimal {
            // 21.7 × 10 is 217 exactly, where (21.7 − 0) / 0.1 is 216.99999999999997.
            Some(d) => (eng * d.scale - d.offset) / d.gain,
            None => (eng - self.offset) / self.gain,
        }
    }
}

/// Decimal places of `x` as its shortest round-trip form writes it (`0.1` → 1, `-40` → 0),
/// or `None` beyond [`MAX_PLACES`].
fn places(x: f64) -> Option<u32> {
    if !x.is_finite() {
        return None;
    }
    // Display never uses an exponent and prints the shortest form that reads back as `x`.
    let text = x.to_string();
    let n = text.split_once('.').map_or(0, |(_, frac)| frac.len());
    u32::try_from(n).ok().filter(|&n| n <= MAX_PLACES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decimal_gain_gives_the_decimal_the_user_wrote() {
        let g = Gain::new(0.1, 0.0);
        // The plain product shows binary noise; the serial RTU reading.
        assert_ne!(217.0 * 0.1, 21.7);
        assert_eq!(g.to_eng(217.0), 21.7);
        assert_eq!(g.to_raw(21.7), 217.0);
        assert_eq!(Gain::new(0.01, 0.0).to_eng(2531.0), 25.31);
        assert_eq!(Gain::new(0.1, -40.5).to_eng(653.0), 24.8);
        assert_eq!(Gain::new(0.001, 0.0).to_eng(-1.0), -0.001);
        assert_eq!(Gain::new(2.5, 0.25).to_eng(3.0), 7.75);
        // Every int16 a 0.1 gain can meet prints as one decimal place.
        for raw in i16::MIN..=i16::MAX {
            let eng = g.to_eng(f64::from(raw)).to_string();
            let frac = eng.split_once('.').map_or(0, |(_, f)| f.len());
            assert!(frac <= 1, "{raw} × 0.1 = {eng}");
            assert_eq!(g.to_raw(eng.parse().unwrap_or(f64::NAN)), f64::from(raw));
        }
    }

    #[test]
    fn what_is_no_decimal_scales_as_before() {
        let third = 1.0 / 3.0;
        let g = Gain::new(third, 0.0);
        assert_eq!(g.to_eng(3.0), 3.0 * third);
        // A raw with a fraction (a float register) has no decimal to keep.
        let g = Gain::new(0.1, 0.0);
        assert_eq!(g.to_eng(21.53), 21.53 * 0.1);
        // Beyond 2^53 the whole-number route would not be exact.
        assert_eq!(g.to_eng(1e17), 1e17 * 0.1);
        assert!(g.to_eng(f64::NAN).is_nan());
        assert_eq!(Gain::new(1e-20, 0.0).to_eng(5.0), 5.0 * 1e-20);
    }

    #[test]
    fn places_counts_what_the_config_wrote() {
        assert_eq!(places(0.1), Some(1));
        assert_eq!(places(-40.0), Some(0));
        assert_eq!(places(1e21), Some(0));
        assert_eq!(places(0.0000001), Some(7));
        assert_eq!(places(1.0 / 3.0), None);
        assert_eq!(places(f64::INFINITY), None);
    }

    #[test]
    fn clamp_keeps_values_in_the_engineering_range() {
        let s = Scaling::Range {
            raw: [4000.0, 20000.0],
            eng: [0.0, 10.0],
            clamp: true,
        };
        assert_eq!(s.to_eng(0.0), 0.0);
        assert_eq!(s.to_eng(24000.0), 10.0);
    }
}
