//! `trellis bench-gas`: what one unit of gas costs in time on this machine, operation by
//! operation, and how long the worst full block at the chain's limits takes.
//!
//! Everything runs in this process over a real store in a temporary directory: for each
//! workload, blocks filled to the block gas limit with transactions of the per-transaction
//! limit are built as a validator checks them — senders recovered (in parallel, as for
//! transactions the validator never saw), executed by revm with Trellis's gas schedule and
//! system contracts, state root computed — and committed. The report gives gas per second
//! of each workload and the time of its full block; the slowest is the worst block, which
//! the gas schedule (`trellis_execution::gas`) keeps within the budget.

use alloy_consensus::{TxEnvelope, TxLegacy};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_sol_types::SolCall;
use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use trellis_crypto::AccountKey;
use trellis_execution::{execute_block, BlockEnvInput, Mode};
use trellis_primitives::{
    Block, Genesis, GenesisAccount, GenesisGovernance, GenesisOrganization, GenesisValidator,
    Header, Threshold,
};
use trellis_storage::{BlockCommit, Store};

const CHAIN_ID: u64 = 7_777;
/// The chain whose headers the anchor workload submits: four validators of power 1.
const ANCHORED_CHAIN: u64 = 9_001;

fn anchored_chain_keys() -> Vec<ed25519_consensus::SigningKey> {
    (1..=4u8)
        .map(|i| ed25519_consensus::SigningKey::from([i; 32]))
        .collect()
}

fn anchored_chain_set() -> Vec<(B256, u64)> {
    anchored_chain_keys()
        .iter()
        .map(|k| (B256::from(k.verification_key().to_bytes()), 1))
        .collect()
}

/// `submitAnchor` of block `height` of [`ANCHORED_CHAIN`], signed by all four validators.
fn anchor_call(height: u64) -> Bytes {
    let set = trellis_light::members_hash(&anchored_chain_set());
    let header = trellis_primitives::Header {
        chain_id: ANCHORED_CHAIN,
        height,
        parent_hash: B256::from(U256::from(height)),
        timestamp_ms: height,
        proposer: Address::ZERO,
        transactions_root: trellis_storage::EMPTY_ROOT,
        receipts_root: trellis_storage::EMPTY_ROOT,
        state_root: B256::from(rand::random::<[u8; 32]>()),
        logs_bloom: Default::default(),
        gas_limit: 1,
        gas_used: 0,
        validators_hash: set,
        next_validators_hash: Some(set),
    };
    let certificate = trellis_light::certify(
        ANCHORED_CHAIN,
        height,
        header.hash(),
        &anchored_chain_keys(),
    );
    trellis_system::clients::abi::submitAnchorCall {
        header: alloy_rlp::encode(&header).into(),
        certificate: certificate.into(),
        nextKeys: Vec::new(),
        nextPowers: Vec::new(),
    }
    .abi_encode()
    .into()
}

#[derive(Args, Clone)]
pub struct GasBenchArgs {
    /// Block gas limit to fill (default: the chain default).
    #[arg(long, default_value_t = trellis_primitives::DEFAULT_GAS_LIMIT)]
    pub gas_limit: u64,
    /// Gas of each transaction (default: the per-transaction default).
    #[arg(long, default_value_t = trellis_primitives::DEFAULT_MAX_TRANSACTION_GAS)]
    pub tx_gas: u64,
    /// Full blocks measured per workload (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub blocks: usize,
    /// Only workloads whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Print the report as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
    /// Funded accounts for the cold `BALANCE` workload.
    #[arg(long, default_value_t = 100_000, hide = true)]
    pub cold_accounts: u64,
    /// Storage slots for the cold `SLOAD` workload.
    #[arg(long, default_value_t = 150_000, hide = true)]
    pub cold_slots: u64,
    /// Contracts with 24 KiB of code for the cold `EXTCODESIZE` workload.
    #[arg(long, default_value_t = 2_000, hide = true)]
    pub cold_codes: u64,
}

/// One measured workload.
#[derive(Serialize, Clone)]
pub struct Row {
    pub workload: String,
    pub what: String,
    /// Gas per second over recovery, execution, state root and commit.
    pub mgas_per_sec: f64,
    /// Time of one block filled to the gas limit with this workload.
    pub full_block_ms: f64,
    pub recover_ms: f64,
    pub execute_ms: f64,
    pub commit_ms: f64,
    pub gas_per_block: u64,
    pub txs_per_block: usize,
}

