//! Fuzz target bodies: one function per decoder that faces the network or users. Each takes
//! arbitrary bytes, must never panic, and checks what must hold of whatever decodes (it
//! re-encodes to something that decodes to the same thing).
//!
//! `fuzz/` wraps each as a cargo-fuzz target (`cargo fuzz run raw_transaction`);
//! `tests/corpus.rs` replays `fuzz/corpus/<target>/*` and a seeded batch of random and
//! mutated inputs through them on every `cargo test`, so each crash found becomes a
//! regression test by adding its input to the corpus.

use alloy_eips::eip2718::Encodable2718;
use bytes::Bytes;
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::sync::{Request, Response, Status};
use malachitebft_app_channel::app::types::{ProposedValue, SignedConsensusMsg};
use malachitebft_codec::Codec;
use std::sync::OnceLock;
use trellis_consensus::context::ProposalPart;
use trellis_consensus::{TrellisCodec, TrellisContext};

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*`).
pub const TARGETS: &[(&str, Target)] = &[
    ("raw_transaction", raw_transaction),
    ("block", block),
    ("consensus_message", consensus_message),
    ("certificate", certificate),
    ("genesis", genesis),
    ("node_config", node_config),
    ("governance_call", governance_call),
    ("evidence_call", evidence_call),
    ("evidence_proof", evidence_proof),
    ("identifiers_call", identifiers_call),
    ("did_call", did_call),
    ("json_rpc", json_rpc),
    ("light_client", light_client),
    ("light_clients_call", light_clients_call),
    ("subchain_genesis", subchain_genesis),
    ("xchain_call", xchain_call),
];

/// A raw transaction as `eth_sendRawTransaction` and gossip receive it.
pub fn raw_transaction(data: &[u8]) {
    let Ok(tx) = trellis_mempool::decode_and_check(data, 1337, 1_000_000_000) else {
        return;
    };
    let again = trellis_mempool::decode_and_check(&tx.encoded_2718(), 1337, 1_000_000_000)
        .expect("a re-encoded transaction decodes");
    assert_eq!(again.tx_hash(), tx.tx_hash());
    let _ = trellis_crypto::recover_sender(&tx);
}

/// A block as proposal streams and sync deliver it.
pub fn block(data: &[u8]) {
    let Ok(block) = trellis_primitives::Block::decode_bytes(data) else {
        return;
    };
    let again = trellis_primitives::Block::decode_bytes(&block.encode_to_vec())
        .expect("a re-encoded block decodes");
    assert_eq!(again.hash(), block.hash());
    assert_eq!(again.transactions.len(), block.transactions.len());
    let _ = block.body_matches_header();
}

/// Decodes with `T`'s codec; what decodes must re-encode stably.
fn codec_round_trip<T>(data: &[u8])
where
    TrellisCodec: Codec<T>,
{
    let Ok(value) = <TrellisCodec as Codec<T>>::decode(&TrellisCodec, Bytes::copy_from_slice(data))
    else {
        return;
    };
    let first = <TrellisCodec as Codec<T>>::encode(&TrellisCodec, &value)
        .expect("a decoded message encodes");
    let again = <TrellisCodec as Codec<T>>::decode(&TrellisCodec, first.clone())
        .expect("re-encoding decodes");
    let second = <TrellisCodec as Codec<T>>::encode(&TrellisCodec, &again).expect("encodes");
    assert_eq!(first, second, "re-encoding is not stable");
}

/// Every consensus, streaming and sync message a peer can send; the first byte picks the type.
pub fn consensus_message(data: &[u8]) {
    let Some((kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 7 {
        0 => codec_round_trip::<SignedConsensusMsg<TrellisContext>>(rest),
        1 => codec_round_trip::<LivenessMsg<TrellisContext>>(rest),
        2 => codec_round_trip::<StreamMessage<ProposalPart>>(rest),
        3 => codec_round_trip::<ProposedValue<TrellisContext>>(rest),
        4 => codec_round_trip::<Status<TrellisContext>>(rest),
        5 => codec_round_trip::<Request<TrellisContext>>(rest),
        _ => codec_round_trip::<Response<TrellisContext>>(rest),
    }
}

/// A commit certificate as stored and served by sync.
pub fn certificate(data: &[u8]) {
    if let Ok(cert) = trellis_consensus::decode_certificate(data) {
        let bytes = trellis_consensus::encode_certificate(&cert);
        let again = trellis_consensus::decode_certificate(&bytes).expect("re-encoding decodes");
        assert_eq!(trellis_consensus::encode_certificate(&again), bytes);
    }
}

/// A genesis file.
pub fn genesis(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(g) = trellis_primitives::Genesis::from_json(text) {
        let again = trellis_primitives::Genesis::from_json(&g.to_json()).expect("round trip");
        assert_eq!(again, g);
        // Building the genesis state must not panic either (it may refuse, e.g. bad keys).
        let _ = trellis_node::genesis_block(&g);
    }
}

/// A node configuration file.
pub fn node_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = toml::from_str::<trellis_node::NodeConfig>(text) {
        let again: trellis_node::NodeConfig =
            toml::from_str(&config.to_toml()).expect("a written config reads back");
        assert_eq!(again.to_toml(), config.to_toml());
    }
}

type Slots = std::collections::BTreeMap<alloy_primitives::U256, alloy_primitives::U256>;

/// Governance storage with two organisations, built once.
fn governance_state() -> &'static Slots {
    static STATE: OnceLock<Slots> = OnceLock::new();
    STATE.get_or_init(|| {
        let genesis = trellis_primitives::Genesis::from_json(
            r#"{"chainId": 7,
                "validators": [{"publicKey": "0x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29", "power": 1, "org": "org1"}],
                "governance": {"organizations": [
                    {"id": "org1", "admins": ["0x0000000000000000000000000000000000000001"]},
                    {"id": "org2", "admins": ["0x0000000000000000000000000000000000000002"]}]}}"#,
        )
        .expect("fuzz genesis");
        let mut slots = trellis_system::MapSlots::empty();
        let mut gov = trellis_system::Governance::new(&mut slots);
        gov.init(&genesis).expect("init");
        // Prefix MA.156 delegated to org1 by both organisations' votes.
        let ctx = |admin: u8| trellis_system::CallContext {
            caller: alloy_primitives::Address::with_last_byte(admin),
            height: 1,
            tx_hash: alloy_primitives::B256::ZERO,
            is_static: false,
        };
        use alloy_sol_types::SolCall;
        use trellis_system::governance::abi;
        let propose = abi::proposeDelegatePrefixCall {
            prefix: "MA.156".into(),
            org: "org1".into(),
            effectiveHeight: 0,
        };
        gov.call(&ctx(1), &propose.abi_encode()).expect("proposed");
        let vote = abi::voteCall { proposalId: 0, approve: true };
        gov.call(&ctx(2), &vote.abi_encode()).expect("voted");
        gov.end_block(1).expect("applied");
        slots.writes
    })
}

/// A call to the governance contract (any transaction's input): the first byte picks the
/// caller (an admin, an outsider, or static), the rest is the calldata. It must succeed or
/// revert with a reason, never fail its storage or panic.
pub fn governance_call(data: &[u8]) {
    let Some((who, input)) = data.split_first() else {
        return;
    };
    let base = governance_state();
    let mut slots =
        trellis_system::MapSlots::over(|slot| Ok(base.get(&slot).copied().unwrap_or_default()));
    let ctx = trellis_system::CallContext {
        caller: alloy_primitives::Address::with_last_byte(who % 4),
        height: 5,
        tx_hash: alloy_primitives::B256::ZERO,
        is_static: who & 0x80 != 0,
    };
    let mut gov = trellis_system::Governance::new(&mut slots);
    match gov.call(&ctx, input) {
        Ok(_) | Err(trellis_system::CallError::Revert(_)) => {}
        Err(e) => panic!("governance storage failed on fuzz input: {e}"),
    }
    gov.end_block(5)
        .expect("end of block works on any state the calls leave");
}

/// Calldata for the evidence contract (first byte picks the caller, its organisation and a
/// static call): any input either reverts with a reason or leaves records that read back.
pub fn evidence_call(data: &[u8]) {
    use alloy_primitives::B256;
    use trellis_system::evidence::{abi, Submitter};
    let Some((who, input)) = data.split_first() else {
        return;
    };
    let mut slots = trellis_system::MapSlots::empty();
    let caller = alloy_primitives::Address::with_last_byte(who % 4);
    let ctx = trellis_system::CallContext {
        caller,
        height: 5,
        tx_hash: B256::ZERO,
        is_static: who & 0x80 != 0,
    };
    let by = Submitter {
        address: caller,
        org: (who & 0x40 != 0).then(|| trellis_primitives::OrgId::parse("org1").expect("valid id")),
        timestamp_ms: 7,
    };
    let logs = match trellis_system::Evidence::new(&mut slots).call(&ctx, &by, input) {
        Ok(out) => out.logs,
        Err(trellis_system::CallError::Revert(_)) => return,
        Err(e) => panic!("evidence storage failed on fuzz input: {e}"),
    };
    for log in logs {
        let event =
            <abi::EvidenceSubmitted as alloy_sol_types::SolEvent>::decode_log_data(&log.data)
                .expect("the contract's own event decodes");
        let record = trellis_system::Evidence::new(&mut slots)
            .get(&event.id)
            .expect("readable")
            .expect("a submitted record exists");
        assert_eq!((record.digest, record.submitter), (event.digest, caller));
    }
}

/// A node's answer to `GET /v1/evidence/...` as the SDK verifier receives it: whatever the
/// bytes, verification returns a result (almost always an error), never panics.
pub fn evidence_proof(data: &[u8]) {
    static TRUSTED: OnceLock<trellis_sdk::Trusted> = OnceLock::new();
    let trusted = TRUSTED.get_or_init(|| trellis_sdk::Trusted {
        chain_id: 1337,
        validators: trellis_light::ValidatorSet::from_keys([(
            alloy_primitives::B256::from(
                *trellis_crypto::NodeKey::from_secret([7; 32])
                    .public()
                    .as_bytes(),
            ),
            1,
        )])
        .expect("one validator"),
    });
    let Ok(response) = serde_json::from_slice::<trellis_sdk::evidence::EvidenceResponse>(data)
    else {
        return;
    };
    let _ = trellis_sdk::evidence::verify(&response, trusted);
}

/// An anchor submitted to a light client: a big-endian u16 length, that many bytes of header
/// RLP, then the certificate. Whatever the bytes, an update is refused without changing the
/// client, or accepted for exactly the header given.
pub fn light_client(data: &[u8]) {
    use trellis_light::{Anchor, ClientState, ValidatorSet, Verdict};
    static SET: OnceLock<ValidatorSet> = OnceLock::new();
    let set = SET.get_or_init(|| {
        ValidatorSet::from_keys((1u8..=4).map(|i| {
            let key = trellis_crypto::NodeKey::from_secret([i; 32]);
            (alloy_primitives::B256::from(*key.public().as_bytes()), 1)
        }))
        .expect("four validators")
    });
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (header, certificate) = rest.split_at(len);
    let root = Anchor {
        height: 0,
        hash: alloy_primitives::B256::ZERO,
        state_root: alloy_primitives::B256::ZERO,
        timestamp_ms: 0,
    };
    let mut client = ClientState::new(1337, root, set.clone());
    match client.update(header, certificate, None, |_| None) {
        Err(_) => {
            assert_eq!(client.latest, root);
            assert!(client.frozen.is_none());
        }
        Ok(Verdict::Advanced { anchor, .. }) => {
            let decoded = trellis_light::decode_header(header).expect("an accepted header decodes");
            assert_eq!(anchor.hash, decoded.hash());
            assert_eq!(client.latest, anchor);
        }
        Ok(other) => panic!("a fresh client cannot {other:?}"),
    }
}

/// Calldata for the light-client contract, following chain 1337 with the `light_client`
/// target's validators: a call either succeeds or is refused without writing anything.
pub fn light_clients_call(data: &[u8]) {
    use trellis_system::clients::{Anchored, LightClients};
    use trellis_system::MapSlots;
    let validators: Vec<(alloy_primitives::B256, u64)> = (1u8..=4)
        .map(|i| {
            let key = trellis_crypto::NodeKey::from_secret([i; 32]);
            (alloy_primitives::B256::from(*key.public().as_bytes()), 1)
        })
        .collect();
    let mut base = MapSlots::empty();
    let root = Anchored {
        height: 0,
        hash: alloy_primitives::B256::ZERO,
        state_root: alloy_primitives::B256::ZERO,
        timestamp_ms: 0,
    };
    LightClients::new(&mut base)
        .create(1337, root, &validators)
        .expect("a client of four validators");
    let written = base.writes.clone();
    let mut slots = MapSlots::over(move |slot| Ok(written.get(&slot).copied().unwrap_or_default()));
    let ctx = trellis_system::CallContext {
        caller: alloy_primitives::Address::repeat_byte(1),
        height: 5,
        tx_hash: alloy_primitives::B256::ZERO,
        is_static: false,
    };
    if LightClients::new(&mut slots)
        .call(&ctx, 10_000_000, data)
        .is_err()
    {
        assert!(slots.writes.is_empty(), "a refused call wrote state");
    }
}

/// Calldata for the identifiers contract (first byte picks the caller among an admin, an
/// account and an outsider of the organisation holding `MA.156`), and the raw bytes as an
/// identifier string as the REST path gives it: reverts carry a reason, registered
/// identifiers read back.
pub fn identifiers_call(data: &[u8]) {
    use trellis_system::identifiers::{abi, Identifier, Identifiers};
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = Identifier::parse(s) {
            assert_eq!(Identifier::parse(id.as_str()).as_ref(), Ok(&id));
        }
    }
    let Some((who, input)) = data.split_first() else {
        return;
    };
    let base = governance_state();
    let mut gov =
        trellis_system::MapSlots::over(|slot| Ok(base.get(&slot).copied().unwrap_or_default()));
    let mut own = trellis_system::MapSlots::empty();
    let ctx = trellis_system::CallContext {
        caller: alloy_primitives::Address::with_last_byte(who % 4),
        height: 5,
        tx_hash: alloy_primitives::B256::ZERO,
        is_static: who & 0x80 != 0,
    };
    let logs = match Identifiers::new(&mut own, &mut gov).call(&ctx, input) {
        Ok(out) => out.logs,
        Err(trellis_system::CallError::Revert(_)) => return,
        Err(e) => panic!("identifier storage failed on fuzz input: {e}"),
    };
    for log in logs {
        if let Ok(e) =
            <abi::IdentifierRegistered as alloy_sol_types::SolEvent>::decode_log_data(&log.data)
        {
            let id = Identifier::parse(&e.identifier).expect("registered identifiers are valid");
            assert!(Identifiers::new(&mut own, &mut gov)
                .get(&id)
                .expect("readable")
                .is_some());
        }
    }
}

/// Calldata for the DID contract, and the raw bytes as a DID string as the resolver gets it.
pub fn did_call(data: &[u8]) {
    use trellis_system::dids::{Did, Dids};
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(did) = Did::parse(s) {
            assert_eq!(Did::parse(&did.to_did_string()), Ok(did));
        }
    }
    let Some((who, input)) = data.split_first() else {
        return;
    };
    let mut slots = trellis_system::MapSlots::empty();
    let ctx = trellis_system::CallContext {
        caller: alloy_primitives::Address::with_last_byte(who % 4),
        height: 5,
        tx_hash: alloy_primitives::B256::ZERO,
        is_static: who & 0x80 != 0,
    };
    match Dids::new(&mut slots).call(&ctx, 7_000, input) {
        Ok(_) | Err(trellis_system::CallError::Revert(_)) => {}
        Err(e) => panic!("DID storage failed on fuzz input: {e}"),
    }
}

struct RpcHarness {
    runtime: tokio::runtime::Runtime,
    module: jsonrpsee::RpcModule<trellis_rpc::RpcContext<trellis_node::Chain>>,
    _dir: tempfile::TempDir,
}

fn rpc_harness() -> &'static RpcHarness {
    static HARNESS: OnceLock<RpcHarness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = trellis_primitives::Genesis::from_json(
            r#"{"chainId": 1337,
                "validators": [{"publicKey": "0x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29", "power": 1, "org": "org1"}],
                "governance": {"organizations": [{"id": "org1", "admins": ["0x0000000000000000000000000000000000000001"]}]},
                "alloc": {"0x0000000000000000000000000000000000000001": {"balance": "0x100"}}}"#,
        )
        .expect("fuzz genesis");
        let store = trellis_storage::Store::open(&dir.path().join("db")).expect("store");
        let chain = runtime.block_on(async {
            trellis_node::Chain::open(
                store,
                &genesis,
                trellis_node::ChainSettings {
                    empty_block_interval: std::time::Duration::from_secs(1),
                    max_block_txs: 100,
                    pool: Default::default(),
                    clock: Default::default(),
                    subchain_dir: None,
                },
            )
            .expect("chain")
        });
        let module = trellis_rpc::build_module(std::sync::Arc::new(chain)).expect("module");
        RpcHarness {
            runtime,
            module,
            _dir: dir,
        }
    })
}

/// A JSON-RPC request body, answered in-process by the real method table over a real chain.
pub fn json_rpc(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 64 * 1024 {
        return;
    }
    let h = rpc_harness();
    let answer = h
        .runtime
        .block_on(async { h.module.raw_json_request(text, 16).await });
    if let Ok((response, _)) = answer {
        let json: serde_json::Value =
            serde_json::from_str(response.get()).expect("every response is JSON");
        assert!(
            json.is_object(),
            "a single request gets a single response object"
        );
    }
}

/// A sub-chain's genesis and witness as a main-chain node answers them
/// (`trellis_getSubchainGenesis`), which `trellis chain genesis` decodes and verifies: any
/// answer is refused or verified, never a panic, and a verified one re-derives to itself.
pub fn subchain_genesis(data: &[u8]) {
    let Ok(derived) = serde_json::from_slice::<trellis_rpc::api::SubchainGenesis>(data) else {
        return;
    };
    // Trust the witness's own header, so that the proofs and the derivation run.
    let trusted = trellis_light::decode_header(&derived.witness.header)
        .map(|h| h.hash())
        .unwrap_or_default();
    if let Ok(hash) = trellis_node::chain::subchains::verify(&derived, trusted) {
        assert_eq!(hash, derived.genesis_hash);
    }
}

/// Calldata for the cross-chain contract of chain 7, which follows chain 1337 (anchored at
/// its root only); the first byte says whether the call carries value and is static. A call
/// either succeeds or is refused without writing anything or paying anything out.
pub fn xchain_call(data: &[u8]) {
    use trellis_system::clients::{Anchored, LightClients};
    use trellis_system::xchain::{Call, CrossChain};
    use trellis_system::MapSlots;
    let Some((flags, input)) = data.split_first() else {
        return;
    };
    let mut clients = MapSlots::empty();
    let root = Anchored {
        height: 0,
        hash: alloy_primitives::B256::ZERO,
        state_root: alloy_primitives::B256::ZERO,
        timestamp_ms: 0,
    };
    let key = trellis_crypto::NodeKey::from_secret([1; 32]);
    LightClients::new(&mut clients)
        .create(
            1337,
            root,
            &[(alloy_primitives::B256::from(*key.public().as_bytes()), 1)],
        )
        .expect("a client");
    let mut slots = MapSlots::empty();
    let call = Call {
        chain_id: 7,
        caller: alloy_primitives::Address::repeat_byte(1),
        height: 5,
        timestamp_ms: 5_000,
        value: alloy_primitives::U256::from(flags & 1),
        is_static: flags & 2 != 0,
        budget: 10_000_000,
    };
    let before = clients.writes.clone();
    match CrossChain::new(&mut slots, &mut clients).call(&call, input) {
        Err(_) => assert!(slots.writes.is_empty(), "a refused call wrote state"),
        Ok(out) => assert!(
            out.payouts.is_empty(),
            "nothing was escrowed, so nothing can be paid out"
        ),
    }
    assert_eq!(clients.writes, before, "the light clients are read only");
}
