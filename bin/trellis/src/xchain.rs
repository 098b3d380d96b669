//! `trellis xchain`: messages and value between chains (`ITrellisCrossChain`, docs/multichain.md)
//! — send and transfer, look at a chain's cross-chain state, and relay: carry one chain's
//! proofs to another as any registered account of the destination, trusting neither node
//! (the destination's contract checks every proof against its own light client).

use alloy_primitives::{Address, Bytes, U256, U64};
use alloy_rpc_types_eth::{BlockId, TransactionReceipt, TransactionRequest};
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{bail, Context as _};
use clap::Subcommand;
use jsonrpsee::http_client::HttpClient;
use std::time::Duration;
use trellis_api::{ChainApiClient, EthApiClient};
use trellis_system::clients::abi as lc;
use trellis_system::evidence::HashAlgorithm;
use trellis_system::xchain::{self, abi};
use trellis_system::{LIGHT_CLIENTS_ADDRESS, XCHAIN_ADDRESS};

use crate::gov::{send_to, send_value_to, Endpoint, Signer};

/// Most messages one relay round carries each way.
const RELAY_BATCH: u64 = 64;

#[derive(Subcommand)]
pub enum XchainCommand {
    /// Send a data message: its payload's hash is delivered to `--receiver` on `--to-chain`.
    Send {
        #[arg(long)]
        to_chain: u64,
        #[arg(long)]
        receiver: Address,
        #[command(flatten)]
        payload: Payload,
        /// Seconds (by the destination's block time) after which it can no longer be
        /// received, and is refunded.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
    },
    /// Check a data message this chain received: that the payload given here (a document
    /// given by `--file`, as `send --file` sent its digest) is the one message `--sequence`
    /// of `--source` delivered. Ask your own node: its answer is what this trusts.
    Verify {
        #[arg(long)]
        source: u64,
        #[arg(long)]
        sequence: u64,
        #[command(flatten)]
        payload: Payload,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Send native value (in wei) to `--receiver` on `--to-chain`: escrowed here, held there
    /// as vouchers of this chain's value.
    Transfer {
        #[arg(long)]
        to_chain: u64,
        #[arg(long)]
        receiver: Address,
        #[arg(long)]
        value: U256,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
    },
    /// Send vouchers of `--origin`'s value home: burned here, released there to `--receiver`.
    Return {
        #[arg(long)]
        origin: u64,
        #[arg(long)]
        receiver: Address,
        #[arg(long)]
        amount: U256,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
    },
    /// A chain's cross-chain state: per chain it follows, the newest anchor and its age, the
    /// messages pending to it, the value escrowed for it and its vouchers held here; and
    /// `--holder`'s vouchers.
    Status {
        #[arg(long)]
        holder: Option<Address>,
        /// Also the messages to this chain, when this one does not follow it (a sub-chain
        /// reached through the hub). Repeatable.
        #[arg(long = "chain", value_name = "ID")]
        chains: Vec<u64>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Carry `--from`'s messages, acknowledgements and timeouts to the chain at `--rpc`,
    /// anchoring the height they are proven at when needed; signed by an account registered
    /// on the destination. Run it both ways to carry both directions.
    Relay {
        /// A node of the source chain (read only: its answers are proven, not trusted).
        #[arg(long, value_name = "URL")]
        from: String,
        /// Read token for `--from` if it restricts reads (never the destination's `--token`:
        /// the source is not trusted with it). `--ca-cert` serves both nodes.
        #[arg(long, env = "TRELLIS_FROM_TOKEN", hide_env_values = true)]
        from_token: Option<String>,
        /// A node of the destination's hub (the main chain), when the destination does not
        /// follow `--from` (two sub-chains): the proofs go through the hub's anchor of the
        /// source, which this relay submits there too (so the signer must be registered on the
        /// hub as well).
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
        /// Token for `--hub` if it restricts reads (`--token` is the destination's); unused
        /// without `--hub`.
        #[arg(long, env = "TRELLIS_HUB_TOKEN", hide_env_values = true)]
        hub_token: Option<String>,
        /// Run one round and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between rounds.
        #[arg(long, default_value_t = 2)]
        interval_secs: u64,
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
    },
}

/// A data message's payload, as `send` takes it and `verify` checks it.
#[derive(clap::Args)]
#[group(skip)]
pub struct Payload {
    /// The payload, as text.
    #[arg(long, conflicts_with_all = ["hex", "file"], required_unless_present_any = ["hex", "file"])]
    text: Option<String>,
    /// The payload, as hex.
    #[arg(long, conflicts_with = "file")]
    hex: Option<Bytes>,
    /// A document whose digest alone is the payload (hashed here, never sent): e.g. a
    /// certificate of origin, checked on the destination with `verify --file`.
    #[arg(long, value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// The digest's algorithm for `--file`: sha256 (the default), keccak256 or sm3.
    #[arg(long, value_parser = crate::evidence::algorithm)]
    algorithm: Option<HashAlgorithm>,
}

impl Payload {
    /// The payload's bytes, and what to call it.
    fn bytes(&self) -> anyhow::Result<(Bytes, String)> {
        if self.algorithm.is_some() && self.file.is_none() {
            bail!("--algorithm is the digest's of --file: pass --file too");
        }
        Ok(match (&self.text, &self.hex, &self.file) {
            (Some(t), _, _) => (t.clone().into_bytes().into(), format!("{t:?}")),
            (_, Some(h), _) => (h.clone(), h.to_string()),
            (_, _, Some(file)) => {
                let algorithm = self.algorithm.unwrap_or(HashAlgorithm::Sha256);
                let digest = trellis_sdk::evidence::hash_file(algorithm, file)
                    .with_context(|| format!("reading {}", file.display()))?;
                (
                    xchain::digest_payload(algorithm, digest).into(),
                    format!("{} ({}:{digest})", file.display(), algorithm.name()),
                )
            }
            (None, None, None) => bail!("pass --text, --hex or --file"),
        })
    }
}

pub async fn run(command: XchainCommand) -> anyhow::Result<()> {
    match command {
        XchainCommand::Send {
            to_chain,
            receiver,
            payload,
            timeout_secs,
            endpoint,
            signer,
        } => {
            let (payload, _) = payload.bytes()?;
            let call = abi::sendCall {
                destination: to_chain,
                receiver,
                payload,
                timeoutMs: timeout_ms(timeout_secs)?,
            };
            let receipt = send_to(&endpoint, &signer, XCHAIN_ADDRESS, call.abi_encode()).await?;
            print_sent(&receipt);
            Ok(())
        }
        XchainCommand::Transfer {
            to_chain,
            receiver,
            value,
            timeout_secs,
            endpoint,
            signer,
        } => {
            let call = abi::transferCall {
                destination: to_chain,
                receiver,
                timeoutMs: timeout_ms(timeout_secs)?,
            };
            let receipt =
                send_value_to(&endpoint, &signer, XCHAIN_ADDRESS, value, call.abi_encode()).await?;
            print_sent(&receipt);
            Ok(())
        }
        XchainCommand::Return {
            origin,
            receiver,
            amount,
            timeout_secs,
            endpoint,
            signer,
        } => {
            let call = abi::returnVouchersCall {
                origin,
                receiver,
                amount,
                timeoutMs: timeout_ms(timeout_secs)?,
            };
            let receipt = send_to(&endpoint, &signer, XCHAIN_ADDRESS, call.abi_encode()).await?;
            print_sent(&receipt);
            Ok(())
        }
        XchainCommand::Status {
            holder,
            chains,
            endpoint,
        } => status(&endpoint, holder, &chains).await,
        XchainCommand::Verify {
            source,
            sequence,
            payload,
            endpoint,
        } => {
            let (bytes, what) = payload.bytes()?;
            let c = endpoint.client()?;
            let chain_id: U64 = c.chain_id().await?;
            let delivered = view(
                &c,
                XCHAIN_ADDRESS,
                abi::deliveredCall { source, sequence },
                BlockId::latest(),
            )
            .await?;
            if !delivered.found {
                bail!(
                    "chain {chain_id} has received no data message {sequence} from chain {source} \
                     (not yet relayed, timed out, or not a data message)"
                );
            }
            if delivered.payloadHash != alloy_primitives::keccak256(&bytes) {
                bail!(
                    "message {sequence} from chain {source} carried another payload (its hash \
                     {}): {what} is not what was sent",
                    delivered.payloadHash
                );
            }
            println!(
                "{what} is what message {sequence} from chain {source} carried: sent by {} there, \
                 to {}, received on chain {chain_id}",
                delivered.sender, delivered.receiver
            );
            Ok(())
        }
        XchainCommand::Relay {
            from,
            from_token,
            hub,
            hub_token,
            once,
            interval_secs,
            endpoint,
            signer,
        } => {
            let source = crate::client::authorized_client(
                &from,
                from_token.as_deref(),
                endpoint.tls_for(&from)?,
            )?;
            // The hub gets its own token, and the TLS files only if it speaks TLS.
            let hub = hub.map(|rpc| {
                let tls = rpc.starts_with("https://");
                Endpoint {
                    token: hub_token,
                    ca_cert: endpoint.ca_cert.clone().filter(|_| tls),
                    client_cert: endpoint.client_cert.clone().filter(|_| tls),
                    client_key: endpoint.client_key.clone().filter(|_| tls),
                    rpc,
                }
            });
            loop {
                match relay_round(&source, &endpoint, hub.as_ref(), &signer).await {
                    Ok(0) => {}
                    Ok(n) => println!("relayed {n}"),
                    Err(e) if !once => eprintln!("relay round failed: {e:#}"),
                    Err(e) => return Err(e),
                }
                if once {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(interval_secs.max(1))).await;
            }
        }
    }
}

/// Now plus `secs`, in ms (checked by the destination against its block time).
fn timeout_ms(secs: u64) -> anyhow::Result<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(now.as_millis() as u64 + secs.saturating_mul(1_000))
}

fn print_sent(receipt: &TransactionReceipt) {
    for log in receipt.logs() {
        if let Ok(e) = abi::MessageSent::decode_log(&log.inner) {
            println!(
                "message {} to chain {} committed in block {} (commitment {})",
                e.sequence,
                e.destination,
                crate::gov::block_of(receipt),
                e.commitment
            );
        }
    }
}

/// Calls a view of `to` at `block` and decodes its return.
async fn view<C: SolCall>(
    c: &HttpClient,
    to: Address,
    call: C,
    block: BlockId,
) -> anyhow::Result<C::Return> {
    let request = TransactionRequest::default()
        .to(to)
        .input(Bytes::from(call.abi_encode()).into());
    let out = c
        .call(request, block)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", C::SIGNATURE, crate::gov::refusal(&e)))?;
    C::abi_decode_returns(&out).with_context(|| format!("decoding {}", C::SIGNATURE))
}

async fn status(endpoint: &Endpoint, holder: Option<Address>, more: &[u64]) -> anyhow::Result<()> {
    let c = endpoint.client()?;
    let at = BlockId::latest();
    let chain_id: U64 = c.chain_id().await?;
    let followed = view(
        &c,
        LIGHT_CLIENTS_ADDRESS,
        lc::chainsCall {
            offset: 0,
            limit: 1_000,
        },
        at,
    )
    .await?;
    if followed.is_empty() {
        println!("chain {chain_id} follows no chain: it sends and receives no messages");
        return Ok(());
    }
    let now = timeout_ms(0)?;
    println!("chain {chain_id} follows {} chain(s):", followed.len());
    for &other in &followed {
        let client = view(
            &c,
            LIGHT_CLIENTS_ADDRESS,
            lc::clientCall { chainId: other },
            at,
        )
        .await?;
        let outbox = view(
            &c,
            XCHAIN_ADDRESS,
            abi::outboxCall { destination: other },
            at,
        )
        .await?;
        let escrowed = view(
            &c,
            XCHAIN_ADDRESS,
            abi::escrowedCall {
                counterparty: other,
            },
            at,
        )
        .await?;
        let vouchers = view(
            &c,
            XCHAIN_ADDRESS,
            abi::voucherSupplyCall { origin: other },
            at,
        )
        .await?;
        let age = match client.timestampMs {
            0 => "never anchored".to_owned(),
            t => format!("{:.1} s ago", now.saturating_sub(t) as f64 / 1_000.0),
        };
        println!(
            "  chain {other}: anchored at height {} ({age}){}\n    messages sent {}, pending {}; \
             escrowed for it {escrowed}; its vouchers here {vouchers}",
            client.height,
            if client.frozen { ", FROZEN" } else { "" },
            outbox.nextSequence - 1,
            outbox.pending,
        );
        if let Some(holder) = holder {
            let held = view(
                &c,
                XCHAIN_ADDRESS,
                abi::voucherBalanceCall {
                    origin: other,
                    holder,
                },
                at,
            )
            .await?;
            println!("    {holder} holds {held} of its vouchers");
        }
    }
    for &other in more.iter().filter(|c| !followed.contains(c)) {
        let outbox = view(
            &c,
            XCHAIN_ADDRESS,
            abi::outboxCall { destination: other },
            at,
        )
        .await?;
        println!(
            "  chain {other} (not followed): messages sent {}, pending {}",
            outbox.nextSequence - 1,
            outbox.pending
        );
    }
    Ok(())
}

/// One relay due on the destination.
enum Due {
    Receive(abi::Message),
    Acknowledge(u64, bool),
    Timeout(u64),
}

/// One round from `source` to the destination at `endpoint` (through `hub` when the
/// destination does not follow the source); how many relays it sent.
async fn relay_round(
    source: &HttpClient,
    endpoint: &Endpoint,
    hub: Option<&Endpoint>,
    signer: &Signer,
) -> anyhow::Result<usize> {
    let dest = endpoint.client()?;
    let from: u64 = source.chain_id().await?.to();
    let to: u64 = dest.chain_id().await?.to();
    if from == to {
        bail!("--from and --rpc are the same chain ({from})");
    }
    let latest = BlockId::latest();
    let (source_time, dest_time) = (tip_time(source).await?, tip_time(&dest).await?);
    let mut due = Vec::new();
    let pending = |destination| abi::pendingMessagesCall {
        destination,
        offset: 0,
        limit: RELAY_BATCH,
    };
    for sequence in view(source, XCHAIN_ADDRESS, pending(to), latest).await? {
        let receipt = abi::receiptCall {
            source: from,
            sequence,
        };
        if view(&dest, XCHAIN_ADDRESS, receipt, latest).await?.received {
            continue;
        }
        let message = abi::messageCall {
            destination: to,
            sequence,
        };
        let m = view(source, XCHAIN_ADDRESS, message, latest).await?;
        if m.found && dest_time < m._1.timeoutMs {
            due.push(Due::Receive(m._1));
        }
    }
    for sequence in view(&dest, XCHAIN_ADDRESS, pending(from), latest).await? {
        let receipt = abi::receiptCall {
            source: to,
            sequence,
        };
        let receipt = view(source, XCHAIN_ADDRESS, receipt, latest).await?;
        if receipt.received {
            due.push(Due::Acknowledge(sequence, receipt.success));
            continue;
        }
        let message = abi::messageCall {
            destination: from,
            sequence,
        };
        let m = view(&dest, XCHAIN_ADDRESS, message, latest).await?;
        if m.found && source_time >= m._1.timeoutMs {
            due.push(Due::Timeout(sequence));
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    // Everything is proven at one height of the source, which the destination must have
    // anchored. A node keeps only its newest state: if the source commits a block while the
    // proofs are fetched, start again at the new height.
    let slots: Vec<U256> = due
        .iter()
        .map(|d| match d {
            Due::Receive(m) => trellis_system::xchain::outbox_slot(to, m.sequence),
            Due::Acknowledge(seq, _) | Due::Timeout(seq) => {
                trellis_system::xchain::receipt_slot(to, *seq)
            }
        })
        .collect();
    let mut attempt = 0;
    let (height, proofs) = loop {
        attempt += 1;
        let height: u64 = source.block_number().await?.to();
        match prove(source, height, &slots).await {
            Ok(proofs) => break (height, proofs),
            Err(e) if attempt < 5 => {
                tracing::debug!(error = %e, "the source moved on; proving again");
            }
            Err(e) => return Err(e.context(format!("proving at chain {from}'s block {height}"))),
        }
    };
    let follows = lc::clientCall { chainId: from };
    let proofs = if view(&dest, LIGHT_CLIENTS_ADDRESS, follows, latest)
        .await?
        .exists
    {
        anchor_on(source, from, height, &dest, endpoint, signer).await?;
        proofs
    } else {
        let Some(hub) = hub else {
            bail!(
                "chain {to} does not follow chain {from}: pass --hub with a node of its hub \
                 (the main chain) to relay through the hub's anchors"
            );
        };
        through_hub(source, from, height, proofs, &dest, endpoint, hub, signer).await?
    };
    let proofs: Vec<Bytes> = proofs
        .iter()
        .map(|p| trellis_system::xchain::encode_proof(p).into())
        .collect();
    let mut sent = 0;
    for (relay, proof) in due.into_iter().zip(proofs) {
        let (what, input) = match relay {
            Due::Receive(message) => (
                format!("message {} of chain {from} received", message.sequence),
                abi::receiveMessageCall { message, proof }.abi_encode(),
            ),
            Due::Acknowledge(sequence, success) => (
                format!("message {sequence} to chain {from} acknowledged"),
                abi::acknowledgeCall {
                    destination: from,
                    sequence,
                    success,
                    proof,
                }
                .abi_encode(),
            ),
            Due::Timeout(sequence) => (
                format!("message {sequence} to chain {from} timed out and refunded"),
                abi::timeoutCall {
                    destination: from,
                    sequence,
                    proof,
                }
                .abi_encode(),
            ),
        };
        match send_to(endpoint, signer, XCHAIN_ADDRESS, input).await {
            Ok(receipt) => {
                println!(
                    "{what} (block {}, gas {})",
                    crate::gov::block_of(&receipt),
                    receipt.gas_used
                );
                sent += 1;
            }
            // Another courier may have carried it first; the next round looks again.
            Err(e) => eprintln!("{what}: {e:#}"),
        }
    }
    Ok(sent)
}

/// Anchors block `height` of chain `chain` (read from `source`) on the chain of `dest` (sent
/// through `endpoint`), unless it has that anchor already.
async fn anchor_on(
    source: &HttpClient,
    chain: u64,
    height: u64,
    dest: &HttpClient,
    endpoint: &Endpoint,
    signer: &Signer,
) -> anyhow::Result<()> {
    let known = lc::anchorAtCall {
        chainId: chain,
        height,
    };
    if view(dest, LIGHT_CLIENTS_ADDRESS, known, BlockId::latest())
        .await?
        .found
    {
        return Ok(());
    }
    let anchor = source
        .anchor(U64::from(height))
        .await?
        .with_context(|| format!("chain {chain} has no anchor of its block {height}"))?;
    let next = anchor.next_validators.unwrap_or_default();
    let call = lc::submitAnchorCall {
        header: anchor.header,
        certificate: anchor.certificate,
        nextKeys: next.iter().map(|m| m.public_key).collect(),
        nextPowers: next.iter().map(|m| m.power).collect(),
    };
    send_to(endpoint, signer, LIGHT_CLIENTS_ADDRESS, call.abi_encode())
        .await
        .with_context(|| {
            format!(
                "anchoring chain {chain}'s block {height} at {} (a validator-set change not yet \
                 anchored must go first: a backbone node's courier sends it)",
                endpoint.rpc
            )
        })?;
    Ok(())
}

/// `proofs` (of the source `from` at `height`) made two-hop: the hub anchors that height, its
/// record is proven at its tip, and the destination anchors that hub height.
#[allow(clippy::too_many_arguments)]
async fn through_hub(
    source: &HttpClient,
    from: u64,
    height: u64,
    mut proofs: Vec<abi::Proof>,
    dest: &HttpClient,
    endpoint: &Endpoint,
    hub: &Endpoint,
    signer: &Signer,
) -> anyhow::Result<Vec<abi::Proof>> {
    let hub_client = hub.client()?;
    let hub_id: u64 = hub_client.chain_id().await?.to();
    let to: u64 = dest.chain_id().await?.to();
    if hub_id == from || hub_id == to {
        bail!(
            "--hub {} is chain {hub_id}, the source or the destination: give a node of the \
             destination's hub (the main chain)",
            hub.rpc
        );
    }
    anchor_on(source, from, height, &hub_client, hub, signer).await?;
    // The record's length, from its first slot: it never changes once anchored.
    let len = record_len(&hub_client, hub_id, from, height).await?;
    let mut attempt = 0;
    let hop = loop {
        attempt += 1;
        let at: u64 = hub_client.block_number().await?.to();
        match hop_at(&hub_client, hub_id, from, height, len, at).await {
            Ok(hop) => break hop,
            Err(e) if attempt < 5 => {
                tracing::debug!(error = %e, "the hub moved on; proving again");
            }
            Err(e) => return Err(e.context(format!("proving the hub {hub_id}'s record"))),
        }
    };
    anchor_on(&hub_client, hub_id, hop.height, dest, endpoint, signer).await?;
    for proof in &mut proofs {
        proof.via = vec![hop.clone()];
    }
    Ok(proofs)
}

/// The length of `hub`'s light-client record of chain `chain`'s block `height`.
async fn record_len(
    hub: &HttpClient,
    hub_id: u64,
    chain: u64,
    height: u64,
) -> anyhow::Result<usize> {
    let base = trellis_system::xchain::hub_anchor_slots(chain, height, 0)[0];
    let header = hub
        .get_proof(
            LIGHT_CLIENTS_ADDRESS,
            vec![alloy_primitives::B256::from(base)],
            BlockId::latest(),
        )
        .await?;
    let word = header
        .storage_proof
        .first()
        .map(|p| p.value)
        .unwrap_or_default();
    usize::try_from(word)
        .ok()
        .and_then(|w| w.checked_sub(1))
        .with_context(|| format!("chain {hub_id} holds no anchor of chain {chain} at {height}"))
}

/// The hop through `hub` at its block `at`: its light-client record (`len` bytes) of chain
/// `chain`'s block `height`, and its status word of that client, proven (`eth_getProof`).
async fn hop_at(
    hub: &HttpClient,
    hub_id: u64,
    chain: u64,
    height: u64,
    len: usize,
    at: u64,
) -> anyhow::Result<abi::Hop> {
    use alloy_primitives::B256;
    use trellis_system::xchain::hub_anchor_slots;
    let record = hub_anchor_slots(chain, height, len);
    let keys = record
        .iter()
        .chain([&trellis_system::clients::status_slot(chain)])
        .map(|s| B256::from(*s))
        .collect();
    let mut proof = hub
        .get_proof(LIGHT_CLIENTS_ADDRESS, keys, BlockId::number(at))
        .await?;
    if proof.storage_proof.len() != record.len() + 1 {
        bail!(
            "asked the hub for {} storage proofs, it answered {}",
            record.len() + 1,
            proof.storage_proof.len()
        );
    }
    let status = proof
        .storage_proof
        .pop()
        .context("the status word's proof")?;
    Ok(abi::Hop {
        chainId: hub_id,
        height: at,
        account: abi::AccountProof {
            nonce: proof.nonce,
            balance: proof.balance,
            storageRoot: proof.storage_hash,
            codeHash: proof.code_hash,
            nodes: proof.account_proof,
        },
        values: proof.storage_proof.iter().map(|p| p.value).collect(),
        slotProofs: proof.storage_proof.into_iter().map(|p| p.proof).collect(),
        statusWord: status.value,
        statusProof: status.proof,
    })
}

/// The time (ms) of `c`'s newest block, from its header.
async fn tip_time(c: &HttpClient) -> anyhow::Result<u64> {
    let n: U64 = c.block_number().await?;
    let anchor = c
        .anchor(n)
        .await?
        .with_context(|| format!("no header of block {n}"))?;
    Ok(trellis_light::decode_header(&anchor.header)
        .context("a header that does not decode")?
        .timestamp_ms)
}

/// Proofs of the cross-chain contract's `slots` at `source`'s block `height` (one hop).
async fn prove(
    source: &HttpClient,
    height: u64,
    slots: &[U256],
) -> anyhow::Result<Vec<abi::Proof>> {
    let keys = slots
        .iter()
        .map(|s| alloy_primitives::B256::from(*s))
        .collect();
    let proof = source
        .get_proof(XCHAIN_ADDRESS, keys, BlockId::number(height))
        .await?;
    if proof.storage_proof.len() != slots.len() {
        bail!(
            "asked for {} storage proofs, the source answered {}",
            slots.len(),
            proof.storage_proof.len()
        );
    }
    let account = abi::AccountProof {
        nonce: proof.nonce,
        balance: proof.balance,
        storageRoot: proof.storage_hash,
        codeHash: proof.code_hash,
        nodes: proof.account_proof,
    };
    Ok(proof
        .storage_proof
        .into_iter()
        .map(|p| abi::Proof {
            height,
            account: account.clone(),
            slotProof: p.proof,
            via: Vec::new(),
        })
        .collect())
}
