//! Devices that reach one server the same way share one session: a line of ten devices on
//! one PLC costs the PLC one session (of the 4 to 10 it typically allows), not ten. Each
//! device keeps a subscription of its own on it.
//!
//! The pool is the process's: it maps a [`Key`], everything that makes a session what it
//! is, to the link serving it and the number of devices attached. The last device to leave
//! closes the session.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::Mutex;
use uaedge_driver::LinkError;

use crate::link::{Link, LinkState};
use crate::options::{Options, SecurityMode, SecurityPolicy};

/// What makes two devices' sessions the same session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    endpoint: String,
    security_policy: SecurityPolicy,
    security_mode: SecurityMode,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    pki_dir: PathBuf,
    trust_server_certificate: bool,
    session_timeout: Duration,
    request_timeout: Duration,
    keep_alive_interval: Duration,
}

impl Key {
    pub fn of(o: &Options) -> Key {
        Key {
            endpoint: o.endpoint.clone(),
            security_policy: o.security_policy,
            security_mode: o.security_mode,
            username: o.username.clone(),
            password: o.password.clone(),
            password_file: o.password_file.clone(),
            client_certificate: o.client_certificate.clone(),
            client_key: o.client_key.clone(),
            pki_dir: o.pki_dir.clone(),
            trust_server_certificate: o.trust_server_certificate,
            session_timeout: o.session_timeout.get(),
            request_timeout: o.request_timeout.get(),
            keep_alive_interval: o.keep_alive_interval.get(),
        }
    }
}

struct Entry {
    link: Arc<Link>,
    devices: usize,
}

static POOL: LazyLock<Mutex<HashMap<Key, Entry>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Attaches a device: the key's link, opened when there is none or it gave up.
pub(crate) async fn attach(options: &Options) -> Result<Arc<Link>, LinkError> {
    let key = Key::of(options);
    // Held while a link opens, so devices of one key wait for one session.
    let mut pool = POOL.lock().await;
    if let Some(entry) = pool.get_mut(&key) {
        if !matches!(entry.link.state(), LinkState::Dead(_)) {
            entry.devices += 1;
            return Ok(entry.link.clone());
        }
    }
    let link = Link::open(options).await?;
    let entry = pool.entry(key).or_insert(Entry {
        link: link.clone(),
        devices: 0,
    });
    entry.link = link.clone();
    entry.devices += 1;
    Ok(link)
}

/// Detaches a device; the last one closes the session within `grace`.
pub(crate) async fn detach(options: &Options, grace: Duration) {
    let key = Key::of(options);
    let closing = {
        let mut pool = POOL.lock().await;
        match pool.get_mut(&key) {
            Some(entry) if entry.devices > 1 => {
                entry.devices -= 1;
                None
            }
            Some(_) => pool.remove(&key).map(|e| e.link),
            None => None,
        }
    };
    if let Some(link) = closing {
        link.close(grace).await;
    }
}
