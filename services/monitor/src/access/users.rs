//! The users file (`INTOPS_MONITOR_USERS_FILE`): names, roles and the
//! SHA-256 of each bearer token (the tokens themselves are never stored).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Role;

/// One user of the console and API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub role: Role,
    token_sha256: [u8; 32],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    users: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    role: Role,
    token_sha256: String,
}

/// Reads a users file's text; every problem is named (file errors never
/// quote a token hash).
pub(crate) fn parse(text: &str) -> Result<Vec<User>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let mut users: Vec<User> = Vec::with_capacity(file.users.len());
    for (i, e) in file.users.into_iter().enumerate() {
        let at = format!("users[{i}]");
        let name = e.name.trim().to_string();
        if name.is_empty() {
            return Err(format!("{at}: name is empty"));
        }
        let hash = hex::decode(e.token_sha256.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                format!(
                    "{at} ({name}): token_sha256 must be 64 hex digits (the SHA-256 of the token: printf %s \"$TOKEN\" | sha256sum)"
                )
            })?;
        if users.iter().any(|u| u.name == name) {
            return Err(format!("{at}: user {name} is listed twice"));
        }
        if users.iter().any(|u| u.token_sha256 == hash) {
            return Err(format!(
                "{at} ({name}): the same token as another user; give each user a token of their own"
            ));
        }
        users.push(User {
            name,
            role: e.role,
            token_sha256: hash,
        });
    }
    if users.is_empty() {
        return Err(
            "lists no user: a users file names at least one ([[users]] with name, role and token_sha256)"
                .into(),
        );
    }
    Ok(users)
}

/// The user whose token is `token`, comparing every user's hash in full.
pub(crate) fn find<'a>(users: &'a [User], token: &str) -> Option<&'a User> {
    let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for u in users {
        let differs = u
            .token_sha256
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs == 0 {
            found = Some(u);
        }
    }
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The hex SHA-256 of `token`, as a users file holds it.
    pub(crate) fn hash(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    #[test]
    fn users_are_found_by_their_tokens_hash() {
        let text = format!(
            "[[users]]\nname = \"olga\"\nrole = \"operator\"\ntoken_sha256 = \"{}\"\n\n[[users]]\nname = \"vic\"\nrole = \"viewer\"\ntoken_sha256 = \"{}\"\n",
            hash("olga-token"),
            hash("vic-token").to_uppercase()
        );
        let users = parse(&text).expect("parses");
        assert_eq!(
            find(&users, "olga-token").map(|u| u.role),
            Some(Role::Operator)
        );
        assert_eq!(
            find(&users, "vic-token").map(|u| u.name.as_str()),
            Some("vic")
        );
        assert!(find(&users, "olga-token ").is_none());
        assert!(find(&users, "").is_none());
    }

    #[test]
    fn bad_files_name_the_problem() {
        let one = |name: &str, role: &str, hash: &str| {
            format!("[[users]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{hash}\"\n")
        };
        let h = hash("t");
        for (text, want) in [
            (one("olga", "root", &h), "unknown variant `root`"),
            (one("olga", "operator", "abc"), "64 hex digits"),
            (one(" ", "operator", &h), "name is empty"),
            (
                format!(
                    "{}{}",
                    one("a", "viewer", &h),
                    one("a", "admin", &hash("u"))
                ),
                "listed twice",
            ),
            (
                format!("{}{}", one("a", "viewer", &h), one("b", "admin", &h)),
                "same token",
            ),
            (
                "[[users]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"plain\"\n".to_string(),
                "unknown field",
            ),
            (String::new(), "lists no user"),
            ("users = []".to_string(), "lists no user"),
        ] {
            let e = parse(&text).expect_err(want);
            assert!(e.contains(want), "{e}");
            assert!(!e.contains(&h), "{e}");
        }
    }
}
