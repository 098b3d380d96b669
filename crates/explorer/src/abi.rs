//! Event decoding with the ABIs the repository ships (`contracts/artifacts`): the system
//! contracts' interfaces and the example contracts, built in at compile time. A log whose
//! first topic matches no known event is shown raw.

use alloy_dyn_abi::{DynSolValue, EventExt};
use alloy_json_abi::{Event, JsonAbi};
use alloy_primitives::{LogData, B256};
use std::collections::HashMap;

/// (contract name, artifact JSON) of every ABI the explorer knows.
const ARTIFACTS: &[(&str, &str)] = &[
    (
        "ITrellisGovernance",
        include_str!("../../../contracts/artifacts/ITrellisGovernance.json"),
    ),
    (
        "ITrellisEvidence",
        include_str!("../../../contracts/artifacts/ITrellisEvidence.json"),
    ),
    (
        "ITrellisIdentifiers",
        include_str!("../../../contracts/artifacts/ITrellisIdentifiers.json"),
    ),
    (
        "ITrellisDids",
        include_str!("../../../contracts/artifacts/ITrellisDids.json"),
    ),
    (
        "ITrellisLightClients",
        include_str!("../../../contracts/artifacts/ITrellisLightClients.json"),
    ),
    (
        "ITrellisCrossChain",
        include_str!("../../../contracts/artifacts/ITrellisCrossChain.json"),
    ),
    (
        "TrellisToken",
        include_str!("../../../contracts/artifacts/TrellisToken.json"),
    ),
    (
        "Traceability",
        include_str!("../../../contracts/artifacts/Traceability.json"),
    ),
    (
        "CertifiedShipments",
        include_str!("../../../contracts/artifacts/CertifiedShipments.json"),
    ),
    (
        "OrgNotes",
        include_str!("../../../contracts/artifacts/OrgNotes.json"),
    ),
];

/// A log decoded against a known event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedLog {
    /// The contract whose ABI declares the event.
    pub contract: &'static str,
    pub name: String,
    /// Parameter names and values, in declaration order.
    pub args: Vec<(String, String)>,
}

/// Known events by their first topic.
pub struct Events {
    by_topic: HashMap<B256, Vec<(&'static str, Event)>>,
}

impl Events {
    /// Parses the built-in artifacts. An artifact that does not parse is skipped (and logged):
    /// its events then show raw.
    pub fn load() -> Events {
        let mut by_topic: HashMap<B256, Vec<(&'static str, Event)>> = HashMap::new();
        for (contract, artifact) in ARTIFACTS {
            let abi = serde_json::from_str::<serde_json::Value>(artifact)
                .ok()
                .and_then(|a| serde_json::from_value::<JsonAbi>(a["abi"].clone()).ok());
            let Some(abi) = abi else {
                tracing::warn!(contract, "explorer: cannot read the contract's ABI");
                continue;
            };
            for event in abi.events() {
                let entry = by_topic.entry(event.selector()).or_default();
                // Interfaces repeat events (ERC-20's Transfer in several contracts): keep one.
                if !entry
                    .iter()
                    .any(|(_, e)| e.signature() == event.signature())
                {
                    entry.push((contract, event.clone()));
                }
            }
        }
        Events { by_topic }
    }

    /// The event `log` is, with its arguments, if a known ABI declares it.
    pub fn decode(&self, log: &LogData) -> Option<DecodedLog> {
        let topic = log.topics().first()?;
        self.by_topic
            .get(topic)?
            .iter()
            .find_map(|(contract, event)| {
                let decoded = event.decode_log(log).ok()?;
                let (mut indexed, mut body) =
                    (decoded.indexed.into_iter(), decoded.body.into_iter());
                let args = event
                    .inputs
                    .iter()
                    .map(|input| {
                        let value = if input.indexed {
                            indexed.next()
                        } else {
                            body.next()
                        };
                        (
                            input.name.clone(),
                            value.as_ref().map(show).unwrap_or_default(),
                        )
                    })
                    .collect();
                Some(DecodedLog {
                    contract,
                    name: event.name.clone(),
                    args,
                })
            })
    }
}

/// A value as a person reads it: decimal numbers, checksummed addresses, 0x-hex bytes.
pub fn show(value: &DynSolValue) -> String {
    match value {
        DynSolValue::Bool(b) => b.to_string(),
        DynSolValue::Int(i, _) => i.to_string(),
        DynSolValue::Uint(u, _) => u.to_string(),
        DynSolValue::FixedBytes(w, size) => {
            format!("0x{}", alloy_primitives::hex::encode(&w[..*size]))
        }
        DynSolValue::Address(a) => a.to_checksum(None),
        DynSolValue::Function(f) => f.to_string(),
        DynSolValue::Bytes(b) => format!("0x{}", alloy_primitives::hex::encode(b)),
        DynSolValue::String(s) => s.clone(),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) | DynSolValue::Tuple(items) => {
            format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        }
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, U256};

    #[test]
    fn every_artifact_parses_and_events_decode_with_their_names() {
        let events = Events::load();
        assert!(events.by_topic.len() >= 10, "{}", events.by_topic.len());
        // ERC-20 Transfer(address indexed from, address indexed to, uint256 value).
        let topic = alloy_primitives::keccak256("Transfer(address,address,uint256)");
        let from = Address::repeat_byte(1);
        let to = Address::repeat_byte(2);
        let log = LogData::new(
            vec![topic, from.into_word(), to.into_word()],
            U256::from(42u64).to_be_bytes::<32>().to_vec().into(),
        )
        .expect("log");
        let decoded = events.decode(&log).expect("a known event");
        assert_eq!(decoded.name, "Transfer");
        assert_eq!(
            decoded.args,
            [
                ("from".to_string(), from.to_checksum(None)),
                ("to".to_string(), to.to_checksum(None)),
                ("value".to_string(), "42".to_string()),
            ]
        );
        let unknown = LogData::new(vec![B256::repeat_byte(9)], Default::default()).expect("log");
        assert!(events.decode(&unknown).is_none());
    }
}
