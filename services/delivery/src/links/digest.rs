//! A request's digest, for the echo rule: the first 8 bytes of
//! `sha256(method + "\n" + path + "\n" + body)` of the request as sent
//! (after the link was put in), kept on the link as 16 hex digits
//! (`Link.last_write`). Headers do not count: a target's answer to the
//! same method, path and body is the same change.

use sha2::{Digest as _, Sha256};

/// The digest of a request with `method`, `path` and `body`.
pub fn of(method: &str, path: &str, body: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update(b"\n");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(body.as_bytes());
    let sum = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&sum[..8]);
    u64::from_be_bytes(first)
}

/// `digest` as written in `Link.last_write`: 16 lowercase hex digits.
pub fn text(digest: u64) -> String {
    format!("{digest:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_first_eight_bytes_of_the_sha256_in_hex() {
        // printf 'PUT\n/rest/api/3/issue/OPS-1\n{"a":1}' | sha256sum
        let d = of("PUT", "/rest/api/3/issue/OPS-1", r#"{"a":1}"#);
        let full = Sha256::digest(b"PUT\n/rest/api/3/issue/OPS-1\n{\"a\":1}");
        let expected: String = full[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(text(d), expected);
        assert_eq!(text(d), "870649d9db2a0971");
        assert_eq!(text(d).len(), 16);
        assert_eq!(u64::from_str_radix(&text(d), 16).ok(), Some(d));
        assert_eq!(text(1), "0000000000000001", "leading zeros kept");
    }

    #[test]
    fn method_path_and_body_each_count() {
        let d = of("PUT", "/a", "{}");
        assert_eq!(d, of("PUT", "/a", "{}"));
        assert_ne!(d, of("PATCH", "/a", "{}"));
        assert_ne!(d, of("PUT", "/b", "{}"));
        assert_ne!(d, of("PUT", "/a", "{ }"));
        // The separators keep the parts apart.
        assert_ne!(of("PUT", "/a\n{}", ""), of("PUT", "/a", "\n{}"));
    }
}
