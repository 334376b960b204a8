//! The people who may log in, to the OPC UA server and the web console alike: one list,
//! `users:` at the top level (`opcua.users` is its older place and still read).
//!
//! Each user has a password (plain, an argon2 PHC hash, or a file holding either) and a
//! role. Password files are read and hashes parsed at load, so a missing file or a mangled
//! hash is a config error with its line rather than a login that can never succeed.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, RawNode, Spanned};

/// What a user may do, each role including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Browse, read, subscribe, read history.
    Viewer,
    /// Also write tags and acknowledge alarms.
    Operator,
    /// Also change the running gateway (reload).
    Admin,
}

/// A password as configured: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    Plain(String),
    /// An argon2 PHC string, `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
    Argon2(String),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Plain(_) => f.write_str("Plain(***)"),
            Password::Argon2(_) => f.write_str("Argon2(***)"),
        }
    }
}

impl Password {
    /// Whether `given` is this password. An argon2 check takes tens of milliseconds on
    /// purpose: call it off the async threads.
    pub fn verify(&self, given: &str) -> bool {
        match self {
            Password::Plain(p) => same_bytes(p.as_bytes(), given.as_bytes()),
            Password::Argon2(hash) => {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(hash).is_ok_and(|h| {
                    argon2::Argon2::default()
                        .verify_password(given.as_bytes(), &h)
                        .is_ok()
                })
            }
        }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess
/// was right.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: Password,
    pub role: Role,
}

impl User {
    /// Whether the user may write tags and acknowledge alarms.
    pub fn can_write(&self) -> bool {
        self.role >= Role::Operator
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Spanned<String>,
    #[serde(default)]
    password: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    role: Option<Spanned<Role>>,
    /// The older spelling: `write: true` is `role: operator`.
    #[serde(default)]
    write: Option<Spanned<bool>>,
}

/// Where a user list stands in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// `users:` at the top level: roles only.
    Top,
    /// `opcua.users`, where `write: true` still means an operator.
    OpcUa,
}

/// Validates a user list; `base` is the config file's folder, for relative
/// `password_file:` paths. A user with an error is left out (the error is in `errors`).
pub fn load(
    nodes: &[RawNode],
    place: Place,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Vec<User> {
    let mut users: Vec<User> = Vec::new();
    for node in nodes {
        let Some(user) = load_user(node, place, base, errors) else {
            continue;
        };
        if users.iter().any(|u| u.name == user.name) {
            errors.push(node.error(format!("duplicate user `{}`", user.name)));
            continue;
        }
        users.push(user);
    }
    users
}

fn load_user(
    node: &RawNode,
    place: Place,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<User> {
    let raw: RawUser = match node.deserialize() {
        Ok(u) => u,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let name = raw.name.value.trim();
    if name.is_empty() {
        errors.push(raw.name.error("user name must not be empty"));
        return None;
    }
    let role = match (&raw.role, &raw.write) {
        (_, Some(w)) if place == Place::Top => {
            errors.push(w.error(
                "give `role: operator` (or viewer, admin); `write:` is read only under `opcua.users`",
            ));
            return None;
        }
        (Some(_), Some(w)) => {
            errors.push(w.error(
                "give `role:` (viewer, operator or admin) alone; `write:` is its older spelling",
            ));
            return None;
        }
        (Some(r), None) => r.value,
        (None, Some(w)) if w.value => Role::Operator,
        (None, _) => Role::Viewer,
    };
    let password = load_password(&raw, name, node, base, errors)?;
    Some(User {
        name: name.to_string(),
        password,
        role,
    })
}

fn load_password(
    raw: &RawUser,
    name: &str,
    node: &RawNode,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<Password> {
    let (text, at) = match (&raw.password, &raw.password_file) {
        (Some(p), None) => (p.value.clone(), p),
        (None, Some(f)) => {
            let path = base.join(&f.value);
            let text = crate::config::read_referenced_file(&path).and_then(|b| {
                String::from_utf8(b).map_err(|_| std::io::Error::other("not UTF-8 text"))
            });
            match text {
                // A trailing newline is the editor's, not the password's.
                Ok(t) => (t.trim_end_matches(['\n', '\r']).to_string(), f),
                Err(e) => {
                    errors.push(f.error(format!("cannot read {}: {e}", path.display())));
                    return None;
                }
            }
        }
        (Some(p), Some(_)) => {
            errors.push(p.error("give either `password` or `password_file`, not both"));
            return None;
        }
        (None, None) => {
            errors.push(node.error(format!(
                "user `{name}` needs `password` (plain or an `$argon2id$` hash) or `password_file`"
            )));
            return None;
        }
    };
    if text.starts_with("$argon2") {
        // A PHC string may parse without a salt or a hash (`$argon2id$x`); no password
        // would ever match it.
        let problem = match argon2::PasswordHash::new(&text) {
            Err(e) => Some(e.to_string()),
            // Not echoed: a plain password that happens to start with `$argon2` would be.
            Ok(h) if !["argon2id", "argon2i", "argon2d"].contains(&h.algorithm.as_str()) => {
                Some("unknown algorithm (expected argon2id, argon2i or argon2d)".into())
            }
            Ok(h) if h.salt.is_none() || h.hash.is_none() => Some(
                "it has no salt or no hash (expected `$argon2id$v=19$m=…,t=…,p=…$salt$hash`)"
                    .into(),
            ),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            errors.push(at.error(format!("not a valid argon2 hash: {problem}")));
            return None;
        }
        Some(Password::Argon2(text))
    } else if text.is_empty() {
        errors.push(at.error("password must not be empty"));
        None
    } else {
        Some(Password::Plain(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const DEVICES: &str = "devices:\n  - name: a\n    driver: enip-sim\n    tags:\n      - { name: t, type: float64, address: Count }\n";

    /// `sections` with one device, parsed.
    fn parse(sections: &str) -> Config {
        Config::parse("f.yaml", &format!("{sections}{DEVICES}")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn roles(users: &[User]) -> Vec<(&str, Role, bool)> {
        (users.iter())
            .map(|u| (u.name.as_str(), u.role, u.can_write()))
            .collect()
    }

    /// One list for every login: the OPC UA server takes the top-level users, or those of
    /// `opcua.users` (the older place, where `write: true` means an operator).
    #[test]
    fn roles_and_the_shared_list() {
        let config = parse(
            "users:\n  - { name: v, password: a }\n  - { name: o, password: b, role: operator }\n  - { name: ad, password: c, role: admin }\nopcua:\n  endpoints: [basic256sha256_sign_encrypt]\n  anonymous: off\n",
        );
        let expected = vec![
            ("v", Role::Viewer, false),
            ("o", Role::Operator, true),
            ("ad", Role::Admin, true),
        ];
        assert_eq!(roles(&config.users), expected);
        let opcua = config.opcua.unwrap_or_else(|| panic!("opcua"));
        assert_eq!(roles(&opcua.users), expected);

        let config = parse(
            "opcua:\n  endpoints: [basic256sha256_sign_encrypt]\n  anonymous: off\n  users:\n    - { name: w, password: a, write: true }\n    - { name: r, password: b, write: false }\n",
        );
        let expected = vec![("w", Role::Operator, true), ("r", Role::Viewer, false)];
        assert_eq!(roles(&config.users), expected);
        let opcua = config.opcua.unwrap_or_else(|| panic!("opcua"));
        assert_eq!(roles(&opcua.users), expected);

        // Users who cannot log in to OPC UA (no encrypted endpoint) are not its users, so
        // changing them does not restart it.
        let config = parse(
            "users:\n  - { name: v, password: a }\nopcua:\n  endpoints: [none]\n  anonymous: read\n",
        );
        assert_eq!(roles(&config.users), vec![("v", Role::Viewer, false)]);
        let opcua = config.opcua.unwrap_or_else(|| panic!("opcua"));
        assert!(opcua.users.is_empty());
        // Passwords never print.
        let shown = format!("{:?}", config.users);
        assert!(
            shown.contains("Plain(***)") && !shown.contains("\"a\""),
            "{shown}"
        );
    }

    #[test]
    fn plain_and_argon2_passwords_verify() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"uaedge-test-salt").expect("salt");
        let hash = argon2::Argon2::default()
            .hash_password(b"s3cret", &salt)
            .expect("hash")
            .to_string();
        assert!(Password::Argon2(hash.clone()).verify("s3cret"));
        assert!(!Password::Argon2(hash).verify("s3cret "));
        assert!(Password::Plain("pw".into()).verify("pw"));
        assert!(!Password::Plain("pw".into()).verify("pW"));
        assert!(!Password::Plain("pw".into()).verify("pw2"));
    }
}
