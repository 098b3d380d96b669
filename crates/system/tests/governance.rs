//! The governance contract driven through its ABI: proposals, votes, thresholds, effective
//! heights, and a matrix of unauthorised actions that must each be refused with a clear
//! reason and leave state untouched.

use alloy_primitives::{Address, B256};
use alloy_sol_types::{SolCall, SolValue};
use trellis_primitives::Genesis;
use trellis_system::governance::abi;
use trellis_system::{
    CallContext, CallError, CallOutput, Governance, MapSlots, PermissionError, GOVERNANCE_ADDRESS,
};

fn admin(i: u8) -> Address {
    Address::with_last_byte(0xa0 + i)
}
const USER: Address = Address::repeat_byte(0x11);
const REGULATOR: Address = Address::repeat_byte(0x22);
const STRANGER: Address = Address::repeat_byte(0x33);

fn key(seed: u8) -> B256 {
    B256::from(
        ed25519_consensus::SigningKey::from([seed; 32])
            .verification_key()
            .to_bytes(),
    )
}

/// A proposal to create sub-chain `id` of `members`, validated by `(key seed, power)`s.
fn subchain(
    id: u64,
    name: &str,
    members: &[&str],
    validators: &[(u8, u64)],
) -> abi::proposeCreateSubchainCall {
    abi::proposeCreateSubchainCall {
        chainId: id,
        name: name.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        validators: validators
            .iter()
            .map(|(k, power)| abi::SubchainValidator {
                publicKey: key(*k),
                power: *power,
            })
            .collect(),
        effectiveHeight: 0,
    }
}