#[derive(Serialize)]
pub struct Report {
    pub gas_limit: u64,
    pub tx_gas: u64,
    pub surcharges: Vec<String>,
    pub rows: Vec<Row>,
    pub worst: String,
    pub worst_block_ms: f64,
    /// CPU time of the light-client rule alone (the trusted set as the contract gets it —
    /// parsed once, then remembered — and `trellis_light::ClientState::update`: header and
    /// certificate decoding, the four signatures checked as one batch) per anchor, when the
    /// anchor workload ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor_verification_us: Option<f64>,
    /// One Ed25519 signature check on this machine, in the same run (the anchor price assumes
    /// about 50 µs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ed25519_verify_us: Option<f64>,
}

/// Microseconds of one Ed25519 signature check (median of 5 runs of 400).
fn ed25519_verify_us() -> f64 {
    let key = anchored_chain_keys().remove(0);
    let public = key.verification_key();
    let message = b"trellis ed25519 calibration";
    let signature = key.sign(message);
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..400 {
                let _ = std::hint::black_box(public.verify(&signature, message));
            }
            started.elapsed().as_secs_f64() * 1e6 / 400.0
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// Microseconds one anchor of [`ANCHORED_CHAIN`] takes to verify with the light-client rule
/// alone (median of 5 runs of 200 fresh headers).
fn anchor_verification_us() -> anyhow::Result<f64> {
    use trellis_light::{Anchor, ClientState, ValidatorSet};
    let root = Anchor {
        height: 0,
        hash: B256::repeat_byte(1),
        state_root: B256::ZERO,
        timestamp_ms: 0,
    };
    let mut runs = Vec::new();
    for run in 0..5u64 {
        let anchors: Vec<(Vec<u8>, Vec<u8>)> = (1..=200u64)
            .map(|h| {
                let call = anchor_call(run * 1_000 + h);
                let decoded = trellis_system::clients::abi::submitAnchorCall::abi_decode(&call)
                    .expect("own encoding");
                (decoded.header.to_vec(), decoded.certificate.to_vec())
            })
            .collect();
        let mut latest = root;
        let stored = anchored_chain_set();
        let started = Instant::now();
        for (header, certificate) in &anchors {
            // As the contract does: the trusted set from its stored keys, parsed once and
            // remembered.
            let set = ValidatorSet::from_keys_cached(&stored)?;
            let mut client = ClientState::new(ANCHORED_CHAIN, latest, set);
            client
                .update(header, certificate, None, |_| None)
                .map_err(|e| anyhow::anyhow!("anchor refused: {e}"))?;
            latest = client.latest;
        }
        runs.push(started.elapsed().as_secs_f64() * 1e6 / anchors.len() as f64);
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}

// ---- a tiny EVM assembler for the loop contracts ----

mod op {
    pub const STOP: u8 = 0x00;
    pub const ADD: u8 = 0x01;
    pub const MUL: u8 = 0x02;
    pub const GT: u8 = 0x11;
    pub const KECCAK256: u8 = 0x20;
    pub const BALANCE: u8 = 0x31;
    pub const CALLDATALOAD: u8 = 0x35;
    pub const CALLDATASIZE: u8 = 0x36;
    pub const CALLDATACOPY: u8 = 0x37;
    pub const EXTCODESIZE: u8 = 0x3b;
    pub const POP: u8 = 0x50;
    pub const MLOAD: u8 = 0x51;
    pub const SLOAD: u8 = 0x54;
    pub const SSTORE: u8 = 0x55;
    pub const JUMPI: u8 = 0x57;
    pub const GAS: u8 = 0x5a;
    pub const JUMPDEST: u8 = 0x5b;
    pub const PUSH0: u8 = 0x5f;
    pub const DUP1: u8 = 0x80;
    pub const LOG0: u8 = 0xa0;
    pub const CREATE: u8 = 0xf0;
    pub const STATICCALL: u8 = 0xfa;
}

#[derive(Default)]
struct Asm {
    code: Vec<u8>,
}

impl Asm {
    fn op(&mut self, o: u8) -> &mut Self {
        self.code.push(o);
        self
    }

    fn push(&mut self, v: u64) -> &mut Self {
        if v == 0 {
            return self.op(op::PUSH0);
        }
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        self.code.push(0x60 + (8 - skip) as u8 - 1);
        self.code.extend_from_slice(&bytes[skip..]);
        self
    }

    fn push_address(&mut self, a: Address) -> &mut Self {
        self.code.push(0x73);
        self.code.extend_from_slice(a.as_slice());
        self
    }

    /// `body` repeated while more than `reserve` gas is left, after `prologue`.
    fn looped(prologue: impl FnOnce(&mut Asm), body: impl FnOnce(&mut Asm), reserve: u64) -> Bytes {
        let mut a = Asm::default();
        prologue(&mut a);
        let top = a.code.len() as u64;
        a.op(op::JUMPDEST);
        body(&mut a);
        a.push(reserve).op(op::GAS).op(op::GT);
        // PUSH2 of the loop's start, so that the code is the same whatever `top` is.
        a.code.push(0x61);
        a.code.extend_from_slice(&(top as u16).to_be_bytes());
        a.op(op::JUMPI).op(op::STOP);
        a.code.into()
    }
}

/// The whole calldata copied to memory at 0.
fn copy_calldata(a: &mut Asm) {
    a.op(op::CALLDATASIZE).push(0).push(0).op(op::CALLDATACOPY);
}

/// STATICCALL of the precompile at `address` with the whole calldata as input, the output
/// written after it.
fn precompile_loop(address: u64) -> Bytes {
    Asm::looped(
        copy_calldata,
        |a| {
            a.push(1024)
                .op(op::CALLDATASIZE)
                .op(op::CALLDATASIZE)
                .push(0)
                .push(address)
                .op(op::GAS)
                .op(op::STATICCALL)
                .op(op::POP);
        },
        50_000,
    )
}

/// Contract code that does `body` on a counter starting at calldata word 0 (so that every
/// transaction touches fresh keys), then increments it.
fn counter_loop(body: impl FnOnce(&mut Asm)) -> Bytes {
    Asm::looped(
        |a| {
            a.push(0).op(op::CALLDATALOAD);
        },
        |a| {
            body(a);
            a.push(1).op(op::ADD);
        },
        50_000,
    )
}

// ---- workloads ----

/// What the transactions of a workload send.
enum Send {
    /// 21,000-gas value transfers to fresh addresses.
    Transfers,
    /// Calls of the contract at `to` with the calldata `input(i)` for transaction `i`.
    Call {
        to: Address,
        input: Box<dyn Fn(usize) -> Bytes>,
        gas: Option<u64>,
    },
}

struct Workload {
    name: String,
    what: String,
    send: Send,
}

/// Where the loop contracts live in the benchmark's genesis.
fn contract_address(i: u8) -> Address {
    let mut a = [0u8; 20];
    a[0] = 0xbe;
    a[19] = i;
    Address::from(a)
}

/// Code size of the contracts the cold `EXTCODESIZE` and `CREATE` workloads touch.
const COLD_CODE_BYTES: usize = 24 * 1024;

fn cold_account(i: u64) -> Address {
    let mut a = [0u8; 20];
    a[0] = 0xca;
    a[12..].copy_from_slice(&i.to_be_bytes());
    Address::from(a)
}

fn cold_code(i: u64) -> Address {
    let mut a = [0u8; 20];
    a[0] = 0xcc;
    a[12..].copy_from_slice(&i.to_be_bytes());
    Address::from(a)
}

fn word(v: U256) -> Bytes {
    Bytes::from(v.to_be_bytes::<32>().to_vec())
}

fn address_word(a: Address) -> Bytes {
    word(U256::from_be_slice(a.as_slice()))
}

fn random_word(_: usize) -> Bytes {
    Bytes::from(rand::random::<[u8; 32]>().to_vec())
}

/// Contracts placed in genesis: (address index, code).
fn contracts(precompiles: &[PrecompileCase]) -> Vec<(u8, Bytes)> {
    let mut out = vec![
        // Arithmetic: MUL and ADD on the stack.
        (
            1,
            Asm::looped(
                |a| {
                    a.push(3);
                },
                |a| {
                    a.op(op::DUP1).op(op::MUL).push(7).op(op::ADD);
                },
                50_000,
            ),
        ),
        // KECCAK256 over 32 KiB of memory.
        (
            2,
            Asm::looped(
                |_| {},
                |a| {
                    a.push(32 * 1024).push(0).op(op::KECCAK256).op(op::POP);
                },
                50_000,
            ),
        ),
        // SSTORE of fresh slots.
        (
            3,
            counter_loop(|a| {
                a.op(op::DUP1).op(op::DUP1).op(op::SSTORE);
            }),
        ),
        // SLOAD of cold slots (this contract's genesis storage).
        (
            4,
            counter_loop(|a| {
                a.op(op::DUP1).op(op::SLOAD).op(op::POP);
            }),
        ),
        // BALANCE of cold accounts.
        (
            5,
            counter_loop(|a| {
                a.op(op::DUP1).op(op::BALANCE).op(op::POP);
            }),
        ),
        // EXTCODESIZE of cold contracts with 24 KiB of code each.
        (
            6,
            counter_loop(|a| {
                a.op(op::DUP1).op(op::EXTCODESIZE).op(op::POP);
            }),
        ),
        // LOG0 of 16 KiB of memory.
        (
            7,
            Asm::looped(
                |_| {},
                |a| {
                    a.push(16 * 1024).push(0).op(op::LOG0);
                },
                50_000,
            ),
        ),
        // CREATE of contracts with 24 KiB of code: the calldata is init code returning it.
        (
            8,
            Asm::looped(
                copy_calldata,
                |a| {
                    a.op(op::CALLDATASIZE)
                        .push(0)
                        .push(0)
                        .op(op::CREATE)
                        .op(op::POP);
                },
                6_000_000,
            ),
        ),
        // STATICCALL of a contract that returns at once: the cost of a call frame.
        (
            10,
            Asm::looped(
                |_| {},
                |a| {
                    a.push(0)
                        .push(0)
                        .push(0)
                        .push(0)
                        .push_address(contract_address(11))
                        .op(op::GAS)
                        .op(op::STATICCALL)
                        .op(op::POP);
                },
                50_000,
            ),
        ),
        (11, Bytes::from_static(&[op::STOP])),
        // MLOAD far into memory once, then cheap loads: memory expansion.
        (
            9,
            Asm::looped(
                |_| {},
                |a| {
                    a.push(0).op(op::MLOAD).op(op::POP);
                },
                50_000,
            ),
        ),
    ];
    for (i, p) in precompiles.iter().enumerate() {
        out.push((100 + i as u8, precompile_loop(p.address)));
    }
    out
}

/// Runtime code and calldata of the loop contract for the workload `name` — any precompile
/// case, `keccak-32k` or `arithmetic` — for `trellis bench --workload worst-case`, which
/// deploys it on a running chain.
pub fn loop_contract(name: &str) -> anyhow::Result<(Bytes, Bytes)> {
    let (code, input) = match name {
        "keccak-32k" => (contracts(&[])[1].1.clone(), Bytes::new()),
        "arithmetic" => (contracts(&[])[0].1.clone(), Bytes::new()),
        _ => {
            let case = crate::precompile_cases::cases()?
                .into_iter()
                .find(|c| c.name == name)
                .with_context(|| {
                    format!("no workload {name:?}: use keccak-32k, arithmetic or a precompile case of `trellis bench-gas`")
                })?;
            (precompile_loop(case.address), case.input)
        }
    };
    Ok((code, input))
}

/// Init code that returns `runtime` as the contract's code.
pub fn deploy_code(runtime: &[u8]) -> Bytes {
    // CODECOPY(0, 12, len) RETURN(0, len): 12 is this prologue's length.
    let len = runtime.len() as u16;
    let mut code = vec![0x61];
    code.extend_from_slice(&len.to_be_bytes());
    code.extend_from_slice(&[0x60, 12, 0x5f, 0x39, 0x61]);
    code.extend_from_slice(&len.to_be_bytes());
    code.extend_from_slice(&[0x5f, 0xf3]);
    code.extend_from_slice(runtime);
    code.into()
}

/// Init code that deploys `n` bytes of runtime code (all `STOP`).
fn init_code(n: usize) -> Bytes {
    let mut a = Asm::default();
    // RETURN(0, n) of zeroed memory.
    a.push(n as u64).push(0).op(0xf3);
    a.code.into()
}

/// A precompile workload: its address and a valid worst-case input.
pub struct PrecompileCase {
    pub name: String,
    pub what: String,
    pub address: u64,
    pub input: Bytes,
}

fn system_workloads(tx_gas: u64) -> Vec<Workload> {
    // Batches as large as a transaction of `tx_gas` holds.
    let digests = (tx_gas / 40_000).clamp(1, 1_000) as usize;
    let records = (tx_gas / 140_000).clamp(1, 1_000) as usize;
    use trellis_system::{dids, evidence, governance, identifiers, DIDS_ADDRESS, EVIDENCE_ADDRESS};
    vec![
        Workload {
            name: "governance-freeze".into(),
            what: "governance `proposeFreeze` of fresh addresses (one member: each passes at once)"
                .into(),
            send: Send::Call {
                to: trellis_system::GOVERNANCE_ADDRESS,
                input: Box::new(|_| {
                    governance::abi::proposeFreezeCall {
                        target: Address::from(rand::random::<[u8; 20]>()),
                        effectiveHeight: 0,
                    }
                    .abi_encode()
                    .into()
                }),
                gas: Some(500_000),
            },
        },
        Workload {
            name: "evidence-digests".into(),
            what: "evidence `submitDigests`: SHA-256 digests, as many as a transaction holds"
                .into(),
            send: Send::Call {
                to: EVIDENCE_ADDRESS,
                input: Box::new(move |_| {
                    let digests: Vec<B256> = (0..digests)
                        .map(|_| B256::from(rand::random::<[u8; 32]>()))
                        .collect();
                    evidence::abi::submitDigestsCall {
                        algorithm: 1,
                        digests,
                    }
                    .abi_encode()
                    .into()
                }),
                gas: None,
            },
        },
        Workload {
            name: "identifiers-register".into(),
            what: "identifiers `registerBatch`: records of one 64-byte URL, as many as fit".into(),
            send: Send::Call {
                to: trellis_system::IDENTIFIERS_ADDRESS,
                input: Box::new(move |i| {
                    let items = (0..records)
                        .map(|j| identifiers::abi::Registration {
                            identifier: format!("BENCH.1/{i}-{j}-{}", rand::random::<u64>()),
                            values: vec![identifiers::abi::Value {
                                index: 1,
                                valueType: "URL".into(),
                                data: vec![b'x'; 64].into(),
                                ttl: 86_400,
                            }],
                        })
                        .collect();
                    identifiers::abi::registerBatchCall { items }
                        .abi_encode()
                        .into()
                }),
                gas: None,
            },
        },
        Workload {
            name: "light-client-anchors".into(),
            what: "light-client `submitAnchor`: a new header of a followed chain of 4 \
                   validators per call (4 signatures checked as one batch; 4 keys priced, \
                   parsed once)"
                .into(),
            send: Send::Call {
                to: trellis_system::LIGHT_CLIENTS_ADDRESS,
                input: Box::new(|i| anchor_call(i as u64 + 1)),
                gas: Some(400_000),
            },
        },
        Workload {
            name: "dids-resolve".into(),
            what: "DID `resolve` reads of a missing DID (one per call), in a loop of calls".into(),
            send: Send::Call {
                to: DIDS_ADDRESS,
                input: Box::new(|_| {
                    dids::abi::resolveCall {
                        id: Address::from(rand::random::<[u8; 20]>()),
                    }
                    .abi_encode()
                    .into()
                }),
                gas: Some(100_000),
            },
        },
    ]
}

fn workloads(args: &GasBenchArgs, precompiles: Vec<PrecompileCase>) -> Vec<Workload> {
    // Each transaction of a round starts its run of cold keys in a window of its own.
    let (slots, accounts, codes) = (
        args.cold_slots / 10,
        args.cold_accounts / 10,
        args.cold_codes / 10,
    );
    let call = |i: u8, input: Box<dyn Fn(usize) -> Bytes>| Send::Call {
        to: contract_address(i),
        input,
        gas: None,
    };
    let mut out = vec![
        Workload {
            name: "transfer".into(),
            what: "plain value transfers (21,000 gas each)".into(),
            send: Send::Transfers,
        },
        Workload {
            name: "arithmetic".into(),
            what: "a loop of MUL and ADD".into(),
            send: call(1, Box::new(|_| Bytes::new())),
        },
        Workload {
            name: "keccak-32k".into(),
            what: "KECCAK256 over 32 KiB of memory".into(),
            send: call(2, Box::new(|_| Bytes::new())),
        },
        Workload {
            name: "sstore-new".into(),
            what: "SSTORE to fresh slots (22,100 gas each)".into(),
            send: call(3, Box::new(random_word)),
        },
        Workload {
            name: "sload-cold".into(),
            what: "SLOAD of cold slots of a contract with 150,000 slots".into(),
            send: call(
                4,
                Box::new(move |i| word(U256::from(1 + (i as u64 % 10) * slots))),
            ),
        },
        Workload {
            name: "balance-cold".into(),
            what: "BALANCE of cold accounts among 100,000".into(),
            send: call(
                5,
                Box::new(move |i| address_word(cold_account((i as u64 % 10) * accounts))),
            ),
        },
        Workload {
            name: "extcodesize-cold".into(),
            what: "EXTCODESIZE of cold contracts with 24 KiB of code each".into(),
            send: call(
                6,
                Box::new(move |i| address_word(cold_code((i as u64 % 10) * codes))),
            ),
        },
        Workload {
            name: "call-contract".into(),
            what: "STATICCALL of a contract that stops at once".into(),
            send: call(10, Box::new(|_| Bytes::new())),
        },
        Workload {
            name: "log-16k".into(),
            what: "LOG0 with 16 KiB of data".into(),
            send: call(7, Box::new(|_| Bytes::new())),
        },
        Workload {
            name: "create-24k".into(),
            what: "CREATE of contracts with 24 KiB of code".into(),
            send: call(8, Box::new(|_| init_code(COLD_CODE_BYTES))),
        },
    ];
    out.extend(system_workloads(args.tx_gas));
    for (i, p) in precompiles.into_iter().enumerate() {
        let input = p.input.clone();
        out.push(Workload {
            name: p.name,
            what: p.what,
            send: call(100 + i as u8, Box::new(move |_| input.clone())),
        });
    }
    out
}

// ---- the chain the blocks run on ----

struct BenchChain {
    _dir: tempfile::TempDir,
    store: Store,
    tip: Block,
    gas_limit: u64,
    tx_gas: u64,
}

/// Keys of the sending accounts (registered, funded).
fn sender(i: usize) -> AccountKey {
    AccountKey::dev(i as u32)
}

const SENDERS: usize = 16;

fn genesis(args: &GasBenchArgs, codes: &[(u8, Bytes)]) -> anyhow::Result<Genesis> {
    let validator = trellis_crypto::NodeKey::generate();
    let mut alloc = BTreeMap::new();
    let funded = |balance: u64| GenesisAccount {
        balance: U256::from(balance) * U256::from(10u64).pow(U256::from(18u64)),
        ..Default::default()
    };
    for i in 0..SENDERS {
        alloc.insert(sender(i).address(), funded(1_000_000));
    }
    for (i, code) in codes {
        let mut account = GenesisAccount {
            code: code.clone(),
            ..Default::default()
        };
        if *i == 4 {
            account.storage = (1..=args.cold_slots)
                .map(|s| (B256::from(U256::from(s)), B256::from(U256::from(s))))
                .collect();
        }
        alloc.insert(contract_address(*i), account);
    }
    for i in 0..args.cold_accounts {
        alloc.insert(cold_account(i), funded(1));
    }
    for i in 0..args.cold_codes {
        let mut code = vec![0u8; COLD_CODE_BYTES];
        code[..8].copy_from_slice(&i.to_be_bytes());
        alloc.insert(
            cold_code(i),
            GenesisAccount {
                code: code.into(),
                ..Default::default()
            },
        );
    }
    let genesis = Genesis {
        chain_id: trellis_primitives::ChainId(CHAIN_ID),
        timestamp_ms: 1,
        gas_limit: args.gas_limit,
        max_transaction_gas: args.tx_gas,
        validators: vec![GenesisValidator {
            name: "bench".into(),
            public_key: (*validator.public().as_bytes()).into(),
            power: 1,
            org: "bench".into(),
        }],
        governance: GenesisGovernance {
            organizations: vec![GenesisOrganization {
                id: "bench".into(),
                name: "bench".into(),
                admins: vec![sender(0).address()],
                member: true,
                supervisor: false,
                accounts: (1..SENDERS).map(|i| sender(i).address()).collect(),
            }],
            nodes: Vec::new(),
            threshold: Threshold::default(),
            proposal_ttl_blocks: 1_000,
        },
        alloc,
        light_clients: vec![trellis_primitives::GenesisLightClient {
            chain_id: trellis_primitives::ChainId(ANCHORED_CHAIN),
            root_height: 0,
            root_hash: B256::repeat_byte(1),
            root_state_root: B256::ZERO,
            root_timestamp_ms: 0,
            validators: anchored_chain_set()
                .into_iter()
                .map(
                    |(public_key, power)| trellis_primitives::GenesisClientValidator {
                        public_key,
                        power,
                    },
                )
                .collect(),
            hub: false,
        }],
    };
    genesis.validate()?;
    Ok(genesis)
}

/// Timings of one block.
#[derive(Clone, Copy, Default)]
struct Timing {
    recover: Duration,
    execute: Duration,
    commit: Duration,
    gas: u64,
    txs: usize,
    /// Transactions whose receipt says they failed.
    failed: usize,
}

impl BenchChain {
    fn new(args: &GasBenchArgs, codes: &[(u8, Bytes)]) -> anyhow::Result<BenchChain> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("state.redb"))?;
        let genesis = genesis(args, codes)?;
        let (changes, block0) =
            trellis_node::genesis_block(&genesis).map_err(|e| anyhow::anyhow!("{e}"))?;
        store.init_genesis(&changes, &block0)?;
        Ok(BenchChain {
            _dir: dir,
            store,
            tip: block0,
            gas_limit: args.gas_limit,
            tx_gas: args.tx_gas,
        })
    }

    fn nonce(&self, address: &Address) -> anyhow::Result<u64> {
        Ok(self
            .store
            .view()?
            .account(address)?
            .map(|a| a.nonce)
            .unwrap_or(0))
    }

    /// Builds, as a validator checks it, and commits a block of `txs`.
    fn block(&mut self, txs: Vec<TxEnvelope>) -> anyhow::Result<Timing> {
        let height = self.tip.header.height + 1;
        let t0 = Instant::now();
        let senders = trellis_crypto::recover_senders(&txs)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let t1 = Instant::now();
        let view = self.store.view()?;
        let env = BlockEnvInput {
            chain_id: CHAIN_ID,
            height,
            timestamp_ms: self.tip.header.timestamp_ms + 1_000,
            proposer: Address::ZERO,
            gas_limit: self.gas_limit,
            max_tx_gas: self.tx_gas,
        };
        let n = txs.len();
        let executed = execute_block(&view, &env, txs, senders, Mode::Build)?;
        if let Some((hash, reason)) = executed.rejected.first() {
            bail!("transaction {hash} was left out: {reason}");
        }
        if executed.transactions.len() != n {
            bail!(
                "only {} of {n} transactions fit",
                executed.transactions.len()
            );
        }
        let t2 = Instant::now();
        let block = Block {
            header: Header {
                chain_id: CHAIN_ID,
                height,
                parent_hash: self.tip.hash(),
                timestamp_ms: env.timestamp_ms,
                proposer: Address::ZERO,
                transactions_root: Block::compute_transactions_root(&executed.transactions),
                receipts_root: executed.receipts_root,
                state_root: executed.state_root,
                logs_bloom: executed.logs_bloom,
                gas_limit: self.gas_limit,
                gas_used: executed.gas_used,
                validators_hash: B256::ZERO,
                next_validators_hash: None,
            },
            transactions: executed.transactions.clone(),
        };
        self.store.commit_block(BlockCommit {
            block: &block,
            certificate: &[],
            receipts: &executed.receipts,
            senders: &executed.senders,
            reverts: &executed.reverts,
            changes: &executed.changes,
        })?;
        let t3 = Instant::now();
        self.tip = block;
        let failed = executed
            .receipts
            .iter()
            .filter(|r| !alloy_consensus::TxReceipt::status(*r))
            .count();
        Ok(Timing {
            recover: t1 - t0,
            execute: t2 - t1,
            commit: t3 - t2,
            gas: executed.gas_used,
            txs: n,
            failed,
        })
    }

    /// Signed transactions of `w` filling one block.
    fn fill(&self, w: &Workload, round: usize) -> anyhow::Result<Vec<TxEnvelope>> {
        let (per_tx, count) = match &w.send {
            Send::Transfers => (21_000, (self.gas_limit / 21_000) as usize),
            Send::Call { gas, .. } => {
                let g = gas.unwrap_or(self.tx_gas).min(self.tx_gas);
                (g, (self.gas_limit / g) as usize)
            }
        };
        let mut nonces = Vec::with_capacity(SENDERS);
        for i in 0..SENDERS {
            nonces.push(self.nonce(&sender(i).address())?);
        }
        let keys: Vec<AccountKey> = (0..SENDERS).map(sender).collect();
        let txs = (0..count)
            .map(|i| {
                let s = i % SENDERS;
                let nonce = nonces[s];
                nonces[s] += 1;
                let (to, input) = match &w.send {
                    Send::Transfers => (Address::from(rand::random::<[u8; 20]>()), Bytes::new()),
                    Send::Call { to, input, .. } => (*to, input(round * count + i)),
                };
                keys[s].sign_tx(TxLegacy {
                    chain_id: Some(CHAIN_ID),
                    nonce,
                    gas_price: 0,
                    gas_limit: per_tx,
                    to: TxKind::Call(to),
                    value: if matches!(w.send, Send::Transfers) {
                        U256::from(1)
                    } else {
                        U256::ZERO
                    },
                    input,
                })
            })
            .collect();
        Ok(txs)
    }
}

