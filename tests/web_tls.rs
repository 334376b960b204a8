//! The web port off loopback: HTTPS with the self-signed certificate made on first start
//! (the same one after a restart), a `Secure` session cookie, and no answer in clear text.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::eventually;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uaedge::config::Config;
use uaedge::runtime::Runtime;

/// Sends `request` over TLS trusting only `cert`, and reads the whole answer.
async fn https(
    addr: std::net::SocketAddr,
    cert: &std::path::Path,
    request: &str,
) -> std::io::Result<String> {
    tokio::time::timeout(Duration::from_secs(20), https_once(addr, cert, request))
        .await
        .map_err(std::io::Error::other)?
}

async fn https_once(
    addr: std::net::SocketAddr,
    cert: &std::path::Path,
    request: &str,
) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).map_err(std::io::Error::other)? {
        roots
            .add(c.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut tls = connector.connect(name, tcp).await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (head, body) = request.split_once("\r\n\r\n").unwrap_or((request, ""));
    tls.write_all(format!("{head}\r\nConnection: close\r\n\r\n{body}").as_bytes())
        .await?;
    let mut response = Vec::new();
    // A server may close without close_notify once it answered; what arrived counts.
    let _ = tls.read_to_end(&mut response).await;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn config(port: u16, state: &std::path::Path) -> String {
    format!(
        "state_dir: {}\nusers:\n  - {{ name: ann, password: s3cret, role: operator }}\nweb:\n  listen: 0.0.0.0:{port}\ndevices:\n  - name: line1\n    driver: enip-sim\n    tags:\n      - {{ name: count, type: uint32, address: Count, options: {{ signal: counter }} }}\n",
        state.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_serves_https_only_with_a_kept_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let text = config(port, dir.path());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let cert = dir.path().join("web/cert.pem");

    let rt = Runtime::start(Config::parse("tls.yaml", &text).expect("config"));
    let body = r#"{"user":"ann","password":"s3cret"}"#;
    let login = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = eventually(Duration::from_secs(20), "an HTTPS answer", || async {
        https(addr, &cert, &login).await.ok()
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let key_mode = {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(dir.path().join("web/key.pem"))
            .expect("key")
            .permissions()
            .mode()
    };
    assert_eq!(key_mode & 0o077, 0);

    // Clear text on the same port gets no HTTP answer.
    let plain = tokio::time::timeout(
        Duration::from_secs(15),
        common::http(
            addr,
            "GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
    )
    .await
    .unwrap_or_default();
    assert!(!plain.starts_with("HTTP/"), "{plain}");
    assert!(!plain.contains("uaedge"), "{plain}");
    let first = std::fs::read(&cert).expect("cert");
    rt.shutdown().await.expect("clean shutdown");

    // A restart keeps the certificate, so a browser that trusted it still does.
    let rt = Runtime::start(Config::parse("tls.yaml", &text).expect("config"));
    let answer = eventually(Duration::from_secs(20), "an HTTPS answer again", || async {
        https(
            addr,
            &cert,
            "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await
        .ok()
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(std::fs::read(&cert).expect("cert"), first);
    rt.shutdown().await.expect("clean shutdown");
}
