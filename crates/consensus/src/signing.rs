//! Ed25519 signing of votes, proposals, vote extensions and streamed proposals,
//! domain-separated by chain id, behind Malachite's async `Signer` and `Verifier` seams.

use alloy_primitives::{keccak256, B256};
use async_trait::async_trait;
use bytes::Bytes;
use malachitebft_core_types::{Round, SignedMessage, ValidatorProof, VoteExtensionScope};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};
use malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};

use crate::codec::{proposal_sign_bytes, vote_sign_bytes};
use crate::context::{Height, Proposal, TrellisContext, ValidatorAddress, Vote};
use crate::guard::{GuardError, SignGuard, SignedKind};
use malachitebft_core_types::VoteType;
use std::sync::Arc;

/// The digest a proposer signs in the `Fin` part of a streamed block proposal.
pub fn proposal_digest(
    chain_id: u64,
    height: Height,
    round: Round,
    proposer: &ValidatorAddress,
    block_bytes: &[u8],
) -> B256 {
    let mut buf = b"trellis/stream/".to_vec();
    buf.extend_from_slice(&chain_id.to_be_bytes());
    buf.extend_from_slice(&height.0.to_be_bytes());
    buf.extend_from_slice(&round.as_i64().to_be_bytes());
    buf.extend_from_slice(proposer.0.as_slice());
    buf.extend_from_slice(keccak256(block_bytes).as_slice());
    keccak256(&buf)
}

/// The bytes signed for a vote extension: bound to its scope (height, round, value,
/// validator) and the chain, and apart from every other signed message by its prefix.
fn extension_sign_bytes(
    chain_id: u64,
    scope: &VoteExtensionScope<TrellisContext>,
    extension: &Bytes,
) -> Vec<u8> {
    let mut msg = b"trellis/ext/".to_vec();
    msg.extend_from_slice(&chain_id.to_be_bytes());
    msg.extend_from_slice(&scope.height.0.to_be_bytes());
    msg.extend_from_slice(&scope.round.as_i64().to_be_bytes());
    msg.extend_from_slice(scope.value_id.0.as_slice());
    msg.extend_from_slice(scope.validator_address.0.as_slice());
    msg.extend_from_slice(extension);
    msg
}

/// Signs consensus messages with the node's Ed25519 key; a validator's signer checks every
/// vote and proposal with its [`SignGuard`] first.
#[derive(Clone)]
pub struct Ed25519Signer {
    key: PrivateKey,
    chain_id: u64,
    guard: Option<Arc<SignGuard>>,
}

fn round_number(round: Round) -> u32 {
    round.as_u32().unwrap_or(u32::MAX)
}

impl Ed25519Signer {
    pub fn new(key: PrivateKey, chain_id: u64) -> Self {
        Ed25519Signer {
            key,
            chain_id,
            guard: None,
        }
    }

