//! Account keys in Ethereum keystore files (v3 JSON, scrypt and AES-128-CTR, as geth, Foundry
//! and web3 libraries write them), through the `eth-keystore` crate: the one decryption the
//! CLI and the node's courier share.

use std::path::{Path, PathBuf};

use crate::AccountKey;

/// Why a keystore gave no account key.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("{}: wrong password", .0.display())]
    WrongPassword(PathBuf),
    #[error("cannot open the keystore {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: not a 32-byte account key", .0.display())]
    NotAnAccountKey(PathBuf),
}

/// The account key in the keystore at `path`, decrypted with `password`.
pub fn decrypt(path: &Path, password: &str) -> Result<AccountKey, KeystoreError> {
    let secret = eth_keystore::decrypt_key(path, password).map_err(|e| match e {
        eth_keystore::KeystoreError::MacMismatch => KeystoreError::WrongPassword(path.into()),
        other => KeystoreError::Unreadable {
            path: path.into(),
            reason: other.to_string(),
        },
    })?;
    <[u8; 32]>::try_from(secret.as_slice())
        .ok()
        .and_then(|secret| AccountKey::from_bytes(&secret).ok())
        .ok_or_else(|| KeystoreError::NotAnAccountKey(path.into()))
}
