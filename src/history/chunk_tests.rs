use uaedge_driver::{BadReason, DataType, Quality, Timestamp, UncertainReason, Value};

use super::chunk::{decode, peek, ChunkEncoder, Point, TypeMismatch};

/// xorshift64*: reproducible noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn encode(data_type: DataType, points: &[Point]) -> Vec<u8> {
    let (first, rest) = points.split_first().expect("points");
    let mut enc = ChunkEncoder::new(data_type, first.time, first.value.as_ref(), first.quality)
        .expect("first");
    for p in rest {
        enc.push(p.time, p.value.as_ref(), p.quality).expect("push");
    }
    let bytes = enc.to_bytes();
    assert_eq!(bytes.len(), enc.byte_len());
    bytes
}

fn round_trip(data_type: DataType, points: &[Point]) -> Vec<u8> {
    let bytes = encode(data_type, points);
    let back = decode(&bytes).expect("decodes");
    assert_eq!(back.len(), points.len());
    for (i, (a, b)) in points.iter().zip(&back).enumerate() {
        let same_value = match (&a.value, &b.value) {
            // NaN payloads survive bit for bit; `==` would say otherwise.
            (Some(Value::Double(x)), Some(Value::Double(y))) => x.to_bits() == y.to_bits(),
            (Some(Value::Float(x)), Some(Value::Float(y))) => x.to_bits() == y.to_bits(),
            (x, y) => x == y,
        };
        assert!(
            same_value && a.time == b.time && a.quality == b.quality,
            "{data_type:?} sample {i}: {a:?} came back as {b:?}"
        );
    }
    let meta = peek(&bytes).expect("header");
    assert_eq!(meta.count as usize, points.len());
    assert_eq!(meta.first, points[0].time);
    assert_eq!(meta.last, points[points.len() - 1].time);
    bytes
}

fn good(time: i64, value: Value) -> Point {
    Point {
        time,
        value: Some(value),
        quality: Quality::Good,
    }
}

fn value_of(t: DataType, i: u64, noise: &mut Noise) -> Value {
    let r = noise.next();
    match t {
        DataType::Boolean => Value::Boolean(r.is_multiple_of(3)),
        DataType::Int8 => Value::Int8(r as i8),
        DataType::Int16 => Value::Int16(r as i16),
        DataType::Int32 => Value::Int32(r as i32),
        DataType::Int64 => Value::Int64(if i.is_multiple_of(7) {
            i64::MIN
        } else {
            r as i64
        }),
        DataType::UInt8 => Value::UInt8(r as u8),
        DataType::UInt16 => Value::UInt16(r as u16),
        DataType::UInt32 => Value::UInt32(r as u32),
        DataType::UInt64 => Value::UInt64(if i.is_multiple_of(5) { u64::MAX } else { r }),
        DataType::Float => Value::Float(match i % 11 {
            3 => f32::NAN,
            4 => f32::INFINITY,
            5 => -0.0,
            _ => (noise.unit() * 100.0) as f32,
        }),
        DataType::Double => Value::Double(match i % 13 {
            3 => f64::NAN,
            4 => f64::NEG_INFINITY,
            5 => f64::MIN_POSITIVE,
            _ => noise.unit() * 1e6,
        }),
        DataType::String => Value::String(match i % 4 {
            0 => String::new(),
            1 => "recipe-A".into(),
            _ => format!("batch {} ✓", r % 3),
        }),
        DataType::DateTime => Value::DateTime(Timestamp(r as i64 >> 8)),
    }
}

#[test]
fn every_type_round_trips_with_quality_changes_gaps_and_clock_steps() {
    let qualities = [
        Quality::Good,
        Quality::Uncertain(UncertainReason::LastUsableValue),
        Quality::Bad(BadReason::NotConnected),
        Quality::Bad(BadReason::CommFailure),
        Quality::Bad(BadReason::DeviceFailure),
        Quality::Bad(BadReason::ConfigError),
        Quality::Bad(BadReason::OutOfService),
    ];
    for t in DataType::ALL {
        let mut noise = Noise(0x9E37_79B9_7F4A_7C15 ^ t as u64);
        let mut time = 1_700_000_000_000_000i64;
        let mut points = Vec::new();
        for i in 0..600u64 {
            time += match i % 50 {
                10 => -3_000_000,          // the clock steps back
                20 => 0,                   // the same time twice
                30 => 86_400_000_000 * 30, // a month's gap
                _ => 500_000 + (noise.next() % 2000) as i64 - 1000,
            };
            let quality = if i % 37 < 30 {
                Quality::Good
            } else {
                qualities[(i as usize / 37) % qualities.len()]
            };
            let value = (quality.is_good() || i % 2 == 0).then(|| value_of(t, i, &mut noise));
            points.push(Point {
                time,
                value,
                quality,
            });
        }
        round_trip(t, &points);
        // A chunk whose first sample has no value.
        points[0].value = None;
        points[0].quality = Quality::Bad(BadReason::NotConnected);
        round_trip(t, &points);
    }
}

