//! A secret value that cannot leak into logs or error messages by
//! formatting, compared in constant time. Where a secret comes from
//! (`SecretRef` in the flows file) is `intops-flows`' business.

use std::fmt;

/// A secret value. `Debug` and `Display` print `***`, so it cannot leak
/// into logs or error messages by formatting.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (tests and programmatic configuration).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must use it (signing, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` equals the secret, comparing every byte whatever
    /// differs first (no timing hint). The length is not secret: tokens
    /// are fixed-length in practice.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (given.as_bytes(), self.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
