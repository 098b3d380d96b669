//! Genesis: the chain's id, its first validators and its pre-funded accounts.

use alloy_primitives::{Address, Bytes, B256, U256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::ChainId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Genesis {
    pub chain_id: ChainId,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub timestamp_ms: u64,
    #[serde(default = "default_gas_limit")]
    pub gas_limit: u64,
    pub validators: Vec<GenesisValidator>,
    #[serde(default)]
    pub alloc: BTreeMap<Address, GenesisAccount>,
}

fn default_gas_limit() -> u64 {
    1_000_000_000
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisValidator {
    /// Human-readable label, e.g. the operator organisation.
    #[serde(default)]
    pub name: String,
    /// Ed25519 public key of the validator's node key.
    pub public_key: B256,
    pub power: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisAccount {
    #[serde(default)]
    pub balance: U256,
    #[serde(default)]
    pub nonce: u64,
    #[serde(default, skip_serializing_if = "<[u8]>::is_empty")]
    pub code: Bytes,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<B256, B256>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid genesis JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("genesis must list at least one validator")]
    NoValidators,
    #[error("validator {0} has zero voting power")]
    ZeroPower(B256),
    #[error("validator {0} is listed twice")]
    DuplicateValidator(B256),
    #[error("chain id 0 is not allowed")]
    ZeroChainId,
}

impl Genesis {
    pub fn from_json(json: &str) -> Result<Genesis, GenesisError> {
        let genesis: Genesis = serde_json::from_str(json)?;
        genesis.validate()?;
        Ok(genesis)
    }

    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let json = std::fs::read_to_string(path).map_err(|source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&json)
    }

    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.chain_id.0 == 0 {
            return Err(GenesisError::ZeroChainId);
        }
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &self.validators {
            if v.power == 0 {
                return Err(GenesisError::ZeroPower(v.public_key));
            }
            if !seen.insert(v.public_key) {
                return Err(GenesisError::DuplicateValidator(v.public_key));
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genesis always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let json = r#"{
            "chainId": 1337,
            "validators": [{"publicKey": "0x1111111111111111111111111111111111111111111111111111111111111111", "power": 1}],
            "alloc": {"0x00000000000000000000000000000000000000aa": {"balance": "0x10"}}
        }"#;
        let g = Genesis::from_json(json).expect("valid");
        assert_eq!(g.chain_id, ChainId(1337));
        assert_eq!(g.gas_limit, default_gas_limit());
        assert_eq!(
            g.alloc[&Address::with_last_byte(0xaa)].balance,
            U256::from(16)
        );
        assert_eq!(Genesis::from_json(&g.to_json()).expect("roundtrip"), g);
    }

    #[test]
    fn rejects_bad_genesis() {
        let no_validators = r#"{"chainId": 5, "validators": []}"#;
        assert!(matches!(
            Genesis::from_json(no_validators),
            Err(GenesisError::NoValidators)
        ));
        let unknown_field = r#"{"chainId": 5, "validators": [], "bogus": 1}"#;
        assert!(matches!(
            Genesis::from_json(unknown_field),
            Err(GenesisError::Json(_))
        ));
        let zero = r#"{"chainId": 5, "validators": [{"publicKey": "0x1111111111111111111111111111111111111111111111111111111111111111", "power": 0}]}"#;
        assert!(matches!(
            Genesis::from_json(zero),
            Err(GenesisError::ZeroPower(_))
        ));
    }
}
