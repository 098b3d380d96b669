//! `trellis gov` and `trellis org`: propose, vote and inspect governance on any node, over
//! JSON-RPC. Writes are signed locally and sent as ordinary transactions to the governance
//! contract; each is dry-run first (`eth_estimateGas`), so a refused action prints the
//! contract's reason and sends nothing.

use alloy_primitives::{Address, Bytes, TxKind, B256, U256, U64};
use alloy_rpc_types_eth::{TransactionReceipt, TransactionRequest};
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use jsonrpsee::http_client::HttpClient;
use std::time::{Duration, Instant};
use trellis_api::EthApiClient;
use trellis_api::GovernanceApiClient;
use trellis_crypto::AccountKey;
use trellis_system::governance::abi;
use trellis_system::GOVERNANCE_ADDRESS;

use crate::client::{nonce, signed};

#[derive(Args, Clone)]
pub struct Endpoint {
    /// JSON-RPC URL of any node of the chain.
    #[arg(long, default_value = "http://127.0.0.1:8545", env = "TRELLIS_RPC")]
    pub rpc: String,
    /// Read token (or the node's admin token) for nodes that restrict reads
    /// (`rpc.read_access`), sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "TRELLIS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// For an https:// node: the certificate (PEM; its CA's, or its own) to trust instead
    /// of the system's roots.
    #[arg(long, env = "TRELLIS_CA_CERT", value_name = "PEM")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// For an https:// node: a client certificate (PEM) to present, registered by your
    /// organisation with `trellis org token issue --cert`; needs --client-key.
    #[arg(
        long,
        env = "TRELLIS_CLIENT_CERT",
        value_name = "PEM",
        requires = "client_key"
    )]
    pub client_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "TRELLIS_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    pub client_key: Option<std::path::PathBuf>,
}

impl Endpoint {
    /// The TLS settings for an https:// endpoint, `None` for plain HTTP.
    fn tls(&self) -> anyhow::Result<Option<rustls::ClientConfig>> {
        if !self.rpc.starts_with("https://") {
            if self.ca_cert.is_some() || self.client_cert.is_some() {
                bail!("--ca-cert and --client-cert need an https:// --rpc URL");
            }
            return Ok(None);
        }
        self.tls_for(&self.rpc)
    }

    /// The TLS settings (this endpoint's `--ca-cert` and client certificate) for another
    /// https:// `url`, `None` for plain HTTP.
    pub fn tls_for(&self, url: &str) -> anyhow::Result<Option<rustls::ClientConfig>> {
        if !url.starts_with("https://") {
            return Ok(None);
        }
        let files = trellis_sdk::tls::TlsFiles {
            ca_cert: self.ca_cert.as_deref(),
            client_cert: self.client_cert.as_deref().zip(self.client_key.as_deref()),
        };
        Ok(Some(trellis_sdk::tls::client_config(&files)?))
    }

    /// A JSON-RPC client of this endpoint, presenting the token if one is set.
    pub fn client(&self) -> anyhow::Result<HttpClient> {
        crate::client::authorized_client(&self.rpc, self.token.as_deref(), self.tls()?)
    }

    /// A REST client of this endpoint, presenting the token if one is set.
    pub fn rest(&self) -> anyhow::Result<trellis_sdk::rest::RestClient> {
        let client = match self.tls()? {
            Some(tls) => trellis_sdk::rest::RestClient::with_tls(&self.rpc, tls),
            None => trellis_sdk::rest::RestClient::new(&self.rpc),
        };
        Ok(match &self.token {
            Some(token) => client.with_token(token),
            None => client,
        })
    }
}

