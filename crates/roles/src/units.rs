//! The units role configs and lab files are written in: sizes, durations
//! and rates, parsed in one place.

use serde::{Deserialize, Serialize};

/// "64M", "512k", "1G", "1048576" → bytes (binary multiples, as Docker reads them).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_lowercase();
            let m = match unit.trim_end_matches(['b', 'i']) {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                _ => return None,
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// "50ms", "2s", "1500us" → microseconds.
pub fn parse_duration_us(s: &str) -> Option<u64> {
    let s = s.trim();
    let i = s.find(|c: char| c.is_ascii_alphabetic())?;
    let v: f64 = s[..i].trim().parse().ok()?;
    let mult = match &s[i..] {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    (v >= 0.0 && v.is_finite()).then(|| (v * mult).round() as u64)
}

/// "15.4mbit", "100kbit", "1gbit", "9600bit" → bits per second (SI, as tc reads them).
pub fn parse_rate_bps(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let i = s.find(|c: char| c.is_ascii_alphabetic())?;
    let v: f64 = s[..i].trim().parse().ok()?;
    let mult = match &s[i..] {
        "bit" | "bps" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return None,
    };
    (v > 0.0 && v.is_finite()).then(|| (v * mult).round() as u64)
}

/// A size in bytes, as a config or a command line writes it ("64M",
/// "512k", "1048576"): parsed once, when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size(pub u64);

impl Size {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        parse_size(s)
            .map(Size)
            .ok_or_else(|| format!("{s:?} is not a size (\"64M\", \"512K\", \"1G\")"))
    }
}

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(s: String) -> Result<Size, String> {
        s.parse()
    }
}

impl std::fmt::Display for Size {
    /// The largest unit that writes it exactly, so a rendered config reads
    /// as its author wrote it.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let n = self.0;
        match [(30, "G"), (20, "M"), (10, "K")]
            .into_iter()
            .find(|(shift, _)| n != 0 && n.is_multiple_of(1u64 << shift))
        {
            Some((shift, unit)) => write!(f, "{}{unit}", n >> shift),
            None => write!(f, "{n}"),
        }
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.to_string()
    }
}

/// A length of time as a config or a command line writes it ("50ms",
/// "30s", "10m"): parsed once, when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub std::time::Duration);

impl Span {
    pub fn duration(self) -> std::time::Duration {
        self.0
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Span, String> {
        parse_duration_us(s)
            .map(|us| Span(std::time::Duration::from_micros(us)))
            .ok_or_else(|| format!("{s:?} is not a duration (\"50ms\", \"30s\", \"5m\")"))
    }
}

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Span, String> {
        s.parse()
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let us = self.0.as_micros();
        match [
            (3_600_000_000, "h"),
            (60_000_000, "m"),
            (1_000_000, "s"),
            (1_000, "ms"),
        ]
        .into_iter()
        .find(|(unit, _)| us != 0 && us.is_multiple_of(*unit))
        {
            Some((unit, name)) => write!(f, "{}{name}", us / unit),
            None => write!(f, "{us}us"),
        }
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_rates() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_duration_us("2s"), Some(2_000_000));
        assert_eq!(parse_duration_us("0.5ms"), Some(500));
        assert_eq!(parse_rate_bps("15.4mbit"), Some(15_400_000));
        assert_eq!(parse_rate_bps("fast"), None);
    }

    #[test]
    fn typed_units_read_and_write_as_written() {
        for s in ["64M", "512K", "1G", "1000", "0"] {
            assert_eq!(s.parse::<Size>().unwrap().to_string(), s);
        }
        assert_eq!("1048576".parse::<Size>().unwrap().to_string(), "1M");
        for s in ["50ms", "30s", "10m", "2h", "1500us", "0us"] {
            assert_eq!(s.parse::<Span>().unwrap().to_string(), s);
        }
        assert_eq!("0.5s".parse::<Span>().unwrap().to_string(), "500ms");
        assert!("lots"
            .parse::<Size>()
            .unwrap_err()
            .contains("\"lots\" is not a size"));
        assert!("soon"
            .parse::<Span>()
            .unwrap_err()
            .contains("is not a duration"));
        // Through serde, as a config file is read.
        let v: Vec<Span> = serde_json::from_str(r#"["1s","2s"]"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"["1s","2s"]"#);
        assert!(serde_json::from_str::<Size>(r#""12x""#).is_err());
    }
}
