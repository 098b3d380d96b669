//! Writes the seed corpus under `fuzz/corpus/` (run by hand when decoders change:
//! `cargo test -p trellis-fuzz --test seeds -- --ignored`). Seeds are valid inputs of each
//! decoder, so fuzzing starts from deep inside the formats.

use alloy_consensus::{TxEip1559, TxEip2930, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_sol_types::SolCall;
use malachitebft_codec::Codec;
use std::path::PathBuf;
use trellis_consensus::{TrellisCodec, TrellisContext};
use trellis_crypto::AccountKey;
use trellis_system::governance::abi;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(name), bytes).expect("write");
}

const GENESIS: &str = r#"{"chainId": 1337,
 "validators": [{"publicKey": "0x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29", "power": 1, "org": "org1"}],
 "governance": {"organizations": [{"id": "org1", "admins": ["0x0000000000000000000000000000000000000001"]},
                                  {"id": "reg", "admins": ["0x0000000000000000000000000000000000000003"], "member": false, "supervisor": true}],
                "nodes": [{"publicKey": "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "org": "org1", "role": "full"}],
                "threshold": {"numerator": 2, "denominator": 3}, "proposalTtlBlocks": 10},
 "alloc": {"0x0000000000000000000000000000000000000001": {"balance": "0x100"}}}"#;

#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seeds() {
    let key = AccountKey::dev(0);
    let legacy = key.sign_tx(TxLegacy {
        chain_id: Some(1337),
        nonce: 3,
        gas_price: 0,
        gas_limit: 21_000,
        to: TxKind::Call(Address::repeat_byte(7)),
        value: U256::from(5),
        input: Bytes::new(),
    });
    let eip1559 = key.sign_tx(TxEip1559 {
        chain_id: 1337,
        nonce: 4,
        gas_limit: 100_000,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
        to: TxKind::Create,
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xf3]),
    });
    let eip2930 = key.sign_tx(TxEip2930 {
        chain_id: 1337,
        nonce: 5,
        gas_price: 0,
        gas_limit: 50_000,
        to: TxKind::Call(Address::repeat_byte(9)),
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::from_static(b"data"),
    });
    for (name, tx) in [
        ("legacy", &legacy),
        ("eip1559", &eip1559),
        ("eip2930", &eip2930),
    ] {
        write("raw_transaction", name, &tx.encoded_2718());
    }

    let genesis = trellis_primitives::Genesis::from_json(GENESIS).expect("genesis");
    write("genesis", "consortium.json", GENESIS.as_bytes());
    write("genesis", "written.json", genesis.to_json().as_bytes());
    let (_, block0) = trellis_node::genesis_block(&genesis).expect("genesis block");
    write("block", "genesis", &block0.encode_to_vec());
    let mut block1 = block0.clone();
    block1.header.height = 1;
    block1.header.parent_hash = block0.hash();
    block1.transactions = vec![legacy.clone(), eip1559.clone(), eip2930.clone()];
    block1.header.transactions_root =
        trellis_primitives::Block::compute_transactions_root(&block1.transactions);
    write("block", "three_txs", &block1.encode_to_vec());

    let mut config = trellis_node::NodeConfig::default();
    write("node_config", "default.toml", config.to_toml().as_bytes());
    config.rpc.admin_token = Some("0123456789abcdef0123".into());
    config.p2p.peers = vec!["/ip4/10.0.0.2/tcp/27000".into()];
    config.p2p.gossip_peers = vec!["/ip4/10.0.0.2/tcp/27001".into()];
    write("node_config", "full.toml", config.to_toml().as_bytes());

    // Consensus: a proposal stream for block 1, its parts, and a certificate.
    let node_key = trellis_crypto::NodeKey::from_secret([7; 32]);
    let signer = trellis_consensus::signing::Ed25519Signer::new(node_key.private().clone(), 1337);
    let address = trellis_consensus::ValidatorAddress::from_public_key(&node_key.public());
    let encoded = bytes::Bytes::from(block1.encode_to_vec());
    let stream = trellis_consensus::app::stream_block(
        &signer,
        1337,
        trellis_consensus::Height(1),
        trellis_consensus::engine::Round::new(0),
        trellis_consensus::engine::Round::Nil,
        address,
        &encoded,
    );
    for (i, msg) in stream.iter().enumerate() {
        let bytes = TrellisCodec.encode(msg).expect("encode");
        write(
            "consensus_message",
            &format!("stream_part_{i}"),
            &[[2u8].as_slice(), &bytes].concat(),
        );
    }
    let cert = malachitebft_core_types::CommitCertificate::<TrellisContext> {
        height: trellis_consensus::Height(1),
        round: trellis_consensus::engine::Round::new(0),
        value_id: trellis_consensus::BlockHash(block1.hash()),
        commit_signatures: vec![malachitebft_core_types::CommitSignature::new(
            address,
            signer.sign_digest(&B256::repeat_byte(1)),
        )],
    };
    write(
        "certificate",
        "one_signature",
        &trellis_consensus::encode_certificate(&cert),
    );

    // Governance calls: the first byte picks the caller (1 = org1's admin, 3 = supervisor).
    let calls: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "add_org",
            1,
            abi::proposeAddOrganizationCall {
                id: "org2".into(),
                name: "Org 2".into(),
                admins: vec![Address::repeat_byte(2)],
                member: true,
                supervisor: false,
                effectiveHeight: 0,
            }
            .abi_encode(),
        ),
        (
            "add_node",
            1,
            abi::proposeAddNodeCall {
                publicKey: "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511b"
                    .parse()
                    .expect("key"),
                org: "org1".into(),
                role: abi::NodeRole::Validator,
                power: 2,
                effectiveHeight: 9,
            }
            .abi_encode(),
        ),
        (
            "freeze",
            3,
            abi::proposeFreezeCall {
                target: Address::repeat_byte(5),
                effectiveHeight: 0,
            }
            .abi_encode(),
        ),
        (
            "vote",
            1,
            abi::voteCall {
                proposalId: 0,
                approve: true,
            }
            .abi_encode(),
        ),
        (
            "add_accounts",
            1,
            abi::addAccountsCall {
                accounts: vec![Address::repeat_byte(8), Address::repeat_byte(9)],
            }
            .abi_encode(),
        ),
        (
            "threshold",
            1,
            abi::proposeSetThresholdCall {
                numerator: 3,
                denominator: 4,
                effectiveHeight: 0,
            }
            .abi_encode(),
        ),
        (
            "subchain",
            1,
            abi::proposeCreateSubchainCall {
                chainId: 9,
                name: "logistics".into(),
                members: vec!["org1".into()],
                validators: vec![abi::SubchainValidator {
                    publicKey: "0x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
                        .parse()
                        .expect("key"),
                    power: 1,
                }],
                effectiveHeight: 0,
            }
            .abi_encode(),
        ),
        (
            "to_subchain",
            1,
            abi::proposeToSubchainCall {
                chainId: 9,
                call: abi::proposeFreezeCall {
                    target: Address::repeat_byte(5),
                    effectiveHeight: 0,
                }
                .abi_encode()
                .into(),
                effectiveHeight: 0,
            }
            .abi_encode(),
        ),
        (
            "reset_light_client",
            1,
            abi::proposeResetLightClientCall {
                chainId: 9,
                height: 10,
                blockHash: B256::repeat_byte(1),
                stateRoot: B256::repeat_byte(2),
                timestampMs: 3,
                validators: vec![abi::SubchainValidator {
                    publicKey: "0x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
                        .parse()
                        .expect("key"),
                    power: 1,
                }],
                effectiveHeight: 0,
            }
            .abi_encode(),
        ),
        (
            "get_org",
            0x80,
            abi::getOrganizationCall { id: "org1".into() }.abi_encode(),
        ),
        ("audit", 0x80, abi::auditEntryCall { seq: 0 }.abi_encode()),
    ];
    for (name, who, input) in calls {
        write(
            "governance_call",
            name,
            &[[who].as_slice(), &input].concat(),
        );
    }

    {
        use trellis_system::evidence::abi as ev;
        let item = |d: u8| ev::Submission {
            algorithm: 1,
            digest: B256::repeat_byte(d),
            contentType: "application/pdf".into(),
            metadata: Bytes::from_static(b"{\"lot\":1}"),
        };
        let calls: Vec<(&str, Vec<u8>)> = vec![
            (
                "submit",
                ev::submitCall {
                    algorithm: 1,
                    digest: B256::repeat_byte(1),
                    contentType: "text/plain".into(),
                    metadata: Bytes::new(),
                }
                .abi_encode(),
            ),
            (
                "batch",
                ev::submitBatchCall {
                    items: vec![item(1), item(2), item(1)],
                }
                .abi_encode(),
            ),
            (
                "digests",
                ev::submitDigestsCall {
                    algorithm: 3,
                    digests: vec![B256::repeat_byte(4), B256::repeat_byte(5)],
                }
                .abi_encode(),
            ),
            (
                "get",
                ev::getCall {
                    id: B256::repeat_byte(1),
                }
                .abi_encode(),
            ),
            ("count", ev::countCall {}.abi_encode()),
        ];
        for (name, input) in calls {
            write(
                "evidence_call",
                name,
                &[[0x41u8].as_slice(), &input].concat(),
            );
        }
        let response = serde_json::json!({
            "record": {"id": B256::repeat_byte(1), "algorithm": "sha256", "digest": B256::repeat_byte(2),
                       "submitter": Address::repeat_byte(3), "org": "org1", "height": 4, "timestampMs": 5,
                       "contentType": "", "metadata": "0x"},
            "proof": {"chainId": 1337, "height": 4, "header": "0xc0", "certificate": "0x",
                      "address": "0x0000000000000000000000000000000000001001",
                      "account": {"nonce": 0, "balance": "0x0", "storageRoot": B256::ZERO, "codeHash": B256::ZERO},
                      "accountProof": ["0x80"],
                      "storageProofs": [{"slot": B256::ZERO, "value": "0x1", "proof": []}]}
        });
        write(
            "evidence_proof",
            "skeleton",
            response.to_string().as_bytes(),
        );
    }
    {
        use trellis_system::identifiers::abi as ids;
        let url = |i: u32| ids::Value {
            index: i,
            valueType: "URL".into(),
            data: Bytes::from_static(b"https://example.com"),
            ttl: 60,
        };
        let calls: Vec<(&str, Vec<u8>)> = vec![
            (
                "register",
                ids::registerCall {
                    identifier: "MA.156/lot-1".into(),
                    values: vec![url(1)],
                }
                .abi_encode(),
            ),
            (
                "batch",
                ids::registerBatchCall {
                    items: vec![ids::Registration {
                        identifier: "MA.156/a".into(),
                        values: vec![url(1), url(2)],
                    }],
                }
                .abi_encode(),
            ),
            (
                "delegate",
                ids::delegatePrefixCall {
                    prefix: "MA.156.1".into(),
                    org: "org2".into(),
                }
                .abi_encode(),
            ),
            (
                "resolve",
                ids::resolveCall {
                    identifier: "MA.156/lot-1".into(),
                }
                .abi_encode(),
            ),
        ];
        for (name, input) in calls {
            write(
                "identifiers_call",
                name,
                &[[0x01u8].as_slice(), &input].concat(),
            );
        }
        write("identifiers_call", "path", b"MA.156.1301/lot-7/box:3");
    }
    {
        use trellis_system::dids::abi as did;
        let document = did::Document {
            controller: Address::with_last_byte(1),
            verificationMethods: vec![did::VerificationMethod {
                id: "key-1".into(),
                methodType: "Ed25519VerificationKey2020".into(),
                publicKeyMultibase: "z6Mk".into(),
            }],
            authentication: vec!["key-1".into()],
            assertionMethod: vec!["controller".into()],
            services: vec![did::Service {
                id: "hub".into(),
                serviceType: "LinkedDomains".into(),
                endpoint: "https://a".into(),
            }],
        };
        write(
            "did_call",
            "create",
            &[
                [0x01u8].as_slice(),
                &did::createCall { document }.abi_encode(),
            ]
            .concat(),
        );
        write(
            "did_call",
            "did",
            b"did:trellis:1337:0x2a37dc7d86e148b7c57f82bf799072c1e80debb7",
        );
    }

    let raw = format!("0x{}", hex::encode(legacy.encoded_2718()));
    let requests = [
        ("block_number", r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#.to_owned()),
        ("get_balance", r#"{"jsonrpc":"2.0","id":2,"method":"eth_getBalance","params":["0x0000000000000000000000000000000000000001","latest"]}"#.to_owned()),
        ("call", r#"{"jsonrpc":"2.0","id":3,"method":"eth_call","params":[{"to":"0x0000000000000000000000000000000000001000","data":"0x4a2b3b33"},"latest"]}"#.to_owned()),
        ("send_raw", format!(r#"{{"jsonrpc":"2.0","id":4,"method":"eth_sendRawTransaction","params":["{raw}"]}}"#)),
        ("get_logs", r#"{"jsonrpc":"2.0","id":5,"method":"eth_getLogs","params":[{"fromBlock":"0x0","toBlock":"latest","address":"0x0000000000000000000000000000000000001000"}]}"#.to_owned()),
        ("proof", r#"{"jsonrpc":"2.0","id":6,"method":"eth_getProof","params":["0x0000000000000000000000000000000000001000",["0x0"],"latest"]}"#.to_owned()),
        ("audit", r#"{"jsonrpc":"2.0","id":7,"method":"trellis_auditLog","params":["0x0","0x10"]}"#.to_owned()),
        ("block", r#"{"jsonrpc":"2.0","id":8,"method":"eth_getBlockByNumber","params":["0x0",true]}"#.to_owned()),
        ("estimate", r#"{"jsonrpc":"2.0","id":9,"method":"eth_estimateGas","params":[{"from":"0x0000000000000000000000000000000000000001","to":"0x0000000000000000000000000000000000000002","value":"0x1"}]}"#.to_owned()),
    ];
    for (name, body) in requests {
        write("json_rpc", name, body.as_bytes());
    }
}

/// A valid anchor for the `light_client` target: block 1 of chain 1337 signed by the four
/// validators the target trusts.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_light_client_seed() {
    use alloy_rlp::Encodable;
    let keys: Vec<_> = (1u8..=4)
        .map(|i| trellis_crypto::NodeKey::from_secret([i; 32]))
        .collect();
    let set = trellis_light::ValidatorSet::from_keys(
        keys.iter().map(|k| (B256::from(*k.public().as_bytes()), 1)),
    )
    .expect("set");
    let header = trellis_primitives::Header {
        chain_id: 1337,
        height: 1,
        parent_hash: B256::ZERO,
        timestamp_ms: 1,
        proposer: Address::ZERO,
        transactions_root: B256::ZERO,
        receipts_root: B256::ZERO,
        state_root: B256::repeat_byte(1),
        logs_bloom: Default::default(),
        gas_limit: 1,
        gas_used: 0,
        validators_hash: set.hash(),
        next_validators_hash: Some(set.hash()),
    };
    let hash = header.hash();
    let signatures = keys
        .iter()
        .map(|k| {
            let address = trellis_light::validator_address(k.public().as_bytes());
            let message = trellis_light::precommit_sign_bytes(1337, 1, Some(0), hash, address);
            let signature = k.private().inner().sign(&message).to_bytes();
            (address, bytes::Bytes::copy_from_slice(&signature))
        })
        .collect();
    let certificate = trellis_light::encode_certificate(&trellis_light::Certificate {
        height: 1,
        round: Some(0),
        block_hash: hash,
        signatures,
    });
    let mut rlp = Vec::new();
    header.encode(&mut rlp);
    let mut input = u16::try_from(rlp.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    input.extend_from_slice(&rlp);
    input.extend_from_slice(&certificate);
    // A client trusting the target's set accepts it.
    let root = trellis_light::Anchor {
        height: 0,
        hash: B256::ZERO,
        state_root: B256::ZERO,
        timestamp_ms: 0,
    };
    let mut client = trellis_light::ClientState::new(1337, root, set);
    assert!(matches!(
        client.update(&rlp, &certificate, None, |_| None),
        Ok(trellis_light::Verdict::Advanced { .. })
    ));
    trellis_fuzz::light_client(&input);
    write("light_client", "anchor", &input);
    // A sub-chain genesis answer over that header (its proofs do not verify: the skeleton of
    // the format).
    let derived = trellis_rpc::api::SubchainGenesis {
        chain_id: alloy_primitives::U64::from(9),
        main_height: alloy_primitives::U64::from(1),
        genesis_hash: B256::ZERO,
        genesis: trellis_primitives::Genesis::from_json(GENESIS).expect("genesis"),
        witness: trellis_light::StateWitness {
            chain_id: 1337,
            height: 1,
            header: rlp.clone().into(),
            certificate: certificate.clone().into(),
            address: trellis_system::GOVERNANCE_ADDRESS,
            account: trellis_light::ProvenAccount {
                nonce: 1,
                balance: U256::ZERO,
                storage_root: B256::ZERO,
                code_hash: B256::ZERO,
            },
            account_proof: vec![0],
            slots: vec![trellis_light::WitnessSlot {
                slot: B256::ZERO,
                value: U256::from(1),
                proof: vec![0],
            }],
            nodes: vec![Bytes::from_static(&[0x80])],
        },
    };
    let json = serde_json::to_vec(&derived).expect("json");
    trellis_fuzz::subchain_genesis(&json);
    write("subchain_genesis", "skeleton", &json);
    let call = trellis_system::clients::abi::submitAnchorCall {
        header: rlp.into(),
        certificate: certificate.into(),
        nextKeys: vec![],
        nextPowers: vec![],
    };
    write("light_clients_call", "submit_anchor", &call.abi_encode());
    let view = trellis_system::clients::abi::clientCall { chainId: 1337 };
    write("light_clients_call", "client", &view.abi_encode());
}

/// Calls for the `xchain_call` target (a flags byte, then calldata): a send, a transfer, and
/// a receive, an acknowledgement and a timeout with proofs of the shapes couriers send.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_xchain_seeds() {
    use alloy_primitives::{Address, Bytes};
    use trellis_system::xchain::abi;
    let account = abi::AccountProof {
        nonce: 1,
        balance: U256::ZERO,
        storageRoot: B256::repeat_byte(1),
        codeHash: B256::repeat_byte(2),
        nodes: vec![Bytes::from_static(&[0xc0, 0x80])],
    };
    let proof = abi::Proof {
        height: 0,
        account: account.clone(),
        slotProof: vec![Bytes::from_static(&[0xc0])],
        via: vec![abi::Hop {
            chainId: 1337,
            height: 0,
            account,
            values: vec![U256::from(76), U256::from(1)],
            slotProofs: vec![vec![Bytes::from_static(&[0x80])]],
            statusWord: U256::ZERO,
            statusProof: vec![Bytes::from_static(&[0x80])],
        }],
    };
    let proof = Bytes::from(trellis_system::xchain::encode_proof(&proof));
    let message = abi::Message {
        source: 1337,
        destination: 7,
        sequence: 1,
        sender: Address::repeat_byte(3),
        receiver: Address::repeat_byte(4),
        app: 1,
        payload: trellis_system::xchain::value_payload(1337, U256::from(5)).into(),
        timeoutMs: 9_000,
    };
    let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "send",
            0,
            abi::sendCall {
                destination: 1337,
                receiver: Address::repeat_byte(4),
                payload: Bytes::from_static(b"hello"),
                timeoutMs: 9_000,
            }
            .abi_encode(),
        ),
        (
            "transfer",
            1,
            abi::transferCall {
                destination: 1337,
                receiver: Address::repeat_byte(4),
                timeoutMs: 9_000,
            }
            .abi_encode(),
        ),
        (
            "receive",
            0,
            abi::receiveMessageCall {
                message,
                proof: proof.clone(),
            }
            .abi_encode(),
        ),
        (
            "acknowledge",
            0,
            abi::acknowledgeCall {
                destination: 1337,
                sequence: 1,
                success: true,
                proof: proof.clone(),
            }
            .abi_encode(),
        ),
        (
            "timeout",
            0,
            abi::timeoutCall {
                destination: 1337,
                sequence: 1,
                proof,
            }
            .abi_encode(),
        ),
    ];
    for (name, flags, call) in seeds {
        let input = [vec![flags], call].concat();
        trellis_fuzz::xchain_call(&input);
        write("xchain_call", name, &input);
    }
}
