//! TLS to the server, with libpq's `sslmode` semantics, over rustls (the
//! `ring` provider: no OpenSSL, no cmake).
//!
//! What each mode does (TCP only: like libpq, pgtenant never uses TLS over a
//! Unix socket, whatever the mode):
//!
//! | `PGSSLMODE`   | attempts                          | certificate checks                       |
//! |---------------|-----------------------------------|------------------------------------------|
//! | `disable`     | plain                             | -                                        |
//! | `allow`       | plain, then TLS if the server refuses the plain session | chain, if a root certificate file is there |
//! | `prefer`      | TLS if the server offers it, then plain if the handshake fails or the server refuses the TLS session | chain, if a root certificate file is there |
//! | `require`     | TLS                               | chain, if a root certificate file is there (libpq: then `require` is `verify-ca`) |
//! | `verify-ca`   | TLS                               | chain                                    |
//! | `verify-full` | TLS                               | chain and host name                      |
//!
//! The root certificates come from `PGSSLROOTCERT`, else from libpq's default
//! `~/.postgresql/root.crt` (resolved in [`crate::input::conninfo`]); with
//! `PGSSLROOTCERT=system`, from the system's bundle (`SSL_CERT_FILE`, else
//! the usual distribution paths). A file named by `PGSSLROOTCERT` must exist
//! (libpq would silently skip a missing one outside the `verify-*` modes);
//! the default file is optional except for `verify-ca` and `verify-full`.
//! Certificate revocation lists and client certificates are not supported.
//!
//! tokio-postgres has no `allow` and falls back neither way on its own, so
//! the attempts are made here, one connection each, as libpq makes them: a
//! fallback happens only after a failed TLS handshake or an error the server
//! sent during the startup (for `prefer`, only when that session was
//! encrypted), never after a refused or timed-out TCP connection.
//!
//! The session uses SCRAM channel binding (`tls-server-end-point`) whenever
//! the server offers it, so even `require` without a root certificate defeats
//! a man in the middle for SCRAM logins: it cannot complete the exchange.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as TpSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, Config, Socket};
use tracing::warn;

use crate::input::conninfo::{ConnSettings, Host, SslMode};
pub use crate::server::error::TlsError;
use crate::server::error::{self as dberror, tls_error};

/// A connection's background task, as [`connect`] returns it.
pub type Connection = tokio_postgres::Connection<Socket, PgTlsStream>;

/// Connects with `config` (built from `settings` by
/// [`ConnSettings::pg_config`], perhaps adjusted) using the TLS mode and the
/// fallbacks of `settings.sslmode`; see the module documentation.
pub async fn connect(
    settings: &ConnSettings,
    mut config: Config,
) -> Result<(Client, Connection), tokio_postgres::Error> {
    let tls = MakeTls::new(settings);
    let attempts: &[TpSslMode] = match (&settings.host, settings.sslmode) {
        (Host::Socket(_), _) | (_, SslMode::Disable) => &[TpSslMode::Disable],
        (_, SslMode::Allow) => &[TpSslMode::Disable, TpSslMode::Require],
        (_, SslMode::Prefer) => &[TpSslMode::Prefer, TpSslMode::Disable],
        (_, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull) => &[TpSslMode::Require],
    };
    let mut first_error: Option<tokio_postgres::Error> = None;
    for (i, &mode) in attempts.iter().enumerate() {
        tls.handshake_started.store(false, Ordering::Relaxed);
        config.ssl_mode(mode);
        let error = match config.connect(tls.clone()).await {
            Ok(pair) => return Ok(pair),
            Err(e) => e,
        };
        let was_tls = tls.handshake_started.load(Ordering::Relaxed);
        if let Some(first) = first_error.take() {
            // The fallback failed as well. Its error is the one to report
            // when the server refused it or its handshake failed; a plain
            // I/O failure (the server went away) says less than the first.
            return Err(
                if error.as_db_error().is_some() || is_handshake_error(&error) {
                    error
                } else {
                    first
                },
            );
        }
        let refused_or_handshake = error.as_db_error().is_some() || is_handshake_error(&error);
        let fall_back = i + 1 < attempts.len()
            && refused_or_handshake
            && match settings.sslmode {
                // Only a session that was encrypted is retried in the clear.
                SslMode::Prefer => was_tls,
                _ => true,
            };
        if !fall_back {
            return Err(error);
        }
        let (what, next) = if was_tls {
            ("over tls", "without tls")
        } else {
            ("without tls", "over tls")
        };
        warn!(
            sslmode = %settings.sslmode,
            "connecting to {} {what} failed ({}); retrying {next}, as PGSSLMODE={} allows",
            settings.endpoint(),
            dberror::describe(&error),
            settings.sslmode
        );
        first_error = Some(error);
    }
    unreachable!("every mode makes at least one attempt")
}

fn is_handshake_error(e: &tokio_postgres::Error) -> bool {
    matches!(tls_error(e), Some(TlsError::Handshake(_)))
}

