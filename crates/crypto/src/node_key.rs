//! Ed25519 node keys: they sign consensus votes and identify the node on the p2p network.

use malachitebft_signing_ed25519::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub type NodePublicKey = PublicKey;

/// A node's Ed25519 key, stored as JSON `{"secret": "<hex>"}` with 0600 permissions.
#[derive(Clone, Debug)]
pub struct NodeKey(PrivateKey);

#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    #[error("cannot access key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed key file {path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    secret: String,
}

impl NodeKey {
    pub fn generate() -> NodeKey {
        NodeKey(PrivateKey::generate(rand::rngs::OsRng))
    }

    pub fn from_secret(bytes: [u8; 32]) -> NodeKey {
        NodeKey(PrivateKey::from(bytes))
    }

    pub fn private(&self) -> &PrivateKey {
        &self.0
    }

    pub fn public(&self) -> PublicKey {
        self.0.public_key()
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.inner().to_bytes()
    }

    pub fn save(&self, path: &Path) -> Result<(), NodeKeyError> {
        let io = |source| NodeKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = KeyFile {
            secret: hex::encode(self.secret_bytes()),
        };
        let json = serde_json::to_string_pretty(&file).expect("key file serialises");
        std::fs::write(path, json).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<NodeKey, NodeKeyError> {
        let malformed = |reason: String| NodeKeyError::Malformed {
            path: path.display().to_string(),
            reason,
        };
        let json = std::fs::read_to_string(path).map_err(|source| NodeKeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&json).map_err(|e| malformed(e.to_string()))?;
        let bytes = hex::decode(file.secret.trim_start_matches("0x"))
            .map_err(|e| malformed(e.to_string()))?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| malformed("secret must be 32 bytes".into()))?;
        Ok(NodeKey::from_secret(secret))
    }
}

/// Parses an Ed25519 public key without panicking on invalid points.
pub fn parse_public_key(bytes: [u8; 32]) -> Result<PublicKey, NodeKeyError> {
    ed25519_consensus::VerificationKey::try_from(bytes)
        .map(PublicKey::new)
        .map_err(|_| NodeKeyError::InvalidPublicKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node_key.json");
        let key = NodeKey::generate();
        key.save(&path).expect("save");
        let loaded = NodeKey::load(&path).expect("load");
        assert_eq!(loaded.public(), key.public());
    }

    #[test]
    fn malformed_key_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.json");
        std::fs::write(&path, r#"{"secret": "abcd"}"#).expect("write");
        assert!(matches!(
            NodeKey::load(&path),
            Err(NodeKeyError::Malformed { .. })
        ));
    }
}
