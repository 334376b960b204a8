use std::fmt;
use std::str::FromStr;

/// A duration as written in config files: a number and a unit, `250us`, `500ms`, `2s`,
/// `1.5m`, `1h`. A bare number is refused, since `timeout: 5` could mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn from_millis(ms: u64) -> Duration {
        Duration(std::time::Duration::from_millis(ms))
    }

    pub fn from_secs(s: u64) -> Duration {
        Duration(std::time::Duration::from_secs(s))
    }

    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let expected = || {
            format!("invalid duration `{s}`: expected a number and a unit (us, ms, s, m, h, d), e.g. `500ms`")
        };
        let n: f64 = number.parse().map_err(|_| expected())?;
        let seconds_per_unit = match unit.trim() {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(expected()),
        };
        std::time::Duration::try_from_secs_f64(n * seconds_per_unit)
            .map(Duration)
            .map_err(|_| expected())
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if us.is_multiple_of(3_600_000_000) && us > 0 {
            write!(f, "{}h", us / 3_600_000_000)
        } else if us.is_multiple_of(60_000_000) && us > 0 {
            write!(f, "{}m", us / 60_000_000)
        } else if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1000) {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_bare_numbers() {
        assert_eq!("500ms".parse(), Ok(Duration::from_millis(500)));
        assert_eq!("2s".parse(), Ok(Duration::from_secs(2)));
        assert_eq!("1.5m".parse(), Ok(Duration::from_secs(90)));
        assert_eq!("1h".parse(), Ok(Duration::from_secs(3600)));
        assert_eq!(
            "250us".parse(),
            Ok(Duration(std::time::Duration::from_micros(250)))
        );
        assert!("5".parse::<Duration>().is_err());
        assert!("5 parsecs".parse::<Duration>().is_err());
        assert!("-1s".parse::<Duration>().is_err());
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
        assert_eq!(Duration::from_secs(120).to_string(), "2m");
    }
}
