//! Property test: random sequences of governance actions — proposals of every kind over small
//! pools of ids (so that entries are removed, re-added and proposals conflict), votes from
//! every organisation, blocks of random length — against a model written separately from the
//! contract. After every end of block: `end_block` has not failed, every due proposal is
//! executed exactly when the model says it can apply (failed otherwise), and every registry
//! read through the paged views equals the model's.
//!
//! Seeds are printed on failure; `TRELLIS_GOV_MODEL_SEEDS=N` runs more of them.

use alloy_primitives::{Address, B256};
use alloy_sol_types::{SolCall, SolEvent, SolValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use trellis_primitives::{Genesis, NodeRole};
use trellis_system::governance::{abi, MAX_PAGE};
use trellis_system::{CallContext, CallError, Governance, MapSlots, Slots};

fn node_key(i: usize) -> B256 {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
    B256::from(
        ed25519_consensus::SigningKey::from(seed)
            .verification_key()
            .to_bytes(),
    )
}

fn addr(space: u8, i: usize) -> Address {
    let mut a = [0u8; 20];
    a[0] = space;
    a[12..].copy_from_slice(&(i as u64).to_be_bytes());
    Address::from(a)
}

/// The sizes of one run.
struct Shape {
    members: usize,
    supervisor: bool,
    new_orgs: usize,
    nodes: usize,
    accounts: usize,
    targets: usize,
    prefixes: usize,
    subchains: u64,
    steps: usize,
    /// Share of steps that propose (the rest vote, up to 85, or end the block).
    propose_percent: u32,
    /// Compare every registry after this many blocks (and at the end).
    check_every: u64,
}

#[derive(Clone, Debug)]
enum Action {
    AddOrg {
        id: String,
        member: bool,
        supervisor: bool,
    },
    RemoveOrg(String),
    AddNode {
        key: usize,
        org: String,
        validator: bool,
        power: u64,
    },
    RemoveNode(usize),
    SetRole {
        key: usize,
        validator: bool,
        power: u64,
    },
    AddAccount {
        account: usize,
        org: String,
    },
    RemoveAccount(usize),
    Freeze(usize),
    Unfreeze(usize),
    Threshold(u64, u64),
    Prefix {
        prefix: usize,
        org: String,
    },
    /// A sub-chain of one member, validated by one node.
    Subchain {
        id: u64,
        org: String,
        key: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelNode {
    org: String,
    validator: bool,
    power: u64,
}

#[derive(Default)]
struct Model {
    /// id → (member, supervisor, admin)
    orgs: BTreeMap<String, (bool, bool, Address)>,
    retired: BTreeSet<String>,
    nodes: BTreeMap<usize, ModelNode>,
    /// account address → organisation id (admins included)
    accounts: BTreeMap<Address, String>,
    frozen: BTreeSet<usize>,
    threshold: (u64, u64),
    prefixes: BTreeMap<usize, String>,
    subchains: BTreeSet<u64>,
}

impl Model {
    fn power_without(&self, skip: impl Fn(usize, &ModelNode) -> bool) -> u64 {
        self.nodes
            .iter()
            .filter(|(k, n)| n.validator && !skip(**k, n))
            .map(|(_, n)| n.power)
            .sum()
    }

    fn validators(&self) -> usize {
        self.nodes.values().filter(|n| n.validator).count()
    }

    /// Applies `action` if it can apply now; whether it did.
    fn apply(&mut self, action: &Action, shape_admin: impl Fn(&str) -> Address) -> bool {
        match action {
            Action::AddOrg {
                id,
                member,
                supervisor,
            } => {
                let admin = shape_admin(id);
                if !(member | supervisor)
                    || self.orgs.contains_key(id)
                    || self.retired.contains(id)
                    || self.accounts.contains_key(&admin)
                {
                    return false;
                }
                self.orgs.insert(id.clone(), (*member, *supervisor, admin));
                self.accounts.insert(admin, id.clone());
            }
            Action::RemoveOrg(id) => {
                let Some((member, ..)) = self.orgs.get(id).copied() else {
                    return false;
                };
                let members = self.orgs.values().filter(|o| o.0).count();
                if (member && members == 1) || self.power_without(|_, n| &n.org == id) == 0 {
                    return false;
                }
                self.orgs.remove(id);
                self.retired.insert(id.clone());
                self.nodes.retain(|_, n| &n.org != id);
            }
            Action::AddNode {
                key,
                org,
                validator,
                power,
            } => {
                let org_nodes = self.nodes.values().filter(|n| &n.org == org).count();
                if self.nodes.contains_key(key)
                    || !self.orgs.contains_key(org)
                    || (*validator && *power == 0)
                    || org_nodes >= 256
                    || (*validator && self.validators() >= 256)
                {
                    return false;
                }
                self.nodes.insert(
                    *key,
                    ModelNode {
                        org: org.clone(),
                        validator: *validator,
                        power: if *validator { *power } else { 0 },
                    },
                );
            }
            Action::RemoveNode(key) => {
                if !self.nodes.contains_key(key) || self.power_without(|k, _| k == *key) == 0 {
                    return false;
                }
                self.nodes.remove(key);
            }
            Action::SetRole {
                key,
                validator,
                power,
            } => {
                let Some(node) = self.nodes.get(key).cloned() else {
                    return false;
                };
                let remaining =
                    self.power_without(|k, _| k == *key) + if *validator { *power } else { 0 };
                if (*validator && *power == 0) || remaining == 0 {
                    return false;
                }
                if *validator && !node.validator && self.validators() >= 256 {
                    return false;
                }
                let n = self.nodes.get_mut(key).expect("checked");
                n.validator = *validator;
                n.power = if *validator { *power } else { 0 };
            }
            Action::AddAccount { account, org } => {
                let a = addr(0xac, *account);
                if !self.orgs.contains_key(org) || self.accounts.contains_key(&a) {
                    return false;
                }
                self.accounts.insert(a, org.clone());
            }
            Action::RemoveAccount(account) => {
                let a = addr(0xac, *account);
                let Some(org) = self.accounts.get(&a) else {
                    return false;
                };
                if self.orgs.get(org).is_some_and(|o| o.2 == a) {
                    return false;
                }
                self.accounts.remove(&a);
            }
            Action::Freeze(t) => return self.frozen.insert(*t),
            Action::Unfreeze(t) => return self.frozen.remove(t),
            Action::Threshold(n, d) => {
                if !(*d > 0 && n < d && n * 2 >= *d) {
                    return false;
                }
                self.threshold = (*n, *d);
            }
            Action::Prefix { prefix, org } => {
                if !self.orgs.contains_key(org) {
                    return false;
                }
                self.prefixes.insert(*prefix, org.clone());
            }
            Action::Subchain { id, org, key } => {
                let member = self.orgs.get(org).is_some_and(|o| o.0);
                let validates = self.nodes.get(key).is_some_and(|n| &n.org == org);
                // 0 and the chain's own id (9, the model genesis's) are refused.
                return *id != 0 && *id != 9 && member && validates && self.subchains.insert(*id);
            }
        }
        true
    }
}

fn prefix_name(i: usize) -> String {
    // Long prefixes, as in the report that found records outgrowing their slot budget.
    format!("MA.156.{}.{}", 1000 + i, "8".repeat(40))
}

fn admin_of(id: &str) -> Address {
    let mut a = [0u8; 20];
    a[0] = 0xad;
    a[20 - id.len()..].copy_from_slice(id.as_bytes());
    Address::from(a)
}

struct Run {
    slots: MapSlots<'static>,
    height: u64,
    model: Model,
    /// Passed proposals by effective height, in the order they passed.
    due: BTreeMap<u64, Vec<u64>>,
    actions: BTreeMap<u64, Action>,
}

impl Run {
    /// Calls like the EVM does: a refused call leaves no write behind.
    fn call(&mut self, caller: Address, input: Vec<u8>) -> Option<trellis_system::CallOutput> {
        let ctx = CallContext {
            caller,
            height: self.height,
            tx_hash: B256::ZERO,
            is_static: false,
        };
        let (outcome, writes) = {
            let base = &mut self.slots;
            let mut overlay = MapSlots::over(|slot| base.load(slot));
            let outcome = Governance::new(&mut overlay).call(&ctx, &input);
            (outcome, overlay.writes)
        };
        match outcome {
            Ok(out) => {
                self.slots.writes.extend(writes);
                Some(out)
            }
            Err(CallError::Revert(_)) => None,
            Err(e) => panic!("storage failure: {e}"),
        }
    }

    fn note_passed(&mut self, out: &trellis_system::CallOutput) {
        for log in &out.logs {
            if let Ok(p) = abi::ProposalPassed::decode_log_data(&log.data) {
                self.due.entry(p.effectiveHeight).or_default().push(p.id);
            }
        }
    }
}

fn encode(action: &Action, effective: u64) -> Vec<u8> {
    let org = |s: &String| s.clone();
    match action {
        Action::AddOrg {
            id,
            member,
            supervisor,
        } => abi::proposeAddOrganizationCall {
            id: id.clone(),
            name: format!("{id} corp"),
            admins: vec![admin_of(id)],
            member: *member,
            supervisor: *supervisor,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::RemoveOrg(id) => abi::proposeRemoveOrganizationCall {
            id: id.clone(),
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::AddNode {
            key,
            org: o,
            validator,
            power,
        } => abi::proposeAddNodeCall {
            publicKey: node_key(*key),
            org: org(o),
            role: if *validator {
                abi::NodeRole::Validator
            } else {
                abi::NodeRole::Full
            },
            power: *power,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::RemoveNode(key) => abi::proposeRemoveNodeCall {
            publicKey: node_key(*key),
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::SetRole {
            key,
            validator,
            power,
        } => abi::proposeSetNodeRoleCall {
            publicKey: node_key(*key),
            role: if *validator {
                abi::NodeRole::Validator
            } else {
                abi::NodeRole::Light
            },
            power: *power,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::AddAccount { account, org: o } => abi::proposeAddAccountCall {
            account: addr(0xac, *account),
            org: org(o),
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::RemoveAccount(account) => abi::proposeRemoveAccountCall {
            account: addr(0xac, *account),
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::Freeze(t) => abi::proposeFreezeCall {
            target: addr(0xf0, *t),
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::Unfreeze(t) => abi::proposeUnfreezeCall {
            target: addr(0xf0, *t),
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::Threshold(n, d) => abi::proposeSetThresholdCall {
            numerator: *n,
            denominator: *d,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::Prefix { prefix, org: o } => abi::proposeDelegatePrefixCall {
            prefix: prefix_name(*prefix),
            org: org(o),
            effectiveHeight: effective,
        }
        .abi_encode(),
        Action::Subchain { id, org: o, key } => abi::proposeCreateSubchainCall {
            chainId: *id,
            name: format!("chain {id}"),
            members: vec![org(o)],
            validators: vec![abi::SubchainValidator {
                publicKey: node_key(*key),
                power: 1,
            }],
            effectiveHeight: effective,
        }
        .abi_encode(),
    }
}

fn random_action(rng: &mut StdRng, shape: &Shape, run: &Run) -> Action {
    let org_pool: Vec<String> = (0..shape.members + usize::from(shape.supervisor))
        .map(|i| if i < shape.members { i } else { usize::MAX })
        .map(|i| match i {
            usize::MAX => "reg".to_owned(),
            i => format!("o{i}"),
        })
        .collect::<Vec<_>>()
        .into_iter()
        .chain((0..shape.new_orgs).map(|i| format!("n{i}")))
        .collect();
    let org = |rng: &mut StdRng| org_pool[rng.gen_range(0..org_pool.len())].clone();
    // With many entries, one member keeps every proposal passing at once: organisations stay.
    let many = shape.new_orgs == 0;
    let pick = match rng.gen_range(0..16) {
        0 | 1 if many => 7,
        n if !many && n >= 12 => n - 12,
        n => n,
    };
    match pick {
        0 => Action::AddOrg {
            id: format!("n{}", rng.gen_range(0..shape.new_orgs)),
            member: rng.gen_bool(0.7),
            supervisor: rng.gen_bool(0.2),
        },
        1 => Action::RemoveOrg(org(rng)),
        2 => Action::AddNode {
            key: rng.gen_range(0..shape.nodes),
            org: org(rng),
            validator: rng.gen_bool(0.3),
            power: rng.gen_range(0..3),
        },
        3 => Action::RemoveNode(rng.gen_range(0..shape.nodes)),
        4 => Action::SetRole {
            key: rng.gen_range(0..shape.nodes),
            validator: rng.gen_bool(0.5),
            power: rng.gen_range(0..3),
        },
        5 => Action::AddAccount {
            account: rng.gen_range(0..shape.accounts),
            org: org(rng),
        },
        6 => Action::RemoveAccount(rng.gen_range(0..shape.accounts)),
        7 | 12 | 13 => Action::Freeze(rng.gen_range(0..shape.targets)),
        8 | 14 => {
            // Mostly frozen ones, so unfreezes apply.
            let frozen: Vec<_> = run.model.frozen.iter().copied().collect();
            match frozen.is_empty() || rng.gen_bool(0.2) {
                true => Action::Unfreeze(rng.gen_range(0..shape.targets)),
                false => Action::Unfreeze(frozen[rng.gen_range(0..frozen.len())]),
            }
        }
        9 => {
            let (n, d) = [(1, 2), (2, 3), (3, 4), (1, 1), (1, 3)][rng.gen_range(0..5)];
            Action::Threshold(n, d)
        }
        10 | 15 => Action::Prefix {
            prefix: rng.gen_range(0..shape.prefixes),
            org: org(rng),
        },
        _ => Action::Subchain {
            id: rng.gen_range(0..shape.subchains),
            org: org(rng),
            key: rng.gen_range(0..shape.nodes),
        },
    }
}

fn genesis(shape: &Shape) -> Genesis {
    let validators: Vec<String> = (0..shape.members)
        .map(|i| {
            format!(
                r#"{{"publicKey": "{}", "power": 1, "org": "o{i}"}}"#,
                node_key(1_000_000 + i)
            )
        })
        .collect();
    let mut orgs: Vec<String> = (0..shape.members)
        .map(|i| {
            format!(
                r#"{{"id": "o{i}", "admins": ["{}"]}}"#,
                admin_of(&format!("o{i}"))
            )
        })
        .collect();
    if shape.supervisor {
        orgs.push(format!(
            r#"{{"id": "reg", "admins": ["{}"], "member": false, "supervisor": true}}"#,
            admin_of("reg")
        ));
    }
    Genesis::from_json(&format!(
        r#"{{"chainId": 9, "validators": [{}], "governance": {{"organizations": [{}], "proposalTtlBlocks": 30}}}}"#,
        validators.join(","),
        orgs.join(",")
    ))
    .expect("genesis")
}

fn initial_model(shape: &Shape) -> Model {
    let mut m = Model {
        threshold: (2, 3),
        ..Default::default()
    };
    for i in 0..shape.members {
        let id = format!("o{i}");
        m.orgs.insert(id.clone(), (true, false, admin_of(&id)));
        m.accounts.insert(admin_of(&id), id.clone());
        m.nodes.insert(
            1_000_000 + i,
            ModelNode {
                org: id,
                validator: true,
                power: 1,
            },
        );
    }
    if shape.supervisor {
        m.orgs.insert("reg".into(), (false, true, admin_of("reg")));
        m.accounts.insert(admin_of("reg"), "reg".into());
    }
    m
}

/// Every registry read through the contract's paged views equals the model.
fn compare(run: &mut Run, shape: &Shape, seed: u64) {
    let ctx = format!("seed {seed} at height {}", run.height);
    let m = &run.model;
    let mut g = Governance::new(&mut run.slots);
    let paged = |count: u64, mut page: Box<dyn FnMut(u64, u64) -> usize + '_>| {
        let mut seen = 0;
        let mut offset = 0;
        while offset < count {
            seen += page(offset, MAX_PAGE.min(37));
            offset += MAX_PAGE.min(37);
        }
        seen as u64
    };
    // Organisations.
    let count = g.organization_count().unwrap();
    let mut orgs = BTreeMap::new();
    let seen = paged(
        count,
        Box::new(|o, l| {
            let page = g.organizations(o, l).unwrap();
            let n = page.len();
            for org in page {
                orgs.insert(
                    org.id.to_string(),
                    (org.member, org.supervisor, org.admins[0]),
                );
            }
            n
        }),
    );
    assert_eq!(seen, count, "{ctx}: organisation pages");
    assert_eq!(orgs, m.orgs, "{ctx}: organisations");
    let config = g.config().unwrap();
    assert_eq!(
        (config.members, config.supervisors),
        (
            m.orgs.values().filter(|o| o.0).count() as u64,
            m.orgs.values().filter(|o| o.1).count() as u64
        ),
        "{ctx}: member and supervisor counts"
    );
    assert_eq!(
        (config.threshold.numerator, config.threshold.denominator),
        m.threshold,
        "{ctx}: threshold"
    );
    // Nodes and validators.
    let count = g.node_count().unwrap();
    let mut nodes = BTreeMap::new();
    paged(
        count,
        Box::new(|o, l| {
            let page = g.nodes(o, l).unwrap();
            let n = page.len();
            for node in page {
                nodes.insert(
                    node.public_key,
                    ModelNode {
                        org: node.org.to_string(),
                        validator: node.role == NodeRole::Validator,
                        power: node.power,
                    },
                );
            }
            n
        }),
    );
    let model_nodes: BTreeMap<B256, ModelNode> = m
        .nodes
        .iter()
        .map(|(k, n)| (node_key(*k), n.clone()))
        .collect();
    assert_eq!(nodes, model_nodes, "{ctx}: nodes");
    let validators: BTreeSet<(B256, u64)> = g.validators().unwrap().into_iter().collect();
    let model_validators: BTreeSet<(B256, u64)> = model_nodes
        .iter()
        .filter(|(_, n)| n.validator)
        .map(|(k, n)| (*k, n.power))
        .collect();
    assert_eq!(validators, model_validators, "{ctx}: validators");
    for org in m.orgs.keys() {
        let id = trellis_primitives::OrgId::parse(org).unwrap();
        let mut theirs: Vec<B256> = g.organization_nodes(&id).unwrap();
        theirs.sort();
        let mut ours: Vec<B256> = model_nodes
            .iter()
            .filter(|(_, n)| &n.org == org)
            .map(|(k, _)| *k)
            .collect();
        ours.sort();
        assert_eq!(theirs, ours, "{ctx}: nodes of {org}");
    }
    // Frozen addresses.
    let count = g.frozen_count().unwrap();
    let mut frozen = BTreeSet::new();
    paged(
        count,
        Box::new(|o, l| {
            let page = g.frozen(o, l).unwrap();
            let n = page.len();
            frozen.extend(page);
            n
        }),
    );
    let model_frozen: BTreeSet<Address> = m.frozen.iter().map(|t| addr(0xf0, *t)).collect();
    assert_eq!(frozen, model_frozen, "{ctx}: frozen");
    for t in 0..shape.targets.min(50) {
        assert_eq!(
            g.is_frozen(&addr(0xf0, t)).unwrap(),
            m.frozen.contains(&t),
            "{ctx}: is_frozen {t}"
        );
    }
    // Prefixes and sub-chains.
    let count = g.prefix_count().unwrap();
    let mut prefixes = BTreeMap::new();
    paged(
        count,
        Box::new(|o, l| {
            let page = g.prefixes(o, l).unwrap();
            let n = page.len();
            prefixes.extend(
                page.into_iter()
                    .map(|(p, o)| (p.as_str().to_owned(), o.to_string())),
            );
            n
        }),
    );
    let model_prefixes: BTreeMap<String, String> = m
        .prefixes
        .iter()
        .map(|(p, o)| (prefix_name(*p), o.clone()))
        .collect();
    assert_eq!(prefixes, model_prefixes, "{ctx}: prefixes");
    let count = g.subchain_count().unwrap();
    let subchains: BTreeSet<u64> = g
        .subchains(0, count)
        .unwrap()
        .into_iter()
        .map(|s| s.chain_id)
        .collect();
    assert_eq!(subchains, m.subchains, "{ctx}: sub-chains");
    // Accounts.
    for (account, org) in &m.accounts {
        assert_eq!(
            g.account_org(account).unwrap().map(String::from).as_ref(),
            Some(org),
            "{ctx}: account {account}"
        );
    }
    for i in 0..shape.accounts {
        let a = addr(0xac, i);
        assert_eq!(
            g.account_org(&a).unwrap().map(String::from),
            m.accounts.get(&a).cloned(),
            "{ctx}: account {a}"
        );
    }
}

fn run(seed: u64, shape: &Shape) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut slots = MapSlots::empty();
    Governance::new(&mut slots)
        .init(&genesis(shape))
        .expect("init");
    let mut run = Run {
        slots,
        height: 1,
        model: initial_model(shape),
        due: BTreeMap::new(),
        actions: BTreeMap::new(),
    };
    let mut blocks = 0u64;
    let (mut executed, mut failed) = (0u64, 0u64);
    for step in 0..shape.steps {
        let roll = rng.gen_range(0..100);
        if roll < shape.propose_percent {
            // A member's admin proposes (a supervisor may propose freezes).
            let action = random_action(&mut rng, shape, &run);
            let proposers: Vec<Address> = run
                .model
                .orgs
                .values()
                .filter(|o| {
                    o.0 || (o.1 && matches!(action, Action::Freeze(_) | Action::Unfreeze(_)))
                })
                .map(|o| o.2)
                .collect();
            if proposers.is_empty() {
                continue;
            }
            let proposer = proposers[rng.gen_range(0..proposers.len())];
            let effective = if rng.gen_bool(0.6) {
                0
            } else {
                run.height + rng.gen_range(1..5)
            };
            if let Some(out) = run.call(proposer, encode(&action, effective)) {
                let id = u64::abi_decode(&out.output).expect("proposal id");
                run.actions.insert(id, action);
                run.note_passed(&out);
            }
        } else if roll < 85 {
            // Some organisation votes on some recent proposal.
            let Some(&last) = run.actions.keys().next_back() else {
                continue;
            };
            let id = last.saturating_sub(rng.gen_range(0..4));
            let voters: Vec<Address> = run.model.orgs.values().map(|o| o.2).collect();
            let voter = voters[rng.gen_range(0..voters.len())];
            let approve = rng.gen_bool(0.85);
            let input = abi::voteCall {
                proposalId: id,
                approve,
            }
            .abi_encode();
            if let Some(out) = run.call(voter, input) {
                run.note_passed(&out);
            }
        } else {
            // End the block: the model applies what is due next, in the order it passed,
            // sub-chain creations after the rest.
            let h = run.height;
            Governance::new(&mut run.slots)
                .end_block(h)
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: end_block failed: {e}"));
            let mut due = run.due.remove(&(h + 1)).unwrap_or_default();
            due.sort_by_key(|id| matches!(run.actions[id], Action::Subchain { .. }));
            for id in due {
                let action = run.actions[&id].clone();
                let applied = run.model.apply(&action, admin_of);
                let status = Governance::new(&mut run.slots)
                    .proposal(id)
                    .unwrap()
                    .expect("proposal")
                    .status;
                if applied {
                    executed += 1;
                } else {
                    failed += 1;
                }
                let expected = if applied {
                    trellis_system::governance::Status::Executed
                } else {
                    trellis_system::governance::Status::Failed
                };
                assert_eq!(
                    status,
                    expected,
                    "seed {seed} step {step}: proposal {id} ({action:?}) at height {}",
                    h + 1
                );
            }
            run.height += 1;
            blocks += 1;
            if blocks.is_multiple_of(shape.check_every) {
                compare(&mut run, shape, seed);
            }
        }
    }
    assert!(
        run.due.keys().all(|h| *h > run.height),
        "seed {seed}: a due proposal was never applied"
    );
    compare(&mut run, shape, seed);
    let entries = run.model.frozen.len() + run.model.prefixes.len() + run.model.accounts.len();
    println!("seed {seed}: {executed} proposals executed, {failed} failed, {entries} entries");
    assert!(
        executed > shape.steps as u64 / 50 && failed > 0,
        "seed {seed}: the run exercised too little ({executed} executed, {failed} failed)"
    );
}

fn seeds(default: u64) -> u64 {
    std::env::var("TRELLIS_GOV_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Four members and a supervisor voting over small pools: conflicts, removals, re-additions.
#[test]
fn random_governance_with_votes_matches_the_model() {
    let shape = Shape {
        members: 4,
        supervisor: true,
        new_orgs: 8,
        nodes: 24,
        accounts: 16,
        targets: 16,
        prefixes: 8,
        subchains: 6,
        steps: 3_000,
        propose_percent: 20,
        check_every: 1,
    };
    for seed in 0..seeds(6) {
        run(seed, &shape);
    }
}

/// One member whose proposals pass at once: registries with thousands of entries, with
/// removals and re-additions.
#[test]
fn thousands_of_entries_match_the_model() {
    let shape = Shape {
        members: 1,
        supervisor: false,
        new_orgs: 0,
        nodes: 300,
        accounts: 1_000,
        targets: 3_000,
        prefixes: 500,
        subchains: 200,
        steps: 30_000,
        propose_percent: 55,
        check_every: 400,
    };
    for seed in 100..100 + seeds(2) {
        run(seed, &shape);
    }
}