/// Delegates the identifier prefix `BENCH.1` to the benchmark's organisation.
fn delegate_prefix(chain: &mut BenchChain) -> anyhow::Result<()> {
    use trellis_system::governance::abi;
    let key = sender(0);
    let tx = key.sign_tx(TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce: chain.nonce(&key.address())?,
        gas_price: 0,
        gas_limit: 1_000_000,
        to: TxKind::Call(trellis_system::GOVERNANCE_ADDRESS),
        value: U256::ZERO,
        input: abi::proposeDelegatePrefixCall {
            prefix: "BENCH.1".into(),
            org: "bench".into(),
            effectiveHeight: 0,
        }
        .abi_encode()
        .into(),
    });
    chain.block(vec![tx])?;
    chain.block(Vec::new())?;
    Ok(())
}

fn median(mut v: Vec<Timing>) -> Timing {
    v.sort_by_key(|t| t.recover + t.execute + t.commit);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

pub fn execute(args: &GasBenchArgs, precompiles: Vec<PrecompileCase>) -> anyhow::Result<Report> {
    let codes = contracts(&precompiles);
    eprintln!("building the benchmark's genesis state ...");
    let mut chain = BenchChain::new(args, &codes)?;
    delegate_prefix(&mut chain)?;
    let mut rows = Vec::new();
    for w in workloads(args, precompiles) {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !w.name.contains(o.as_str()))
        {
            continue;
        }
        let mut timings = Vec::new();
        for round in 0..args.blocks.max(1) {
            let txs = chain.fill(&w, round)?;
            let t = chain
                .block(txs)
                .with_context(|| format!("workload {}", w.name))?;
            // Anchors the contract refused would be timed at the price of a revert.
            if w.name == "light-client-anchors" && t.failed > 0 {
                bail!("{} of {} anchors failed", t.failed, t.txs);
            }
            timings.push(t);
        }
        let t = median(timings);
        let total = t.recover + t.execute + t.commit;
        let gas_per_sec = t.gas as f64 / total.as_secs_f64().max(1e-9);
        let row = Row {
            workload: w.name,
            what: w.what,
            mgas_per_sec: gas_per_sec / 1e6,
            full_block_ms: args.gas_limit as f64 / gas_per_sec * 1_000.0,
            recover_ms: ms(t.recover),
            execute_ms: ms(t.execute),
            commit_ms: ms(t.commit),
            gas_per_block: t.gas,
            txs_per_block: t.txs,
        };
        eprintln!(
            "{:<22} {:>9.1} Mgas/s  full block {:>7.1} ms",
            row.workload, row.mgas_per_sec, row.full_block_ms
        );
        rows.push(row);
    }
    let worst = rows
        .iter()
        .max_by(|a, b| a.full_block_ms.total_cmp(&b.full_block_ms))
        .cloned()
        .context("no workload ran")?;
    let anchor_verification_us = rows
        .iter()
        .any(|r| r.workload == "light-client-anchors")
        .then(anchor_verification_us)
        .transpose()?;
    let ed25519_verify_us = anchor_verification_us.map(|_| ed25519_verify_us());
    Ok(Report {
        gas_limit: args.gas_limit,
        tx_gas: args.tx_gas,
        surcharges: trellis_execution::gas::surcharges(),
        rows,
        worst: worst.workload,
        worst_block_ms: worst.full_block_ms,
        anchor_verification_us,
        ed25519_verify_us,
    })
}

