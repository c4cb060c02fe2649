//! Byte sizes as people and Kubernetes write them (`10Gi`, `10G`, `512Mi`, `1e9`, `1.5Gi`, bytes).
//! The one parser for every size flag (the plugin's `install --max-size` and the fetcher's
//! `--max-size`); it must not accept a text one of them would refuse.

use std::fmt;
use std::str::FromStr;

/// A number of bytes, parsed from a Kubernetes resource quantity: a plain or decimal number,
/// optionally with an exponent (`1e9`) or one suffix, decimal (`k`, `K`, `M`, `G`, `T`, `P`, `E`)
/// or binary (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`). Fractions of a byte round up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Text that is not a byte size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a size ({problem}); use a number of bytes or a quantity such as 10Gi, 500Mi, 10G or 1e9")]
pub struct BadSize {
    pub text: String,
    pub problem: &'static str,
}

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

const SUFFIXES: [(&str, u128); 13] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

impl FromStr for ByteSize {
    type Err = BadSize;
    fn from_str(s: &str) -> Result<Self, BadSize> {
        let bad = |problem| BadSize {
            text: s.to_string(),
            problem,
        };
        let text = s.trim();
        let (number, multiplier) = match SUFFIXES.iter().find(|(suffix, _)| text.ends_with(suffix))
        {
            Some((suffix, m)) => (&text[..text.len() - suffix.len()], *m),
            None => (text, 1),
        };
        // An exponent only without a suffix (`1e9`; `1e3Gi` is not a quantity).
        let (mantissa, exponent) = match number.split_once(['e', 'E']) {
            Some(_) if multiplier != 1 => return Err(bad("an exponent and a suffix together")),
            Some((m, e)) => (
                m,
                e.parse::<i32>()
                    .map_err(|_| bad("the exponent is not a whole number"))?,
            ),
            None => (number, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad("no number"));
        }
        if !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
            return Err(bad("not a number with one of the known suffixes"));
        }
        let digits: u128 = format!("{whole}{fraction}")
            .parse()
            .map_err(|_| bad("too large"))?;
        let scale = exponent - fraction.len() as i32;
        let too_large = || bad("too large");
        let pow = |n: i32| 10u128.checked_pow(n.unsigned_abs()).ok_or_else(too_large);
        let numerator = digits.checked_mul(multiplier).ok_or_else(too_large)?;
        let bytes = if scale >= 0 {
            numerator.checked_mul(pow(scale)?).ok_or_else(too_large)?
        } else {
            numerator.div_ceil(pow(scale)?)
        };
        u64::try_from(bytes).map(ByteSize).map_err(|_| too_large())
    }
}

/// Sizes as users and Kubernetes write them, with their bytes: what every size flag must accept
/// (the plugin's and the fetcher's tests run through this list).
pub const EXAMPLES: &[(&str, u64)] = &[
    ("1073741824", 1 << 30),
    ("10Gi", 10 << 30),
    ("512Mi", 512 << 20),
    ("500Ki", 500 << 10),
    ("2Ti", 2 << 40),
    ("10G", 10_000_000_000),
    ("500M", 500_000_000),
    ("1k", 1_000),
    ("1K", 1_000),
    ("1e9", 1_000_000_000),
    ("1.5Gi", 3 << 29),
    ("0.5", 1),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_quantities_parse() {
        for (text, bytes) in EXAMPLES {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(*bytes)), "{text}");
        }
        assert_eq!("1E3".parse::<ByteSize>().unwrap().bytes(), 1000);
        for bad in [
            "",
            "lots",
            "10GB",
            "10gi",
            "-1",
            "1e3Gi",
            "1.2.3",
            "Gi",
            "99999999999Ei",
            "1e",
        ] {
            let e = bad.parse::<ByteSize>().unwrap_err();
            assert!(e.to_string().contains("such as 10Gi"), "{bad}: {e}");
        }
    }
}
