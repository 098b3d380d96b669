//! Checking a commit certificate without running consensus: what a light client does to
//! trust a header it received from an untrusted node.

use alloy_primitives::B256;
use malachitebft_core_types::{NilOrVal, Round, VoteType};
use std::collections::HashSet;

use crate::codec::{decode_certificate, vote_sign_bytes, CodecError};
use crate::context::{BlockHash, Height, ValidatorAddress, ValidatorSet, Vote};

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("undecodable certificate: {0}")]
    Decode(#[from] CodecError),
    #[error("certificate is for height {got}, expected {expected}")]
    WrongHeight { expected: u64, got: u64 },
    #[error("certificate commits block {got}, expected {expected}")]
    WrongBlock { expected: B256, got: B256 },
    #[error("signer {0} is not in the trusted validator set")]
    UnknownSigner(ValidatorAddress),
    #[error("signature of {0} does not verify")]
    BadSignature(ValidatorAddress),
    #[error("{0} signed twice")]
    DuplicateSigner(ValidatorAddress),
    #[error("signers hold {signed} of {total} voting power; more than two thirds are needed")]
    InsufficientPower { signed: u64, total: u64 },
}

/// Verifies that `certificate` (as stored by nodes) commits `block_hash` at `height` with the
/// precommits of more than two thirds of `validators`' power on chain `chain_id`. Returns
/// the power that signed.
pub fn verify_certificate(
    chain_id: u64,
    certificate: &[u8],
    height: u64,
    block_hash: B256,
    validators: &ValidatorSet,
) -> Result<u64, CertificateError> {
    let cert = decode_certificate(certificate)?;
    if cert.height != Height(height) {
        return Err(CertificateError::WrongHeight {
            expected: height,
            got: cert.height.0,
        });
    }
    if cert.value_id.0 != block_hash {
        return Err(CertificateError::WrongBlock {
            expected: block_hash,
            got: cert.value_id.0,
        });
    }
    let total: u64 = validators.iter().map(|v| v.voting_power).sum();
    let mut seen = HashSet::new();
    let mut signed = 0u64;
    for sig in &cert.commit_signatures {
        let validator = validators
            .get(&sig.address)
            .ok_or(CertificateError::UnknownSigner(sig.address))?;
        if !seen.insert(sig.address) {
            return Err(CertificateError::DuplicateSigner(sig.address));
        }
        let vote = precommit(cert.height, cert.round, cert.value_id, sig.address);
        validator
            .public_key
            .verify(&vote_sign_bytes(chain_id, &vote), &sig.signature)
            .map_err(|_| CertificateError::BadSignature(sig.address))?;
        signed += validator.voting_power;
    }
    if u128::from(signed) * 3 <= u128::from(total) * 2 {
        return Err(CertificateError::InsufficientPower { signed, total });
    }
    Ok(signed)
}

fn precommit(height: Height, round: Round, value: BlockHash, address: ValidatorAddress) -> Vote {
    Vote::new(
        VoteType::Precommit,
        height,
        round,
        NilOrVal::Val(value),
        address,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_certificate;
    use crate::context::{TrellisContext, Validator};
    use crate::signing::Ed25519Signer;
    use malachitebft_core_types::{CommitCertificate, CommitSignature};
    use trellis_crypto::NodeKey;

    fn sign(key: &NodeKey, chain_id: u64, hash: B256) -> CommitSignature<TrellisContext> {
        let address = ValidatorAddress::from_public_key(&key.public());
        let vote = precommit(Height(5), Round::new(1), BlockHash(hash), address);
        let signed = Ed25519Signer::new(key.private().clone(), chain_id).sign_vote_now(vote);
        CommitSignature::new(address, signed.signature)
    }

    fn certificate(sigs: Vec<CommitSignature<TrellisContext>>, hash: B256) -> Vec<u8> {
        encode_certificate(&CommitCertificate {
            height: Height(5),
            round: Round::new(1),
            value_id: BlockHash(hash),
            commit_signatures: sigs,
        })
    }

    #[test]
    fn two_thirds_of_the_trusted_set_are_needed_and_enough() {
        let keys: Vec<NodeKey> = (0..4).map(|_| NodeKey::generate()).collect();
        let set =
            ValidatorSet::new(keys.iter().map(|k| Validator::new(k.public(), 1))).expect("set");
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
        // Enough valid signatures, padded with one that does not verify (Malachite 0.5 let
        // such certificates through): refused.
        let mut padded: Vec<_> = keys[..3].iter().map(|k| sign(k, 9, hash)).collect();
        padded.push(sign(&keys[3], 9, B256::repeat_byte(8)));
        assert!(matches!(
            verify_certificate(9, &certificate(padded, hash), 5, hash, &set),
            Err(CertificateError::BadSignature(_))
        ));
        let outsider = NodeKey::generate();
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
    }
}
