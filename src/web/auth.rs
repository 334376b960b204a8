//! Who is asking: logins against the config's `users:`, sessions kept in memory (a restart
//! logs everyone out), login attempts limited per user and address (unknown names share
//! one count per address; an IPv6 address counts by its /64), and the CSRF token every
//! POST must carry.
//!
//! The session rides in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` once served over
//! TLS); the CSRF token comes with the login's answer and from `GET /api/v1/session`, and
//! goes back in the `X-CSRF-Token` header, which a cross-site form cannot set. Without users
//! the API is open for reading to anyone on the loopback interface and takes no writes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::config::users::{Password, Role, User};

/// The session cookie's name.
pub const COOKIE: &str = "uaedge_session";
/// The header that carries the CSRF token on a POST.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Login attempts allowed per user and address within [`FAILURE_WINDOW`]; a success
/// clears the count.
const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Bounds on what strangers can make this keep.
const MAX_SESSIONS: usize = 256;
const MAX_FAILURE_KEYS: usize = 10_000;
/// argon2 checks at once: each takes tens of milliseconds and some MiB.
const PASSWORD_CHECKS: usize = 2;
/// A login that waits longer than this for a check is turned away.
const CHECK_QUEUE: Duration = Duration::from_secs(5);

/// Who a request comes from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub role: Role,
    /// The session's CSRF token; `None` for the anonymous reader (no users configured).
    pub csrf: Option<String>,
}

struct Session {
    user: String,
    role: Role,
    csrf: String,
    seen: Instant,
}

/// Why a login failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password: the two are not told apart.
    Refused,
    /// Too many attempts for this user from this address; retry after this long.
    TooMany(Duration),
    /// Too many logins being checked at once.
    Busy,
}

pub struct Auth {
    users: HashMap<String, (Arc<Password>, Role)>,
    idle: Duration,
    /// Served over TLS: the cookie is `Secure`.
    secure: bool,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<(String, IpAddr), VecDeque<Instant>>>,
    checks: Semaphore,
}

/// 32 random bytes in hex.
fn token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).ok()?;
    Some(crate::config::hex(&bytes))
}

/// A hash to check unknown users' passwords against, so that a refusal takes as long for
/// an unknown user as for a wrong password.
fn decoy() -> &'static Password {
    static DECOY: std::sync::OnceLock<Password> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"uaedge-decoy-salt").ok();
        let hash = salt.and_then(|salt| {
            argon2::Argon2::default()
                .hash_password(b"decoy", &salt)
                .ok()
                .map(|h| h.to_string())
        });
        // Without a hash (it cannot fail with these inputs) the decoy is a plain
        // password no one can know.
        hash.map_or_else(
            || Password::Plain(token().unwrap_or_default()),
            Password::Argon2,
        )
    })
}

impl Auth {
    pub fn new(users: &[User], idle: Duration, secure: bool) -> Auth {
        Auth {
            secure,
            users: users
                .iter()
                .map(|u| (u.name.clone(), (Arc::new(u.password.clone()), u.role)))
                .collect(),
            idle,
            sessions: Mutex::default(),
            failures: Mutex::default(),
            checks: Semaphore::new(PASSWORD_CHECKS),
        }
    }

