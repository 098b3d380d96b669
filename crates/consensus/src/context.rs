//! Trellis's Malachite `Context`: heights, validators, proposals, votes and proposal parts.
//!
//! The consensus value is a block hash; the block itself travels as a stream of proposal
//! parts and is checked (executed) by the application before the node votes for it.

use alloy_primitives::{Address, B256};
use bytes::Bytes;
use malachitebft_core_types::{
    self as mtypes, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use malachitebft_signing_ed25519::{Ed25519, PublicKey, Signature};
use std::fmt;
use std::sync::Arc;

/// The consensus height (block number). The first block is height 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mtypes::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's consensus address: the last 20 bytes of keccak-256 of its Ed25519 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidatorAddress(pub Address);

impl ValidatorAddress {
    pub fn from_public_key(key: &PublicKey) -> Self {
        ValidatorAddress(trellis_light::validator_address(key.as_bytes()))
    }
}

impl fmt::Display for ValidatorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mtypes::Address for ValidatorAddress {}

/// The value consensus decides on: the hash of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockHash(pub B256);

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mtypes::Value for BlockHash {
    type Id = BlockHash;

    fn id(&self) -> BlockHash {
        *self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub address: ValidatorAddress,
    pub public_key: PublicKey,
    pub voting_power: VotingPower,
}

impl Validator {
    pub fn new(public_key: PublicKey, voting_power: VotingPower) -> Self {
        Validator {
            address: ValidatorAddress::from_public_key(&public_key),
            public_key,
            voting_power,
        }
    }
}

impl mtypes::Validator<TrellisContext> for Validator {
    fn address(&self) -> &ValidatorAddress {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn voting_power(&self) -> VotingPower {
        self.voting_power
    }
}

/// A non-empty validator set, ordered by address so every node agrees on proposer order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Arc<Vec<Validator>>,
}

pub use trellis_light::ValidatorSetError;

impl ValidatorSet {
    /// A set of `validators` under the light client's rules (`trellis_light::ValidatorSet`:
    /// non-empty, distinct, non-zero power that does not overflow), ordered by address.
    pub fn new(validators: impl IntoIterator<Item = Validator>) -> Result<Self, ValidatorSetError> {
        let mut validators: Vec<_> = validators.into_iter().collect();
        trellis_light::ValidatorSet::from_keys(
            validators
                .iter()
                .map(|v| (B256::from(*v.public_key.as_bytes()), v.voting_power)),
        )?;
        validators.sort_by_key(|v| v.address);
        Ok(ValidatorSet {
            validators: Arc::new(validators),
        })
    }

    /// A set from raw Ed25519 public keys and their powers (genesis, governance state).
    pub fn from_keys(
        members: impl IntoIterator<Item = (B256, u64)>,
    ) -> Result<Self, ValidatorSetError> {
        let validators = members
            .into_iter()
            .map(|(key, power)| {
                trellis_crypto::parse_public_key(key.0)
                    .map(|k| Validator::new(k, power))
                    .map_err(|_| ValidatorSetError::InvalidKey(key))
            })
            .collect::<Result<Vec<_>, _>>()?;
        ValidatorSet::new(validators)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Validator> {
        self.validators.iter()
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn get(&self, address: &ValidatorAddress) -> Option<&Validator> {
        self.validators
            .binary_search_by_key(address, |v| v.address)
            .ok()
            .map(|i| &self.validators[i])
    }

    /// keccak-256 over (public key ‖ power) of every validator in order; goes into headers.
    pub fn hash(&self) -> B256 {
        trellis_light::validators::validators_hash(
            self.validators
                .iter()
                .map(|v| (*v.public_key.as_bytes(), v.voting_power)),
        )
    }
}

impl mtypes::ValidatorSet<TrellisContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }

    fn total_voting_power(&self) -> VotingPower {
        self.validators.iter().map(|v| v.voting_power).sum()
    }

    fn get_by_address(&self, address: &ValidatorAddress) -> Option<&Validator> {
        self.get(address)
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: BlockHash,
    pub pol_round: Round,
    pub validator_address: ValidatorAddress,
}

impl mtypes::Proposal<TrellisContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &BlockHash {
        &self.value
    }

    fn take_value(self) -> BlockHash {
        self.value
    }

    fn pol_round(&self) -> Round {
        self.pol_round
    }

    fn validator_address(&self) -> &ValidatorAddress {
        &self.validator_address
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vote {
    pub typ: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<BlockHash>,
    pub validator_address: ValidatorAddress,
    pub extension: Option<SignedExtension<TrellisContext>>,
}

impl Vote {
    pub fn new(
        typ: VoteType,
        height: Height,
        round: Round,
        value: NilOrVal<BlockHash>,
        validator_address: ValidatorAddress,
    ) -> Vote {
        Vote {
            typ,
            height,
            round,
            value,
            validator_address,
            extension: None,
        }
    }
}

impl mtypes::Vote<TrellisContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &NilOrVal<BlockHash> {
        &self.value
    }

    fn take_value(self) -> NilOrVal<BlockHash> {
        self.value
    }

    fn vote_type(&self) -> VoteType {
        self.typ
    }

    fn validator_address(&self) -> &ValidatorAddress {
        &self.validator_address
    }

    fn extension(&self) -> Option<&SignedExtension<TrellisContext>> {
        self.extension.as_ref()
    }

    fn take_extension(&mut self) -> Option<SignedExtension<TrellisContext>> {
        self.extension.take()
    }

    fn extend(self, extension: SignedExtension<TrellisContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// One piece of a streamed block proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalPart {
    Init {
        height: Height,
        round: Round,
        pol_round: Round,
        proposer: ValidatorAddress,
    },
    /// A chunk of the RLP-encoded block.
    Data(Bytes),
    /// The proposer's signature over the whole stream (see [`crate::signing::proposal_digest`]).
    Fin(Signature),
}

impl mtypes::ProposalPart<TrellisContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. })
    }

    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// The Trellis consensus context. Carries the chain id so that signatures made for one
/// chain can never be replayed on another.
#[derive(Clone, Debug)]
pub struct TrellisContext {
    pub chain_id: u64,
}

impl mtypes::Context for TrellisContext {
    type Address = ValidatorAddress;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Value = BlockHash;
    type Vote = Vote;
    type Extension = Bytes;
    type SigningScheme = Ed25519;
    type Timeouts = mtypes::LinearTimeouts;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let n = validator_set.validators.len() as u64;
        let round = round.as_u32().unwrap_or(0) as u64;
        let index = (height.0.saturating_sub(1).wrapping_add(round)) % n.max(1);
        &validator_set.validators[index as usize]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockHash,
        pol_round: Round,
        address: ValidatorAddress,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            validator_address: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: ValidatorAddress,
    ) -> Vote {
        Vote::new(VoteType::Prevote, height, round, value_id, address)
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: ValidatorAddress,
    ) -> Vote {
        Vote::new(VoteType::Precommit, height, round, value_id, address)
    }
}