/// Four member organisations org0..org3 (one validator each), a supervisor, and USER in org0.
fn genesis(supervisor: bool) -> Genesis {
    let validators: Vec<String> = (0..4)
        .map(|i| {
            format!(
                r#"{{"publicKey": "{}", "power": 1, "org": "org{i}"}}"#,
                key(i)
            )
        })
        .collect();
    let mut orgs: Vec<String> = (0..4)
        .map(|i| {
            let accounts = if i == 0 {
                format!(r#", "accounts": ["{USER}"]"#)
            } else {
                String::new()
            };
            format!(
                r#"{{"id": "org{i}", "admins": ["{}"]{accounts}}}"#,
                admin(i)
            )
        })
        .collect();
    if supervisor {
        orgs.push(format!(
            r#"{{"id": "regulator", "admins": ["{REGULATOR}"], "member": false, "supervisor": true}}"#
        ));
    }
    Genesis::from_json(&format!(
        r#"{{"chainId": 7, "validators": [{}], "governance": {{"organizations": [{}], "proposalTtlBlocks": 10}}}}"#,
        validators.join(","),
        orgs.join(",")
    ))
    .expect("test genesis")
}

struct Chain {
    slots: MapSlots<'static>,
    height: u64,
}

impl Chain {
    fn new(supervisor: bool) -> Chain {
        let mut slots = MapSlots::empty();
        Governance::new(&mut slots)
            .init(&genesis(supervisor))
            .expect("init");
        Chain { slots, height: 1 }
    }

    /// Calls like the EVM does: a revert leaves no write behind.
    fn call<C: SolCall>(&mut self, caller: Address, call: C) -> Result<CallOutput, String> {
        self.raw(caller, &call.abi_encode(), false)
    }

    fn raw(
        &mut self,
        caller: Address,
        input: &[u8],
        is_static: bool,
    ) -> Result<CallOutput, String> {
        let before = self.slots.writes.clone();
        let ctx = CallContext {
            caller,
            height: self.height,
            tx_hash: B256::repeat_byte(self.height as u8),
            is_static,
        };
        match Governance::new(&mut self.slots).call(&ctx, input) {
            Ok(out) => Ok(out),
            Err(CallError::Revert(reason)) => {
                assert_eq!(
                    self.slots.writes, before,
                    "a refused call changed state: {reason}"
                );
                Err(reason)
            }
            Err(e) => panic!("storage failure: {e}"),
        }
    }

    fn gov(&mut self) -> Governance<'_, MapSlots<'static>> {
        Governance::new(&mut self.slots)
    }

    /// Ends the current block (applying what is due next) and starts the next one.
    fn next_block(&mut self) {
        let h = self.height;
        self.gov().end_block(h).expect("end block");
        self.height += 1;
    }

    fn propose_add_org(
        &mut self,
        caller: Address,
        id: &str,
        admin: Address,
    ) -> Result<u64, String> {
        let out = self.call(
            caller,
            abi::proposeAddOrganizationCall {
                id: id.into(),
                name: format!("{id} Ltd"),
                admins: vec![admin],
                member: true,
                supervisor: false,
                effectiveHeight: 0,
            },
        )?;
        Ok(u64::abi_decode(&out.output).expect("id"))
    }

    fn vote(&mut self, caller: Address, id: u64, approve: bool) -> Result<CallOutput, String> {
        self.call(
            caller,
            abi::voteCall {
                proposalId: id,
                approve,
            },
        )
    }

    fn status(&mut self, id: u64) -> abi::ProposalStatus {
        let out = self
            .call(STRANGER, abi::getProposalCall { id })
            .expect("view");
        abi::Proposal::abi_decode(&out.output)
            .expect("proposal")
            .status
    }
}

#[test]
fn a_new_member_joins_after_more_than_two_thirds_approve() {
    let mut c = Chain::new(false);
    let id = c
        .propose_add_org(admin(0), "org4", admin(4))
        .expect("proposed");
    c.vote(admin(1), id, true).expect("vote");
    assert_eq!(
        c.status(id),
        abi::ProposalStatus::Pending,
        "2 of 4 is not > 2/3"
    );
    let out = c.vote(admin(2), id, true).expect("vote");
    assert_eq!(c.status(id), abi::ProposalStatus::Passed);
    assert!(out.logs.iter().any(
        |l| l.topics()[0] == <abi::ProposalPassed as alloy_sol_types::SolEvent>::SIGNATURE_HASH
    ));
    // Passed in block 1, effective at 2: not there until block 1 ends.
    assert!(c.gov().organization(&"org4".parse_org()).unwrap().is_none());
    c.next_block();
    assert_eq!(c.status(id), abi::ProposalStatus::Executed);
    let org = c
        .gov()
        .organization(&"org4".parse_org())
        .unwrap()
        .expect("joined");
    assert_eq!((org.admins, org.joined_at), (vec![admin(4)], 2));
    assert_eq!(c.gov().check_sender(&admin(4), None).unwrap(), Ok(()));
    // The newcomer now votes, and five members need four approvals.
    let id = c
        .propose_add_org(admin(4), "org5", admin(5))
        .expect("proposed");
    for i in 0..2 {
        c.vote(admin(i), id, true).expect("vote");
    }
    assert_eq!(
        c.status(id),
        abi::ProposalStatus::Pending,
        "3 of 5 is not > 2/3"
    );
    c.vote(admin(2), id, true).expect("vote");
    assert_eq!(c.status(id), abi::ProposalStatus::Passed);
}

trait ParseOrg {
    fn parse_org(&self) -> trellis_primitives::OrgId;
}
impl ParseOrg for &str {
    fn parse_org(&self) -> trellis_primitives::OrgId {
        trellis_primitives::OrgId::parse(self).expect("org id")
    }
}

#[test]
fn validators_change_at_the_stated_height() {
    let mut c = Chain::new(false);
    let new = key(9);
    let out = c
        .call(
            admin(0),
            abi::proposeAddNodeCall {
                publicKey: new,
                org: "org1".into(),
                role: abi::NodeRole::Validator,
                power: 2,
                effectiveHeight: 5,
            },
        )
        .expect("proposed");
    let id = u64::abi_decode(&out.output).unwrap();
    c.vote(admin(1), id, true).unwrap();
    c.vote(admin(2), id, true).unwrap();
    for _ in 0..3 {
        c.next_block();
        assert_eq!(
            c.gov().validators().unwrap().len(),
            4,
            "not before height 5"
        );
    }
    assert_eq!(c.height, 4);
    c.next_block(); // end of block 4 applies what is due at 5
    let validators = c.gov().validators().unwrap();
    assert_eq!(validators.len(), 5);
    assert!(validators.contains(&(new, 2)));

    // Demote an original validator to a full node.
    let out = c
        .call(
            admin(3),
            abi::proposeSetNodeRoleCall {
                publicKey: key(0),
                role: abi::NodeRole::Full,
                power: 0,
                effectiveHeight: 0,
            },
        )
        .unwrap();
    let id = u64::abi_decode(&out.output).unwrap();
    c.vote(admin(1), id, true).unwrap();
    c.vote(admin(2), id, true).unwrap();
    c.next_block();
    let validators = c.gov().validators().unwrap();
    assert_eq!(validators.len(), 4);
    assert!(!validators.iter().any(|(k, _)| *k == key(0)));
}

#[test]
fn two_rejections_of_four_reject_and_expired_proposals_refuse_votes() {
    let mut c = Chain::new(false);
    let id = c.propose_add_org(admin(0), "org4", admin(4)).unwrap();
    c.vote(admin(1), id, false).unwrap();
    assert_eq!(c.status(id), abi::ProposalStatus::Pending);
    c.vote(admin(2), id, false).unwrap();
    assert_eq!(c.status(id), abi::ProposalStatus::Rejected);

    let id = c.propose_add_org(admin(0), "org5", admin(5)).unwrap();
    for _ in 0..11 {
        c.next_block();
    }
    assert_eq!(c.status(id), abi::ProposalStatus::Expired);
    let err = c.vote(admin(1), id, true).unwrap_err();
    assert!(err.contains("expired at height 11"), "{err}");
}

#[test]
fn freezes_need_a_supervisor_and_bind_senders_and_targets() {
    let mut c = Chain::new(true);
    let contract = Address::repeat_byte(0xcc);
    let out = c
        .call(
            admin(0),
            abi::proposeFreezeCall {
                target: USER,
                effectiveHeight: 0,
            },
        )
        .unwrap();
    let id = u64::abi_decode(&out.output).unwrap();
    for i in 1..4 {
        c.vote(admin(i), id, true).unwrap();
    }
    assert_eq!(
        c.status(id),
        abi::ProposalStatus::Pending,
        "no supervisor approval yet"
    );
    c.vote(REGULATOR, id, true).unwrap();
    assert_eq!(c.status(id), abi::ProposalStatus::Passed);
    // The supervisor proposes a freeze of a contract itself; members approve.
    let out = c
        .call(
            REGULATOR,
            abi::proposeFreezeCall {
                target: contract,
                effectiveHeight: 0,
            },
        )
        .unwrap();
    let id2 = u64::abi_decode(&out.output).unwrap();
    for i in 0..3 {
        c.vote(admin(i), id2, true).unwrap();
    }
    c.next_block();
    let mut g = c.gov();
    assert_eq!(
        g.check_sender(&USER, None).unwrap(),
        Err(PermissionError::Frozen(USER))
    );
    assert_eq!(
        g.check_sender(&admin(1), Some(&contract)).unwrap(),
        Err(PermissionError::TargetFrozen(contract))
    );
    assert_eq!(
        g.check_sender(&admin(1), Some(&USER)).unwrap(),
        Err(PermissionError::TargetFrozen(USER))
    );
    assert!(g.is_frozen(&contract).unwrap());
}

#[test]
fn org_admins_manage_their_own_accounts() {
    let mut c = Chain::new(false);
    let new = Address::repeat_byte(0x44);
    assert_eq!(
        c.gov().check_sender(&new, None).unwrap(),
        Err(PermissionError::NotRegistered(new))
    );
    c.call(
        admin(1),
        abi::addAccountsCall {
            accounts: vec![new],
        },
    )
    .unwrap();
    assert_eq!(c.gov().check_sender(&new, None).unwrap(), Ok(()));
    assert_eq!(c.gov().account_org(&new).unwrap(), Some("org1".parse_org()));
    c.call(
        admin(1),
        abi::removeAccountsCall {
            accounts: vec![new],
        },
    )
    .unwrap();
    assert_eq!(
        c.gov().check_sender(&new, None).unwrap(),
        Err(PermissionError::NotRegistered(new))
    );
}

#[test]
fn removing_an_organisation_removes_its_nodes_and_silences_its_accounts() {
    let mut c = Chain::new(false);
    let out = c
        .call(
            admin(1),
            abi::proposeRemoveOrganizationCall {
                id: "org0".into(),
                effectiveHeight: 0,
            },
        )
        .unwrap();
    let id = u64::abi_decode(&out.output).unwrap();
    c.vote(admin(2), id, true).unwrap();
    c.vote(admin(3), id, true).unwrap();
    c.next_block();
    let mut g = c.gov();
    assert_eq!(g.validators().unwrap().len(), 3);
    assert!(matches!(
        g.check_sender(&USER, None).unwrap(),
        Err(PermissionError::OrganizationGone { .. })
    ));
    // The id cannot be taken again, which would revive the old accounts.
    let err = c
        .propose_add_org(admin(1), "org0", Address::repeat_byte(0x55))
        .unwrap_err();
    assert!(err.contains("taken"), "{err}");
}

#[test]
fn supervisors_may_only_send_governance_transactions() {
    let mut c = Chain::new(true);
    let mut g = c.gov();
    assert!(matches!(
        g.check_sender(&REGULATOR, Some(&Address::repeat_byte(1)))
            .unwrap(),
        Err(PermissionError::SupervisorOnly { .. })
    ));
    assert!(matches!(
        g.check_sender(&REGULATOR, None).unwrap(),
        Err(PermissionError::SupervisorOnly { .. })
    ));
    assert_eq!(
        g.check_sender(&REGULATOR, Some(&GOVERNANCE_ADDRESS))
            .unwrap(),
        Ok(())
    );
}

#[test]
fn views_answer_through_the_abi() {
    let mut c = Chain::new(true);
    let out = c.call(STRANGER, abi::organizationCountCall {}).unwrap();
    assert_eq!(u64::abi_decode(&out.output).unwrap(), 5);
    let out = c
        .call(
            STRANGER,
            abi::organizationIdsCall {
                offset: 0,
                limit: 10,
            },
        )
        .unwrap();
    let ids = Vec::<String>::abi_decode(&out.output).unwrap();
    assert_eq!(ids, ["org0", "org1", "org2", "org3", "regulator"]);
    let out = c
        .call(
            STRANGER,
            abi::organizationIdsCall {
                offset: 3,
                limit: 1,
            },
        )
        .unwrap();
    assert_eq!(Vec::<String>::abi_decode(&out.output).unwrap(), ["org3"]);
    assert!(c
        .call(
            STRANGER,
            abi::organizationIdsCall {
                offset: 0,
                limit: 1_001,
            },
        )
        .unwrap_err()
        .contains("limit 1001 is above 1000"));
    let out = c
        .call(
            STRANGER,
            abi::getOrganizationCall {
                id: "regulator".into(),
            },
        )
        .unwrap();
    let org = abi::Organization::abi_decode(&out.output).unwrap();
    assert!(org.supervisor && !org.member);
    let out = c.call(STRANGER, abi::thresholdCall {}).unwrap();
    let t = abi::thresholdCall::abi_decode_returns(&out.output).unwrap();
    assert_eq!((t.numerator, t.denominator), (2, 3));
    let out = c
        .call(STRANGER, abi::getNodeCall { publicKey: key(2) })
        .unwrap();
    assert_eq!(abi::NodeInfo::abi_decode(&out.output).unwrap().org, "org2");
    let out = c
        .call(STRANGER, abi::accountOrganizationCall { account: USER })
        .unwrap();
    assert_eq!(String::abi_decode(&out.output).unwrap(), "org0");
    c.propose_add_org(admin(0), "org4", admin(4)).unwrap();
    let out = c.call(STRANGER, abi::auditCountCall {}).unwrap();
    assert_eq!(u64::abi_decode(&out.output).unwrap(), 1);
    let out = c.call(STRANGER, abi::auditEntryCall { seq: 0 }).unwrap();
    let entry = abi::AuditEntry::abi_decode(&out.output).unwrap();
    assert_eq!(
        (entry.action.as_str(), entry.org.as_str(), entry.actor),
        ("propose", "org0", admin(0))
    );
    assert_eq!(entry.txHash, B256::repeat_byte(1));
}

/// Every unauthorised or malformed action is refused with a reason naming the problem, and
/// changes nothing (the harness asserts the latter for every refusal).
#[test]
fn a_subchain_is_created_retired_and_recovered_by_vote() {
    let mut chain = Chain::new(true);
    let out = chain
        .call(
            admin(0),
            subchain(9, "logistics", &["org0", "org1"], &[(0, 2), (1, 1)]),
        )
        .expect("propose");
    let id = u64::abi_decode(&out.output).expect("id");
    for i in 1..3 {
        chain.vote(admin(i), id, true).expect("vote");
    }
    assert_eq!(chain.status(id), abi::ProposalStatus::Passed);
    // Refused while pending? No: a second proposal of the same id is allowed until the
    // first takes effect, and fails then.
    let h = chain.height;
    let effects = chain.gov().end_block(h).expect("end block");
    assert_eq!(effects.subchains_created, vec![9]);
    chain.height += 1;
    let record = chain
        .call(STRANGER, abi::getSubchainCall { chainId: 9 })
        .expect("view");
    let record = abi::Subchain::abi_decode(&record.output).expect("record");
    assert_eq!(record.name, "logistics");
    assert_eq!(record.createdAt, h + 1);
    assert_eq!(record.members, vec!["org0".to_string(), "org1".to_string()]);
    assert_eq!(record.validators.len(), 2);
    assert_eq!(record.validators[0].power, 2);
    assert!(!record.retired);
    assert!(chain
        .call(admin(0), subchain(9, "again", &["org0"], &[(0, 1)]))
        .unwrap_err()
        .contains("already exists"));
    assert!(chain
        .call(STRANGER, abi::getSubchainCall { chainId: 10 })
        .unwrap_err()
        .contains("no sub-chain 10"));

    let decide = |chain: &mut Chain, call: Vec<u8>| {
        let out = chain.raw(admin(0), &call, false).expect("propose");
        let id = u64::abi_decode(&out.output).expect("id");
        for i in 1..3 {
            chain.vote(admin(i), id, true).expect("vote");
        }
        chain.next_block();
        let record = chain
            .call(STRANGER, abi::getSubchainCall { chainId: 9 })
            .expect("view");
        abi::Subchain::abi_decode(&record.output).expect("record")
    };
    assert!(chain
        .call(
            admin(0),
            abi::proposeRecoverSubchainCall {
                chainId: 9,
                effectiveHeight: 0
            }
        )
        .unwrap_err()
        .contains("is not retired"));
    let retired = decide(
        &mut chain,
        abi::proposeRetireSubchainCall {
            chainId: 9,
            effectiveHeight: 0,
        }
        .abi_encode(),
    );
    assert!(retired.retired);
    assert_eq!(retired.changedAt, chain.height);
    assert!(chain
        .call(
            admin(0),
            abi::proposeRetireSubchainCall {
                chainId: 9,
                effectiveHeight: 0
            }
        )
        .unwrap_err()
        .contains("already retired"));
    let recovered = decide(
        &mut chain,
        abi::proposeRecoverSubchainCall {
            chainId: 9,
            effectiveHeight: 0,
        }
        .abi_encode(),
    );
    assert!(!recovered.retired);
    assert_eq!(recovered.createdAt, h + 1);
}

#[test]
fn organisations_list_their_accounts() {
    let mut chain = Chain::new(false);
    let accounts = |chain: &mut Chain, org: &str| {
        let out = chain
            .call(
                STRANGER,
                abi::organizationAccountsCall {
                    org: org.into(),
                    offset: 0,
                    limit: 100,
                },
            )
            .expect("view");
        Vec::<Address>::abi_decode(&out.output).expect("accounts")
    };
    // Genesis admins and accounts.
    assert_eq!(accounts(&mut chain, "org0"), vec![admin(0), USER]);
    assert_eq!(accounts(&mut chain, "org1"), vec![admin(1)]);
    chain
        .call(
            admin(1),
            abi::addAccountsCall {
                accounts: vec![STRANGER],
            },
        )
        .expect("add");
    assert_eq!(accounts(&mut chain, "org1"), vec![admin(1), STRANGER]);
    chain
        .call(
            admin(1),
            abi::removeAccountsCall {
                accounts: vec![STRANGER],
            },
        )
        .expect("remove");
    assert_eq!(accounts(&mut chain, "org1"), vec![admin(1)]);
    let count = chain
        .call(
            STRANGER,
            abi::organizationAccountCountCall { org: "org0".into() },
        )
        .expect("count");
    assert_eq!(u64::abi_decode(&count.output).expect("count"), 2);
}

#[test]
fn unauthorised_action_matrix() {
    let mut c = Chain::new(true);
    let passed = c.propose_add_org(admin(0), "org4", admin(4)).unwrap();
    c.vote(admin(1), passed, true).unwrap();
    c.vote(admin(2), passed, true).unwrap();
    let pending = c.propose_add_org(admin(0), "org5", admin(5)).unwrap();
    let freeze = {
        let out = c
            .call(
                admin(0),
                abi::proposeFreezeCall {
                    target: USER,
                    effectiveHeight: 0,
                },
            )
            .unwrap();
        u64::abi_decode(&out.output).unwrap()
    };
    let add_org = |admins: Vec<Address>| abi::proposeAddOrganizationCall {
        id: "orgx".into(),
        name: "x".into(),
        admins,
        member: true,
        supervisor: false,
        effectiveHeight: 0,
    };
    let cases: Vec<(&str, Address, Vec<u8>, &str)> = vec![
        (
            "stranger proposes",
            STRANGER,
            add_org(vec![STRANGER]).abi_encode(),
            "not an admin",
        ),
        (
            "ordinary member account proposes",
            USER,
            add_org(vec![STRANGER]).abi_encode(),
            "not an admin",
        ),
        (
            "stranger votes",
            STRANGER,
            abi::voteCall {
                proposalId: pending,
                approve: true,
            }
            .abi_encode(),
            "not an admin",
        ),
        (
            "ordinary account votes",
            USER,
            abi::voteCall {
                proposalId: pending,
                approve: true,
            }
            .abi_encode(),
            "not an admin",
        ),
        (
            "double vote",
            admin(0),
            abi::voteCall {
                proposalId: pending,
                approve: true,
            }
            .abi_encode(),
            "already voted",
        ),
        (
            "vote on a decided proposal",
            admin(3),
            abi::voteCall {
                proposalId: passed,
                approve: true,
            }
            .abi_encode(),
            "already passed",
        ),
        (
            "vote on an unknown proposal",
            admin(1),
            abi::voteCall {
                proposalId: 999,
                approve: true,
            }
            .abi_encode(),
            "no proposal 999",
        ),
        (
            "supervisor proposes a member",
            REGULATOR,
            add_org(vec![STRANGER]).abi_encode(),
            "may only propose freezes",
        ),
        (
            "effective height in the past",
            admin(0),
            abi::proposeRemoveNodeCall {
                publicKey: key(1),
                effectiveHeight: 1,
            }
            .abi_encode(),
            "not after the current height",
        ),
        (
            "organisation id taken",
            admin(0),
            abi::proposeAddOrganizationCall {
                id: "org1".into(),
                name: String::new(),
                admins: vec![STRANGER],
                member: true,
                supervisor: false,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "taken",
        ),
        (
            "malformed organisation id",
            admin(0),
            abi::proposeAddOrganizationCall {
                id: "Org One!".into(),
                name: String::new(),
                admins: vec![STRANGER],
                member: true,
                supervisor: false,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "invalid organisation id",
        ),
        (
            "admin already in another organisation",
            admin(0),
            add_org(vec![USER]).abi_encode(),
            "already belongs to organisation org0",
        ),
        (
            "organisation without admins",
            admin(0),
            add_org(vec![]).abi_encode(),
            "needs 1 to 16 admins",
        ),
        (
            "oversized name",
            admin(0),
            subchain(9, &"n".repeat(200), &["org0"], &[(0, 1)]).abi_encode(),
            "longer than 128 bytes",
        ),
        (
            "node key that is not Ed25519",
            admin(0),
            abi::proposeAddNodeCall {
                publicKey: B256::repeat_byte(2),
                org: "org0".into(),
                role: abi::NodeRole::Full,
                power: 0,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "not an Ed25519 public key",
        ),
        (
            "all-zero node key",
            admin(0),
            abi::proposeAddNodeCall {
                publicKey: B256::ZERO,
                org: "org0".into(),
                role: abi::NodeRole::Full,
                power: 0,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "not an Ed25519 public key",
        ),
        (
            "validator without power",
            admin(0),
            abi::proposeAddNodeCall {
                publicKey: key(7),
                org: "org0".into(),
                role: abi::NodeRole::Validator,
                power: 0,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "positive power",
        ),
        (
            "node for an unknown organisation",
            admin(0),
            abi::proposeAddNodeCall {
                publicKey: key(7),
                org: "nobody".into(),
                role: abi::NodeRole::Full,
                power: 0,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "no organisation nobody",
        ),
        (
            "node registered twice",
            admin(0),
            abi::proposeAddNodeCall {
                publicKey: key(1),
                org: "org0".into(),
                role: abi::NodeRole::Full,
                power: 0,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "already registered",
        ),
        (
            "threshold below one half",
            admin(0),
            abi::proposeSetThresholdCall {
                numerator: 1,
                denominator: 3,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "at least 1/2",
        ),
        (
            "threshold of one",
            admin(0),
            abi::proposeSetThresholdCall {
                numerator: 3,
                denominator: 3,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "below 1",
        ),
        (
            "freeze the governance contract",
            admin(0),
            abi::proposeFreezeCall {
                target: GOVERNANCE_ADDRESS,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "cannot be frozen",
        ),
        (
            "unfreeze what is not frozen",
            admin(0),
            abi::proposeUnfreezeCall {
                target: STRANGER,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "is not frozen",
        ),
        (
            "remove an unknown account",
            admin(0),
            abi::proposeRemoveAccountCall {
                account: STRANGER,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "is not registered",
        ),
        (
            "remove an admin account",
            admin(1),
            abi::proposeRemoveAccountCall {
                account: admin(0),
                effectiveHeight: 0,
            }
            .abi_encode(),
            "is an admin",
        ),
        (
            "register another organisation's account",
            admin(1),
            abi::addAccountsCall {
                accounts: vec![USER],
            }
            .abi_encode(),
            "belongs to organisation org0",
        ),
        (
            "register more than 1,000 accounts",
            admin(1),
            abi::addAccountsCall {
                accounts: vec![STRANGER; 1001],
            }
            .abi_encode(),
            "at most 1000 accounts",
        ),
        (
            "remove another organisation's account",
            admin(1),
            abi::removeAccountsCall {
                accounts: vec![USER],
            }
            .abi_encode(),
            "does not belong to organisation org1",
        ),
        (
            "stranger registers accounts",
            STRANGER,
            abi::addAccountsCall {
                accounts: vec![STRANGER],
            }
            .abi_encode(),
            "not an admin",
        ),
        (
            "sub-chain id zero",
            admin(0),
            subchain(0, "s", &["org0"], &[(0, 1)]).abi_encode(),
            "chain id 0",
        ),
        (
            "sub-chain with this chain's id",
            admin(0),
            subchain(7, "s", &["org0"], &[(0, 1)]).abi_encode(),
            "is this chain's own",
        ),
        (
            "sub-chain without members",
            admin(0),
            subchain(9, "s", &[], &[(0, 1)]).abi_encode(),
            "needs 1 to 64 member organisations",
        ),
        (
            "sub-chain without validators",
            admin(0),
            subchain(9, "s", &["org0"], &[]).abi_encode(),
            "needs 1 to 256 validators",
        ),
        (
            "sub-chain member that does not exist",
            admin(0),
            subchain(9, "s", &["org0", "nobody"], &[(0, 1)]).abi_encode(),
            "no organisation nobody",
        ),
        (
            "sub-chain member listed twice",
            admin(0),
            subchain(9, "s", &["org0", "org0"], &[(0, 1)]).abi_encode(),
            "listed twice",
        ),
        (
            "sub-chain validator of a non-member",
            admin(0),
            subchain(9, "s", &["org0"], &[(0, 1), (1, 1)]).abi_encode(),
            "which is not a member of the sub-chain",
        ),
        (
            "sub-chain validator not registered",
            admin(0),
            subchain(9, "s", &["org0"], &[(9, 1)]).abi_encode(),
            "is registered",
        ),
        (
            "sub-chain validator without power",
            admin(0),
            subchain(9, "s", &["org0"], &[(0, 0)]).abi_encode(),
            "needs a positive power",
        ),
        (
            "sub-chain validator listed twice",
            admin(0),
            subchain(9, "s", &["org0"], &[(0, 1), (0, 2)]).abi_encode(),
            "listed twice",
        ),
        (
            "sub-chain validator powers that overflow",
            admin(0),
            subchain(9, "s", &["org0", "org1"], &[(0, u64::MAX), (1, 1)]).abi_encode(),
            "would exceed",
        ),
        (
            "retiring a sub-chain that does not exist",
            admin(0),
            abi::proposeRetireSubchainCall {
                chainId: 9,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "no sub-chain 9",
        ),
        (
            "recovering a sub-chain that does not exist",
            admin(0),
            abi::proposeRecoverSubchainCall {
                chainId: 9,
                effectiveHeight: 0,
            }
            .abi_encode(),
            "no sub-chain 9",
        ),
        (
            "unknown function",
            admin(0),
            vec![0xde, 0xad, 0xbe, 0xef],
            "unknown function",
        ),
        (
            "truncated arguments",
            admin(0),
            abi::voteCall {
                proposalId: 1,
                approve: true,
            }
            .abi_encode()[..20]
                .to_vec(),
            "malformed arguments",
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, caller, input, expected) in cases {
        let err = c
            .raw(caller, &input, false)
            .err()
            .unwrap_or_else(|| panic!("{name}: was accepted"));
        assert!(
            err.contains(expected),
            "{name}: {err:?} does not mention {expected:?}"
        );
    }
    // Writes inside a static call are refused; reads are fine.
    let err = c
        .raw(
            admin(1),
            &abi::voteCall {
                proposalId: pending,
                approve: true,
            }
            .abi_encode(),
            true,
        )
        .unwrap_err();
    assert!(err.contains("static call"), "{err}");
    c.raw(STRANGER, &abi::proposalCountCall {}.abi_encode(), true)
        .expect("views work in static calls");
    // The supervisor's co-signature is still missing on the freeze.
    assert_eq!(c.status(freeze), abi::ProposalStatus::Pending);
}

/// Genesis with `orgs` member organisations, `validators` spread over them, and `extra_nodes`
/// full nodes of org0.
fn big_genesis(orgs: usize, validators: usize, extra_nodes: usize) -> Genesis {
    let signing = |i: usize| {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        B256::from(
            ed25519_consensus::SigningKey::from(seed)
                .verification_key()
                .to_bytes(),
        )
    };
    let validators: Vec<String> = (0..validators)
        .map(|i| {
            format!(
                r#"{{"publicKey": "{}", "power": 1, "org": "org{}"}}"#,
                signing(i),
                i % orgs
            )
        })
        .collect();
    let nodes: Vec<String> = (0..extra_nodes)
        .map(|i| {
            format!(
                r#"{{"publicKey": "{}", "org": "org0", "role": "full"}}"#,
                signing(10_000 + i)
            )
        })
        .collect();
    let orgs: Vec<String> = (0..orgs)
        .map(|i| {
            format!(
                r#"{{"id": "org{i}", "admins": ["{}"]}}"#,
                Address::left_padding_from(&(0x1_0000 + i as u64).to_be_bytes())
            )
        })
        .collect();
    Genesis::from_json(&format!(
        r#"{{"chainId": 7, "validators": [{}], "governance": {{"organizations": [{}], "nodes": [{}]}}}}"#,
        validators.join(","),
        orgs.join(","),
        nodes.join(",")
    ))
    .expect("big genesis")
}

fn big_admin(i: u64) -> Address {
    Address::left_padding_from(&(0x1_0000 + i).to_be_bytes())
}

fn chain_from(genesis: &Genesis) -> Chain {
    let mut slots = MapSlots::empty();
    Governance::new(&mut slots).init(genesis).expect("init");
    Chain { slots, height: 1 }
}

/// Each bound is refused when the proposal is made, with its reason, and the refused call
/// leaves state exactly as it was (`Chain::raw` checks that on every revert).
#[test]
fn bounds_are_refused_when_proposed() {
    use trellis_system::governance::{
        MAX_EFFECTIVE_DELAY, MAX_NODES_PER_ORGANIZATION, MAX_ORGANIZATIONS, MAX_VALIDATORS,
    };
    let add_node = |role, seed: u8| abi::proposeAddNodeCall {
        publicKey: key(seed),
        org: "org0".into(),
        role,
        power: 1,
        effectiveHeight: 0,
    };

    let mut c = chain_from(&big_genesis(1, 1, MAX_NODES_PER_ORGANIZATION as usize - 1));
    let err = c
        .call(big_admin(0), add_node(abi::NodeRole::Full, 200))
        .unwrap_err();
    assert!(
        err.contains("org0 already has 256 nodes, the most one may have"),
        "{err}"
    );

    let mut c = chain_from(&big_genesis(2, MAX_VALIDATORS as usize, 0));
    let err = c
        .call(big_admin(0), add_node(abi::NodeRole::Validator, 200))
        .unwrap_err();
    assert!(err.contains("already has 256 validators"), "{err}");
    // A full node is still welcome, and promoting it is refused the same way.
    let out = c
        .call(big_admin(0), add_node(abi::NodeRole::Full, 200))
        .expect("a full node fits");
    let id = u64::abi_decode(&out.output).unwrap();
    c.vote(big_admin(1), id, true)
        .expect("second member approves");
    c.next_block();
    let err = c
        .call(
            big_admin(1),
            abi::proposeSetNodeRoleCall {
                publicKey: key(200),
                role: abi::NodeRole::Validator,
                power: 1,
                effectiveHeight: 0,
            },
        )
        .unwrap_err();
    assert!(err.contains("already has 256 validators"), "{err}");

    // A validator power that would overflow the set's total (every node would then refuse
    // the set and stop): refused when proposed, added or promoted.
    let mut c = chain_from(&big_genesis(2, 1, 0));
    let err = c
        .call(
            big_admin(0),
            abi::proposeAddNodeCall {
                publicKey: key(201),
                org: "org0".into(),
                role: abi::NodeRole::Validator,
                power: u64::MAX,
                effectiveHeight: 0,
            },
        )
        .unwrap_err();
    assert!(err.contains("total voting power would exceed"), "{err}");
    let out = c
        .call(big_admin(0), add_node(abi::NodeRole::Full, 202))
        .expect("a full node");
    let id = u64::abi_decode(&out.output).unwrap();
    c.vote(big_admin(1), id, true).expect("approved");
    c.next_block();
    let err = c
        .call(
            big_admin(1),
            abi::proposeSetNodeRoleCall {
                publicKey: key(202),
                role: abi::NodeRole::Validator,
                power: u64::MAX,
                effectiveHeight: 0,
            },
        )
        .unwrap_err();
    assert!(err.contains("total voting power would exceed"), "{err}");

    let mut c = chain_from(&big_genesis(MAX_ORGANIZATIONS as usize, 1, 0));
    let err = c
        .call(
            big_admin(0),
            abi::proposeAddOrganizationCall {
                id: "newcomer".into(),
                name: String::new(),
                admins: vec![STRANGER],
                member: true,
                supervisor: false,
                effectiveHeight: 0,
            },
        )
        .unwrap_err();
    assert!(
        err.contains("already has 1024 organisations, the most it may have"),
        "{err}"
    );

    let mut c = Chain::new(false);
    let err = c
        .call(
            admin(0),
            abi::proposeFreezeCall {
                target: USER,
                effectiveHeight: c.height + MAX_EFFECTIVE_DELAY + 1,
            },
        )
        .unwrap_err();
    assert!(err.contains("blocks ahead"), "{err}");
}

/// Two proposals that are each valid when they pass, but the first makes the second
/// impossible: at its height the second is recorded as failed, with its reason, in the
/// proposal and in the audit log, and the first one's effect stays.
#[test]
fn a_proposal_that_cannot_apply_at_its_height_fails_and_the_rest_goes_on() {
    let mut c = Chain::new(false);
    let propose = |c: &mut Chain, effective| {
        let out = c
            .call(
                admin(0),
                abi::proposeAddNodeCall {
                    publicKey: key(9),
                    org: "org1".into(),
                    role: abi::NodeRole::Full,
                    power: 0,
                    effectiveHeight: effective,
                },
            )
            .expect("proposed");
        let id = u64::abi_decode(&out.output).unwrap();
        c.vote(admin(1), id, true).unwrap();
        c.vote(admin(2), id, true).unwrap();
        id
    };
    let first = propose(&mut c, 3);
    let second = propose(&mut c, 4);
    for _ in 0..3 {
        c.next_block();
    }
    assert_eq!(c.status(first), abi::ProposalStatus::Executed);
    assert_eq!(c.status(second), abi::ProposalStatus::Failed);
    let out = c
        .call(STRANGER, abi::getProposalCall { id: second })
        .unwrap();
    let p = abi::Proposal::abi_decode(&out.output).unwrap();
    assert!(
        p.failureReason.contains("is already registered"),
        "{}",
        p.failureReason
    );
    let audits = c.gov().config().unwrap().audits;
    let last = c.gov().audit_entry(audits - 1).unwrap().expect("audit");
    assert_eq!(last.action, "failed");
    assert!(last
        .detail
        .contains(&format!("proposal {second} could not be applied")));
    assert_eq!(
        c.gov().node(&key(9)).unwrap().expect("node").org.as_str(),
        "org1"
    );
}

/// More proposals pass in one block than one height's end-of-block work may take: the rest
/// take effect at the next heights, each height within its capacity, and all of them apply.
#[test]
fn a_full_height_pushes_proposals_to_the_next() {
    use trellis_system::governance::SCHEDULE_CAPACITY;
    let mut c = chain_from(&big_genesis(1, 1, 0));
    let n = SCHEDULE_CAPACITY + 100;
    let mut heights = std::collections::BTreeMap::<u64, u64>::new();
    for i in 0..n {
        let out = c
            .call(
                big_admin(0),
                abi::proposeFreezeCall {
                    target: Address::left_padding_from(&(i + 1).to_be_bytes()),
                    effectiveHeight: 0,
                },
            )
            .expect("proposed");
        let passed = out
            .logs
            .iter()
            .find_map(|l| {
                <abi::ProposalPassed as alloy_sol_types::SolEvent>::decode_log_data(&l.data).ok()
            })
            .expect("passes at once with one member");
        *heights.entry(passed.effectiveHeight).or_default() += 1;
    }
    assert_eq!(
        heights.into_iter().collect::<Vec<_>>(),
        vec![(2, SCHEDULE_CAPACITY), (3, 100)]
    );
    c.next_block();
    assert_eq!(c.gov().frozen_count().unwrap(), SCHEDULE_CAPACITY);
    c.next_block();
    assert_eq!(c.gov().frozen_count().unwrap(), n);
}

#[test]
fn read_tokens_are_issued_revoked_and_expire_per_organisation() {
    use trellis_system::governance::{read_token_hash, ReadRefusal};
    let mut c = Chain::new(true);
    let token = read_token_hash("trt_0123456789abcdef0123456789abcdef");
    let issue = |label: &str, hash: B256, expires: u64| abi::issueReadTokenCall {
        tokenHash: hash,
        label: label.into(),
        expiresAt: expires,
    };
    // Only an organisation's admin issues, only a hash, only once, with a bounded label.
    for (caller, call, expected) in [
        (USER, issue("app", token, 0), "not an admin"),
        (STRANGER, issue("app", token, 0), "not an admin"),
        (admin(0), issue("app", B256::ZERO, 0), "zero"),
        (admin(0), issue(&"x".repeat(129), token, 0), "label longer"),
    ] {
        let err = c.call(caller, call).unwrap_err();
        assert!(err.contains(expected), "{err}");
    }
    assert_eq!(
        c.gov().reader(&token, 0).unwrap(),
        Err(ReadRefusal::Unknown)
    );
    let out = c.call(admin(0), issue("app", token, 0)).unwrap();
    assert_eq!(out.logs.len(), 1, "ReadTokenIssued");
    let err = c.call(admin(1), issue("again", token, 0)).unwrap_err();
    assert!(err.contains("already recorded"), "{err}");
    let reader = c.gov().reader(&token, u64::MAX).unwrap().unwrap();
    assert_eq!(reader.org.as_str(), "org0");
    assert!(reader.member && !reader.supervisor);

    // Views through the ABI.
    let out = c
        .call(
            STRANGER,
            abi::readTokensCall {
                org: "org0".into(),
                offset: 0,
                limit: 10,
            },
        )
        .unwrap();
    let listed = <Vec<abi::ReadToken>>::abi_decode(&out.output).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].tokenHash,
            listed[0].label.as_str(),
            listed[0].issuer
        ),
        (token, "app", admin(0))
    );

    // Another member may not revoke it; a supervisor may; twice is refused.
    let revoke = abi::revokeReadTokenCall { tokenHash: token };
    let err = c.call(admin(1), revoke.clone()).unwrap_err();
    assert!(err.contains("only its admins or a supervisor"), "{err}");
    c.next_block();
    c.call(REGULATOR, revoke.clone()).unwrap();
    assert_eq!(
        c.gov().reader(&token, 0).unwrap(),
        Err(ReadRefusal::Revoked(token, c.height))
    );
    let err = c.call(admin(0), revoke).unwrap_err();
    assert!(err.contains("already revoked"), "{err}");

    // Expiry is compared with the block time the node passes in.
    let expiring = read_token_hash("trt_expiring_expiring_expiring_expiring");
    c.call(admin(2), issue("ci", expiring, 1_000)).unwrap();
    assert!(c.gov().reader(&expiring, 999).unwrap().is_ok());
    assert_eq!(
        c.gov().reader(&expiring, 1_000).unwrap(),
        Err(ReadRefusal::Expired(expiring, 1_000))
    );

    // A supervisor's own token reads as a supervisor.
    let regulator = read_token_hash("trt_regulator_regulator_regulator_regulator");
    c.call(REGULATOR, issue("audit", regulator, 0)).unwrap();
    assert!(c.gov().reader(&regulator, 0).unwrap().unwrap().supervisor);

    // Every step is in the audit log.
    let actions: Vec<String> = (0..c.gov().config().unwrap().audits)
        .filter_map(|i| c.gov().audit_entry(i).unwrap())
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.contains("ReadToken"))
            .collect::<Vec<_>>(),
        [
            "issueReadToken",
            "revokeReadToken",
            "issueReadToken",
            "issueReadToken"
        ]
    );
}

#[test]
fn a_token_stops_reading_when_its_organisation_leaves() {
    use trellis_system::governance::{read_token_hash, ReadRefusal};
    let mut c = Chain::new(false);
    let token = read_token_hash("trt_org3_org3_org3_org3_org3_org3_org3");
    c.call(
        admin(3),
        abi::issueReadTokenCall {
            tokenHash: token,
            label: "app".into(),
            expiresAt: 0,
        },
    )
    .unwrap();
    let out = c
        .call(
            admin(0),
            abi::proposeRemoveOrganizationCall {
                id: "org3".into(),
                effectiveHeight: 0,
            },
        )
        .unwrap();
    let id = u64::abi_decode(&out.output).unwrap();
    c.vote(admin(1), id, true).unwrap();
    c.vote(admin(2), id, true).unwrap();
    c.next_block();
    assert_eq!(
        c.gov().reader(&token, 0).unwrap(),
        Err(ReadRefusal::OrganizationGone(token, "org3".parse_org()))
    );
}

#[test]
fn an_organisation_issues_a_bounded_number_of_read_tokens() {
    use trellis_system::governance::{read_token_hash, MAX_READ_TOKENS_PER_ORGANIZATION};
    let mut c = Chain::new(false);
    for i in 0..MAX_READ_TOKENS_PER_ORGANIZATION {
        c.call(
            admin(1),
            abi::issueReadTokenCall {
                tokenHash: read_token_hash(&format!("token-{i}")),
                label: String::new(),
                expiresAt: 0,
            },
        )
        .unwrap();
    }
    let err = c
        .call(
            admin(1),
            abi::issueReadTokenCall {
                tokenHash: read_token_hash("one more"),
                label: String::new(),
                expiresAt: 0,
            },
        )
        .unwrap_err();
    assert!(err.contains("the most one organisation may"), "{err}");
    assert_eq!(
        c.gov().read_token_count(&"org1".parse_org()).unwrap(),
        MAX_READ_TOKENS_PER_ORGANIZATION
    );
}

#[test]
fn pending_proposals_are_the_undecided_ones_within_their_lifetime() {
    let mut c = Chain::new(false);
    let a = c
        .propose_add_org(admin(0), "org4", Address::repeat_byte(0x44))
        .unwrap();
    let b = c
        .propose_add_org(admin(1), "org5", Address::repeat_byte(0x45))
        .unwrap();
    let h = c.height;
    let ids = |c: &mut Chain, at: u64| -> Vec<u64> {
        c.gov()
            .pending_proposals(at)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect()
    };
    assert_eq!(ids(&mut c, h), [b, a], "newest first");
    // Two more approvals pass proposal a (3 of 4 members).
    c.vote(admin(2), a, true).unwrap();
    c.vote(admin(3), a, true).unwrap();
    assert_eq!(ids(&mut c, h), [b]);
    // Past the proposal lifetime (10 blocks) nothing is pending any more.
    assert!(ids(&mut c, h + 11).is_empty());
}

/// A main-chain vote sends a sub-chain a governance packet; the sub-chain applies it when it
/// arrives, as if its own members had passed it, and says what came of it in its audit log.
#[test]
fn packets_to_a_subchain_are_voted_sent_and_applied_there() {
    let mut main = Chain::new(true);
    let create = main
        .call(admin(0), subchain(9, "logistics", &["org0"], &[(0, 1)]))
        .expect("propose");
    let id = u64::abi_decode(&create.output).expect("id");
    for i in 1..3 {
        main.vote(admin(i), id, true).expect("vote");
    }
    main.next_block();

    let freeze = abi::proposeFreezeCall {
        target: USER,
        effectiveHeight: 0,
    }
    .abi_encode();
    let packet = |chain: u64, call: &[u8]| abi::proposeToSubchainCall {
        chainId: chain,
        call: call.to_vec().into(),
        effectiveHeight: 0,
    };
    // Only to a sub-chain this chain created, and only what a packet may carry.
    assert!(main
        .call(admin(0), packet(10, &freeze))
        .unwrap_err()
        .contains("no sub-chain 10"));
    let threshold = abi::proposeSetThresholdCall {
        numerator: 3,
        denominator: 4,
        effectiveHeight: 0,
    }
    .abi_encode();
    assert!(main
        .call(admin(0), packet(9, &threshold))
        .unwrap_err()
        .contains("nothing else"));
    assert!(main
        .call(admin(0), packet(9, &[1, 2, 3]))
        .unwrap_err()
        .contains("undecodable"));

    // A freeze there needs the supervisor's co-signature here, like one here.
    let out = main.call(admin(0), packet(9, &freeze)).expect("proposed");
    let id = u64::abi_decode(&out.output).expect("id");
    for i in 1..4 {
        main.vote(admin(i), id, true).expect("vote");
    }
    assert_eq!(main.status(id), abi::ProposalStatus::Pending);
    main.vote(REGULATOR, id, true).expect("co-signed");
    let h = main.height;
    let effects = main.gov().end_block(h).expect("end block");
    assert_eq!(effects.packets, vec![(9, freeze.clone())]);

    // The sub-chain (its own governance state) applies it at the end of the block that
    // received it: USER cannot send from the next block on.
    let mut sub = Chain::new(true);
    let h = sub.height;
    let effects = sub.gov().apply_packet(h, 7, 1, &freeze).expect("applied");
    assert!(!effects.validators_changed);
    assert!(sub.gov().is_frozen(&USER).expect("read"));
    let last = sub.gov().config().expect("config").audits - 1;
    let entry = sub.gov().audit_entry(last).expect("read").expect("written");
    assert_eq!(entry.action, "packet executed");
    assert!(
        entry.detail.contains("packet 1 from chain 7") && entry.detail.contains("freeze"),
        "{}",
        entry.detail
    );
    // One that cannot apply there (already frozen) changes nothing but the audit log: its
    // writes are those of that one entry.
    let mut expected = MapSlots::empty();
    expected.writes = sub.slots.writes.clone();
    sub.gov().apply_packet(h, 7, 2, &freeze).expect("recorded");
    let last = sub.gov().config().expect("config").audits - 1;
    let entry = sub.gov().audit_entry(last).expect("read").expect("written");
    assert_eq!(entry.action, "packet failed");
    assert!(entry.detail.contains("already frozen"), "{}", entry.detail);
    let ctx = CallContext {
        caller: Address::ZERO,
        height: h,
        tx_hash: B256::ZERO,
        is_static: false,
    };
    Governance::new(&mut expected)
        .record_audit(&ctx, "packet failed", None, &entry.detail)
        .expect("audit");
    assert_eq!(sub.slots.writes, expected.writes);

    // A removal there changes its validators.
    let remove = abi::proposeRemoveOrganizationCall {
        id: "org3".into(),
        effectiveHeight: 0,
    }
    .abi_encode();
    let effects = sub.gov().apply_packet(h, 7, 3, &remove).expect("applied");
    assert!(effects.validators_changed);
    assert_eq!(effects.nodes_removed, vec![key(3)]);
}

#[test]
fn a_light_client_reset_is_proposed_with_a_set_it_may_trust() {
    let mut chain = Chain::new(true);
    let reset = |chain_id: u64, validators: &[(u8, u64)]| abi::proposeResetLightClientCall {
        chainId: chain_id,
        height: 50,
        blockHash: B256::repeat_byte(1),
        stateRoot: B256::repeat_byte(2),
        timestampMs: 3,
        validators: validators
            .iter()
            .map(|(k, power)| abi::SubchainValidator {
                publicKey: key(*k),
                power: *power,
            })
            .collect(),
        effectiveHeight: 0,
    };
    for (call, expected) in [
        (reset(7, &[(0, 1)]), "this chain"),
        (reset(9, &[]), "1 to 256 validators"),
        (reset(9, &[(0, 1), (0, 1)]), "listed twice"),
        (reset(9, &[(0, 0)]), "positive power"),
        (reset(9, &[(0, u64::MAX), (1, 1)]), "would exceed"),
    ] {
        let err = chain.call(admin(0), call).unwrap_err();
        assert!(err.contains(expected), "{err} does not mention {expected}");
    }
    let out = chain.call(admin(0), reset(9, &[(4, 2)])).expect("proposed");
    let id = u64::abi_decode(&out.output).expect("id");
    for i in 1..4 {
        chain.vote(admin(i), id, true).expect("vote");
    }
    // An unfreeze of a light client is co-signed by a supervisor too.
    assert_eq!(chain.status(id), abi::ProposalStatus::Pending);
    chain.vote(REGULATOR, id, true).expect("co-signed");
    let h = chain.height;
    let effects = chain.gov().end_block(h).expect("end block");
    let reset = &effects.clients_reset[0];
    assert_eq!(
        (reset.chain_id, reset.root.height, reset.root.hash),
        (9, 50, B256::repeat_byte(1))
    );
    assert_eq!(reset.validators, vec![(key(4), 2)]);
}
