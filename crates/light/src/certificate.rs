//! Commit certificates: their encoding (as nodes store them, serve them in proofs and send
//! them to syncing peers), the bytes a validator's precommit signs, and their verification
//! against a trusted validator set.

use alloy_primitives::{Address, B256};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use crate::validators::ValidatorSet;

/// Largest encoded certificate accepted (about 11,000 signatures).
pub const MAX_CERTIFICATE_BYTES: usize = 1 << 20;

/// A commit certificate: the precommits of `round` at `height` for `block_hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub height: u64,
    /// `None` is the nil round (never in a valid certificate, but representable).
    pub round: Option<u32>,
    pub block_hash: B256,
    /// Signer addresses and their 64-byte Ed25519 signatures.
    pub signatures: Vec<(Address, Bytes)>,
}

/// A vote as it is signed: `b"trellis/vote/" ‖ be64(chain id) ‖ postcard(WireVote)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireVote {
    pub prevote: bool,
    pub height: u64,
    pub round: Option<u32>,
    /// `None`: a vote for nil.
    pub value: Option<B256>,
    pub validator: Address,
}

impl WireVote {
    /// The bytes a validator signs for this vote on chain `chain_id` (the chain id keeps a
    /// signature from being replayed on another chain).
    pub fn sign_bytes(&self, chain_id: u64) -> Vec<u8> {
        let mut out = b"trellis/vote/".to_vec();
        out.extend_from_slice(&chain_id.to_be_bytes());
        // Encoding plain integers, options and fixed arrays into a Vec cannot fail.
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }
}

/// The bytes `validator` signs to precommit `block_hash` in `round` at `height`.
pub fn precommit_sign_bytes(
    chain_id: u64,
    height: u64,
    round: Option<u32>,
    block_hash: B256,
    validator: Address,
) -> Vec<u8> {
    WireVote {
        prevote: false,
        height,
        round,
        value: Some(block_hash),
        validator,
    }
    .sign_bytes(chain_id)
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("undecodable certificate: {0}")]
    Decode(String),
    #[error("certificate is for height {got}, expected {expected}")]
    WrongHeight { expected: u64, got: u64 },
    #[error("certificate commits block {got}, expected {expected}")]
    WrongBlock { expected: B256, got: B256 },
    #[error("signer {0} is not in the trusted validator set")]
    UnknownSigner(Address),
    #[error("signature of {0} does not verify")]
    BadSignature(Address),
    #[error("{0} signed twice")]
    DuplicateSigner(Address),
    #[error("signers hold {signed} of {total} voting power; more than two thirds are needed")]
    InsufficientPower { signed: u64, total: u64 },
}

/// A certificate of `block_hash` at `height`, round 0, signed by `signers` (their precommits,
/// as validators sign them): what tests, benchmarks and simulations need to make a header a
/// light client accepts. Real certificates come from the consensus engine.
pub fn certify(
    chain_id: u64,
    height: u64,
    block_hash: B256,
    signers: &[ed25519_consensus::SigningKey],
) -> Vec<u8> {
    let signatures = signers
        .iter()
        .map(|key| {
            let address = crate::validators::validator_address(&key.verification_key().to_bytes());
            let message = precommit_sign_bytes(chain_id, height, Some(0), block_hash, address);
            (
                address,
                Bytes::copy_from_slice(&key.sign(&message).to_bytes()),
            )
        })
        .collect();
    encode_certificate(&Certificate {
        height,
        round: Some(0),
        block_hash,
        signatures,
    })
}

pub fn encode_certificate(certificate: &Certificate) -> Vec<u8> {
    postcard::to_stdvec(certificate).unwrap_or_default()
}

