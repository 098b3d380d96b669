//! TLS on the RPC port, and client certificates as credentials.
//!
//! With `[rpc.tls]` the port speaks only HTTPS (and WSS), with the node's certificate chain
//! and key (PEM). A client may present a certificate of its own: the handshake accepts any
//! well-formed certificate within its validity period whose key the client proves it holds,
//! and the connection's requests then carry [`ClientCertificate`], the certificate's hash.
//! What the certificate is worth is decided on chain, not here: an organisation's admin
//! registers it (`trellis org token issue --cert`), which records that hash
//! ([`trellis_system::governance::client_certificate_hash`]) in the read-token registry, so a
//! certificate is a credential exactly like a read token — one organisation, a label, an
//! optional expiry, revocable, in the audit log — and needs no CA shared with the node. The
//! access gate ([`crate::access`]) uses it when a request sends no `Authorization` header.
//!
//! Client certificates are asked for but never required: token callers, public resolution
//! paths and `/health` work over the same port.

use alloy_primitives::B256;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Rate units a TLS handshake costs its client (`rpc.calls_per_second`): it costs the server
/// a signature, about ten cheap calls.
pub const HANDSHAKE_COST: u32 = 10;

/// Longest a client may take to complete the handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The hash of the certificate a connection's client presented, in each request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientCertificate(pub B256);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("the TLS configuration is refused: {0}")]
    Config(#[from] rustls::Error),
}

fn pem_error(what: &'static str) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError {
    move |e| TlsError::Pem {
        what,
        reason: e.to_string(),
    }
}

/// The certificates of a PEM file's `CERTIFICATE` blocks, in order.
fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error("certificate PEM"))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate PEM",
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The server side of the RPC port's TLS.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Loads the node's certificate chain and private key (PEM files).
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        ServerTls::from_pem(&read(cert)?, &read(key)?)
    }

    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<ServerTls, TlsError> {
        let chain = certificates_from_pem(cert_chain)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(pem_error("private key PEM"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(AnyClientCertificate {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // No resumption: a resumed session restores the client certificate without checking
        // it again, so an expired one would keep reading for the ticket's lifetime.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Completes the handshake on an accepted connection (within [`HANDSHAKE_TIMEOUT`]): the
    /// stream, and the hash of the client's certificate if it presented one.
    pub async fn accept(
        &self,
        socket: TcpStream,
    ) -> std::io::Result<(TlsStream<TcpStream>, Option<ClientCertificate>)> {
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(socket))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
        let certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|cert| {
                ClientCertificate(trellis_system::governance::client_certificate_hash(
                    cert.as_ref(),
                ))
            });
        Ok((stream, certificate))
    }
}

/// Accepts any client certificate that parses and is within its validity period, once the
/// client has proven it holds the key; which organisation (if any) it stands for is looked
/// up on chain by its hash.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let validity = cert.validity();
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < validity.not_before.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet,
            ));
        }
        if now > validity.not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn self_signed(name: &str, valid: std::ops::Range<time::OffsetDateTime>) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.not_before = valid.start;
        params.not_after = valid.end;
        let cert = params.self_signed(&key).expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    fn now_range() -> std::ops::Range<time::OffsetDateTime> {
        let now = time::OffsetDateTime::now_utc();
        now - time::Duration::days(1)..now + time::Duration::days(1)
    }

    /// Which server certificate the test client trusts: the one it was given.
    #[derive(Debug)]
    struct Pinned(CertificateDer<'static>, WebPkiSupportedAlgorithms);

    impl rustls::client::danger::ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            if end_entity.as_ref() == self.0.as_ref() {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ))
            }
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.1)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.1)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.1.supported_schemes()
        }
    }

    /// Handshakes a client (with `client`'s certificate and key, if any) against `server`
    /// over loopback and exchanges a line: the certificate hash the server saw, or the
    /// server's handshake error.
    async fn handshake(
        server: &ServerTls,
        server_cert: &str,
        client: Option<&(String, String)>,
    ) -> Result<Option<ClientCertificate>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pinned = Arc::new(Pinned(
            certificates_from_pem(server_cert.as_bytes()).expect("pem")[0].clone(),
            provider.signature_verification_algorithms,
        ));
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(pinned);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    certificates_from_pem(cert.as_bytes()).expect("pem"),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
                )
                .expect("client auth"),
            None => builder.with_no_client_auth(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let client_side = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let name = rustls::pki_types::ServerName::try_from("node.test").expect("name");
            let mut tls = connector.connect(name, tcp).await.ok()?;
            tls.write_all(b"ping\n").await.ok()?;
            let mut reply = [0u8; 5];
            tls.read_exact(&mut reply).await.ok()?;
            Some(reply)
        });
        let (socket, _) = listener.accept().await.expect("accept");
        let (mut stream, certificate) = server.accept(socket).await.map_err(|e| e.to_string())?;
        let mut line = [0u8; 5];
        stream
            .read_exact(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"pong\n")
            .await
            .map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        assert_eq!(client_side.await.expect("client"), Some(*b"pong\n"));
        Ok(certificate)
    }

    #[tokio::test]
    async fn a_client_certificate_is_optional_and_reported_by_its_hash() {
        let (cert, key) = self_signed("node.test", now_range());
        let server = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).expect("server");

        assert_eq!(handshake(&server, &cert, None).await, Ok(None));

        let client = self_signed("org1 reader", now_range());
        let der = certificates_from_pem(client.0.as_bytes()).expect("pem");
        let expected = trellis_system::governance::client_certificate_hash(der[0].as_ref());
        assert_eq!(
            handshake(&server, &cert, Some(&client)).await,
            Ok(Some(ClientCertificate(expected)))
        );
    }

    #[tokio::test]
    async fn expired_or_not_yet_valid_client_certificates_are_refused() {
        let (cert, key) = self_signed("node.test", now_range());
        let server = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).expect("server");
        let now = time::OffsetDateTime::now_utc();
        let expired = self_signed(
            "old",
            now - time::Duration::days(10)..now - time::Duration::days(1),
        );
        let early = self_signed(
            "early",
            now + time::Duration::days(1)..now + time::Duration::days(10),
        );
        for client in [expired, early] {
            let refused = handshake(&server, &cert, Some(&client)).await;
            assert!(refused.is_err(), "{refused:?}");
        }
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        let (cert, key) = self_signed("node.test", now_range());
        let no_cert = ServerTls::from_pem(b"not pem", key.as_bytes()).expect_err("no certificate");
        assert!(
            no_cert.to_string().contains("no CERTIFICATE block"),
            "{no_cert}"
        );
        let no_key = ServerTls::from_pem(cert.as_bytes(), b"").expect_err("no key");
        assert!(no_key.to_string().contains("private key PEM"), "{no_key}");
        let missing = ServerTls::load(Path::new("/nonexistent/node.crt"), Path::new("k"))
            .expect_err("missing file");
        assert!(
            missing.to_string().contains("/nonexistent/node.crt"),
            "{missing}"
        );
    }
}