    /// The `Set-Cookie` value for session `id`: `None` clears it.
    pub fn cookie(&self, id: Option<&str>) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        match id {
            Some(id) => format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"),
            None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
        }
    }

    /// Whether the session whose CSRF token is `csrf` is still open.
    pub fn alive(&self, csrf: &str) -> bool {
        let idle = self.idle;
        self.sessions
            .lock()
            .values()
            .any(|s| s.csrf == csrf && s.seen.elapsed() < idle)
    }

    /// Whether requests need a login (the config has users).
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks `password` and opens a session: its token (for the cookie) and the caller.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        from: IpAddr,
    ) -> Result<(String, Caller), LoginError> {
        let known = self.users.get(user).cloned();
        // Unknown names share one count per address: trying many names adds no keys, and
        // what someone typed into the name field (a password, by mistake) is not logged.
        let counted = counted_as(from);
        let (key, shown) = match &known {
            Some(_) => ((user.to_string(), counted), user),
            None => ((String::new(), counted), "(unknown)"),
        };
        // Counted as a failure before the check, so that logins sent at once cannot all
        // pass the count while the first ones are still being checked.
        if let Some(wait) = self.attempt(&key) {
            warn!(user = shown, %from, "login refused: too many failures");
            return Err(LoginError::TooMany(wait));
        }
        let (stored, role) = match known {
            Some((p, r)) => (p, Some(r)),
            None => (Arc::new(decoy().clone()), None),
        };
        let permit = match tokio::time::timeout(CHECK_QUEUE, self.checks.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                // Not checked, so not counted: a flood of logins must not use up a real
                // user's tries.
                self.give_back(&key);
                return Err(LoginError::Busy);
            }
        };
        let given = password.to_string();
        let ok = tokio::task::spawn_blocking(move || stored.verify(&given))
            .await
            .unwrap_or(false);
        drop(permit);
        let Some(role) = role.filter(|_| ok) else {
            warn!(user = shown, %from, "login refused: unknown user or wrong password");
            return Err(LoginError::Refused);
        };
        self.failures.lock().remove(&key);
        let (Some(id), Some(csrf)) = (token(), token()) else {
            warn!("no randomness for a session token");
            return Err(LoginError::Busy);
        };
        let caller = Caller {
            user: user.to_string(),
            role,
            csrf: Some(csrf.clone()),
        };
        let mut sessions = self.sessions.lock();
        let idle = self.idle;
        sessions.retain(|_, s| s.seen.elapsed() < idle);
        if sessions.len() >= MAX_SESSIONS {
            // The one unused longest makes room.
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                role,
                csrf,
                seen: Instant::now(),
            },
        );
        info!(user, %from, ?role, "web login");
        Ok((id, caller))
    }

    /// Ends the session of `headers`' cookie.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            if let Some(s) = self.sessions.lock().remove(id) {
                info!(user = %s.user, "web logout");
            }
        }
    }

    /// The caller of a request with `headers`: its live session (which this keeps alive),
    /// the anonymous reader when no users are configured, or `None`.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        if !self.required() {
            return Some(Caller {
                user: "anonymous".to_string(),
                role: Role::Viewer,
                csrf: None,
            });
        }
        let id = session_cookie(headers)?;
        let mut sessions = self.sessions.lock();
        let session = sessions.get_mut(id)?;
        if session.seen.elapsed() >= self.idle {
            sessions.remove(id);
            return None;
        }
        session.seen = Instant::now();
        Some(Caller {
            user: session.user.clone(),
            role: session.role,
            csrf: Some(session.csrf.clone()),
        })
    }

    /// Counts an attempt for `key`, or says how long it must wait when it has used up its
    /// tries within the window.
    fn attempt(&self, key: &(String, IpAddr)) -> Option<Duration> {
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_FAILURE_KEYS && !failures.contains_key(key) {
            failures.retain(|_, times| times.back().is_some_and(|t| t.elapsed() < FAILURE_WINDOW));
            if failures.len() >= MAX_FAILURE_KEYS {
                // Full of recent tries from many addresses: the stalest count goes, so a
                // newcomer is never refused for others' tries.
                let stalest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    failures.remove(&k);
                }
            }
        }
        let times = failures.entry(key.clone()).or_default();
        while times.front().is_some_and(|t| t.elapsed() >= FAILURE_WINDOW) {
            times.pop_front();
        }
        if times.len() >= MAX_FAILURES {
            return times
                .front()
                .map(|first| FAILURE_WINDOW.saturating_sub(first.elapsed()));
        }
        times.push_back(Instant::now());
        None
    }

    /// Takes back the attempt [`Auth::attempt`] counted last for `key`.
    fn give_back(&self, key: &(String, IpAddr)) {
        if let Some(times) = self.failures.lock().get_mut(key) {
            times.pop_back();
        }
    }
}

/// The address a login counts against: an IPv6 client by its /64, which one host commonly
/// holds whole.
fn counted_as(from: IpAddr) -> IpAddr {
    match from {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(from, IpAddr::V4),
        v4 => v4,
    }
}

/// The session token in a request's `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether `headers` carry `caller`'s CSRF token.
pub fn csrf_ok(caller: &Caller, headers: &HeaderMap) -> bool {
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (&caller.csrf, given) {
        (Some(expected), Some(given)) => {
            expected.len() == given.len()
                && expected
                    .bytes()
                    .zip(given.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            &[User {
                name: "op".into(),
                password: Password::Plain("secret".into()),
                role: Role::Operator,
            }],
            Duration::from_secs(60),
            false,
        )
    }

    fn cookie(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            format!("other=1; {COOKIE}={id}").parse().expect("header"),
        );
        h
    }

    #[tokio::test]
    async fn login_session_csrf_and_logout() {
        let auth = auth();
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert!(auth.caller(&HeaderMap::new()).is_none());
        let (id, caller) = auth.login("op", "secret", ip).await.expect("login");
        assert_eq!(caller.role, Role::Operator);
        let seen = auth.caller(&cookie(&id)).expect("session");
        assert_eq!(seen.user, "op");
        let mut headers = cookie(&id);
        assert!(!csrf_ok(&seen, &headers));
        headers.insert(CSRF_HEADER, "wrong".parse().expect("header"));
        assert!(!csrf_ok(&seen, &headers));
        let token = seen.csrf.clone().expect("csrf");
        headers.insert(CSRF_HEADER, token.parse().expect("header"));
        assert!(csrf_ok(&seen, &headers));
        assert!(auth.caller(&cookie("0000")).is_none());
        auth.logout(&headers);
        assert!(auth.caller(&cookie(&id)).is_none());
    }

    #[tokio::test]
    async fn failures_are_limited_per_user_and_address() {
        let auth = auth();
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                auth.login("op", "guess", ip).await.err(),
                Some(LoginError::Refused)
            );
        }
        // Now even the right password waits, from this address.
        assert!(matches!(
            auth.login("op", "secret", ip).await,
            Err(LoginError::TooMany(_))
        ));
        let other = IpAddr::from([127, 0, 0, 2]);
        assert!(auth.login("op", "secret", other).await.is_ok());
        // Unknown users are refused like wrong passwords.
        assert_eq!(
            auth.login("nobody", "x", other).await.err(),
            Some(LoginError::Refused)
        );
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(counted_as(a), counted_as(b));
        assert_ne!(counted_as(a), counted_as(c));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("ip");
        assert_eq!(counted_as(mapped), IpAddr::from([10, 0, 0, 7]));
    }

    #[test]
    fn without_users_everyone_reads_and_nobody_writes() {
        let auth = Auth::new(&[], Duration::from_secs(60), false);
        let caller = auth.caller(&HeaderMap::new()).expect("anonymous");
        assert_eq!(caller.role, Role::Viewer);
        assert!(!csrf_ok(&caller, &HeaderMap::new()));
    }
}
