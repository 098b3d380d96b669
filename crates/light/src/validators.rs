//! Validator sets as light clients hold them.

use alloy_primitives::{keccak256, Address, B256};
use ed25519_consensus::VerificationKey;

/// The address of the validator whose Ed25519 public key is `key`: the last 20 bytes of
/// its keccak-256.
pub fn validator_address(key: &[u8; 32]) -> Address {
    Address::from_slice(&keccak256(key)[12..])
}

/// One validator: its address, key and voting power.
#[derive(Clone, Debug)]
pub struct LightValidator {
    pub address: Address,
    pub key: VerificationKey,
    pub power: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidatorSetError {
    #[error("a validator set needs at least one validator")]
    Empty,
    #[error("validator {0} appears twice")]
    Duplicate(Address),
    #[error("validator {0} has zero voting power")]
    ZeroPower(Address),
    #[error("validator key {0} is not a valid Ed25519 public key")]
    InvalidKey(B256),
    #[error("the set's voting power overflows")]
    PowerOverflow,
}

/// How many parsed sets [`ValidatorSet::from_keys_cached`] keeps.
pub const CACHED_SETS: usize = 32;

/// A non-empty set of validators with distinct addresses and non-zero powers, ordered by
/// address (the order the engine uses, and the order [`ValidatorSet::hash`] commits to).
#[derive(Clone, Debug)]
pub struct ValidatorSet {
    validators: Vec<LightValidator>,
    total: u64,
}

impl ValidatorSet {
    /// A set from raw Ed25519 public keys and their powers (genesis, governance state).
    pub fn from_keys(
        members: impl IntoIterator<Item = (B256, u64)>,
    ) -> Result<ValidatorSet, ValidatorSetError> {
        let mut validators = members
            .into_iter()
            .map(|(key, power)| {
                let parsed = VerificationKey::try_from(key.0)
                    .map_err(|_| ValidatorSetError::InvalidKey(key))?;
                Ok(LightValidator {
                    address: validator_address(&key.0),
                    key: parsed,
                    power,
                })
            })
            .collect::<Result<Vec<_>, ValidatorSetError>>()?;
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        validators.sort_by_key(|v| v.address);
        for pair in validators.windows(2) {
            if pair[0].address == pair[1].address {
                return Err(ValidatorSetError::Duplicate(pair[0].address));
            }
        }
        if let Some(v) = validators.iter().find(|v| v.power == 0) {
            return Err(ValidatorSetError::ZeroPower(v.address));
        }
        let total = validators
            .iter()
            .try_fold(0u64, |sum, v| sum.checked_add(v.power))
            .ok_or(ValidatorSetError::PowerOverflow)?;
        Ok(ValidatorSet { validators, total })
    }

    /// [`ValidatorSet::from_keys`], remembered: a light client parses the set it trusts for
    /// every header it checks, and parsing a key (a point decompression) costs about a third
    /// of a signature check. The last [`CACHED_SETS`] sets parsed are kept, keyed by a hash of
    /// exactly the keys and powers given, so the answer is the function's, only sooner.
    pub fn from_keys_cached(members: &[(B256, u64)]) -> Result<ValidatorSet, ValidatorSetError> {
        static CACHE: std::sync::Mutex<Vec<(B256, ValidatorSet)>> =
            std::sync::Mutex::new(Vec::new());
        let mut input = Vec::with_capacity(members.len() * 40);
        for (key, power) in members {
            input.extend_from_slice(key.as_slice());
            input.extend_from_slice(&power.to_be_bytes());
        }
        let id = keccak256(&input);
        let cached = {
            let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .iter()
                .find(|(k, _)| *k == id)
                .map(|(_, set)| set.clone())
        };
        if let Some(set) = cached {
            return Ok(set);
        }
        let set = ValidatorSet::from_keys(members.iter().copied())?;
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHED_SETS {
            cache.remove(0);
        }
        cache.push((id, set.clone()));
        Ok(set)
    }

