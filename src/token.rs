//! Bearer tokens for `workq serve`: what a token may do (its role), how one is made and how
//! it is checked. Pure: the stores keep only `hash` of a token, never the token itself.

use crate::model::{opt_time_ms, time_ms, Time};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// What a token may do. Each role may do what the ones before it may: a viewer reads, a
/// worker also takes and reports work, an operator also adds items and takes human
/// actions, an admin also manages queues and tokens.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Worker,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Viewer, Role::Worker, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Worker => "worker",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether a token of this role may do what needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!("unknown role '{s}' (expected one of: viewer, worker, operator, admin)")
            })
    }
}

/// A token as stored: its name and role, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[serde(with = "opt_time_ms", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Time>,
}

/// A token just made: the only time its secret is seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Every token starts so, for secret scanners and for people.
pub const PREFIX: &str = "wq_";

/// A fresh token: `wq_` and 256 random bits in hex.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    let mut s = String::with_capacity(PREFIX.len() + 64);
    s.push_str(PREFIX);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// What is stored of a token: its SHA-256.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Which of `stored` (name and hash of every live token) `token` is. Every hash is
/// compared in full, in constant time, so how long this takes says nothing of the secret.
pub fn find<'a, T>(token: &str, stored: &'a [(T, Vec<u8>)]) -> Option<&'a T> {
    let h = hash(token);
    let mut found = None;
    for (t, stored_hash) in stored {
        if bool::from(stored_hash.as_slice().ct_eq(h.as_slice())) {
            found = Some(t);
        }
    }
    found
}

/// A token name: what history says (`token:NAME`), so it is short, printable and has no
/// `/` (worker ids are `token:NAME/WORKER`).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("a token name is 1 to 64 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "a token name is letters, digits, '-', '_' and '.'; {c:?} is not allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits_and_only_their_own_hash_finds_them() {
        let a = generate();
        let b = generate();
        assert!(a.starts_with(PREFIX) && a.len() == 3 + 64, "{a}");
        assert_ne!(a, b);
        let stored = vec![("a", hash(&a)), ("b", hash(&b))];
        assert_eq!(find(&a, &stored), Some(&"a"));
        assert_eq!(find(&b, &stored), Some(&"b"));
        assert_eq!(find("wq_nope", &stored), None);
        assert_eq!(find(&a[..a.len() - 1], &stored), None);
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Operator.allows(Role::Worker));
        assert!(!Role::Worker.allows(Role::Operator));
        assert!(!Role::Viewer.allows(Role::Worker));
        assert_eq!("Operator".parse::<Role>(), Ok(Role::Operator));
        assert!("root"
            .parse::<Role>()
            .unwrap_err()
            .contains("viewer, worker"));
    }

    #[test]
    fn names_are_what_history_can_say() {
        assert!(check_name("ci-bot_1.prod").is_ok());
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
