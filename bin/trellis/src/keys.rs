//! `trellis keys` and `trellis genesis`.

use alloy_primitives::{Address, B256, U256};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use trellis_crypto::{AccountKey, NodeKey};
use trellis_primitives::{
    ChainId, Genesis, GenesisAccount, GenesisGovernance, GenesisOrganization, GenesisValidator,
    Threshold,
};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key: an Ed25519 node key file (default), or with `--account` a secp256k1
    /// account key in an Ethereum keystore file (v3 JSON, password-encrypted).
    New {
        /// Where to write the key (default: `node_key.json`, or `account-<address>.json`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Create an account key instead of a node key.
        #[arg(long)]
        account: bool,
        /// File whose first line is the new keystore's password (asked for on the terminal
        /// otherwise).
        #[arg(long, requires = "account")]
        password_file: Option<PathBuf>,
        /// Print the new account's private key instead of writing a keystore (development).
        #[arg(long, requires = "account", conflicts_with_all = ["out", "password_file"])]
        print: bool,
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
        KeysCommand::New {
            account: true,
            print: true,
            ..
        } => {
            let key = AccountKey::random();
            println!("address:     {}", key.address());
            println!("private key: 0x{}", hex::encode(key.secret_bytes()));
        }
        KeysCommand::New {
            account: true,
            out,
            password_file,
            force,
            ..
        } => {
            let key = AccountKey::random();
            let out =
                out.unwrap_or_else(|| PathBuf::from(format!("account-{}.json", key.address())));
            if out.exists() && !force {
                bail!("{} exists; pass --force to overwrite it", out.display());
            }
            let password = crate::keystore::password(password_file.as_deref(), true)?;
            crate::keystore::encrypt(&key, &out, &password)?;
            println!("wrote {}", out.display());
            println!("address: {}", key.address());
        }
        KeysCommand::New { out, force, .. } => {
            let out = out.unwrap_or_else(|| PathBuf::from("node_key.json"));
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
    /// Validator public key (hex) with optional power and organisation: `0xKEY`,
    /// `0xKEY:10` or `0xKEY:10@org2` (default: power 1, the first organisation). Repeatable.
    #[arg(long = "validator", required = true)]
    pub validators: Vec<String>,
    /// Founding member organisation: `ID=0xADMIN[,0xADMIN...]`. Repeatable; the first
    /// organisation also receives the dev accounts. Default: `org1` administered by dev
    /// account 0 (requires --dev-accounts).
    #[arg(long = "org")]
    pub orgs: Vec<String>,
    /// Founding supervisor (regulator) organisation: `ID=0xADMIN[,0xADMIN...]`. Repeatable.
    #[arg(long = "supervisor")]
    pub supervisors: Vec<String>,
    /// Pre-funded account: `0xADDRESS=WEI`. Repeatable.
    #[arg(long = "alloc")]
    pub alloc: Vec<String>,
    /// Also fund the first N deterministic dev accounts (see `trellis dev`).
    #[arg(long, default_value_t = 0)]
    pub dev_accounts: u32,
    /// Gas all transactions of one block may use together.
    #[arg(long, default_value_t = trellis_primitives::DEFAULT_GAS_LIMIT)]
    pub gas_limit: u64,
    /// Gas one transaction may ask for (at most --gas-limit).
    #[arg(long, default_value_t = trellis_primitives::DEFAULT_MAX_TRANSACTION_GAS)]
    pub max_transaction_gas: u64,
    #[arg(long, default_value = "genesis.json")]
    pub out: PathBuf,
}

/// 1,000,000 ether in wei.
pub fn dev_balance() -> U256 {
    U256::from(10u64).pow(U256::from(24u64))
}

/// A member organisation administered by `admins`.
pub fn member_org(id: &str, admins: Vec<Address>) -> GenesisOrganization {
    GenesisOrganization {
        id: id.into(),
        name: id.into(),
        admins,
        member: true,
        supervisor: false,
        accounts: Vec::new(),
    }
}

/// A genesis whose dev accounts are funded and registered: each to the organisation it
/// administers, the rest to the first organisation.
pub fn build_genesis(
    chain_id: u64,
    validators: Vec<GenesisValidator>,
    mut organizations: Vec<GenesisOrganization>,
    mut alloc: BTreeMap<Address, GenesisAccount>,
    dev_accounts: u32,
    (gas_limit, max_transaction_gas): (u64, u64),
) -> anyhow::Result<Genesis> {
    for i in 0..dev_accounts {
        let address = AccountKey::dev(i).address();
        alloc.insert(
            address,
            GenesisAccount {
                balance: dev_balance(),
                ..Default::default()
            },
        );
        if !organizations.iter().any(|o| o.admins.contains(&address)) {
            if let Some(first) = organizations.first_mut() {
                first.accounts.push(address);
            }
        }
    }
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let genesis = Genesis {
        chain_id: ChainId(chain_id),
        timestamp_ms,
        gas_limit,
        max_transaction_gas,
        validators,
        governance: GenesisGovernance {
            organizations,
            nodes: Vec::new(),
            threshold: Threshold::default(),
            proposal_ttl_blocks: 100_000,
        },
        alloc,
        light_clients: Vec::new(),
    };
    genesis.validate()?;
    Ok(genesis)
}

fn parse_org(spec: &str, supervisor: bool) -> anyhow::Result<GenesisOrganization> {
    let (id, admins) = spec
        .split_once('=')
        .context("organisations are given as ID=0xADMIN[,0xADMIN...]")?;
    let admins = admins
        .split(',')
        .map(|a| a.parse::<Address>().context("invalid admin address"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut org = member_org(id, admins);
    org.member = !supervisor;
    org.supervisor = supervisor;
    Ok(org)
}

pub fn genesis(args: GenesisArgs) -> anyhow::Result<()> {
    let mut organizations = args
        .orgs
        .iter()
        .map(|o| parse_org(o, false))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if organizations.is_empty() {
        if args.dev_accounts == 0 {
            anyhow::bail!("name the founding organisations with --org ID=0xADMIN (or pass --dev-accounts to get org1 run by dev account 0)");
        }
        organizations.push(member_org("org1", vec![AccountKey::dev(0).address()]));
    }
    for s in &args.supervisors {
        organizations.push(parse_org(s, true)?);
    }
    let first_org = organizations[0].id.clone();
    let validators = args
        .validators
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (v, org) = match v.split_once('@') {
                Some((v, org)) => (v, org.to_owned()),
                None => (v.as_str(), first_org.clone()),
            };
            let (key, power) = match v.split_once(':') {
                Some((k, p)) => (
                    k,
                    p.parse::<u64>()
                        .context("validator power must be a number")?,
                ),
                None => (v, 1),
            };
            let public_key: B256 = key
                .parse()
                .context("validator key must be 32 bytes of hex")?;
            trellis_crypto::parse_public_key(public_key.0)?;
            Ok(GenesisValidator {
                name: format!("validator-{i}"),
                public_key,
                power,
                org,
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
        organizations,
        alloc,
        args.dev_accounts,
        (args.gas_limit, args.max_transaction_gas),
    )?;
    std::fs::write(&args.out, genesis.to_json())?;
    println!("wrote {}", args.out.display());
    Ok(())
}
