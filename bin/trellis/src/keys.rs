//! `trellis keys` and `trellis genesis`.

use alloy_primitives::{Address, B256, U256};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use trellis_crypto::{AccountKey, NodeKey};
use trellis_primitives::{ChainId, Genesis, GenesisAccount, GenesisValidator};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key: an Ed25519 node key file (default) or a secp256k1 account key.
    New {
        /// Where to write the node key.
        #[arg(long, default_value = "node_key.json")]
        out: PathBuf,
        /// Print a new account key instead of writing a node key.
        #[arg(long)]
        account: bool,
        /// Overwrite an existing key file.
        #[arg(long)]
        force: bool,
    },
    /// Print one of the deterministic, publicly known development accounts (as funded by
    /// `trellis dev`, `trellis testnet up` and `trellis genesis --dev-accounts`).
    Dev {
        #[arg(long, default_value_t = 0)]
        index: u32,
    },
    /// Print the public key of a node key file.
    Show {
        #[arg(default_value = "node_key.json")]
        file: PathBuf,
    },
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::New { account: true, .. } => {
            let key = AccountKey::random();
            println!("address:     {}", key.address());
            println!("private key: 0x{}", hex::encode(key.secret_bytes()));
        }
        KeysCommand::New { out, force, .. } => {
            if out.exists() && !force {
                bail!("{} exists; pass --force to overwrite it", out.display());
            }
            let key = NodeKey::generate();
            key.save(&out)?;
            println!("wrote {}", out.display());
            println!("public key: 0x{}", hex::encode(key.public().as_bytes()));
        }
        KeysCommand::Dev { index } => {
            let key = AccountKey::dev(index);
            println!("address:     {}", key.address());
            println!("private key: 0x{}", hex::encode(key.secret_bytes()));
        }
        KeysCommand::Show { file } => {
            let key = NodeKey::load(&file)?;
            println!("public key: 0x{}", hex::encode(key.public().as_bytes()));
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct GenesisArgs {
    #[arg(long, default_value_t = 1337)]
    pub chain_id: u64,
    /// Validator public key (hex) with optional power: `0xKEY` or `0xKEY:10`. Repeatable.
    #[arg(long = "validator", required = true)]
    pub validators: Vec<String>,
    /// Pre-funded account: `0xADDRESS=WEI`. Repeatable.
    #[arg(long = "alloc")]
    pub alloc: Vec<String>,
    /// Also fund the first N deterministic dev accounts (see `trellis dev`).
    #[arg(long, default_value_t = 0)]
    pub dev_accounts: u32,
    #[arg(long, default_value_t = 1_000_000_000)]
    pub gas_limit: u64,
    #[arg(long, default_value = "genesis.json")]
    pub out: PathBuf,
}

/// 1,000,000 ether in wei.
pub fn dev_balance() -> U256 {
    U256::from(10u64).pow(U256::from(24u64))
}

pub fn build_genesis(
    chain_id: u64,
    validators: Vec<GenesisValidator>,
    mut alloc: BTreeMap<Address, GenesisAccount>,
    dev_accounts: u32,
    gas_limit: u64,
) -> anyhow::Result<Genesis> {
    for i in 0..dev_accounts {
        alloc.insert(
            AccountKey::dev(i).address(),
            GenesisAccount {
                balance: dev_balance(),
                ..Default::default()
            },
        );
    }
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let genesis = Genesis {
        chain_id: ChainId(chain_id),
        timestamp_ms,
        gas_limit,
        validators,
        alloc,
    };
    genesis.validate()?;
    Ok(genesis)
}

pub fn genesis(args: GenesisArgs) -> anyhow::Result<()> {
    let validators = args
        .validators
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (key, power) = match v.split_once(':') {
                Some((k, p)) => (
                    k,
                    p.parse::<u64>()
                        .context("validator power must be a number")?,
                ),
                None => (v.as_str(), 1),
            };
            let public_key: B256 = key
                .parse()
                .context("validator key must be 32 bytes of hex")?;
            trellis_crypto::parse_public_key(public_key.0)?;
            Ok(GenesisValidator {
                name: format!("validator-{i}"),
                public_key,
                power,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let alloc = args
        .alloc
        .iter()
        .map(|a| {
            let (addr, wei) = a.split_once('=').context("--alloc takes 0xADDRESS=WEI")?;
            Ok((
                addr.parse::<Address>()
                    .context("invalid address in --alloc")?,
                GenesisAccount {
                    balance: wei.parse::<U256>().context("invalid balance in --alloc")?,
                    ..Default::default()
                },
            ))
        })
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let genesis = build_genesis(
        args.chain_id,
        validators,
        alloc,
        args.dev_accounts,
        args.gas_limit,
    )?;
    std::fs::write(&args.out, genesis.to_json())?;
    println!("wrote {}", args.out.display());
    Ok(())
}