pub fn run(args: GasBenchArgs) -> anyhow::Result<()> {
    let report = execute(&args, crate::precompile_cases::cases()?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "| workload | what | Mgas/s | full block (ms) | recover / execute / commit (ms) | gas used | txs |"
    );
    println!("|---|---|---:|---:|---|---:|---:|");
    for r in &report.rows {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.0} / {:.0} / {:.0} | {} | {} |",
            r.workload,
            r.what,
            r.mgas_per_sec,
            r.full_block_ms,
            r.recover_ms,
            r.execute_ms,
            r.commit_ms,
            r.gas_per_block,
            r.txs_per_block
        );
    }
    println!();
    println!(
        "worst full block at {} gas ({} per transaction): {} — {:.0} ms",
        report.gas_limit, report.tx_gas, report.worst, report.worst_block_ms
    );
    if !report.surcharges.is_empty() {
        println!("gas schedule surcharges: {}", report.surcharges.join(", "));
    }
    if let (Some(us), Some(one)) = (report.anchor_verification_us, report.ed25519_verify_us) {
        println!(
            "light-client rule alone: {us:.0} µs per anchor of a chain of 4 validators \
             ({:.2} × its 4 signature checks; one Ed25519 check: {one:.1} µs)",
            us / (4.0 * one)
        );
    }
    Ok(())
}

/// Checks the benchmark's own pieces on a small block budget (the timings are not checked).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_fills_blocks_that_commit() {
        let args = GasBenchArgs {
            gas_limit: 3_000_000,
            tx_gas: 1_000_000,
            blocks: 1,
            only: None,
            json: true,
            cold_accounts: 100,
            cold_slots: 100,
            cold_codes: 20,
        };
        let report = execute(&args, Vec::new()).expect("bench runs");
        for row in &report.rows {
            assert!(row.gas_per_block > 0, "{} used no gas", row.workload);
            assert!(row.txs_per_block > 0, "{}", row.workload);
        }
    }
}