/// Which part of a registry to list.
#[derive(Args, Clone)]
pub struct Page {
    /// Position of the first entry.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Entries to list (at most 1,000); all from `--offset` on when absent.
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Args, Clone)]
pub struct Signer {
    /// Ethereum keystore file (v3 JSON) of the signing account; its password is asked for on
    /// the terminal, or read from `--password-file`.
    #[arg(long, env = "TRELLIS_KEYSTORE", conflicts_with_all = ["private_key", "dev_account"])]
    pub keystore: Option<std::path::PathBuf>,
    /// File whose first line is the keystore's password.
    #[arg(long, env = "TRELLIS_PASSWORD_FILE", requires = "keystore")]
    pub password_file: Option<std::path::PathBuf>,
    /// Hex private key of the signing account (an organisation admin).
    #[arg(long, env = "TRELLIS_PRIVATE_KEY", conflicts_with = "dev_account")]
    pub private_key: Option<String>,
    /// Sign with a deterministic development account instead (dev chains and testnets).
    #[arg(long)]
    pub dev_account: Option<u32>,
}

impl Signer {
    pub fn key(&self) -> anyhow::Result<AccountKey> {
        if let Some(keystore) = &self.keystore {
            return crate::keystore::decrypt(keystore, self.password_file.as_deref());
        }
        match (&self.private_key, self.dev_account) {
            (Some(hex_key), _) => {
                let bytes: B256 = hex_key
                    .trim()
                    .parse()
                    .context("private key must be 32 bytes of hex")?;
                Ok(AccountKey::from_bytes(&bytes.0)?)
            }
            (None, Some(i)) => Ok(AccountKey::dev(i)),
            (None, None) => bail!(
                "pass --keystore (or TRELLIS_KEYSTORE), --private-key (or TRELLIS_PRIVATE_KEY) or --dev-account"
            ),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Role {
    Validator,
    Full,
    Light,
    Archive,
}

impl From<Role> for abi::NodeRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Validator => abi::NodeRole::Validator,
            Role::Full => abi::NodeRole::Full,
            Role::Light => abi::NodeRole::Light,
            Role::Archive => abi::NodeRole::Archive,
        }
    }
}

#[derive(Subcommand)]
pub enum Proposal {
    /// Admit an organisation.
    AddOrg {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Admin account (repeatable).
        #[arg(long = "admin", required = true)]
        admins: Vec<Address>,
        /// A supervisor (regulator): reads everything, co-signs freezes.
        #[arg(long)]
        supervisor: bool,
        /// Supervisor only: no vote, no ordinary transactions.
        #[arg(long)]
        no_member: bool,
    },
    /// Remove an organisation, its nodes and its accounts' rights.
    RemoveOrg {
        #[arg(long)]
        id: String,
    },
    /// Register a node key for an organisation.
    AddNode {
        /// Ed25519 node public key (`trellis keys show`).
        #[arg(long)]
        key: B256,
        #[arg(long)]
        org: String,
        #[arg(long, value_enum, default_value = "full")]
        role: Role,
        /// Voting power (validators only).
        #[arg(long, default_value_t = 1)]
        power: u64,
    },
    RemoveNode {
        #[arg(long)]
        key: B256,
    },
    SetNodeRole {
        #[arg(long)]
        key: B256,
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long, default_value_t = 1)]
        power: u64,
    },
    AddAccount {
        #[arg(long)]
        account: Address,
        #[arg(long)]
        org: String,
    },
    RemoveAccount {
        #[arg(long)]
        account: Address,
    },
    /// Freeze an account or a contract (needs a supervisor's approval where one exists).
    Freeze {
        #[arg(long)]
        target: Address,
    },
    Unfreeze {
        #[arg(long)]
        target: Address,
    },
    SetThreshold {
        #[arg(long)]
        numerator: u64,
        #[arg(long)]
        denominator: u64,
    },
    /// Create a sub-chain: its hosts start it once the proposal takes effect
    /// (docs/multichain.md).
    CreateSubchain {
        #[arg(long)]
        chain_id: u64,
        #[arg(long)]
        name: String,
        /// Member organisation (repeatable; supervisors join every sub-chain by themselves).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
        /// A validator: a registered node of a member, as PUBLIC_KEY or PUBLIC_KEY:POWER
        /// (power 1 by default; repeatable).
        #[arg(long = "validator", required = true, value_parser = parse_subchain_validator)]
        validators: Vec<abi::SubchainValidator>,
    },
    /// Retire a sub-chain: its hosts stop it; its data stays.
    RetireSubchain {
        #[arg(long)]
        chain_id: u64,
    },
    /// Recover a retired sub-chain: its hosts start it again.
    RecoverSubchain {
        #[arg(long)]
        chain_id: u64,
    },
    /// Delegate an identifier prefix (e.g. MA.156) to an organisation, or move it.
    DelegatePrefix {
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        org: String,
    },
    /// Reset this chain's light client of another chain — a frozen one above all: it trusts
    /// the given validators from the given header on (needs a supervisor's approval where
    /// one exists). On a sub-chain only its client of the main chain; the others through
    /// the main chain (`to-subchain … reset-light-client`).
    ResetLightClient {
        #[command(flatten)]
        reset: Reset,
    },
    /// Send a sub-chain a governance packet: it applies the action as soon as it receives it
    /// (relayed like any cross-chain message).
    ToSubchain {
        #[arg(long)]
        chain_id: u64,
        #[command(subcommand)]
        packet: Packet,
    },
}

