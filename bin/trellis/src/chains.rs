//! `trellis chain`: the sub-chains a main chain created, and the check of a sub-chain's
//! genesis against the main chain's state (docs/multichain.md).

use alloy_rpc_types_eth::BlockNumberOrTag;
use anyhow::{bail, Context as _};
use clap::Subcommand;
use std::path::PathBuf;
use trellis_api::{ChainApiClient, EthApiClient};
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
    }
}