    /// The validators, ordered by address.
    pub fn iter(&self) -> impl Iterator<Item = &LightValidator> {
        self.validators.iter()
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Never true: a set has at least one validator.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn get(&self, address: &Address) -> Option<&LightValidator> {
        self.validators
            .binary_search_by_key(address, |v| v.address)
            .ok()
            .map(|i| &self.validators[i])
    }

    pub fn total_power(&self) -> u64 {
        self.total
    }

    /// The set's commitment in headers (`validatorsHash`): keccak-256 over each validator's
    /// public key and big-endian power, in address order.
    pub fn hash(&self) -> B256 {
        validators_hash(self.validators.iter().map(|v| (v.key.to_bytes(), v.power)))
    }
}

/// keccak-256 over `(public key ‖ be64(power))` of each validator, in the order given (the
/// caller's order must be by address). The one definition of `validatorsHash`.
pub fn validators_hash(validators: impl IntoIterator<Item = ([u8; 32], u64)>) -> B256 {
    let mut buf = Vec::new();
    for (key, power) in validators {
        buf.extend_from_slice(&key);
        buf.extend_from_slice(&power.to_be_bytes());
    }
    keccak256(&buf)
}

/// The `validatorsHash` of validators as governance lists them (node key, power), in any
/// order: ordered by address first, as a set is.
pub fn members_hash(members: &[(B256, u64)]) -> B256 {
    let mut ordered: Vec<(Address, [u8; 32], u64)> = members
        .iter()
        .map(|(key, power)| (validator_address(&key.0), key.0, *power))
        .collect();
    ordered.sort_by_key(|m| m.0);
    validators_hash(ordered.into_iter().map(|(_, key, power)| (key, power)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_set_is_the_parsed_one_and_refusals_are_not_remembered() {
        let members: Vec<(B256, u64)> = (1..=4).map(|i| (key(i), u64::from(i))).collect();
        let parsed = ValidatorSet::from_keys(members.iter().copied()).expect("set");
        for _ in 0..2 {
            let cached = ValidatorSet::from_keys_cached(&members).expect("set");
            assert_eq!(cached.hash(), parsed.hash());
            assert_eq!(cached.total_power(), parsed.total_power());
        }
        // Same keys, other powers: another set.
        let heavier: Vec<(B256, u64)> = members.iter().map(|(k, p)| (*k, p + 1)).collect();
        assert_ne!(
            ValidatorSet::from_keys_cached(&heavier)
                .expect("set")
                .hash(),
            parsed.hash()
        );
        let bad = vec![(key(1), 0)];
        for _ in 0..2 {
            assert!(ValidatorSet::from_keys_cached(&bad).is_err());
        }
    }

    fn key(seed: u8) -> B256 {
        B256::from(
            ed25519_consensus::SigningKey::from([seed; 32])
                .verification_key()
                .to_bytes(),
        )
    }

    #[test]
    fn sets_are_ordered_by_address_and_refuse_bad_members() {
        let set = ValidatorSet::from_keys([(key(1), 5), (key(2), 7), (key(3), 1)]).expect("set");
        let addresses: Vec<Address> = set.iter().map(|v| v.address).collect();
        let mut sorted = addresses.clone();
        sorted.sort();
        assert_eq!(addresses, sorted);
        assert_eq!(set.total_power(), 13);
        assert_eq!(
            set.get(&validator_address(&key(2).0)).map(|v| v.power),
            Some(7)
        );
        // The hash does not depend on the order the members were given in.
        let again = ValidatorSet::from_keys([(key(3), 1), (key(1), 5), (key(2), 7)]).expect("set");
        assert_eq!(set.hash(), again.hash());
        assert_eq!(
            members_hash(&[(key(2), 7), (key(3), 1), (key(1), 5)]),
            set.hash()
        );
        assert_ne!(
            set.hash(),
            ValidatorSet::from_keys([(key(3), 2), (key(1), 5), (key(2), 7)])
                .expect("set")
                .hash()
        );

        assert_eq!(
            ValidatorSet::from_keys([]).expect_err("empty"),
            ValidatorSetError::Empty
        );
        assert!(matches!(
            ValidatorSet::from_keys([(key(1), 1), (key(1), 2)]),
            Err(ValidatorSetError::Duplicate(_))
        ));
        assert!(matches!(
            ValidatorSet::from_keys([(key(1), 0)]),
            Err(ValidatorSetError::ZeroPower(_))
        ));
        assert!(matches!(
            ValidatorSet::from_keys([(key(1), u64::MAX), (key(2), 1)]),
            Err(ValidatorSetError::PowerOverflow)
        ));
    }
}
