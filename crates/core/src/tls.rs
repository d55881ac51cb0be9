//! TLS at the door (`[tls]`): rustls with the certificate and key from PEM
//! files, HTTP/2 or HTTP/1.1 chosen by ALPN. The files are looked at every
//! few seconds; a renewed certificate (a changed file) is served to the next
//! handshake, with no restart and no dropped connection. A renewal that does
//! not load (half-written, a key that does not match) is logged and the
//! certificate in service stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A client gets this long to finish its TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate in service, swapped when its files change.
#[derive(Debug)]
struct Certificate {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What a file looked like: changed when either differs.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads the chain and key and checks that they belong together.
fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("tls.cert_file {}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert_file {}: {e}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!("tls.cert_file {}: no PEM certificate in it", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls.key_file {}: no PEM private key in it ({e})", key_file.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("tls: the key in {} does not fit the certificate: {e}", key_file.display()))?;
    Ok(certified)
}

/// The TLS side of the door: an acceptor, and the task that reloads the
/// certificate (stopped when the door is dropped).
pub(crate) struct Door {
    pub acceptor: tokio_rustls::TlsAcceptor,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Door {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl Door {
    /// The door of `[tls]` (paths already resolved against the config's folder).
    pub fn open(cert_file: PathBuf, key_file: PathBuf) -> Result<Door, String> {
        let certificate = Arc::new(Certificate { current: ArcSwap::from_pointee(load(&cert_file, &key_file)?) });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let watch = tokio::spawn(watch(certificate, cert_file, key_file));
        Ok(Door { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), watch })
    }
}

async fn watch(certificate: Arc<Certificate>, cert_file: PathBuf, key_file: PathBuf) {
    let mut seen = (stamp(&cert_file), stamp(&key_file));
    let mut failed = None;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let now = (stamp(&cert_file), stamp(&key_file));
        if now == seen || Some(now) == failed {
            continue;
        }
        match load(&cert_file, &key_file) {
            Ok(certified) => {
                certificate.current.store(Arc::new(certified));
                seen = now;
                tracing::info!(cert_file = %cert_file.display(), "TLS certificate reloaded");
            }
            // (Not marked seen: a renewal written in two steps is tried
            // again when a file changes once more.)
            Err(e) => {
                failed = Some(now);
                tracing::warn!("TLS certificate not reloaded, the one in service stays: {e}");
            }
        }
    }
}
