//! What a chain instance knows of its own progress, as one synchronous value: the committed
//! tip and the validator sets of recent heights and of the next one. Every change is one
//! [`ChainState::advance`] by exactly one height, so the tip and the sets never disagree.

use alloy_primitives::B256;
use std::collections::BTreeMap;
use trellis_consensus::ValidatorSet;

/// Validator sets kept for heights before the next one (for replays after restarts).
pub const KEPT_VALIDATOR_SETS: u64 = 256;

/// The last committed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub hash: B256,
    pub timestamp_ms: u64,
    /// Whether the block after it must name its next validator set: true after any block
    /// that named it. Genesis does not (its header never has the field), so a chain's history
    /// from before headers had it still syncs from scratch; every node builds it into every
    /// block, so the first block after genesis (or after an upgrade) turns the rule on for
    /// good, and a proposer that leaves it out before that only makes its block one a light
    /// client cannot anchor.
    pub next_must_name_set: bool,
}

impl Tip {
    /// The tip that `block` makes.
    pub fn of(block: &trellis_primitives::Block) -> Tip {
        let h = &block.header;
        Tip {
            height: h.height,
            hash: block.hash(),
            timestamp_ms: h.timestamp_ms,
            next_must_name_set: h.next_validators_hash.is_some(),
        }
    }
}

/// The committed tip and the validator sets that decide heights up to the next one.
#[derive(Clone, Debug)]
pub struct ChainState {
    tip: Tip,
    /// The set deciding `tip.height + 1`: always known.
    next: ValidatorSet,
    /// Sets that decided recent heights (at most [`KEPT_VALIDATOR_SETS`], below the next).
    past: BTreeMap<u64, ValidatorSet>,
}

/// A commit that does not follow the tip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {got} does not follow the committed tip {tip}")]
pub struct NotNext {
    pub tip: u64,
    pub got: u64,
}

impl ChainState {
    /// The state at `tip`, with `next` deciding the height after it.
    pub fn new(tip: Tip, next: ValidatorSet) -> Self {
        ChainState {
            tip,
            next,
            past: BTreeMap::new(),
        }
    }

    pub fn tip(&self) -> Tip {
        self.tip
    }

    /// The set deciding `height`, if it is the next height or a recent one.
    pub fn validators_at(&self, height: u64) -> Option<&ValidatorSet> {
        if height == self.tip.height + 1 {
            Some(&self.next)
        } else {
            self.past.get(&height)
        }
    }

    /// The set deciding the next height.
    pub fn next_validators(&self) -> &ValidatorSet {
        &self.next
    }

    /// Moves the tip to `tip`, the block after the current one, with `next` deciding the
    /// height after it. Answers whether the validator set changes.
    pub fn advance(&mut self, tip: Tip, next: ValidatorSet) -> Result<bool, NotNext> {
        if tip.height != self.tip.height + 1 {
            return Err(NotNext {
                tip: self.tip.height,
                got: tip.height,
            });
        }
        let changed = next.hash() != self.next.hash();
        let decided = std::mem::replace(&mut self.next, next);
        self.past.insert(tip.height, decided);
        self.past
            .retain(|h, _| h + KEPT_VALIDATOR_SETS > tip.height);
        self.tip = tip;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(seeds: &[u8]) -> ValidatorSet {
        ValidatorSet::from_keys(seeds.iter().map(|s| {
            let key = ed25519_consensus::SigningKey::from([*s; 32]);
            (B256::from(key.verification_key().to_bytes()), 1)
        }))
        .expect("valid set")
    }

    fn tip(height: u64) -> Tip {
        Tip {
            height,
            hash: B256::with_last_byte(height as u8),
            timestamp_ms: 1_000 + height,
            next_must_name_set: true,
        }
    }

    #[test]
    fn advances_one_height_at_a_time() {
        let mut state = ChainState::new(tip(4), set(&[1, 2]));
        assert_eq!(
            state.validators_at(5).map(|s| s.hash()),
            Some(set(&[1, 2]).hash())
        );
        assert!(
            state.validators_at(4).is_none(),
            "nothing kept from before opening"
        );
        assert_eq!(
            state.advance(tip(6), set(&[1])),
            Err(NotNext { tip: 4, got: 6 })
        );
        assert_eq!(
            state.advance(tip(4), set(&[1])),
            Err(NotNext { tip: 4, got: 4 })
        );
        assert_eq!(state.tip(), tip(4), "a refused advance changes nothing");

        assert_eq!(state.advance(tip(5), set(&[1, 2])), Ok(false));
        assert_eq!(state.advance(tip(6), set(&[1, 2, 3])), Ok(true));
        assert_eq!(state.tip(), tip(6));
        // Height 6 was decided by the old set; 7 by the new one.
        assert_eq!(state.validators_at(6).map(|s| s.len()), Some(2));
        assert_eq!(state.validators_at(7).map(|s| s.len()), Some(3));
        assert_eq!(state.next_validators().len(), 3);
        assert!(state.validators_at(8).is_none());
    }

    #[test]
    fn keeps_a_bounded_window_of_past_sets() {
        let mut state = ChainState::new(tip(0), set(&[1]));
        let last = 3 * KEPT_VALIDATOR_SETS;
        for h in 1..=last {
            state.advance(tip(h), set(&[1])).expect("next height");
        }
        assert_eq!(state.past.len() as u64, KEPT_VALIDATOR_SETS);
        assert!(state.validators_at(last - KEPT_VALIDATOR_SETS).is_none());
        assert!(state
            .validators_at(last - KEPT_VALIDATOR_SETS + 1)
            .is_some());
        assert!(state.validators_at(last + 1).is_some());
    }
}
