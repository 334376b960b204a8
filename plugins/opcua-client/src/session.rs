//! Building an async-opcua client and session for a device's options, and mapping
//! async-opcua's status codes to link errors.

use std::sync::Mutex;
use std::time::Duration;

use opcua::client::{Client, ClientBuilder, ClientEndpoint, IdentityToken};
use opcua::crypto::SecurityPolicy as Policy;
use opcua::types::{EndpointDescription, MessageSecurityMode, StatusCode, UserTokenPolicy};
use uaedge_driver::LinkError;

use crate::options::{Options, SecurityMode, SecurityPolicy};

/// Decoding limits, sized for a 100,000-tag device: a response to a Read or to a
/// CreateMonitoredItems of a whole batch, and a Publish of up to
/// [`NOTIFICATIONS_PER_PUBLISH`] data changes, fit with room to spare.
pub(crate) const MAX_MESSAGE_SIZE: usize = 64 << 20;
pub(crate) const MAX_ARRAY_LENGTH: usize = 200_000;
const MAX_STRING_LENGTH: usize = 1 << 20;
/// The most data changes one Publish response may carry (the server may send fewer):
/// about 40 bytes each, 10,000 make 400 KB.
pub(crate) const NOTIFICATIONS_PER_PUBLISH: u32 = 10_000;
/// The most items one Read or CreateMonitoredItems carries, whatever the server allows.
pub(crate) const MAX_BATCH: usize = 50_000;

/// Making a client creates its self-signed certificate on first use; two at once in one
/// PKI folder would collide.
static CLIENT_SETUP: Mutex<()> = Mutex::new(());

/// Builds the client of one session: certificates and trust are settled here. async-opcua
/// reconnects a broken session itself (reactivating it, so its subscriptions live on) for as
/// long as the session can outlive its connection on the server; subscriptions are ours to
/// move (link.rs).
pub(crate) fn client(options: &Options) -> Result<Client, LinkError> {
    let session_timeout = options.session_timeout.get();
    // A TCP connect every 2 s at most to a server that is away: cheap for it, and the
    // session is back within 2 s of the server.
    let retry_max = Duration::from_secs(2).min(session_timeout);
    let mut builder = ClientBuilder::new()
        .application_name("uaedge")
        .application_uri("urn:uaedge:opcua-client")
        .product_uri("urn:uaedge")
        .pki_dir(options.pki_dir.clone())
        .create_sample_keypair(options.client_certificate.is_none())
        .trust_server_certs(options.trust_server_certificate)
        .session_retry_initial(Duration::from_millis(250))
        .session_retry_max(retry_max)
        .session_retry_limit(retries_within(session_timeout, retry_max))
        .session_timeout(millis_u32(session_timeout))
        .request_timeout(options.request_timeout.get())
        .keep_alive_interval(options.keep_alive_interval.get())
        .max_failed_keep_alive_count(2)
        .recreate_subscriptions(false)
        .max_message_size(MAX_MESSAGE_SIZE)
        .max_chunk_count(MAX_MESSAGE_SIZE / 8192 + 1)
        .max_array_length(MAX_ARRAY_LENGTH)
        .max_string_length(MAX_STRING_LENGTH)
        .max_byte_string_length(MAX_STRING_LENGTH)
        .session_name("uaedge");
    // The session is opened with `endpoint()`; named here too, so that async-opcua's check
    // of its config finds an endpoint (it warns on every start otherwise).
    let (policy, mode) = security(options);
    let mut named = ClientEndpoint::new(options.endpoint.clone());
    named.security_policy = policy.to_str().into();
    named.security_mode = mode.into();
    builder = builder.endpoint("device", named).default_endpoint("device");
    if let (Some(cert), Some(key)) = (&options.client_certificate, &options.client_key) {
        builder = builder
            .certificate_path(absolute(cert))
            .private_key_path(absolute(key));
    }
    let _one_at_a_time = CLIENT_SETUP.lock().unwrap_or_else(|e| e.into_inner());
    builder
        .client()
        .map_err(|e| LinkError::not_connected(format!("client setup: {}", e.join("; "))))
}

/// Reconnect attempts (backing off from 250 ms to `max`) that fit in `window`: after that
/// the server has dropped the session anyway.
fn retries_within(window: Duration, max: Duration) -> i32 {
    let (mut spent, mut delay, mut n) = (Duration::ZERO, Duration::from_millis(250), 0);
    while spent < window && n < 1000 {
        spent += delay;
        delay = (delay * 2).min(max);
        n += 1;
    }
    n.max(1)
}

fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

pub(crate) fn identity(options: &Options) -> Result<IdentityToken, LinkError> {
    let Some(user) = &options.username else {
        return Ok(IdentityToken::Anonymous);
    };
    let password = match (&options.password, &options.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| {
                LinkError::not_connected(format!(
                    "cannot read password_file {}: {e}",
                    file.display()
                ))
            })?,
        (None, None) => String::new(),
    };
    Ok(IdentityToken::new_user_name(user.clone(), password))
}

fn security(options: &Options) -> (Policy, MessageSecurityMode) {
    let policy = match options.security_policy {
        SecurityPolicy::None => Policy::None,
        SecurityPolicy::Basic256Sha256 => Policy::Basic256Sha256,
        SecurityPolicy::Aes128Sha256RsaOaep => Policy::Aes128Sha256RsaOaep,
        SecurityPolicy::Aes256Sha256RsaPss => Policy::Aes256Sha256RsaPss,
    };
    let mode = match options.security_mode {
        SecurityMode::None => MessageSecurityMode::None,
        SecurityMode::Sign => MessageSecurityMode::Sign,
        SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    };
    (policy, mode)
}

pub(crate) fn endpoint(options: &Options) -> EndpointDescription {
    let (policy, mode) = security(options);
    (
        options.endpoint.as_str(),
        policy.to_str(),
        mode,
        UserTokenPolicy::anonymous(),
    )
        .into()
}

/// A failed service call or session to a link error of the right kind.
pub(crate) fn link_error(status: StatusCode, message: &str) -> LinkError {
    use opcua::types::SubStatusCode as S;
    match status.sub_code() {
        S::BadTimeout | S::BadRequestTimeout => LinkError::timeout(message),
        S::BadConnectionRejected
        | S::BadConnectionClosed
        | S::BadNotConnected
        | S::BadServerHalted
        | S::BadSecureChannelClosed
        | S::BadCommunicationError
        | S::BadServerNotConnected
        | S::BadTcpEndpointUrlInvalid => LinkError::not_connected(message),
        _ => LinkError::protocol(message),
    }
}
