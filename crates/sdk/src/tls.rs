//! TLS for clients of nodes whose RPC port speaks TLS (`rpc.tls`): which server certificates
//! to trust, and optionally a client certificate to present — one that an organisation
//! registered on chain (`trellis org token issue --client-cert`) reads in place of a token.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("the TLS client configuration is refused: {0}")]
    Config(#[from] rustls::Error),
}

/// Where a client's TLS settings come from (PEM files).
#[derive(Clone, Debug, Default)]
pub struct TlsFiles<'a> {
    /// Certificates (CAs, or the node's own) to trust instead of the system's roots.
    pub ca_cert: Option<&'a Path>,
    /// A client certificate chain to present, with its key.
    pub client_cert: Option<(&'a Path, &'a Path)>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The hash under which a client certificate (the first certificate of a PEM file) is
/// registered on chain (`trellis_system::governance::client_certificate_hash`).
pub fn certificate_hash(path: &Path) -> Result<alloy_primitives::B256, TlsError> {
    let certs = certificates(path)?;
    Ok(trellis_system::governance::client_certificate_hash(
        certs[0].as_ref(),
    ))
}

/// A rustls client configuration: trusting `files.ca_cert` if given, else the system's root
/// certificates, and presenting `files.client_cert` if given.
pub fn client_config(files: &TlsFiles<'_>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match files.ca_cert {
        Some(path) => {
            for cert in certificates(path)? {
                roots.add(cert)?;
            }
        }
        None => {
            // Certificates the system store holds but rustls cannot use are skipped.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match files.client_cert {
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| TlsError::Pem {
                path: key.display().to_string(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_and_refused_with_their_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["reader".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");

        assert_eq!(
            certificate_hash(&cert_path).expect("hash"),
            alloy_primitives::keccak256(cert.der())
        );
        client_config(&TlsFiles {
            ca_cert: Some(&cert_path),
            client_cert: Some((&cert_path, &key_path)),
        })
        .expect("a configuration");

        let missing = dir.path().join("missing.pem");
        let err = certificate_hash(&missing).expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = client_config(&TlsFiles {
            ca_cert: Some(&key_path),
            client_cert: None,
        })
        .expect_err("a key is no certificate");
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    }
}
