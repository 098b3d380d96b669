//! The `trellis` command: run a node, a local dev chain or testnet, manage keys and genesis,
//! and measure throughput. A thin layer over the library crates.

mod audit;
mod bench;
mod chains;
mod client;
mod dev;
mod dids;
mod evidence;
mod gasbench;
mod gov;
mod ids;
mod keys;
mod keystore;
mod ports;
mod precompile_cases;
mod progress;
mod testnet;
mod xchain;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "Trellis permissioned multi-chain ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a one-validator development chain with pre-funded accounts.
    Dev(dev::DevArgs),
    /// Run a node from its configuration file.
    Node {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Generate node or account keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Write a genesis file.
    Genesis(keys::GenesisArgs),
    /// Start or stop a local multi-validator network of separate processes.
    Testnet {
        #[command(subcommand)]
        command: testnet::TestnetCommand,
    },
    /// Load generator: pre-signed transfers against one or more RPC endpoints.
    Bench(bench::BenchArgs),
    /// Gas per second of each kind of operation on this machine, and the time of the worst
    /// full block at the chain's gas limits (runs in this process over a temporary store).
    BenchGas(gasbench::GasBenchArgs),
    /// Governance: propose, vote, list and show proposals, read the audit log.
    Gov {
        #[command(subcommand)]
        command: gov::GovCommand,
    },
    /// Organisations: list and show them and their nodes; admins manage their accounts.
    Org {
        #[command(subcommand)]
        command: gov::OrgCommand,
    },
    /// Audit log: export it with its proofs, verify an export offline.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Evidence (notarization): submit file digests, verify files against the chain.
    Evidence {
        #[command(subcommand)]
        command: evidence::EvidenceCommand,
    },
    /// Decentralized identifiers (did:trellis): create, update, deactivate, resolve.
    Did {
        #[command(subcommand)]
        command: dids::DidCommand,
    },
    /// Industrial identifiers: delegate prefixes, register and resolve identifiers.
    Id {
        #[command(subcommand)]
        command: ids::IdCommand,
    },
    /// Sub-chains: list them, fetch and verify a sub-chain's genesis.
    Chain {
        #[command(subcommand)]
        command: chains::ChainCommand,
    },
    /// Messages and value between chains: send, transfer, return, status, relay.
    Xchain {
        #[command(subcommand)]
        command: xchain::XchainCommand,
    },
}

/// Logs go to stderr, filtered by `TRELLIS_LOG` (tracing's env-filter syntax).
fn init_logging(single_validator: bool, format: trellis_node::LogFormat) {
    let default = if single_validator {
        // With no peers Malachite reports every gossip publish as an error.
        "warn,trellis=info,trellis_node=info,trellis_consensus=info,arc_malachitebft_network=off"
    } else {
        "warn,trellis=info,trellis_node=info,trellis_consensus=info"
    };
    let filter = EnvFilter::try_from_env("TRELLIS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter)
        .with_target(false);
    let _ = match format {
        trellis_node::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        // Colours only for a terminal: piped or redirected logs stay plain text.
        trellis_node::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

/// Errors print as one line with their causes (`{:#}`), never with a backtrace, whatever
/// `RUST_BACKTRACE` says; a refusal by a node that restricts reads adds what to do.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = hint(&e) {
                eprintln!("hint: {hint}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// What to do about an HTTP 401 or 403 from a node.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    use jsonrpsee::http_client::transport::Error as Transport;
    let status = e.chain().find_map(|cause| {
        if let Some(jsonrpsee::core::ClientError::Transport(inner)) =
            cause.downcast_ref::<jsonrpsee::core::ClientError>()
        {
            if let Some(Transport::Rejected { status_code }) = inner.downcast_ref::<Transport>() {
                return Some(*status_code);
            }
        }
        match cause.downcast_ref::<trellis_sdk::RestError>() {
            Some(trellis_sdk::RestError::Api { status, .. }) => Some(*status),
            _ => None,
        }
    })?;
    match status {
        401 => Some("the node restricts reads: pass --token <read token> (or set TRELLIS_TOKEN); an organisation's admin issues one with `trellis org token issue`"),
        403 => Some("this node does not serve your organisation's token: ask one of your organisation's nodes, or a node with rpc.read_access = \"consortium\""),
        _ => None,
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keys { command } => keys::run(command),
        Command::Genesis(args) => keys::genesis(args),
        Command::Testnet { command } => testnet::run(command),
        Command::Dev(args) => {
            init_logging(true, trellis_node::LogFormat::Text);
            runtime()?.block_on(dev::run(args))
        }
        Command::Node { config } => {
            let config = trellis_node::NodeConfig::load(&config)?;
            init_logging(config.p2p.peers.is_empty(), config.log_format);
            runtime()?.block_on(run_node(config))
        }
        Command::Bench(args) => runtime()?.block_on(bench::run(args)),
        Command::BenchGas(args) => gasbench::run(args),
        Command::Gov { command } => runtime()?.block_on(gov::run(command)),
        Command::Org { command } => runtime()?.block_on(gov::run_org(command)),
        Command::Evidence { command } => runtime()?.block_on(evidence::run(command)),
        Command::Audit { command } => runtime()?.block_on(audit::run(command)),
        Command::Id { command } => runtime()?.block_on(ids::run(command)),
        Command::Did { command } => runtime()?.block_on(dids::run(command)),
        Command::Chain { command } => runtime()?.block_on(chains::run(command)),
        Command::Xchain { command } => runtime()?.block_on(xchain::run(command)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs a node (every chain its config hosts) until it receives SIGINT/SIGTERM.
pub async fn run_node(config: trellis_node::NodeConfig) -> anyhow::Result<()> {
    let host = trellis_node::ChainHost::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let several = host.chains().len() > 1;
    let mut syncs = Vec::new();
    for node in host.chains() {
        let chain = if several {
            format!("chain {}: ", node.chain.chain_id())
        } else {
            String::new()
        };
        println!("{chain}JSON-RPC listening on http://{}", node.rpc_addr);
        if let Some(addr) = node.metrics_addr {
            println!("{chain}Prometheus metrics on http://{addr}/metrics");
        }
        // Ends with the chain too (admin_stopChain), letting go of it.
        let chain = node.chain.clone();
        syncs.push(tokio::spawn(async move {
            tokio::select! {
                _ = progress::show_sync(chain.clone()) => {}
                _ = chain.stopped() => {}
            }
        }));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    for sync in syncs {
        sync.abort();
    }
    host.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// clap checks a command's arguments only when it parses that command: check them all
    /// here (two arguments of one name, a `requires` naming nothing, ...).
    #[test]
    fn every_command_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
