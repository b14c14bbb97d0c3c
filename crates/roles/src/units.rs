//! The units role configs and lab files are written in: sizes, durations
//! and rates, parsed in one place.

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
}