#[test]
fn extremes_round_trip() {
    let times = [i64::MIN, i64::MAX, 0, -1, i64::MAX, i64::MIN];
    let points: Vec<Point> = times.iter().map(|&t| good(t, Value::Int64(t))).collect();
    round_trip(DataType::Int64, &points);
    let one = [good(42, Value::Boolean(true))];
    let bytes = round_trip(DataType::Boolean, &one);
    assert_eq!(bytes.len(), super::chunk::HEADER_BYTES + 1);
}

#[test]
fn a_value_of_another_type_is_refused_and_changes_nothing() {
    let mut enc = ChunkEncoder::new(DataType::Float, 0, Some(&Value::Float(1.0)), Quality::Good)
        .expect("first");
    let before = enc.to_bytes();
    assert_eq!(
        enc.push(1, Some(&Value::Double(1.0)), Quality::Good),
        Err(TypeMismatch)
    );
    assert_eq!(enc.to_bytes(), before);
    assert!(ChunkEncoder::new(DataType::Int32, 0, Some(&Value::Int16(1)), Quality::Good).is_err());
}

#[test]
fn a_resumed_encoder_continues_bit_for_bit() {
    let mut noise = Noise(7);
    let points: Vec<Point> = (0..300i64)
        .map(|i| {
            good(
                i * 1_000_000 + (noise.next() % 500) as i64,
                value_of(DataType::Double, i as u64, &mut noise),
            )
        })
        .collect();
    let whole = encode(DataType::Double, &points);
    let half = encode(DataType::Double, &points[..150]);
    let mut resumed = ChunkEncoder::resume(&half).expect("resume");
    for p in &points[150..] {
        resumed
            .push(p.time, p.value.as_ref(), p.quality)
            .expect("push");
    }
    assert_eq!(resumed.to_bytes(), whole);
}

/// The sizes the README's storage figures rest on, as a floor the format must keep.
#[test]
fn regular_signals_compress() {
    let period = 1_000_000;
    let n = 3600i64;
    // A counter polled with ±1 ms of jitter: the times cost most.
    let mut noise = Noise(3);
    let counter: Vec<Point> = (0..n)
        .map(|i| {
            let jitter = (noise.next() % 2000) as i64 - 1000;
            good(i * period + jitter, Value::UInt32(i as u32 * 3))
        })
        .collect();
    let bytes = round_trip(DataType::UInt32, &counter);
    let per_sample = bytes.len() as f64 / n as f64;
    println!("jittery counter: {per_sample:.2} B/sample");
    assert!(
        per_sample < 2.0,
        "jittery counter: {per_sample:.2} B/sample"
    );
    // The same counter on exact ticks, as simulated devices stamp their samples.
    let ticks: Vec<Point> = (0..n)
        .map(|i| good(i * period, Value::UInt32(i as u32 * 3)))
        .collect();
    let bytes = round_trip(DataType::UInt32, &ticks);
    // Two bits a sample: the time's and the value's delta-of-delta, both zero.
    assert!(bytes.len() <= 64 + n as usize / 4, "{} bytes", bytes.len());
    // A noisy float32 sensor on exact ticks.
    let sensor: Vec<Point> = (0..n)
        .map(|i| {
            let x = 50.0 + 10.0 * (i as f64 / 60.0).sin() + 0.2 * noise.unit();
            good(i * period, Value::Float(x as f32))
        })
        .collect();
    let bytes = round_trip(DataType::Float, &sensor);
    let per_sample = bytes.len() as f64 / n as f64;
    println!("float32 sensor: {per_sample:.2} B/sample");
    assert!(per_sample < 4.0, "float32 sensor: {per_sample:.2} B/sample");
    // The same sensor behind a deadband, read every 500 ms: reported 0.5 to 3 s apart, on
    // the poll's grid. The grid makes its times cost a few bits, not twenty.
    let mut time = 0i64;
    let deadbanded: Vec<Point> = (0..n)
        .map(|i| {
            time += 500_000 * (1 + (noise.next() % 6) as i64);
            let x = 50.0 + 10.0 * (i as f64 / 60.0).sin() + 0.2 * noise.unit();
            good(1_780_000_000_123_456 + time, Value::Float(x as f32))
        })
        .collect();
    let bytes = round_trip(DataType::Float, &deadbanded);
    let per_sample = bytes.len() as f64 / n as f64;
    println!("deadbanded float32 sensor: {per_sample:.2} B/sample");
    assert!(
        per_sample < 4.0,
        "deadbanded float32: {per_sample:.2} B/sample"
    );
    // One sample off the grid (a clock correction) costs a few bytes, once.
    let mut off = deadbanded.clone();
    off[1000].time += 7;
    for p in &mut off[1001..] {
        p.time += 7;
    }
    let shifted = round_trip(DataType::Float, &off);
    assert!(
        shifted.len() < bytes.len() + 64,
        "{} vs {}",
        shifted.len(),
        bytes.len()
    );
}

#[test]
fn damaged_chunks_are_errors_not_panics() {
    let mut noise = Noise(11);
    for t in DataType::ALL {
        let points: Vec<Point> = (0..40i64)
            .map(|i| good(i * 1000, value_of(t, i as u64, &mut noise)))
            .collect();
        let bytes = encode(t, &points);
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
            let _ = ChunkEncoder::resume(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x5A;
            let _ = decode(&flipped);
        }
    }
    assert!(decode(&[]).is_err());
    assert!(decode(&[2; 23]).is_err());
}