    /// The same signer, refusing to sign anything that conflicts with what `guard` recorded.
    pub fn with_guard(mut self, guard: Arc<SignGuard>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Signs a vote after the guard (if any) admitted it (blocking: the guard fsyncs).
    pub fn sign_vote_guarded(
        &self,
        vote: Vote,
    ) -> Result<SignedMessage<TrellisContext, Vote>, GuardError> {
        let bytes = vote_sign_bytes(self.chain_id, &vote);
        if let Some(guard) = &self.guard {
            let kind = match vote.typ {
                VoteType::Prevote => SignedKind::Prevote,
                VoteType::Precommit => SignedKind::Precommit,
            };
            guard.admit(kind, vote.height.0, round_number(vote.round), &bytes)?;
        }
        let sig = self.key.sign(&bytes);
        Ok(SignedMessage::new(vote, sig))
    }

    /// Signs a proposal after the guard (if any) admitted it (blocking: the guard fsyncs).
    pub fn sign_proposal_guarded(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<TrellisContext, Proposal>, GuardError> {
        let bytes = proposal_sign_bytes(self.chain_id, &proposal);
        if let Some(guard) = &self.guard {
            guard.admit(
                SignedKind::Proposal,
                proposal.height.0,
                round_number(proposal.round),
                &bytes,
            )?;
        }
        let sig = self.key.sign(&bytes);
        Ok(SignedMessage::new(proposal, sig))
    }

    pub fn sign_digest(&self, digest: &B256) -> Signature {
        self.key.sign(digest.as_slice())
    }

    /// Signs a vote (what [`Signer::sign_vote`] does, without the async wrapper).
    pub fn sign_vote_now(&self, vote: Vote) -> SignedMessage<TrellisContext, Vote> {
        let sig = self.key.sign(&vote_sign_bytes(self.chain_id, &vote));
        SignedMessage::new(vote, sig)
    }

    /// Signs a proposal (what [`Signer::sign_proposal`] does, without the async wrapper).
    pub fn sign_proposal_now(&self, proposal: Proposal) -> SignedMessage<TrellisContext, Proposal> {
        let sig = self
            .key
            .sign(&proposal_sign_bytes(self.chain_id, &proposal));
        SignedMessage::new(proposal, sig)
    }

    /// The verifier of the same chain.
    pub fn verifier(&self) -> Ed25519Verifier {
        Ed25519Verifier {
            chain_id: self.chain_id,
        }
    }
}

pub fn verify_digest(key: &PublicKey, digest: &B256, sig: &Signature) -> bool {
    key.verify(digest.as_slice(), sig).is_ok()
}

/// Checks consensus signatures of one chain.
#[derive(Clone, Copy, Debug)]
pub struct Ed25519Verifier {
    chain_id: u64,
}

impl Ed25519Verifier {
    pub fn new(chain_id: u64) -> Self {
        Ed25519Verifier { chain_id }
    }

    pub fn vote_is_valid(&self, vote: &Vote, signature: &Signature, key: &PublicKey) -> bool {
        key.verify(&vote_sign_bytes(self.chain_id, vote), signature)
            .is_ok()
    }

    pub fn proposal_is_valid(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        key: &PublicKey,
    ) -> bool {
        key.verify(&proposal_sign_bytes(self.chain_id, proposal), signature)
            .is_ok()
    }
}

/// A refusal stops consensus on this node (the engine treats a signing error as fatal): said
/// here, once, at error level, with the reason.
fn refused(e: GuardError) -> Error {
    tracing::error!(error = %e, "consensus stops on this node rather than sign");
    Error::from_source(e)
}

impl Ed25519Signer {
    /// Runs a guarded signing: on the blocking pool when the guard records to disk (an
    /// fsync), in place when there is no guard (then it is only a signature).
    async fn sign_off_workers<M, T>(
        &self,
        message: M,
        sign: fn(&Ed25519Signer, M) -> Result<T, GuardError>,
    ) -> Result<T, Error>
    where
        M: Send + 'static,
        T: Send + 'static,
    {
        let signed = if self.guard.is_none() {
            sign(self, message)
        } else {
            let signer = self.clone();
            tokio::task::spawn_blocking(move || sign(&signer, message))
                .await
                .map_err(Error::from_source)?
        };
        signed.map_err(refused)
    }
}

#[async_trait]
impl Signer<TrellisContext> for Ed25519Signer {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<TrellisContext, Vote>, Error> {
        self.sign_off_workers(vote, Ed25519Signer::sign_vote_guarded)
            .await
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<TrellisContext, Proposal>, Error> {
        self.sign_off_workers(proposal, Ed25519Signer::sign_proposal_guarded)
            .await
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<TrellisContext>,
        extension: Bytes,
    ) -> Result<SignedMessage<TrellisContext, Bytes>, Error> {
        let sig = self
            .key
            .sign(&extension_sign_bytes(self.chain_id, &scope, &extension));
        Ok(SignedMessage::new(extension, sig))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<TrellisContext>, Error> {
        // Network-agnostic by Malachite's definition: no chain prefix.
        let sig = self
            .key
            .sign(&ValidatorProof::<TrellisContext>::signing_bytes(
                &public_key,
                &peer_id,
            ));
        Ok(ValidatorProof::new(public_key, peer_id, sig))
    }
}

#[async_trait]
impl Verifier<TrellisContext> for Ed25519Verifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(VerificationResult::from_bool(
            self.vote_is_valid(vote, signature, public_key),
        ))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(VerificationResult::from_bool(
            self.proposal_is_valid(proposal, signature, public_key),
        ))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<TrellisContext>,
        extension: &Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(VerificationResult::from_bool(
            public_key
                .verify(
                    &extension_sign_bytes(self.chain_id, scope, extension),
                    signature,
                )
                .is_ok(),
        ))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<TrellisContext>,
    ) -> Result<VerificationResult, Error> {
        let valid = <[u8; 32]>::try_from(proof.public_key.as_slice())
            .ok()
            .and_then(|k| trellis_crypto::parse_public_key(k).ok())
            .is_some_and(|key| {
                key.verify(
                    &ValidatorProof::<TrellisContext>::signing_bytes(
                        &proof.public_key,
                        &proof.peer_id,
                    ),
                    &proof.signature,
                )
                .is_ok()
            });
        Ok(VerificationResult::from_bool(valid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;
    use malachitebft_core_types::{NilOrVal, VoteType};
    use trellis_crypto::NodeKey;

    #[test]
    fn votes_do_not_verify_across_chains() {
        let key = NodeKey::generate();
        let a = Ed25519Signer::new(key.private().clone(), 1);
        let b = Ed25519Signer::new(key.private().clone(), 2);
        let vote = Vote {
            typ: VoteType::Prevote,
            height: Height(1),
            round: Round::new(0),
            value: NilOrVal::Nil,
            validator_address: ValidatorAddress(Address::ZERO),
            extension: None,
        };
        let signed = a.sign_vote_now(vote.clone());
        assert!(a
            .verifier()
            .vote_is_valid(&vote, &signed.signature, &key.public()));
        assert!(!b
            .verifier()
            .vote_is_valid(&vote, &signed.signature, &key.public()));
    }
}
