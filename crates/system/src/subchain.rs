//! A sub-chain's genesis, derived from the main chain's governance state.
//!
//! A `createSubchain` proposal names the sub-chain's id, name, member organisations and
//! validators. It takes effect at height `createdAt`, i.e. it is applied at the end of block
//! `createdAt − 1`, and the genesis is a function of the governance state after that block
//! and of that block's header, nothing else:
//!
//! - the chain id and, from the header, the timestamp and block gas limit;
//! - the validators the proposal named, each with the organisation its node belongs to;
//! - organisations: the members in the order the proposal listed them, then every
//!   supervisor organisation (a regulator sees every chain), each with its name, admins,
//!   roles and accounts;
//! - every other registered node of those organisations, with its main-chain role (a
//!   main-chain validator that does not validate the sub-chain joins as a full node);
//! - the main chain's voting threshold and proposal lifetime;
//! - one light client: the main chain, trusted from that block (its hash, state root and
//!   timestamp) with the validators that decide the block after it.
//!
//! Every node derives it when it commits that block, from its own state, and keeps the
//! governance slots it read with their Merkle proofs ([`trellis_light::StateWitness`] in the
//! node). Anyone can re-run [`derive_genesis`] over the proven slots and compare.

use alloy_primitives::B256;
use trellis_primitives::{
    ChainId, Genesis, GenesisClientValidator, GenesisGovernance, GenesisLightClient, GenesisNode,
    GenesisOrganization, GenesisValidator, Header, NodeRole, OrgId, DEFAULT_MAX_TRANSACTION_GAS,
};

use crate::governance::{Governance, Subchain};
use crate::kv::{SlotError, Slots};

/// Why a sub-chain's genesis cannot be derived.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error("no sub-chain {0} in the main chain's governance state")]
    NoSubchain(u64),
    #[error(
        "sub-chain {chain_id} took effect at height {created_at}: its genesis is derived from \
         block {}, not {height}", created_at.saturating_sub(1)
    )]
    WrongHeight {
        chain_id: u64,
        created_at: u64,
        height: u64,
    },
    #[error("sub-chain {0} has the main chain's id")]
    SameChainId(u64),
    #[error("governance state: {0}")]
    State(#[from] SlotError),
    #[error("the state names {what} that does not exist")]
    Missing { what: String },
}

