//! `trellis did`: create, update (key rotation, services, controller change), deactivate and
//! resolve `did:trellis` DIDs.

use alloy_primitives::Address;
use alloy_sol_types::SolCall;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use trellis_api::EthApiClient;
use trellis_system::dids::{abi, Did, DIDS_ADDRESS};

use crate::gov::{send_to, Endpoint, Signer};

#[derive(Args, Clone)]
pub struct DocumentArgs {
    /// Account that controls the DID (default: the signer).
    #[arg(long)]
    controller: Option<Address>,
    /// Verification method FRAGMENT=TYPE:MULTIBASE, e.g.
    /// key-1=Ed25519VerificationKey2020:z6Mk…; repeatable.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Fragment usable for authentication (the controller's account always is); repeatable.
    #[arg(long = "auth")]
    authentication: Vec<String>,
    /// Fragment usable for assertions (credentials); repeatable.
    #[arg(long = "assert")]
    assertion: Vec<String>,
    /// Service FRAGMENT=TYPE=ENDPOINT, e.g. hub=LinkedDomains=https://acme.example; repeatable.
    #[arg(long = "service")]
    services: Vec<String>,
}

impl DocumentArgs {
    fn document(&self, signer: Address) -> anyhow::Result<abi::Document> {
        let keys = self
            .keys
            .iter()
            .map(|k| {
                let (id, rest) = k
                    .split_once('=')
                    .context("--key is FRAGMENT=TYPE:MULTIBASE")?;
                let (kind, key) = rest
                    .split_once(':')
                    .context("--key is FRAGMENT=TYPE:MULTIBASE")?;
                Ok(abi::VerificationMethod {
                    id: id.into(),
                    methodType: kind.into(),
                    publicKeyMultibase: key.into(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let services = self
            .services
            .iter()
            .map(|s| {
                let mut parts = s.splitn(3, '=');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(id), Some(kind), Some(endpoint)) => Ok(abi::Service {
                        id: id.into(),
                        serviceType: kind.into(),
                        endpoint: endpoint.into(),
                    }),
                    _ => bail!("--service is FRAGMENT=TYPE=ENDPOINT"),
                }
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(abi::Document {
            controller: self.controller.unwrap_or(signer),
            verificationMethods: keys,
            authentication: self.authentication.clone(),
            assertionMethod: self.assertion.clone(),
            services,
        })
    }
}

#[derive(Subcommand)]
pub enum DidCommand {
    /// Create did:trellis:<chain>:<signer address>.
    Create {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        document: DocumentArgs,
    },
    /// Replace a DID's document (rotate keys, change services or the controller).
    Update {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        did: String,
        #[command(flatten)]
        document: DocumentArgs,
    },
    /// Deactivate a DID for good.
    Deactivate {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        did: String,
    },
    /// Resolve a DID (Universal Resolver JSON).
    Resolve {
        #[command(flatten)]
        endpoint: Endpoint,
        did: String,
        #[arg(long)]
        version_id: Option<u64>,
        /// RFC 3339 time, e.g. 2026-11-25T12:00:00Z.
        #[arg(long)]
        version_time: Option<String>,
    },
}

async fn did_of(endpoint: &Endpoint, did: &str) -> anyhow::Result<Address> {
    let parsed = Did::parse(did)?;
    let chain = endpoint.client()?.chain_id().await?;
    if parsed.chain_id != chain.to::<u64>() {
        bail!(
            "{did} belongs to chain {}, the node serves {chain}",
            parsed.chain_id
        );
    }
    Ok(parsed.address)
}

pub async fn run(command: DidCommand) -> anyhow::Result<()> {
    let (endpoint, signer, data) = match command {
        DidCommand::Create {
            endpoint,
            signer,
            document,
        } => {
            let me = signer.key()?.address();
            let data = abi::createCall {
                document: document.document(me)?,
            }
            .abi_encode();
            send_to(&endpoint, &signer, DIDS_ADDRESS, data).await?;
            let chain = endpoint.client()?.chain_id().await?;
            let did = Did {
                chain_id: chain.to(),
                address: me,
            };
            println!("{}", did.to_did_string());
            return Ok(());
        }
        DidCommand::Update {
            endpoint,
            signer,
            did,
            document,
        } => {
            let id = did_of(&endpoint, &did).await?;
            let me = signer.key()?.address();
            let data = abi::updateCall {
                id,
                document: document.document(me)?,
            }
            .abi_encode();
            (endpoint, signer, data)
        }
        DidCommand::Deactivate {
            endpoint,
            signer,
            did,
        } => {
            let id = did_of(&endpoint, &did).await?;
            (endpoint, signer, abi::deactivateCall { id }.abi_encode())
        }
        DidCommand::Resolve {
            endpoint,
            did,
            version_id,
            version_time,
        } => {
            let mut path = format!("/1.0/identifiers/{did}");
            if let Some(n) = version_id {
                path.push_str(&format!("?versionId={n}"));
            } else if let Some(t) = version_time {
                path.push_str(&format!("?versionTime={t}"));
            }
            let answer: serde_json::Value = endpoint.rest()?.get(&path).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(());
        }
    };
    let receipt = send_to(&endpoint, &signer, DIDS_ADDRESS, data).await?;
    println!("done in block {}", crate::gov::block_of(&receipt));
    Ok(())
}
