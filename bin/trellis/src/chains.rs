//! `trellis chain`: the sub-chains a main chain created, and the check of a sub-chain's
//! genesis against the main chain's state (docs/multichain.md).

use alloy_rpc_types_eth::BlockNumberOrTag;
use anyhow::{bail, Context as _};
use clap::Subcommand;
use std::path::PathBuf;
use trellis_api::{ChainApiClient, ChainsApiClient, EthApiClient};
use trellis_node::chain::subchains;
use trellis_primitives::Genesis;

use crate::gov::Endpoint;

#[derive(Subcommand)]
pub enum ChainCommand {
    /// Fetch a sub-chain's genesis from a main-chain node and check it: the governance
    /// state it is derived from is proven against the main-chain block it names, the
    /// derivation is run again here, and the genesis hash recomputed. Nothing unverified is
    /// written.
    Genesis {
        /// The sub-chain's id.
        chain_id: u64,
        /// A main-chain node to fetch from and to trust for the main-chain block's hash
        /// (your own node).
        #[command(flatten)]
        endpoint: Endpoint,
        /// Also check this genesis file (e.g. the one a node runs) against the derived one.
        #[arg(long, value_name = "FILE")]
        verify: Option<PathBuf>,
        /// Also check the sub-chain's block 0 on this node of the sub-chain.
        #[arg(long, value_name = "URL")]
        subchain_rpc: Option<String>,
        /// Write the verified genesis here (for `[[chains]] genesis = …` on a node that did
        /// not derive it).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The sub-chains the main chain's governance created.
    List {
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Every chain a node's process hosts: members, validators, and each light client's
    /// anchored height, age and lag, whether it is frozen, and the messages pending to that
    /// chain. Each chain is read at `/chains/{id}` on the node's port, under that chain's own
    /// read access (a token of an organisation that reads it there).
    Status {
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

pub async fn run(command: ChainCommand) -> anyhow::Result<()> {
    match command {
        ChainCommand::Genesis {
            chain_id,
            endpoint,
            verify,
            subchain_rpc,
            out,
        } => {
            let client = endpoint.client()?;
            let derived = client
                .subchain_genesis(chain_id.try_into()?)
                .await
                .with_context(|| format!("asking {} for sub-chain {chain_id}", endpoint.rpc))?
                .with_context(|| {
                    format!(
                        "{} keeps no genesis of sub-chain {chain_id}: the main chain did not \
                         create it, or this node did not keep it (ask another)",
                        endpoint.rpc
                    )
                })?;
            let height: u64 = derived.main_height.to();
            let block = client
                .block_by_number(BlockNumberOrTag::Number(height), false)
                .await?
                .with_context(|| format!("{} has no block {height}", endpoint.rpc))?;
            let hash = subchains::verify(&derived, block.header.hash)
                .context("the sub-chain's genesis does not verify")?;
            println!(
                "sub-chain {chain_id}: genesis {hash}\n  derived from main-chain block {height} \
                 ({}), {} governance slots proven against its state root",
                block.header.hash,
                derived.witness.slots.len()
            );
            if let Some(file) = verify {
                let kept = Genesis::load(&file)?;
                if kept != derived.genesis {
                    bail!(
                        "{} is not the derived genesis (its hash: {})",
                        file.display(),
                        subchains::genesis_hash(&kept)?
                    );
                }
                println!("  {} is the derived genesis", file.display());
            }
            if let Some(url) = subchain_rpc {
                let sub = crate::client::authorized_client(&url, endpoint.token.as_deref(), None)?;
                let zero = sub
                    .block_by_number(BlockNumberOrTag::Number(0), false)
                    .await?
                    .with_context(|| format!("{url} has no block 0"))?;
                if zero.header.hash != hash {
                    bail!(
                        "{url} runs genesis {}, not the derived {hash}",
                        zero.header.hash
                    );
                }
                println!("  {url} runs it");
            }
            if let Some(file) = out {
                std::fs::write(&file, serde_json::to_vec_pretty(&derived.genesis)?)
                    .with_context(|| format!("writing {}", file.display()))?;
                println!("  written to {}", file.display());
            }
            Ok(())
        }
        ChainCommand::List { endpoint } => crate::gov::print_subchains(&endpoint).await,
        ChainCommand::Status { endpoint } => status(&endpoint).await,
    }
}

/// `trellis chain status`.
async fn status(endpoint: &Endpoint) -> anyhow::Result<()> {
    let listed = ChainsApiClient::chains(&endpoint.client()?)
        .await
        .with_context(|| format!("asking {} for its chains", endpoint.rpc))?;
    for entry in listed {
        let url = format!("{}{}", endpoint.rpc.trim_end_matches('/'), entry.path);
        let client = crate::client::authorized_client(
            &url,
            endpoint.token.as_deref(),
            endpoint.tls_for(&url)?,
        )?;
        match client.chain_status().await {
            Ok(status) => print!("{}", describe(&status)),
            Err(e) => println!(
                "chain {} at height {}: not readable here: {}",
                entry.chain_id,
                entry.height,
                crate::gov::refusal(&e)
            ),
        }
    }
    Ok(())
}

/// One chain's status, for people.
fn describe(s: &trellis_api::ChainStatus) -> String {
    let list = |names: &[String]| match names {
        [] => "none".to_owned(),
        names => names.join(", "),
    };
    let mut out = format!(
        "chain {} at height {}{}\n  members: {}\n  supervisors: {}\n  validators ({}, power {}):",
        s.chain_id,
        s.height,
        s.hub.map_or(String::new(), |h| format!(", hub {h}")),
        list(&s.members),
        list(&s.supervisors),
        s.validators.len(),
        s.validators.iter().map(|v| v.power).sum::<u64>(),
    );
    for v in &s.validators {
        out.push_str(&format!(
            " {}…:{}",
            &v.public_key.to_string()[..10],
            v.power
        ));
    }
    out.push('\n');
    if s.clients.is_empty() {
        out.push_str("  follows no chain\n");
    }
    for c in &s.clients {
        let lag = c
            .lag_blocks
            .map_or(String::new(), |b| format!(", {b} blocks behind"));
        out.push_str(&format!(
            "  follows {}{}: {}anchored at {} ({:.1} s before this chain's tip{lag}); messages \
             sent {}, pending {}; escrowed {}, its vouchers here {}\n",
            c.chain_id,
            if c.hub { " (hub)" } else { "" },
            if c.frozen { "FROZEN, " } else { "" },
            c.anchored_height,
            c.anchor_age_ms as f64 / 1_000.0,
            c.messages_sent,
            c.messages_pending,
            c.escrowed,
            c.vouchers,
        ));
    }
    out
}
