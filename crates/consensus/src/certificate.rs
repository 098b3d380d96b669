//! Commit certificates are checked by light clients with `trellis_light::verify_certificate`,
//! over the encoding and the precommit sign bytes that this crate's codec shares with it
//! (`trellis_light::Certificate`, `trellis_light::WireVote`). The test below keeps the engine
//! and light clients in step: a certificate the engine's signer produces verifies there, and
//! both compute the same validator-set hash.

#[cfg(test)]
mod tests {
    use crate::codec::{decode_certificate, encode_certificate};
    use crate::context::{BlockHash, Height, ValidatorAddress, ValidatorSet, Vote};
    use crate::signing::Ed25519Signer;
    use alloy_primitives::B256;
    use malachitebft_core_types::{CommitCertificate, CommitSignature, NilOrVal, Round, VoteType};
    use trellis_crypto::NodeKey;

    #[test]
    fn certificates_the_engine_signs_verify_as_light_clients_check_them() {
        let keys: Vec<NodeKey> = (0..4).map(|_| NodeKey::generate()).collect();
        let members: Vec<(B256, u64)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (B256::from(*k.public().as_bytes()), i as u64 + 1))
            .collect();
        let hash = B256::repeat_byte(7);
        let signatures = keys[1..]
            .iter()
            .map(|key| {
                let address = ValidatorAddress::from_public_key(&key.public());
                let vote = Vote::new(
                    VoteType::Precommit,
                    Height(5),
                    Round::new(1),
                    NilOrVal::Val(BlockHash(hash)),
                    address,
                );
                let signed = Ed25519Signer::new(key.private().clone(), 9).sign_vote_now(vote);
                CommitSignature::new(address, signed.signature)
            })
            .collect();
        let bytes = encode_certificate(&CommitCertificate {
            height: Height(5),
            round: Round::new(1),
            value_id: BlockHash(hash),
            commit_signatures: signatures,
        });
        let light = trellis_light::ValidatorSet::from_keys(members.clone()).expect("set");
        assert_eq!(
            trellis_light::verify_certificate(9, &bytes, 5, hash, &light).expect("valid"),
            2 + 3 + 4
        );
        let engine = ValidatorSet::from_keys(members).expect("set");
        assert_eq!(engine.hash(), light.hash());
        assert_eq!(
            encode_certificate(&decode_certificate(&bytes).expect("decodes")),
            bytes
        );
    }
}