/// Where the trusted roots come from, for messages.
#[derive(Debug, Clone)]
enum RootSource {
    File(PathBuf),
    System(PathBuf),
}

impl fmt::Display for RootSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSource::File(p) => write!(f, "root certificate file {}", p.display()),
            RootSource::System(p) => write!(f, "system root certificates ({})", p.display()),
        }
    }
}

/// The verification policy for one run, decided once per [`connect`].
#[derive(Debug)]
struct Policy {
    /// `None`: the certificate is not checked at all.
    roots: Option<(Arc<RootCertStore>, RootSource)>,
    check_name: bool,
}

/// The bundles OpenSSL-based libpq finds through its default paths, in the
/// order distributions place them.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn policy(settings: &ConnSettings) -> Result<Policy, TlsError> {
    let verify = matches!(settings.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    let check_name = settings.sslmode == SslMode::VerifyFull;
    let roots = match settings.sslrootcert.as_deref() {
        Some(p) if p == Path::new("system") => {
            let path = match &settings.ssl_cert_file {
                Some(f) => f.clone(),
                None => SYSTEM_BUNDLES
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.is_file())
                    .ok_or_else(|| {
                        TlsError::Setup(format!(
                            "PGSSLROOTCERT=system but no system root certificates were found \
                             (looked at SSL_CERT_FILE and {})",
                            SYSTEM_BUNDLES.join(", ")
                        ))
                    })?,
            };
            let store = load_roots(&path, true)?;
            Some((store, RootSource::System(path)))
        }
        Some(path) => {
            let exists = path.exists();
            if !exists && (settings.sslrootcert_explicit || verify) {
                return Err(TlsError::Setup(missing_root(path, settings)));
            }
            if exists {
                Some((load_roots(path, false)?, RootSource::File(path.to_owned())))
            } else {
                None
            }
        }
        None if verify => {
            return Err(TlsError::Setup(format!(
                "PGSSLMODE={} needs root certificates: set PGSSLROOTCERT (a file, or \
                 \"system\"), or HOME for the default ~/.postgresql/root.crt",
                settings.sslmode
            )))
        }
        None => None,
    };
    Ok(Policy {
        roots,
        check_name: check_name && verify,
    })
}

fn missing_root(path: &Path, settings: &ConnSettings) -> String {
    if settings.sslrootcert_explicit {
        format!(
            "root certificate file {} (PGSSLROOTCERT) does not exist",
            path.display()
        )
    } else {
        format!(
            "root certificate file {} does not exist; PGSSLMODE={} verifies the server's \
             certificate: provide the file, set PGSSLROOTCERT (a file, or \"system\"), or use \
             PGSSLMODE=require",
            path.display(),
            settings.sslmode
        )
    }
}

