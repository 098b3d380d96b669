//! `trellis evidence`: notarize files by their digest and verify them later without trusting
//! the node that answers.

use alloy_primitives::{Bytes, B256};
use alloy_sol_types::SolEvent;
use anyhow::{bail, Context};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use trellis_sdk::evidence::{self as ev, Submission};
use trellis_sdk::Trusted;
use trellis_system::evidence::{abi, HashAlgorithm, MAX_BATCH};
use trellis_system::EVIDENCE_ADDRESS;

use crate::gov::{send_to, Endpoint, Signer};

pub(crate) fn algorithm(name: &str) -> Result<HashAlgorithm, String> {
    HashAlgorithm::parse(name)
        .ok_or_else(|| format!("unknown algorithm {name:?}: use sha256, keccak256 or sm3"))
}

#[derive(Subcommand)]
pub enum EvidenceCommand {
    /// Notarize files: each is hashed here (never uploaded) and its digest recorded.
    Submit {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        signer: Signer,
        /// sha256, keccak256 or sm3.
        #[arg(long, default_value = "sha256", value_parser = algorithm)]
        algorithm: HashAlgorithm,
        /// Content type recorded with every file (e.g. application/pdf).
        #[arg(long, default_value = "")]
        content_type: String,
        /// Metadata recorded with every file (text, at most 4 KiB).
        #[arg(long, default_value = "")]
        metadata: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check that a file is notarized: hash it, fetch its record and proof, and verify the
    /// proof against the validators of a trusted genesis file.
    Verify {
        #[command(flatten)]
        endpoint: Endpoint,
        /// Genesis file of the chain (its validators are the trusted set).
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long, default_value = "sha256", value_parser = algorithm)]
        algorithm: HashAlgorithm,
        file: PathBuf,
    },
    /// Show a record by evidence id (verified when --genesis is given).
    Show {
        #[command(flatten)]
        endpoint: Endpoint,
        #[arg(long)]
        genesis: Option<PathBuf>,
        id: B256,
    },
}

pub async fn run(command: EvidenceCommand) -> anyhow::Result<()> {
    match command {
        EvidenceCommand::Submit {
            endpoint,
            signer,
            algorithm,
            content_type,
            metadata,
            files,
        } => {
            let mut items = Vec::with_capacity(files.len());
            let hashing = crate::progress::bar(files.len() as u64, "files hashed");
            for file in &files {
                let digest = ev::hash_file(algorithm, file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                items.push(Submission {
                    algorithm,
                    digest,
                    content_type: content_type.clone(),
                    metadata: Bytes::from(metadata.clone().into_bytes()),
                });
                hashing.inc(1);
            }
            hashing.finish_and_clear();
            let submitting = crate::progress::bar(items.len() as u64, "records final");
            for (chunk, names) in items.chunks(MAX_BATCH).zip(files.chunks(MAX_BATCH)) {
                let data = ev::submission_calldata(chunk);
                let receipt = send_to(&endpoint, &signer, EVIDENCE_ADDRESS, data.to_vec())
                    .await
                    .context("evidence not submitted")?;
                let block = crate::gov::block_of(&receipt);
                let submitted = receipt
                    .logs()
                    .iter()
                    .filter(|l| abi::EvidenceSubmitted::decode_log(&l.inner).is_ok())
                    .count();
                let mut report = format!("{submitted} records in block {block}:\n");
                for (item, name) in chunk.iter().zip(names) {
                    report.push_str(&format!(
                        "  {}  {}:{}  {}\n",
                        item.id(),
                        algorithm,
                        item.digest,
                        name.display()
                    ));
                }
                submitting.inc(chunk.len() as u64);
                submitting.suspend(|| print!("{report}"));
            }
            submitting.finish_and_clear();
            Ok(())
        }
        EvidenceCommand::Verify {
            endpoint,
            genesis,
            algorithm,
            file,
        } => {
            let digest = ev::hash_file(algorithm, &file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let client = endpoint.rest()?;
            let response = match ev::find(&client, algorithm, &digest).await {
                Ok(r) => r,
                Err(e) if e.is_not_found() => {
                    bail!("{} ({algorithm}:{digest}) is not notarized", file.display())
                }
                Err(e) => return Err(e.into()),
            };
            print_verified(&response, &genesis)
        }
        EvidenceCommand::Show {
            endpoint,
            genesis,
            id,
        } => {
            let client = endpoint.rest()?;
            let response = ev::get(&client, &id).await?;
            match genesis {
                Some(genesis) => print_verified(&response, &genesis),
                None => {
                    println!("{}", serde_json::to_string_pretty(&response.record)?);
                    println!("(not verified: pass --genesis to check the proof)");
                    Ok(())
                }
            }
        }
    }
}

fn print_verified(response: &ev::EvidenceResponse, genesis: &Path) -> anyhow::Result<()> {
    let trusted = Trusted::from_genesis_file(genesis)?;
    let verified = ev::verify(response, &trusted).context("verification failed")?;
    let r = &verified.record;
    println!("{}", serde_json::to_string_pretty(r)?);
    println!(
        "verified: notarized in block {} by {}{}; proven against finalized block {} ({})",
        r.height,
        r.submitter,
        r.org
            .as_ref()
            .map(|o| format!(" of {o}"))
            .unwrap_or_default(),
        verified.proven_at,
        verified.block_hash
    );
    Ok(())
}
