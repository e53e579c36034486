//! Where a secret of the flows file lives ([`SecretRef`]) and reading it
//! into an [`intops_runtime::Secret`].

use std::fmt;

use intops_runtime::Secret;
use serde::Deserialize;

/// Where a secret lives. Secrets are never written inline in the flows file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretRef {
    /// An environment variable's value.
    Env(String),
    /// A file's contents, trailing newline removed (`/run/secrets/x`).
    File(String),
}

impl SecretRef {
    /// Reads the secret. The error names where it looked, never the value.
    pub fn resolve(&self) -> Result<Secret, String> {
        let value = match self {
            SecretRef::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {path}: {e}"))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        };
        if value.is_empty() {
            return Err(format!("secret {self} is empty"));
        }
        Ok(Secret::new(value))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env {name}"),
            SecretRef::File(path) => write!(f, "file {path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secret_drops_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, "abc\n").expect("write");
        let r = SecretRef::File(path.display().to_string());
        assert_eq!(r.resolve().expect("resolves").expose(), "abc");
    }

    #[test]
    fn missing_env_names_the_variable_only() {
        let r = SecretRef::Env("INTOPS_TEST_SURELY_UNSET_VAR".into());
        let e = r.resolve().expect_err("unset");
        assert!(e.contains("INTOPS_TEST_SURELY_UNSET_VAR"), "{e}");
    }
}