/// What a light client's reset trusts.
#[derive(Args)]
pub struct Reset {
    /// The followed chain.
    #[arg(long)]
    pub chain_id: u64,
    /// The agreed header: above every anchor the client has.
    #[arg(long)]
    pub height: u64,
    #[arg(long)]
    pub hash: B256,
    #[arg(long)]
    pub state_root: B256,
    #[arg(long)]
    pub timestamp_ms: u64,
    /// A validator deciding the headers after it, as PUBLIC_KEY or PUBLIC_KEY:POWER
    /// (repeatable).
    #[arg(long = "validator", required = true, value_parser = parse_subchain_validator)]
    pub validators: Vec<abi::SubchainValidator>,
}

impl Reset {
    fn call(self, effective: u64) -> Vec<u8> {
        abi::proposeResetLightClientCall {
            chainId: self.chain_id,
            height: self.height,
            blockHash: self.hash,
            stateRoot: self.state_root,
            timestampMs: self.timestamp_ms,
            validators: self.validators,
            effectiveHeight: effective,
        }
        .abi_encode()
    }
}

/// What a governance packet asks a sub-chain to do.
#[derive(Subcommand)]
pub enum Packet {
    /// Freeze an account or a contract there.
    Freeze {
        #[arg(long)]
        target: Address,
    },
    Unfreeze {
        #[arg(long)]
        target: Address,
    },
    /// Remove an organisation there (its nodes and its accounts' rights).
    RemoveOrg {
        #[arg(long)]
        id: String,
    },
    /// Reset the sub-chain's light client of another chain.
    ResetLightClient {
        #[command(flatten)]
        reset: Reset,
    },
}

impl Packet {
    /// The `propose…` call the sub-chain applies.
    fn call(self) -> Vec<u8> {
        match self {
            Packet::Freeze { target } => proposal_call(Proposal::Freeze { target }, 0),
            Packet::Unfreeze { target } => proposal_call(Proposal::Unfreeze { target }, 0),
            Packet::RemoveOrg { id } => proposal_call(Proposal::RemoveOrg { id }, 0),
            Packet::ResetLightClient { reset } => reset.call(0),
        }
    }
}

