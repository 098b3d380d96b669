//! Ed25519 signing of votes, proposals and streamed proposals, domain-separated by chain id.

use alloy_primitives::{keccak256, B256};
use bytes::Bytes;
use malachitebft_core_types::{SignedMessage, SigningProvider};
use malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};

use crate::codec::{proposal_sign_bytes, vote_sign_bytes};
use crate::context::{Height, Proposal, ProposalPart, TrellisContext, ValidatorAddress, Vote};
use malachitebft_core_types::Round;

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

fn part_sign_bytes(chain_id: u64, part: &ProposalPart) -> Vec<u8> {
    let mut out = b"trellis/part/".to_vec();
    out.extend_from_slice(&chain_id.to_be_bytes());
    match part {
        ProposalPart::Init {
            height,
            round,
            pol_round,
            proposer,
        } => {
            out.push(0);
            out.extend_from_slice(&height.0.to_be_bytes());
            out.extend_from_slice(&round.as_i64().to_be_bytes());
            out.extend_from_slice(&pol_round.as_i64().to_be_bytes());
            out.extend_from_slice(proposer.0.as_slice());
        }
        ProposalPart::Data(d) => {
            out.push(1);
            out.extend_from_slice(d);
        }
        ProposalPart::Fin(s) => {
            out.push(2);
            out.extend_from_slice(&s.to_bytes());
        }
    }
    out
}

/// Signs consensus messages with the node's Ed25519 key.
pub struct Ed25519Signer {
    key: PrivateKey,
    chain_id: u64,
}

impl Ed25519Signer {
    pub fn new(key: PrivateKey, chain_id: u64) -> Self {
        Ed25519Signer { key, chain_id }
    }

    pub fn sign_digest(&self, digest: &B256) -> Signature {
        self.key.sign(digest.as_slice())
    }
}

pub fn verify_digest(key: &PublicKey, digest: &B256, sig: &Signature) -> bool {
    key.verify(digest.as_slice(), sig).is_ok()
}

impl SigningProvider<TrellisContext> for Ed25519Signer {
    fn sign_vote(&self, vote: Vote) -> SignedMessage<TrellisContext, Vote> {
        let sig = self.key.sign(&vote_sign_bytes(self.chain_id, &vote));
        SignedMessage::new(vote, sig)
    }

    fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> bool {
        public_key
            .verify(&vote_sign_bytes(self.chain_id, vote), signature)
            .is_ok()
    }

    fn sign_proposal(&self, proposal: Proposal) -> SignedMessage<TrellisContext, Proposal> {
        let sig = self
            .key
            .sign(&proposal_sign_bytes(self.chain_id, &proposal));
        SignedMessage::new(proposal, sig)
    }

    fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> bool {
        public_key
            .verify(&proposal_sign_bytes(self.chain_id, proposal), signature)
            .is_ok()
    }

    fn sign_proposal_part(
        &self,
        part: ProposalPart,
    ) -> SignedMessage<TrellisContext, ProposalPart> {
        let sig = self.key.sign(&part_sign_bytes(self.chain_id, &part));
        SignedMessage::new(part, sig)
    }

    fn verify_signed_proposal_part(
        &self,
        part: &ProposalPart,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> bool {
        public_key
            .verify(&part_sign_bytes(self.chain_id, part), signature)
            .is_ok()
    }

    fn sign_vote_extension(&self, extension: Bytes) -> SignedMessage<TrellisContext, Bytes> {
        let mut msg = b"trellis/ext/".to_vec();
        msg.extend_from_slice(&self.chain_id.to_be_bytes());
        msg.extend_from_slice(&extension);
        let sig = self.key.sign(&msg);
        SignedMessage::new(extension, sig)
    }

    fn verify_signed_vote_extension(
        &self,
        extension: &Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> bool {
        let mut msg = b"trellis/ext/".to_vec();
        msg.extend_from_slice(&self.chain_id.to_be_bytes());
        msg.extend_from_slice(extension);
        public_key.verify(&msg, signature).is_ok()
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
        let signed = a.sign_vote(vote.clone());
        assert!(a.verify_signed_vote(&vote, &signed.signature, &key.public()));
        assert!(!b.verify_signed_vote(&vote, &signed.signature, &key.public()));
    }
}