/// Every certificate of a PEM file. A bundle from the system may hold
/// certificates rustls cannot use; those are skipped, while a file given for
/// this server must be entirely usable.
fn load_roots(path: &Path, lenient: bool) -> Result<Arc<RootCertStore>, TlsError> {
    let what = || format!("root certificate file {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| {
        TlsError::Setup(format!(
            "failed to read {}: {}",
            what(),
            crate::input::secret_file::describe_io(&e)
        ))
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Setup(format!("{} is not valid PEM: {e}", what())))?;
    let mut store = RootCertStore::empty();
    if lenient {
        store.add_parsable_certificates(certs);
    } else {
        for cert in certs {
            store.add(cert).map_err(|e| {
                TlsError::Setup(format!("{} holds an unusable certificate: {e}", what()))
            })?;
        }
    }
    if store.is_empty() {
        return Err(TlsError::Setup(format!("{} holds no certificates", what())));
    }
    Ok(Arc::new(store))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration, and where its roots came from (for messages).
type Prepared = (Arc<ClientConfig>, Option<RootSource>);

fn client_config(policy: Policy) -> Result<Prepared, TlsError> {
    let provider = provider();
    let (roots, source) = match policy.roots {
        Some((roots, source)) => (Some(roots), Some(source)),
        None => (None, None),
    };
    let verifier = Arc::new(Verifier {
        roots,
        check_name: policy.check_name,
        provider: provider.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(format!("tls setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // What libpq 17 sends; servers before 17 ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok((Arc::new(config), source))
}

/// One verifier for the three levels: none, chain (`verify-ca`, and
/// `require` with a root certificate), chain and name (`verify-full`).
/// Handshake signatures are always checked, so the peer holds the key of the
/// certificate it presents (which channel binding relies on).
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.check_name {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// tokio-postgres' TLS factory. The policy (root certificates) is settled
/// when the first handshake needs it, so a mode or a server that never gets
/// to TLS never reads the root certificate file.
#[derive(Clone)]
pub struct MakeTls {
    policy: Arc<std::sync::OnceLock<Result<Prepared, TlsError>>>,
    settings: Arc<ConnSettings>,
    /// Set when a handshake begins: the server agreed to TLS.
    handshake_started: Arc<AtomicBool>,
}

impl MakeTls {
    fn new(settings: &ConnSettings) -> Self {
        MakeTls {
            policy: Arc::default(),
            settings: Arc::new(settings.clone()),
            handshake_started: Arc::default(),
        }
    }

    fn config(&self) -> Result<Prepared, TlsError> {
        self.policy
            .get_or_init(|| policy(&self.settings).and_then(client_config))
            .clone()
    }
}

impl MakeTlsConnect<Socket> for MakeTls {
    type Stream = PgTlsStream;
    type TlsConnect = Connector;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connector, TlsError> {
        Ok(Connector {
            make: self.clone(),
            domain: domain.to_owned(),
        })
    }
}

/// One handshake with one server.
pub struct Connector {
    make: MakeTls,
    domain: String,
}

impl TlsConnect<Socket> for Connector {
    type Stream = PgTlsStream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<PgTlsStream, TlsError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            self.make.handshake_started.store(true, Ordering::Relaxed);
            let (config, source) = self.make.config()?;
            let name = ServerName::try_from(self.domain.clone()).map_err(|_| {
                TlsError::Setup(format!(
                    "{:?} is not a valid host name for tls",
                    self.domain
                ))
            })?;
            let connector = tokio_rustls::TlsConnector::from(config);
            match connector.connect(name, stream).await {
                Ok(s) => Ok(PgTlsStream(s)),
                Err(e) => Err(TlsError::Handshake(describe_handshake(&e, source.as_ref()))),
            }
        })
    }
}

/// "certificate verify failed: ..." for a rejected certificate, "tls
/// handshake failed: ..." for anything else.
fn describe_handshake(e: &io::Error, source: Option<&RootSource>) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!(
            "tls handshake failed: {}",
            crate::input::secret_file::describe_io(e)
        );
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => {
            let why = match c {
                CertificateError::UnknownIssuer => match source {
                    Some(s) => format!("the server's certificate is not signed by a certificate authority of the {s}"),
                    None => "unknown issuer".to_owned(),
                },
                CertificateError::BadSignature => "bad signature".to_owned(),
                CertificateError::NotValidForName => "certificate is not valid for this host name".to_owned(),
                other => other.to_string(),
            };
            format!("certificate verify failed: {why}")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("tls handshake failed: the server sent the alert {alert:?}")
        }
        other => format!("tls handshake failed: {other}"),
    }
}

/// An encrypted session: tokio-rustls' stream, with channel binding.
pub struct PgTlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for PgTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl TlsStream for PgTlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| tls_server_end_point(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

/// RFC 5929 `tls-server-end-point`: the server certificate's hash, with the
/// hash of its signature algorithm (SHA-256 for MD5 and SHA-1). `None` for
/// algorithms without one (Ed25519, RSA-PSS), as the server does.
fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    const SHA256: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04], // md5WithRSA
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05], // sha1WithRSA
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b], // sha256WithRSA
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],             // ecdsa-with-SHA1
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],       // ecdsa-with-SHA256
    ];
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    let oid = signature_algorithm_oid(cert)?;
    if SHA256.contains(&oid) {
        Some(sha2::Sha256::digest(cert).to_vec())
    } else if SHA384.contains(&oid) {
        Some(sha2::Sha384::digest(cert).to_vec())
    } else if SHA512.contains(&oid) {
        Some(sha2::Sha512::digest(cert).to_vec())
    } else {
        None
    }
}

/// The OID of `Certificate.signatureAlgorithm`:
/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, ... }, ... }`.
fn signature_algorithm_oid(cert: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = der(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, rest) = der(certificate)?; // tbsCertificate
    let (tag, algorithm, _) = der(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element: (tag, contents, what follows).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_reads_short_and_long_lengths() {
        assert_eq!(
            der(&[0x06, 0x01, 0x2a, 0xff]),
            Some((0x06, &[0x2a][..], &[0xff][..]))
        );
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0u8, 256));
        let (tag, body, rest) = der(&long).unwrap();
        assert_eq!((tag, body.len(), rest.len()), (0x30, 256, 0));
        assert_eq!(der(&[0x30, 0x05, 0x00]), None);
        assert_eq!(der(&[0x30, 0x80]), None);
    }

    #[test]
    fn channel_binding_hash_follows_the_signature_algorithm() {
        // SEQUENCE { SEQUENCE {} , SEQUENCE { OID ecdsa-with-SHA384 } }
        let cert = [
            0x30, 0x0e, 0x30, 0x00, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04,
            0x03, 0x03,
        ];
        assert_eq!(tls_server_end_point(&cert).map(|h| h.len()), Some(48));
        // Ed25519 (1.3.101.112): no channel binding.
        let ed = [
            0x30, 0x09, 0x30, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
        ];
        assert_eq!(tls_server_end_point(&ed), None);
        assert_eq!(tls_server_end_point(b"garbage"), None);
    }
}