#[derive(Subcommand)]
pub enum GovCommand {
    /// Create a proposal (it counts as your organisation's approval).
    Propose {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        /// Height at which it takes effect once passed (default: the next block).
        #[arg(long, default_value_t = 0)]
        effective_height: u64,
        #[command(subcommand)]
        proposal: Proposal,
    },
    /// Vote on a proposal for your organisation.
    Vote {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        id: u64,
        /// Vote against instead of for.
        #[arg(long)]
        reject: bool,
    },
    /// List proposals.
    List {
        #[command(flatten)]
        endpoint: Endpoint,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Show one proposal.
    Show {
        #[command(flatten)]
        endpoint: Endpoint,
        id: u64,
    },
    /// The audit log: governance actions, freezes and membership changes.
    Audit {
        #[command(flatten)]
        endpoint: Endpoint,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Frozen accounts and contracts.
    Frozen {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        page: Page,
    },
    /// Identifier prefixes delegated by governance, with their holders.
    Prefixes {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        page: Page,
    },
    /// Sub-chains created by governance.
    Subchains {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        page: Page,
    },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// List organisations.
    List {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        page: Page,
    },
    /// Show one organisation and its nodes.
    Show {
        #[command(flatten)]
        endpoint: Endpoint,
        id: String,
    },
    /// List registered nodes.
    Nodes {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        page: Page,
    },
    /// Register accounts to your own organisation (admins only; no vote needed).
    AddAccounts {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        #[arg(required = true)]
        accounts: Vec<Address>,
    },
    /// Remove accounts from your own organisation.
    RemoveAccounts {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        #[arg(required = true)]
        accounts: Vec<Address>,
    },
    /// Read tokens: API tokens for nodes that restrict who reads (`rpc.read_access`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a read token for your own organisation (admins only). The token is generated
    /// here and printed once; only its hash goes on chain. With --cert, registers a TLS
    /// client certificate instead: nodes serving TLS accept it in place of a token.
    Issue {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        /// A client certificate (PEM; the first certificate counts) to register instead of
        /// generating a token.
        #[arg(long, value_name = "PEM")]
        cert: Option<std::path::PathBuf>,
        /// What the token is for (at most 128 bytes), shown in listings and the audit log.
        #[arg(long, default_value = "")]
        label: String,
        /// Lifetime, e.g. `90d` or `12h`; without it the token lasts until revoked.
        #[arg(long)]
        expires_in: Option<humantime::Duration>,
    },
    /// Revoke a read token of your organisation (or any, as a supervisor's admin), given as
    /// the token itself or its 0x hash, or a registered client certificate.
    Revoke {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        #[arg(value_name = "TOKEN_OR_HASH", required_unless_present = "cert")]
        revoked: Option<String>,
        /// The registered client certificate (PEM) to revoke.
        #[arg(long, value_name = "PEM", conflicts_with = "revoked")]
        cert: Option<std::path::PathBuf>,
    },
    /// List an organisation's read tokens.
    List {
        #[command(flatten)]
        endpoint: Endpoint,
        org: String,
        #[command(flatten)]
        page: Page,
    },
}

/// A new read token: `trt_` and 32 random bytes in hex.
fn new_read_token() -> String {
    format!("trt_{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// A token argument as its on-chain hash: a 0x-prefixed 32-byte hash is taken as is.
fn token_hash(token: &str) -> B256 {
    match token.trim().parse::<B256>() {
        Ok(hash) if token.trim().starts_with("0x") => hash,
        _ => trellis_system::governance::read_token_hash(token.trim()),
    }
}

/// The on-chain hash of the client certificate in a PEM file.
fn client_certificate_hash(path: &std::path::Path) -> anyhow::Result<B256> {
    Ok(trellis_sdk::tls::certificate_hash(path)?)
}

async fn run_token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue {
            endpoint,
            signer,
            cert,
            label,
            expires_in,
        } => {
            let expires_at = match expires_in {
                Some(d) => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .saturating_add(*d)
                    .as_secs(),
                None => 0,
            };
            let (token, hash) = match &cert {
                Some(path) => (None, client_certificate_hash(path)?),
                None => {
                    let token = new_read_token();
                    let hash = trellis_system::governance::read_token_hash(&token);
                    (Some(token), hash)
                }
            };
            let call = abi::issueReadTokenCall {
                tokenHash: hash,
                label,
                expiresAt: expires_at,
            };
            print_events(&send(&endpoint, &signer, call.abi_encode()).await?);
            if let Some(token) = &token {
                println!("token: {token}");
            }
            println!("hash: {hash}");
            if expires_at != 0 {
                println!("expires at Unix time {expires_at}");
            }
            match token {
                Some(_) => eprintln!("Keep the token secret: it is shown only now. Nodes that restrict reads accept it as 'Authorization: Bearer <token>' (or --token / TRELLIS_TOKEN)."),
                None => eprintln!("Registered: nodes that serve TLS (rpc.tls) and restrict reads accept this client certificate for your organisation until it is revoked or expires."),
            }
        }
        TokenCommand::Revoke {
            endpoint,
            signer,
            revoked,
            cert,
        } => {
            let hash = match (&revoked, &cert) {
                (_, Some(path)) => client_certificate_hash(path)?,
                (Some(revoked), None) => token_hash(revoked),
                (None, None) => anyhow::bail!("give the token, its hash or --cert"),
            };
            let call = abi::revokeReadTokenCall { tokenHash: hash };
            print_events(&send(&endpoint, &signer, call.abi_encode()).await?);
        }
        TokenCommand::List {
            endpoint,
            org,
            page,
        } => {
            let tokens = list(&endpoint, "read tokens", &page, |c, o, l| {
                let org = org.clone();
                async move { c.read_tokens(org, Some(o), Some(l)).await }
            })
            .await?;
            for t in tokens {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(at), _) => format!("revoked at block {at}"),
                    (None, Some(at)) => format!("expires at Unix time {at}"),
                    (None, None) => "valid until revoked".into(),
                };
                println!(
                    "{}  {:<24} issued at block {:<8} {state}",
                    t.token_hash,
                    t.label,
                    t.issued_at.to::<u64>(),
                );
            }
        }
    }
    Ok(())
}

