//! secp256k1 account keys, transaction signing and sender recovery.

use alloy_consensus::{SignableTransaction, TxEnvelope};
use alloy_primitives::{keccak256, Address, Signature, B256, U256};
use rayon::prelude::*;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey, SECP256K1};

/// Half the secp256k1 group order: signatures with a larger `s` are malleable (EIP-2).
pub const SECP256K1N_HALF: U256 = U256::from_be_bytes([
    0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4, 0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0,
]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("signature s value is too high (EIP-2)")]
    HighS,
    #[error("invalid signature")]
    InvalidSignature,
}

fn address_of(public: &PublicKey) -> Address {
    let uncompressed = public.serialize_uncompressed();
    Address::from_slice(&keccak256(&uncompressed[1..])[12..])
}

/// Recovers the address that signed `hash` with `sig`.
pub fn recover_hash(hash: &B256, sig: &Signature) -> Result<Address, RecoveryError> {
    if sig.s() > SECP256K1N_HALF {
        return Err(RecoveryError::HighS);
    }
    let rec_id =
        RecoveryId::try_from(i32::from(sig.v())).map_err(|_| RecoveryError::InvalidSignature)?;
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&sig.r().to_be_bytes::<32>());
    compact[32..].copy_from_slice(&sig.s().to_be_bytes::<32>());
    let rsig = RecoverableSignature::from_compact(&compact, rec_id)
        .map_err(|_| RecoveryError::InvalidSignature)?;
    let msg = Message::from_digest(hash.0);
    let public = SECP256K1
        .recover_ecdsa(msg, &rsig)
        .map_err(|_| RecoveryError::InvalidSignature)?;
    Ok(address_of(&public))
}

/// Recovers the sender of a signed transaction.
pub fn recover_sender(tx: &TxEnvelope) -> Result<Address, RecoveryError> {
    recover_hash(&tx.signature_hash(), tx.signature())
}

/// Recovers many senders in parallel on the rayon pool; call it off the async threads.
pub fn recover_senders(txs: &[TxEnvelope]) -> Vec<Result<Address, RecoveryError>> {
    txs.par_iter().map(recover_sender).collect()
}

/// Like [`recover_senders`], but takes senders already known (e.g. from the pool, keyed by
/// the transaction hash, which covers the signature) and recovers only the rest.
pub fn recover_unknown_senders(
    txs: &[TxEnvelope],
    known: &[Option<Address>],
) -> Vec<Result<Address, RecoveryError>> {
    txs.par_iter()
        .enumerate()
        .map(|(i, tx)| match known.get(i).copied().flatten() {
            Some(sender) => Ok(sender),
            None => recover_sender(tx),
        })
        .collect()
}

/// A secp256k1 account key.
#[derive(Clone)]
pub struct AccountKey {
    secret: SecretKey,
    address: Address,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountKey({})", self.address)
    }
}

impl AccountKey {
    pub fn random() -> AccountKey {
        use rand::RngCore;
        loop {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            if let Ok(secret) = SecretKey::from_byte_array(bytes) {
                return Self::from_secret(secret);
            }
        }
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Result<AccountKey, RecoveryError> {
        SecretKey::from_byte_array(*bytes)
            .map(Self::from_secret)
            .map_err(|_| RecoveryError::InvalidSignature)
    }

    /// A deterministic key for development chains: keccak("trellis-dev-account" || index).
    pub fn dev(index: u32) -> AccountKey {
        let mut seed = b"trellis-dev-account".to_vec();
        seed.extend_from_slice(&index.to_be_bytes());
        let digest = keccak256(&seed);
        Self::from_bytes(&digest.0)
            .expect("keccak output is a valid key with overwhelming probability")
    }

    fn from_secret(secret: SecretKey) -> AccountKey {
        let address = address_of(&secret.public_key(SECP256K1));
        AccountKey { secret, address }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.secret_bytes()
    }

    pub fn sign_hash(&self, hash: &B256) -> Signature {
        let msg = Message::from_digest(hash.0);
        let (rec_id, compact) = SECP256K1
            .sign_ecdsa_recoverable(msg, &self.secret)
            .serialize_compact();
        let parity = i32::from(rec_id) == 1;
        Signature::new(
            U256::from_be_slice(&compact[..32]),
            U256::from_be_slice(&compact[32..]),
            parity,
        )
    }

    /// Signs any transaction type and wraps it into an envelope.
    pub fn sign_tx<T>(&self, tx: T) -> TxEnvelope
    where
        T: SignableTransaction<Signature>,
        alloy_consensus::Signed<T>: Into<TxEnvelope>,
    {
        let sig = self.sign_hash(&tx.signature_hash());
        tx.into_signed(sig).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{TxEip1559, TxLegacy};
    use alloy_primitives::TxKind;

    #[test]
    fn sign_then_recover_legacy_and_1559() {
        let key = AccountKey::dev(0);
        let legacy = key.sign_tx(TxLegacy {
            chain_id: Some(1337),
            nonce: 0,
            gas_price: 1,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(1)),
            value: U256::from(1),
            input: Default::default(),
        });
        let dynamic = key.sign_tx(TxEip1559 {
            chain_id: 1337,
            nonce: 1,
            gas_limit: 21_000,
            max_fee_per_gas: 2,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::repeat_byte(1)),
            value: U256::from(1),
            access_list: Default::default(),
            input: Default::default(),
        });
        let senders = recover_senders(&[legacy, dynamic]);
        assert_eq!(senders, vec![Ok(key.address()), Ok(key.address())]);
    }

    #[test]
    fn known_senders_are_reused() {
        let key = AccountKey::dev(2);
        let tx = key.sign_tx(TxLegacy {
            chain_id: Some(1),
            nonce: 0,
            gas_price: 0,
            gas_limit: 21_000,
            to: TxKind::Call(Address::ZERO),
            value: U256::ZERO,
            input: Default::default(),
        });
        let planted = Address::repeat_byte(0xee);
        let out = recover_unknown_senders(&[tx.clone(), tx], &[Some(planted), None]);
        assert_eq!(out, vec![Ok(planted), Ok(key.address())]);
    }

    #[test]
    fn high_s_is_rejected() {
        let key = AccountKey::dev(1);
        let hash = B256::repeat_byte(7);
        let sig = key.sign_hash(&hash);
        let n = SECP256K1N_HALF * U256::from(2) + U256::from(1);
        let flipped = Signature::new(sig.r(), n - sig.s(), !sig.v());
        assert_eq!(recover_hash(&hash, &flipped), Err(RecoveryError::HighS));
        assert_eq!(recover_hash(&hash, &sig), Ok(key.address()));
    }

    #[test]
    fn dev_keys_are_distinct_and_stable() {
        assert_eq!(AccountKey::dev(3).address(), AccountKey::dev(3).address());
        assert_ne!(AccountKey::dev(3).address(), AccountKey::dev(4).address());
    }
}