/// Ed25519 signatures are 64 bytes.
pub fn signature_from_bytes(bytes: &[u8]) -> Option<Signature> {
    <[u8; 64]>::try_from(bytes).ok().map(Signature::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use malachitebft_core_types::Context as _;
    use trellis_crypto::NodeKey;

    #[test]
    fn proposer_rotates_with_height_and_round() {
        let keys: Vec<_> = (0..4).map(|_| NodeKey::generate()).collect();
        let set = ValidatorSet::new(keys.iter().map(|k| Validator::new(k.public(), 1)))
            .expect("valid set");
        let ctx = TrellisContext { chain_id: 1 };
        let p1 = ctx.select_proposer(&set, Height(1), Round::new(0)).address;
        let p2 = ctx.select_proposer(&set, Height(2), Round::new(0)).address;
        let p1r1 = ctx.select_proposer(&set, Height(1), Round::new(1)).address;
        assert_ne!(p1, p2);
        assert_eq!(p2, p1r1);
    }

    #[test]
    fn invalid_sets_are_rejected() {
        assert!(matches!(
            ValidatorSet::new([]),
            Err(ValidatorSetError::Empty)
        ));
        let key = NodeKey::generate();
        let dup = [
            Validator::new(key.public(), 1),
            Validator::new(key.public(), 1),
        ];
        assert!(matches!(
            ValidatorSet::new(dup),
            Err(ValidatorSetError::Duplicate(_))
        ));
        assert!(matches!(
            ValidatorSet::new([Validator::new(key.public(), 0)]),
            Err(ValidatorSetError::ZeroPower(_))
        ));
    }
}
