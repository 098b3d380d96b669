//! The checks a received block passes before this node spends any work executing it: it is
//! this chain's, follows the committed tip, is built by a validator of its height with a
//! plausible timestamp, and its header commits to its body and to the validator set. Pure:
//! the caller supplies the tip, the set and the clock.

use alloy_consensus::Transaction as _;
use trellis_consensus::{ValidatorAddress, ValidatorSet};
use trellis_primitives::Block;

use super::state::Tip;

/// Proposals may carry a timestamp at most this far ahead of the local clock.
pub const MAX_CLOCK_DRIFT_MS: u64 = 15_000;

/// What a block proposed for `height` must match on this node.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub chain_id: u64,
    pub gas_limit: u64,
    /// The height consensus is deciding.
    pub height: u64,
    pub tip: Tip,
    /// The set deciding `height`, if this node knows it.
    pub validators: Option<&'a ValidatorSet>,
    /// The local clock, in milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// Why `block` cannot be the next block, if it cannot.
pub fn check_block(block: &Block, expected: &Expected<'_>) -> Result<(), String> {
    let h = &block.header;
    let (tip, height) = (expected.tip, expected.height);
    if h.chain_id != expected.chain_id {
        return Err(format!(
            "chain id {} instead of {}",
            h.chain_id, expected.chain_id
        ));
    }
    if h.height != height || height != tip.height + 1 {
        return Err(format!(
            "height {} does not follow tip {}",
            h.height, tip.height
        ));
    }
    if h.parent_hash != tip.hash {
        return Err("parent hash does not match the committed tip".into());
    }
    let validators = expected
        .validators
        .ok_or_else(|| format!("no validator set known for height {height}"))?;
    if validators.get(&ValidatorAddress(h.proposer)).is_none() {
        return Err(format!("block builder {} is not a validator", h.proposer));
    }
    if h.timestamp_ms <= tip.timestamp_ms
        || h.timestamp_ms > expected.now_ms.saturating_add(MAX_CLOCK_DRIFT_MS)
    {
        return Err(format!("timestamp {} out of range", h.timestamp_ms));
    }
    if h.gas_limit != expected.gas_limit {
        return Err("gas limit differs from the chain's".into());
    }
    if h.validators_hash != validators.hash() {
        return Err("validator-set hash mismatch".into());
    }
    // Its value is what executing the block makes the next set: checked after execution.
    if h.next_validators_hash.is_none() && tip.next_must_name_set {
        return Err("no next validator-set hash".into());
    }
    if !block.body_matches_header() {
        return Err("transactions root mismatch".into());
    }
    for tx in &block.transactions {
        if tx.chain_id() != Some(expected.chain_id) {
            return Err(format!(
                "transaction {} has a foreign chain id",
                tx.tx_hash()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, B256};
    use trellis_primitives::{Bloom, Header};

    const CHAIN: u64 = 7;
    const GAS: u64 = 30_000_000;

    fn set() -> ValidatorSet {
        ValidatorSet::from_keys((1..=4u8).map(|s| {
            let key = ed25519_consensus::SigningKey::from([s; 32]);
            (B256::from(key.verification_key().to_bytes()), 1)
        }))
        .expect("valid set")
    }

    fn tip() -> Tip {
        Tip {
            height: 9,
            hash: B256::repeat_byte(9),
            timestamp_ms: 50_000,
            next_must_name_set: true,
        }
    }

    fn block(validators: &ValidatorSet) -> Block {
        let proposer = validators.iter().next().expect("a validator").address.0;
        Block {
            header: Header {
                chain_id: CHAIN,
                height: 10,
                parent_hash: tip().hash,
                timestamp_ms: 51_000,
                proposer,
                transactions_root: Block::compute_transactions_root(&[]),
                receipts_root: B256::ZERO,
                state_root: B256::ZERO,
                logs_bloom: Bloom::ZERO,
                gas_limit: GAS,
                gas_used: 0,
                validators_hash: validators.hash(),
                next_validators_hash: Some(validators.hash()),
            },
            transactions: vec![],
        }
    }

    fn check(block: &Block, validators: Option<&ValidatorSet>) -> Result<(), String> {
        check_block(
            block,
            &Expected {
                chain_id: CHAIN,
                gas_limit: GAS,
                height: 10,
                tip: tip(),
                validators,
                now_ms: 52_000,
            },
        )
    }

    #[test]
    fn a_well_formed_next_block_passes() {
        let set = set();
        assert_eq!(check(&block(&set), Some(&set)), Ok(()));
    }

    #[test]
    fn history_from_before_the_next_set_field_still_verifies() {
        let set = set();
        let mut old = block(&set);
        old.header.next_validators_hash = None;
        let mut expected = Expected {
            chain_id: CHAIN,
            gas_limit: GAS,
            height: 10,
            tip: Tip {
                next_must_name_set: false,
                ..tip()
            },
            validators: Some(&set),
            now_ms: 52_000,
        };
        // After a block without it (an upgraded chain's history), a block may lack it...
        assert_eq!(check_block(&old, &expected), Ok(()));
        // ...and once a block named it, every later one must.
        expected.tip.next_must_name_set = true;
        assert!(check_block(&old, &expected).is_err());
        // The tip a block makes says so.
        assert!(!Tip::of(&old).next_must_name_set);
        assert!(Tip::of(&block(&set)).next_must_name_set);
    }

    #[test]
    fn each_wrong_field_is_refused_with_its_reason() {
        let set = set();
        type Spoil = Box<dyn Fn(&mut Block)>;
        let cases: Vec<(&str, Spoil)> = vec![
            (
                "chain id 8 instead of 7",
                Box::new(|b| b.header.chain_id = 8),
            ),
            (
                "height 11 does not follow tip 9",
                Box::new(|b| b.header.height = 11),
            ),
            (
                "parent hash",
                Box::new(|b| b.header.parent_hash = B256::ZERO),
            ),
            (
                "is not a validator",
                Box::new(|b| b.header.proposer = Address::ZERO),
            ),
            (
                "timestamp 50000 out of range",
                Box::new(|b| b.header.timestamp_ms = 50_000),
            ),
            (
                "out of range",
                Box::new(|b| b.header.timestamp_ms = 52_000 + MAX_CLOCK_DRIFT_MS + 1),
            ),
            ("gas limit", Box::new(|b| b.header.gas_limit = GAS + 1)),
            (
                "validator-set hash",
                Box::new(|b| b.header.validators_hash = B256::ZERO),
            ),
            (
                "no next validator-set hash",
                Box::new(|b| b.header.next_validators_hash = None),
            ),
            (
                "transactions root",
                Box::new(|b| b.header.transactions_root = B256::ZERO),
            ),
        ];
        for (reason, spoil) in cases {
            let mut b = block(&set);
            spoil(&mut b);
            let refused = check(&b, Some(&set)).expect_err(reason);
            assert!(refused.contains(reason), "{reason}: {refused}");
        }
        // A clock at the far end of the drift still accepts a block at its edge.
        let mut edge = block(&set);
        edge.header.timestamp_ms = 52_000 + MAX_CLOCK_DRIFT_MS;
        assert_eq!(check(&edge, Some(&set)), Ok(()));
    }

    #[test]
    fn an_unknown_validator_set_is_refused_after_the_tip_checks() {
        let set = set();
        let refused = check(&block(&set), None).expect_err("no set");
        assert!(
            refused.contains("no validator set known for height 10"),
            "{refused}"
        );
        let mut wrong_height = block(&set);
        wrong_height.header.height = 12;
        assert!(check(&wrong_height, None)
            .expect_err("height")
            .contains("does not follow"));
    }
}