/// The genesis of sub-chain `chain_id`, from the governance state after block `main` (the
/// block whose end applied its creation).
pub fn derive_genesis<S: Slots>(
    slots: &mut S,
    chain_id: u64,
    main: &Header,
) -> Result<Genesis, DeriveError> {
    let mut gov = Governance::new(slots);
    let record: Subchain = gov
        .subchain(chain_id)?
        .ok_or(DeriveError::NoSubchain(chain_id))?;
    if record.created_at != main.height + 1 {
        return Err(DeriveError::WrongHeight {
            chain_id,
            created_at: record.created_at,
            height: main.height,
        });
    }
    if chain_id == main.chain_id {
        return Err(DeriveError::SameChainId(chain_id));
    }
    let config = gov.config()?;

    // Members as the proposal listed them, then every supervisor.
    let mut orgs: Vec<OrgId> = record.members.clone();
    let count = gov.organization_count()?;
    for id in gov.organization_ids(0, count)? {
        if !orgs.contains(&id) && gov.is_supervisor(&id)? {
            orgs.push(id);
        }
    }
    let validator_keys: Vec<B256> = record.validators.iter().map(|v| v.public_key).collect();
    let mut organizations = Vec::with_capacity(orgs.len());
    let mut nodes = Vec::new();
    for id in &orgs {
        let org = gov.organization(id)?.ok_or_else(|| DeriveError::Missing {
            what: format!("organisation {id}"),
        })?;
        let listed = gov.organization_account_count(id)?;
        let accounts = gov
            .organization_accounts(id, 0, listed)?
            .into_iter()
            .filter(|a| !org.admins.contains(a))
            .collect();
        organizations.push(GenesisOrganization {
            id: id.to_string(),
            name: org.name,
            admins: org.admins,
            // Supervisors that are not members stay supervisors only.
            member: record.members.contains(id),
            supervisor: org.supervisor,
            accounts,
        });
        for key in gov.organization_nodes(id)? {
            if validator_keys.contains(&key) {
                continue;
            }
            let node = gov.node(&key)?.ok_or_else(|| DeriveError::Missing {
                what: format!("node {key}"),
            })?;
            nodes.push(GenesisNode {
                public_key: key,
                org: id.to_string(),
                role: match node.role {
                    NodeRole::Validator => NodeRole::Full,
                    other => other,
                },
            });
        }
    }
    let mut validators = Vec::with_capacity(record.validators.len());
    for v in &record.validators {
        let node = gov
            .node(&v.public_key)?
            .ok_or_else(|| DeriveError::Missing {
                what: format!("validator node {}", v.public_key),
            })?;
        validators.push(GenesisValidator {
            name: String::new(),
            public_key: v.public_key,
            power: v.power,
            org: node.org.to_string(),
        });
    }
    let main_validators = gov
        .validators()?
        .into_iter()
        .map(|(public_key, power)| GenesisClientValidator { public_key, power })
        .collect();
    Ok(Genesis {
        chain_id: ChainId(chain_id),
        timestamp_ms: main.timestamp_ms,
        gas_limit: main.gas_limit,
        max_transaction_gas: DEFAULT_MAX_TRANSACTION_GAS.min(main.gas_limit),
        validators,
        governance: GenesisGovernance {
            organizations,
            nodes,
            threshold: config.threshold,
            proposal_ttl_blocks: config.proposal_ttl,
        },
        alloc: Default::default(),
        light_clients: vec![GenesisLightClient {
            chain_id: ChainId(main.chain_id),
            root_height: main.height,
            root_hash: main.hash(),
            root_state_root: main.state_root,
            root_timestamp_ms: main.timestamp_ms,
            validators: main_validators,
            // The main chain vouches for the sub-chains this one does not follow.
            hub: true,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::{Action, SubchainValidator};
    use crate::kv::MapSlots;
    use alloy_primitives::{Address, Bloom};

    fn key(seed: u8) -> B256 {
        B256::from(
            ed25519_consensus::SigningKey::from([seed; 32])
                .verification_key()
                .to_bytes(),
        )
    }

    /// Members a (validator 1, full node 3, accounts) and b (validator 2), supervisor reg.
    fn main_genesis() -> Genesis {
        Genesis::from_json(&format!(
            r#"{{"chainId": 1, "validators": [
                {{"publicKey": "{}", "power": 1, "org": "a"}},
                {{"publicKey": "{}", "power": 1, "org": "b"}}],
              "governance": {{"organizations": [
                {{"id": "a", "name": "A Ltd", "admins": ["{}"], "accounts": ["{}"]}},
                {{"id": "b", "admins": ["{}"]}},
                {{"id": "reg", "admins": ["{}"], "member": false, "supervisor": true}}],
                "nodes": [{{"publicKey": "{}", "org": "a", "role": "full"}}],
                "proposalTtlBlocks": 50}}}}"#,
            key(1),
            key(2),
            Address::repeat_byte(0xa1),
            Address::repeat_byte(0xa2),
            Address::repeat_byte(0xb1),
            Address::repeat_byte(0xc1),
            key(3),
        ))
        .expect("genesis")
    }

    fn header(height: u64) -> Header {
        Header {
            chain_id: 1,
            height,
            parent_hash: B256::repeat_byte(7),
            timestamp_ms: 1_700_000_000_000,
            proposer: Address::ZERO,
            transactions_root: B256::ZERO,
            receipts_root: B256::ZERO,
            state_root: B256::repeat_byte(9),
            logs_bloom: Bloom::ZERO,
            gas_limit: 50_000_000,
            gas_used: 0,
            validators_hash: B256::ZERO,
            next_validators_hash: None,
        }
    }

    #[test]
    fn the_genesis_carries_members_supervisors_their_nodes_and_the_main_chain_client() {
        let mut slots = MapSlots::empty();
        Governance::new(&mut slots)
            .init(&main_genesis())
            .expect("init");
        let create = Action::CreateSubchain {
            chain_id: 77,
            name: "logistics".into(),
            members: vec![OrgId::parse("a").expect("id")],
            validators: vec![SubchainValidator {
                public_key: key(1),
                power: 3,
            }],
        };
        let effects = Governance::new(&mut slots)
            .apply(&create, 11)
            .expect("apply");
        assert_eq!(effects.subchains_created, vec![77]);

        let genesis = derive_genesis(&mut slots, 77, &header(10)).expect("derive");
        assert_eq!(genesis.chain_id, ChainId(77));
        assert_eq!(genesis.timestamp_ms, 1_700_000_000_000);
        assert_eq!(genesis.gas_limit, 50_000_000);
        assert_eq!(genesis.validators.len(), 1);
        assert_eq!(genesis.validators[0].public_key, key(1));
        assert_eq!(genesis.validators[0].power, 3);
        assert_eq!(genesis.validators[0].org, "a");
        let orgs: Vec<(&str, bool, bool)> = genesis
            .governance
            .organizations
            .iter()
            .map(|o| (o.id.as_str(), o.member, o.supervisor))
            .collect();
        assert_eq!(orgs, vec![("a", true, false), ("reg", false, true)]);
        let a = &genesis.governance.organizations[0];
        assert_eq!(a.name, "A Ltd");
        assert_eq!(a.admins, vec![Address::repeat_byte(0xa1)]);
        assert_eq!(a.accounts, vec![Address::repeat_byte(0xa2)]);
        // a's full node joins; b (not a member) does not.
        assert_eq!(genesis.governance.nodes.len(), 1);
        assert_eq!(genesis.governance.nodes[0].public_key, key(3));
        assert_eq!(genesis.governance.proposal_ttl_blocks, 50);
        let client = &genesis.light_clients[0];
        assert_eq!(client.chain_id, ChainId(1));
        assert_eq!(client.root_height, 10);
        assert_eq!(client.root_hash, header(10).hash());
        assert_eq!(client.root_state_root, B256::repeat_byte(9));
        assert_eq!(client.validators.len(), 2);

        // A chain can start from it.
        let mut fresh = MapSlots::empty();
        Governance::new(&mut fresh)
            .init(&genesis)
            .expect("sub-chain genesis");
        // The same state derives the same genesis; another block or id does not.
        assert_eq!(
            derive_genesis(&mut slots, 77, &header(10)).expect("again"),
            genesis
        );
        assert!(matches!(
            derive_genesis(&mut slots, 77, &header(11)),
            Err(DeriveError::WrongHeight { .. })
        ));
        assert!(matches!(
            derive_genesis(&mut slots, 78, &header(10)),
            Err(DeriveError::NoSubchain(78))
        ));
    }

    #[test]
    fn a_sub_chain_with_the_main_chains_id_has_no_genesis() {
        let mut slots = MapSlots::empty();
        Governance::new(&mut slots)
            .init(&main_genesis())
            .expect("init");
        let create = Action::CreateSubchain {
            chain_id: 1,
            name: "same".into(),
            members: vec![OrgId::parse("b").expect("id")],
            validators: vec![SubchainValidator {
                public_key: key(2),
                power: 1,
            }],
        };
        Governance::new(&mut slots)
            .apply(&create, 5)
            .expect("apply");
        assert!(matches!(
            derive_genesis(&mut slots, 1, &header(4)),
            Err(DeriveError::SameChainId(1))
        ));
    }
}
