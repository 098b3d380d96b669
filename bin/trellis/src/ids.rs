//! `trellis id`: industrial identifiers — delegate sub-prefixes, register, update, remove and
//! resolve identifiers, and load many for benchmarks.

use alloy_primitives::{Bytes, TxKind, U256};
use alloy_sol_types::SolCall;
use anyhow::{bail, Context};
use clap::Subcommand;
use std::time::{Duration, Instant};
use trellis_api::EthApiClient;
use trellis_system::identifiers::{abi, IDENTIFIERS_ADDRESS};

use crate::client::{nonce, signed};
use crate::gov::{send_to, Endpoint, Signer};

/// `TYPE=DATA` (data as text) or `TYPE=0xHEX`, indexed from 1 in the order given.
fn values(raw: &[String]) -> anyhow::Result<Vec<abi::Value>> {
    raw.iter()
        .enumerate()
        .map(|(i, v)| {
            let (kind, data) = v
                .split_once('=')
                .with_context(|| format!("value {v:?} must be TYPE=DATA"))?;
            let data = match data.strip_prefix("0x") {
                Some(hex_data) => Bytes::from(hex::decode(hex_data).context("hex value data")?),
                None => Bytes::copy_from_slice(data.as_bytes()),
            };
            Ok(abi::Value {
                index: i as u32 + 1,
                valueType: kind.to_owned(),
                data,
                ttl: 86_400,
            })
        })
        .collect()
}

#[derive(Subcommand)]
pub enum IdCommand {
    /// Delegate a direct sub-prefix of one your organisation holds (admins only).
    Delegate {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        prefix: String,
        org: String,
    },
    /// Register an identifier PREFIX/suffix with values TYPE=DATA (e.g. URL=https://…).
    Register {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        identifier: String,
        values: Vec<String>,
    },
    /// Replace an identifier's values.
    Update {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        identifier: String,
        values: Vec<String>,
    },
    /// Remove an identifier.
    Remove {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        identifier: String,
    },
    /// Resolve an identifier over REST (Handle JSON).
    Resolve {
        #[command(flatten)]
        endpoint: Endpoint,
        identifier: String,
        /// Only values of these types.
        #[arg(long = "type")]
        types: Vec<String>,
    },
    /// Register COUNT identifiers PREFIX/0 … PREFIX/COUNT-1 (one URL value each) in batches,
    /// for benchmarks. The signer's organisation must hold PREFIX.
    Load {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        prefix: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 250)]
        per_tx: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
}

pub async fn run(command: IdCommand) -> anyhow::Result<()> {
    let (endpoint, signer, data) = match command {
        IdCommand::Delegate {
            endpoint,
            signer,
            prefix,
            org,
        } => (
            endpoint,
            signer,
            abi::delegatePrefixCall { prefix, org }.abi_encode(),
        ),
        IdCommand::Register {
            endpoint,
            signer,
            identifier,
            values: raw,
        } => {
            let values = values(&raw)?;
            (
                endpoint,
                signer,
                abi::registerCall { identifier, values }.abi_encode(),
            )
        }
        IdCommand::Update {
            endpoint,
            signer,
            identifier,
            values: raw,
        } => {
            let values = values(&raw)?;
            (
                endpoint,
                signer,
                abi::updateCall { identifier, values }.abi_encode(),
            )
        }
        IdCommand::Remove {
            endpoint,
            signer,
            identifier,
        } => (
            endpoint,
            signer,
            abi::removeCall { identifier }.abi_encode(),
        ),
        IdCommand::Resolve {
            endpoint,
            identifier,
            types,
        } => {
            let query = if types.is_empty() {
                String::new()
            } else {
                format!("?type={}", types.join(","))
            };
            let answer: serde_json::Value = endpoint
                .rest()?
                .get(&format!("/api/handles/{identifier}{query}"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(());
        }
        IdCommand::Load {
            endpoint,
            signer,
            prefix,
            count,
            per_tx,
            start,
        } => return load(&endpoint, &signer, &prefix, start, count, per_tx).await,
    };
    let receipt = send_to(&endpoint, &signer, IDENTIFIERS_ADDRESS, data).await?;
    println!(
        "done in block {} (tx {})",
        crate::gov::block_of(&receipt),
        receipt.transaction_hash
    );
    Ok(())
}

async fn load(
    endpoint: &Endpoint,
    signer: &Signer,
    prefix: &str,
    start: u64,
    count: u64,
    per_tx: u64,
) -> anyhow::Result<()> {
    if per_tx == 0 || per_tx > trellis_system::identifiers::MAX_BATCH as u64 {
        bail!(
            "--per-tx must be 1 to {}",
            trellis_system::identifiers::MAX_BATCH
        );
    }
    let key = signer.key()?;
    let c = endpoint.client()?;
    let chain_id = c.chain_id().await?;
    let mut n = nonce(&c, key.address(), alloy_rpc_types_eth::BlockId::pending()).await?;
    let began = Instant::now();
    let mut first = start;
    let end = start + count;
    while first < end {
        // Keep at most 40 batches in flight.
        while n >= nonce(&c, key.address(), alloy_rpc_types_eth::BlockId::latest()).await? + 40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let last = (first + per_tx).min(end);
        let items = (first..last)
            .map(|i| abi::Registration {
                identifier: format!("{prefix}/{i}"),
                values: vec![abi::Value {
                    index: 1,
                    valueType: "URL".into(),
                    data: Bytes::from(format!("https://example.com/products/{i}").into_bytes()),
                    ttl: 86_400,
                }],
            })
            .collect();
        let data = abi::registerBatchCall { items }.abi_encode();
        let gas = 200_000 + 60_000 * (last - first);
        let raw = signed(
            &key,
            chain_id.to(),
            n,
            TxKind::Call(IDENTIFIERS_ADDRESS),
            U256::ZERO,
            gas,
            data.into(),
        );
        c.send_raw_transaction(raw).await.context("batch refused")?;
        n += 1;
        first = last;
    }
    while nonce(&c, key.address(), alloy_rpc_types_eth::BlockId::latest()).await? < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{count} identifiers registered in {secs:.1} s ({:.0}/s)",
        count as f64 / secs
    );
    Ok(())
}