fn proposal_call(p: Proposal, effective: u64) -> Vec<u8> {
    match p {
        Proposal::AddOrg {
            id,
            name,
            admins,
            supervisor,
            no_member,
        } => abi::proposeAddOrganizationCall {
            id,
            name,
            admins,
            member: !no_member,
            supervisor,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::RemoveOrg { id } => abi::proposeRemoveOrganizationCall {
            id,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::AddNode {
            key,
            org,
            role,
            power,
        } => abi::proposeAddNodeCall {
            publicKey: key,
            org,
            role: role.into(),
            power,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::RemoveNode { key } => abi::proposeRemoveNodeCall {
            publicKey: key,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::SetNodeRole { key, role, power } => abi::proposeSetNodeRoleCall {
            publicKey: key,
            role: role.into(),
            power,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::AddAccount { account, org } => abi::proposeAddAccountCall {
            account,
            org,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::RemoveAccount { account } => abi::proposeRemoveAccountCall {
            account,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::Freeze { target } => abi::proposeFreezeCall {
            target,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::Unfreeze { target } => abi::proposeUnfreezeCall {
            target,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::SetThreshold {
            numerator,
            denominator,
        } => abi::proposeSetThresholdCall {
            numerator,
            denominator,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::CreateSubchain {
            chain_id,
            name,
            members,
            validators,
        } => abi::proposeCreateSubchainCall {
            chainId: chain_id,
            name,
            members,
            validators,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::RetireSubchain { chain_id } => abi::proposeRetireSubchainCall {
            chainId: chain_id,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::RecoverSubchain { chain_id } => abi::proposeRecoverSubchainCall {
            chainId: chain_id,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::DelegatePrefix { prefix, org } => abi::proposeDelegatePrefixCall {
            prefix,
            org,
            effectiveHeight: effective,
        }
        .abi_encode(),
        Proposal::ResetLightClient { reset } => reset.call(effective),
        Proposal::ToSubchain { chain_id, packet } => abi::proposeToSubchainCall {
            chainId: chain_id,
            call: packet.call().into(),
            effectiveHeight: effective,
        }
        .abi_encode(),
    }
}

/// The reason in a JSON-RPC revert error (`Error(string)` data), or the error's message.
pub fn refusal(e: &jsonrpsee::core::ClientError) -> String {
    if let jsonrpsee::core::ClientError::Call(obj) = e {
        if let Some(data) = obj.data() {
            if let Ok(bytes) = serde_json::from_str::<Bytes>(data.get()) {
                if let Ok(revert) =
                    <alloy_sol_types::Revert as alloy_sol_types::SolError>::abi_decode(&bytes)
                {
                    return revert.reason;
                }
            }
        }
        return obj.message().to_string();
    }
    e.to_string()
}

/// Dry-runs, signs, sends and waits for a governance transaction; returns its receipt.
async fn send(
    endpoint: &Endpoint,
    signer: &Signer,
    data: Vec<u8>,
) -> anyhow::Result<TransactionReceipt> {
    send_to(endpoint, signer, GOVERNANCE_ADDRESS, data).await
}

/// Dry-runs (so a refusal prints the contract's reason and sends nothing), signs, sends and
/// waits for a transaction to `to`; returns its receipt.
pub async fn send_to(
    endpoint: &Endpoint,
    signer: &Signer,
    to: Address,
    data: Vec<u8>,
) -> anyhow::Result<TransactionReceipt> {
    send_value_to(endpoint, signer, to, U256::ZERO, data).await
}

/// [`send_to`] with `value` attached.
pub async fn send_value_to(
    endpoint: &Endpoint,
    signer: &Signer,
    to: Address,
    value: U256,
    data: Vec<u8>,
) -> anyhow::Result<TransactionReceipt> {
    let key = signer.key()?;
    let c = endpoint.client()?;
    let chain_id = c.chain_id().await?;
    let call = TransactionRequest::default()
        .from(key.address())
        .to(to)
        .value(value)
        .input(Bytes::from(data.clone()).into());
    let gas = match c.estimate_gas(call).await {
        Ok(gas) => gas,
        Err(e) => bail!("refused: {}", refusal(&e)),
    };
    let n = nonce(&c, key.address(), alloy_rpc_types_eth::BlockId::pending()).await?;
    let raw = signed(
        &key,
        chain_id.to(),
        n,
        TxKind::Call(to),
        value,
        gas.to::<u64>() * 2,
        data.into(),
    );
    let hash = match c.send_raw_transaction(raw).await {
        Ok(h) => h,
        Err(e) => bail!("refused: {}", refusal(&e)),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = c.transaction_receipt(hash).await? {
            if !r.status() {
                bail!("transaction {hash} failed in block {}", block_of(&r));
            }
            return Ok(r);
        }
        if Instant::now() > deadline {
            bail!("transaction {hash} was not included within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The block number a receipt names, for messages.
pub fn block_of(receipt: &TransactionReceipt) -> String {
    receipt
        .block_number
        .map_or_else(|| "?".to_owned(), |n| n.to_string())
}

/// Prints the governance events a receipt carries.
fn print_events(receipt: &TransactionReceipt) {
    println!(
        "included in block {} (tx {})",
        block_of(receipt),
        receipt.transaction_hash
    );
    for log in receipt.logs() {
        let inner = &log.inner;
        if let Ok(e) = abi::ProposalCreated::decode_log(inner) {
            println!(
                "proposal {} created: {} (expires after block {})",
                e.id, e.description, e.expiresAt
            );
        } else if let Ok(e) = abi::Voted::decode_log(inner) {
            let verdict = if e.approve { "approves" } else { "rejects" };
            println!("{} {verdict} proposal {}", e.org, e.id);
        } else if let Ok(e) = abi::ProposalPassed::decode_log(inner) {
            println!(
                "proposal {} passed; takes effect at height {}",
                e.id, e.effectiveHeight
            );
        } else if let Ok(e) = abi::ProposalRejected::decode_log(inner) {
            println!("proposal {} rejected", e.id);
        } else if let Ok(e) = abi::AccountsAdded::decode_log(inner) {
            println!("{} accounts registered to {}", e.accounts.len(), e.org);
        } else if let Ok(e) = abi::AccountsRemoved::decode_log(inner) {
            println!("{} accounts removed from {}", e.accounts.len(), e.org);
        } else if let Ok(e) = abi::ReadTokenIssued::decode_log(inner) {
            println!("read token {} issued to {}", e.tokenHash, e.org);
        } else if let Ok(e) = abi::ReadTokenRevoked::decode_log(inner) {
            println!("read token {} of {} revoked", e.tokenHash, e.org);
        }
    }
}

/// Adds which read failed, and where, to a client error.
fn reading<T>(
    endpoint: &Endpoint,
    what: &str,
    answer: Result<T, jsonrpsee::core::ClientError>,
) -> anyhow::Result<T> {
    answer.with_context(|| format!("reading {what} from {}", endpoint.rpc))
}

/// The entries of a paged listing that `page` asks for: one page with `--limit`, else every
/// page from `--offset` on. `fetch(client, offset, limit)` reads one page.
async fn list<T, F, Fut>(
    endpoint: &Endpoint,
    what: &str,
    page: &Page,
    fetch: F,
) -> anyhow::Result<Vec<T>>
where
    F: Fn(HttpClient, U64, U64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, jsonrpsee::core::ClientError>>,
{
    const MAX: u64 = trellis_api::MAX_PAGE;
    let c: HttpClient = endpoint.client()?;
    if let Some(limit) = page.limit {
        if limit == 0 || limit > MAX {
            bail!("--limit must be 1 to {MAX}");
        }
        let answer = fetch(c, U64::from(page.offset), U64::from(limit)).await;
        return reading(endpoint, what, answer);
    }
    let mut out = Vec::new();
    loop {
        let offset = page.offset + out.len() as u64;
        let answer = fetch(c.clone(), U64::from(offset), U64::from(MAX)).await;
        let entries = reading(endpoint, what, answer)?;
        let n = entries.len() as u64;
        out.extend(entries);
        if n < MAX {
            return Ok(out);
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn run(command: GovCommand) -> anyhow::Result<()> {
    match command {
        GovCommand::Propose {
            endpoint,
            signer,
            effective_height,
            proposal,
        } => {
            print_events(
                &send(
                    &endpoint,
                    &signer,
                    proposal_call(proposal, effective_height),
                )
                .await?,
            );
        }
        GovCommand::Vote {
            endpoint,
            signer,
            id,
            reject,
        } => {
            let call = abi::voteCall {
                proposalId: id,
                approve: !reject,
            };
            print_events(&send(&endpoint, &signer, call.abi_encode()).await?);
        }
        GovCommand::List {
            endpoint,
            from,
            limit,
        } => {
            let c = endpoint.client()?;
            let answer = c
                .proposals(Some(U64::from(from)), Some(U64::from(limit)))
                .await;
            for p in reading(&endpoint, "proposals", answer)? {
                println!(
                    "{:>4}  {:<9} {}  (by {}, approvals: {})",
                    p.id.to::<u64>(),
                    p.status,
                    p.description,
                    p.proposer_org,
                    p.approvals.len(),
                );
            }
        }
        GovCommand::Show { endpoint, id } => {
            let answer = endpoint.client()?.proposal(U64::from(id)).await;
            match reading(&endpoint, "the proposal", answer)? {
                Some(p) => print_json(&p)?,
                None => bail!("no proposal {id}"),
            }
        }
        GovCommand::Audit {
            endpoint,
            from,
            limit,
        } => {
            let c = endpoint.client()?;
            let answer = c
                .audit_log(Some(U64::from(from)), Some(U64::from(limit)))
                .await;
            for e in reading(&endpoint, "the audit log", answer)? {
                println!(
                    "#{:<5} block {:<7} {:<14} {:<12} {}",
                    e.seq.to::<u64>(),
                    e.block_number.to::<u64>(),
                    e.action,
                    e.org,
                    e.detail,
                );
            }
        }
        GovCommand::Frozen { endpoint, page } => {
            let frozen = list(&endpoint, "the freeze list", &page, |c, o, l| async move {
                c.frozen(Some(o), Some(l)).await
            });
            for a in frozen.await? {
                println!("{a}");
            }
        }
        GovCommand::Prefixes { endpoint, page } => {
            let prefixes = list(&endpoint, "prefixes", &page, |c, o, l| async move {
                c.prefixes(Some(o), Some(l)).await
            });
            for p in prefixes.await? {
                println!("{:<40} {}", p.prefix, p.org);
            }
        }
        GovCommand::Subchains { endpoint, page } => print_subchains_page(&endpoint, &page).await?,
    }
    Ok(())
}

/// Every sub-chain, one line each.
pub async fn print_subchains(endpoint: &Endpoint) -> anyhow::Result<()> {
    let page = Page {
        offset: 0,
        limit: None,
    };
    print_subchains_page(endpoint, &page).await
}

async fn print_subchains_page(endpoint: &Endpoint, page: &Page) -> anyhow::Result<()> {
    let subchains = list(endpoint, "sub-chains", page, |c, o, l| async move {
        c.subchains(Some(o), Some(l)).await
    });
    for c in subchains.await? {
        let state = match c.retired {
            true => format!("retired at block {}", c.changed_at.to::<u64>()),
            false => "active".to_owned(),
        };
        println!(
            "{:<10} {:<32} created at block {}, {state}; members {}; {} validators",
            c.chain_id.to::<u64>(),
            c.name,
            c.created_at.to::<u64>(),
            c.members.join(", "),
            c.validators.len(),
        );
    }
    Ok(())
}

pub async fn run_org(command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Token { command } => return run_token(command).await,
        OrgCommand::List { endpoint, page } => {
            let orgs = list(&endpoint, "organisations", &page, |c, o, l| async move {
                c.organizations(Some(o), Some(l)).await
            });
            for o in orgs.await? {
                let roles = match (o.member, o.supervisor) {
                    (true, true) => "member, supervisor",
                    (true, false) => "member",
                    (false, true) => "supervisor",
                    (false, false) => "observer",
                };
                println!("{:<16} {:<24} {roles}", o.id, o.name);
            }
        }
        OrgCommand::Show { endpoint, id } => {
            let answer = endpoint.client()?.organization(id.clone()).await;
            match reading(&endpoint, "the organisation", answer)? {
                Some(org) => print_json(&org)?,
                None => bail!("no organisation {id}"),
            }
        }
        OrgCommand::Nodes { endpoint, page } => {
            let nodes = list(&endpoint, "nodes", &page, |c, o, l| async move {
                c.nodes(Some(o), Some(l)).await
            });
            for n in nodes.await? {
                println!(
                    "{}  {:<10} {:<9} power {}",
                    n.public_key,
                    n.org,
                    n.role,
                    n.power.to::<u64>(),
                );
            }
        }
        OrgCommand::AddAccounts {
            endpoint,
            signer,
            accounts,
        } => {
            let progress = crate::progress::bar(accounts.len() as u64, "accounts added");
            for chunk in accounts.chunks(trellis_system::governance::MAX_ACCOUNTS_PER_CALL) {
                let call = abi::addAccountsCall {
                    accounts: chunk.to_vec(),
                };
                let receipt = send(&endpoint, &signer, call.abi_encode()).await?;
                progress.inc(chunk.len() as u64);
                progress.suspend(|| print_events(&receipt));
            }
            progress.finish_and_clear();
        }
        OrgCommand::RemoveAccounts {
            endpoint,
            signer,
            accounts,
        } => {
            for chunk in accounts.chunks(trellis_system::governance::MAX_ACCOUNTS_PER_CALL) {
                let call = abi::removeAccountsCall {
                    accounts: chunk.to_vec(),
                };
                print_events(&send(&endpoint, &signer, call.abi_encode()).await?);
            }
        }
    }
    Ok(())
}

/// `PUBLIC_KEY` or `PUBLIC_KEY:POWER`.
fn parse_subchain_validator(s: &str) -> Result<abi::SubchainValidator, String> {
    let (key, power) = match s.split_once(':') {
        Some((k, p)) => (
            k,
            p.parse::<u64>().map_err(|e| format!("power {p:?}: {e}"))?,
        ),
        None => (s, 1),
    };
    let public_key = key
        .parse::<alloy_primitives::B256>()
        .map_err(|e| format!("public key {key:?}: {e} (32 bytes in hex)"))?;
    Ok(abi::SubchainValidator {
        publicKey: public_key,
        power,
    })
}
