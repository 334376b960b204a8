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

/// One key's link and how many devices use it.
#[derive(Default)]
struct Slot {
    link: Option<Arc<Link>>,
    devices: usize,
}

/// The process's slots. The map's lock is held only to find a slot; a slot's own lock is
/// held while its link opens, so devices of one key wait for one session and other keys
/// (another PLC that is slow to answer) are not held up.
static POOL: LazyLock<std::sync::Mutex<HashMap<Key, Arc<Mutex<Slot>>>>> =
    LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));

fn slot(key: &Key) -> Arc<Mutex<Slot>> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.entry(key.clone()).or_default().clone()
}

/// Attaches a device: the key's link, opened when there is none or it gave up.
pub(crate) async fn attach(options: &Options) -> Result<Arc<Link>, LinkError> {
    let slot = slot(&Key::of(options));
    let mut slot = slot.lock().await;
    let link = match &slot.link {
        Some(link) if !matches!(link.state(), LinkState::Dead(_)) => link.clone(),
        _ => {
            let link = Link::open(options).await?;
            slot.link = Some(link.clone());
            link
        }
    };
    slot.devices += 1;
    Ok(link)
}

/// Detaches a device; the last one closes the session within `grace`.
pub(crate) async fn detach(options: &Options, grace: Duration) {
    let key = Key::of(options);
    let slot = slot(&key);
    let closing = {
        let mut s = slot.lock().await;
        s.devices = s.devices.saturating_sub(1);
        if s.devices == 0 {
            s.link.take()
        } else {
            None
        }
    };
    if let Some(link) = closing {
        link.close(grace).await;
    }
    // Forget an empty slot, unless a device attached again meanwhile.
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = pool.get(&key) {
        if Arc::strong_count(s) <= 2
            && s.try_lock()
                .is_ok_and(|s| s.devices == 0 && s.link.is_none())
        {
            pool.remove(&key);
        }
    }
}