/// Decodes a certificate of at most [`MAX_CERTIFICATE_BYTES`]; trailing bytes are refused.
pub fn decode_certificate(bytes: &[u8]) -> Result<Certificate, CertificateError> {
    if bytes.len() > MAX_CERTIFICATE_BYTES {
        return Err(CertificateError::Decode(format!(
            "{} bytes, more than {MAX_CERTIFICATE_BYTES}",
            bytes.len()
        )));
    }
    let (certificate, rest) = postcard::take_from_bytes::<Certificate>(bytes)
        .map_err(|e| CertificateError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertificateError::Decode(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(certificate)
}

/// Verifies that `certificate` (as stored by nodes) commits `block_hash` at `height` with
/// valid precommits of more than two thirds of `validators`' power on chain `chain_id`:
/// every signature must verify and come from a distinct member (a certificate padded with a
/// bad or foreign signature is refused, not trimmed). Returns the power that signed.
pub fn verify_certificate(
    chain_id: u64,
    certificate: &[u8],
    height: u64,
    block_hash: B256,
    validators: &ValidatorSet,
) -> Result<u64, CertificateError> {
    let cert = decode_certificate(certificate)?;
    if cert.height != height {
        return Err(CertificateError::WrongHeight {
            expected: height,
            got: cert.height,
        });
    }
    if cert.block_hash != block_hash {
        return Err(CertificateError::WrongBlock {
            expected: block_hash,
            got: cert.block_hash,
        });
    }
    let mut seen = HashSet::new();
    let mut signed = 0u64;
    // The signatures are checked together (one multiscalar multiplication): ed25519-consensus
    // implements ZIP 215, under which a batch verifies exactly when each of its signatures
    // does. Should the batch fail, each is checked alone to name the bad one.
    let mut batch = ed25519_consensus::batch::Verifier::new();
    let mut items = Vec::with_capacity(cert.signatures.len());
    for (address, signature) in &cert.signatures {
        let validator = validators
            .get(address)
            .ok_or(CertificateError::UnknownSigner(*address))?;
        if !seen.insert(*address) {
            return Err(CertificateError::DuplicateSigner(*address));
        }
        let signature = <[u8; 64]>::try_from(signature.as_ref())
            .map(ed25519_consensus::Signature::from)
            .map_err(|_| CertificateError::BadSignature(*address))?;
        let message = precommit_sign_bytes(chain_id, height, cert.round, block_hash, *address);
        let item = ed25519_consensus::batch::Item::from((
            ed25519_consensus::VerificationKeyBytes::from(validator.key),
            signature,
            &message,
        ));
        batch.queue(item.clone());
        items.push((*address, item));
        signed += validator.power;
    }
    if batch.verify(rand::thread_rng()).is_err() {
        for (address, item) in items {
            item.verify_single()
                .map_err(|_| CertificateError::BadSignature(address))?;
        }
    }
    let total = validators.total_power();
    if u128::from(signed) * 3 <= u128::from(total) * 2 {
        return Err(CertificateError::InsufficientPower { signed, total });
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validators::validator_address;
    use ed25519_consensus::SigningKey;

    fn keys() -> Vec<SigningKey> {
        (1u8..=4).map(|i| SigningKey::from([i; 32])).collect()
    }

    fn address(key: &SigningKey) -> Address {
        validator_address(&key.verification_key().to_bytes())
    }

    fn sign(key: &SigningKey, chain_id: u64, hash: B256) -> (Address, Bytes) {
        let message = precommit_sign_bytes(chain_id, 5, Some(1), hash, address(key));
        (
            address(key),
            Bytes::copy_from_slice(&key.sign(&message).to_bytes()),
        )
    }

    fn certificate(signatures: Vec<(Address, Bytes)>, hash: B256) -> Vec<u8> {
        encode_certificate(&Certificate {
            height: 5,
            round: Some(1),
            block_hash: hash,
            signatures,
        })
    }

    #[test]
    fn two_thirds_of_the_trusted_set_are_needed_and_enough() {
        let keys = keys();
        let set = ValidatorSet::from_keys(
            keys.iter()
                .map(|k| (B256::from(k.verification_key().to_bytes()), 1)),
        )
        .expect("set");
        let hash = B256::repeat_byte(7);
        let three = certificate(keys[..3].iter().map(|k| sign(k, 9, hash)).collect(), hash);
        assert_eq!(
            verify_certificate(9, &three, 5, hash, &set).expect("valid"),
            3
        );
        let two = certificate(keys[..2].iter().map(|k| sign(k, 9, hash)).collect(), hash);
        assert!(matches!(
            verify_certificate(9, &two, 5, hash, &set),
            Err(CertificateError::InsufficientPower {
                signed: 2,
                total: 4
            })
        ));
        let doubled = certificate(
            vec![
                sign(&keys[0], 9, hash),
                sign(&keys[0], 9, hash),
                sign(&keys[1], 9, hash),
            ],
            hash,
        );
        assert!(matches!(
            verify_certificate(9, &doubled, 5, hash, &set),
            Err(CertificateError::DuplicateSigner(_))
        ));
        assert!(matches!(
            verify_certificate(10, &three, 5, hash, &set),
            Err(CertificateError::BadSignature(_))
        ));
        assert!(matches!(
            verify_certificate(9, &three, 6, hash, &set),
            Err(CertificateError::WrongHeight { .. })
        ));
        assert!(matches!(
            verify_certificate(9, &three, 5, B256::ZERO, &set),
            Err(CertificateError::WrongBlock { .. })
        ));
        // Enough valid signatures padded with one that does not verify: refused, naming it
        // (the batch fails, and each is then checked alone).
        let mut padded: Vec<_> = keys[..3].iter().map(|k| sign(k, 9, hash)).collect();
        padded.insert(1, sign(&keys[3], 9, B256::repeat_byte(8)));
        assert!(matches!(
            verify_certificate(9, &certificate(padded, hash), 5, hash, &set),
            Err(CertificateError::BadSignature(a)) if a == address(&keys[3])
        ));
        let mut short: Vec<_> = keys[..3].iter().map(|k| sign(k, 9, hash)).collect();
        short[0].1 = Bytes::from_static(&[1, 2, 3]);
        assert!(matches!(
            verify_certificate(9, &certificate(short, hash), 5, hash, &set),
            Err(CertificateError::BadSignature(_))
        ));
        let outsider = SigningKey::from([9; 32]);
        let forged = certificate(
            [&keys[0], &keys[1], &outsider]
                .iter()
                .map(|k| sign(k, 9, hash))
                .collect(),
            hash,
        );
        assert!(matches!(
            verify_certificate(9, &forged, 5, hash, &set),
            Err(CertificateError::UnknownSigner(_))
        ));
        assert!(matches!(
            verify_certificate(9, &[1, 2, 3], 5, hash, &set),
            Err(CertificateError::Decode(_))
        ));
        let mut trailing = three.clone();
        trailing.push(0);
        assert!(matches!(
            decode_certificate(&trailing),
            Err(CertificateError::Decode(_))
        ));
    }
}
