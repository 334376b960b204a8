//! HTTPS for the web port: the user's certificate, or a self-signed one made on the first
//! start and kept under the state directory (`<state_dir>/web/cert.pem` and `key.pem`,
//! the key readable by the service only), so that browsers see the same certificate
//! across restarts and an engineer can trust it once.
//!
//! rustls with the aws-lc-rs provider named explicitly (the process may hold more than one
//! provider), and ALPN `http/1.1` only: the server speaks HTTP/1 (see [`super::serve`]).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::info;

use crate::config::web::Tls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("certificate and key do not fit together or are not usable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server's TLS settings for `tls` (`None` for plain HTTP), making the self-signed
/// certificate first when it is missing.
pub fn server_config(
    tls: &Tls,
    listen: SocketAddr,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    match tls {
        Tls::Off => Ok(None),
        Tls::Files(files) => load(&files.cert_file, &files.key_file).map(Some),
        Tls::SelfSigned(dir) => {
            let (cert, key) = self_signed(dir, listen)?;
            match load(&cert, &key) {
                Ok(config) => Ok(Some(config)),
                // A pair of our own that does not load (damaged, or from different runs)
                // is made again: nobody but uaedge has a stake in it.
                Err(e) => {
                    tracing::warn!(error = %e, dir = %dir.display(), "self-signed certificate unusable; making a new one");
                    let _ = std::fs::remove_file(&cert);
                    let _ = std::fs::remove_file(&key);
                    let (cert, key) = self_signed(dir, listen)?;
                    load(&cert, &key).map(Some)
                }
            }
        }
    }
}

fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |path: &Path, source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read(key, e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The self-signed certificate and key under `dir`, made when either is missing. It names
/// localhost, the loopback addresses, this host's name and the listen address.
fn self_signed(dir: &Path, listen: SocketAddr) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = rustix::system::uname().nodename().to_str() {
        names.push(host.to_string());
    }
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.sort();
    names.dedup();
    let made = rcgen::generate_simple_self_signed(names.clone())?;
    // Both written aside first, then renamed: a crash leaves no pair, the old one, or a
    // mixed one that `server_config` finds unusable and makes again.
    let part = |path: PathBuf, text: &str, mode: u32| {
        use std::os::unix::fs::OpenOptionsExt as _;
        let fail = |source| TlsError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let aside = path.with_extension("part");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&aside)
            .map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        Ok::<_, TlsError>((aside, path))
    };
    let written = [
        part(key.clone(), &made.signing_key.serialize_pem(), 0o600)?,
        part(cert.clone(), &made.cert.pem(), 0o644)?,
    ];
    for (aside, path) in written {
        std::fs::rename(&aside, &path).map_err(|source| TlsError::Write { path, source })?;
    }
    info!(cert = %cert.display(), names = ?names, "made a self-signed certificate for the web port");
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let web = dir.path().join("web");
        let listen = SocketAddr::from(([127, 0, 0, 1], 8443));
        let tls = Tls::SelfSigned(web.clone());
        assert!(server_config(&tls, listen).expect("config").is_some());
        let first = std::fs::read(web.join("cert.pem")).expect("cert");
        assert!(server_config(&tls, listen).expect("config").is_some());
        assert_eq!(std::fs::read(web.join("cert.pem")).expect("cert"), first);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(web.join("key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is the service's alone");
    }

    #[test]
    fn a_mismatched_pair_of_our_own_is_made_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let web = dir.path().join("web");
        let listen = SocketAddr::from(([127, 0, 0, 1], 8443));
        let tls = Tls::SelfSigned(web.clone());
        assert!(server_config(&tls, listen).expect("config").is_some());
        let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).expect("cert");
        std::fs::write(web.join("key.pem"), other.signing_key.serialize_pem()).expect("write");
        assert!(server_config(&tls, listen).expect("config").is_some());
    }

    #[test]
    fn a_file_without_a_certificate_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not pem").expect("write");
        let files = crate::config::web::TlsFiles {
            cert_file: cert.clone(),
            key_file: cert.clone(),
        };
        let err = server_config(&Tls::Files(files), SocketAddr::from(([127, 0, 0, 1], 1)))
            .expect_err("no certificate");
        assert!(err.to_string().contains("c.pem"), "{err}");
    }
}
