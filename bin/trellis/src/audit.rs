//! `trellis audit`: export the governance audit log with its proofs, and verify an export
//! offline against the validators trusted by a genesis file (see `trellis_sdk::audit`).

use anyhow::{bail, Context as _};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use trellis_sdk::audit::{self, AuditBundle, FrozenBundle, MAX_BUNDLE};
use trellis_sdk::Trusted;
use trellis_system::governance::AuditEntry;

use crate::gov::Endpoint;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write the audit log (entries `--from` on) and the whole freeze list, with the proofs
    /// that back them, to a file.
    Export {
        #[command(flatten)]
        endpoint: Endpoint,
        /// First entry to export.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// The export file (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an export offline: every entry and frozen address against the proven state of
    /// a block certified by the trusted validators; with `--csv`, also a CSV export (the
    /// explorer's `/explorer/audit.csv`) against the proven entries, with `--frozen-csv`
    /// the explorer's `/explorer/frozen.csv` against the proven freeze list.
    Verify {
        /// The export file written by `trellis audit export`.
        file: PathBuf,
        /// Genesis file of the chain: its validators are the ones trusted.
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long)]
        csv: Option<PathBuf>,
        #[arg(long)]
        frozen_csv: Option<PathBuf>,
    },
}

/// An export file: consecutive bundles from `from` on.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Export {
    chain_id: u64,
    from: u64,
    bundles: Vec<AuditBundle>,
    /// The freeze list from its start (absent in exports written before it was exported).
    #[serde(default)]
    frozen: Vec<FrozenBundle>,
}

/// The address column of the explorer's freeze-list CSV.
#[derive(Deserialize)]
struct FrozenCsvRow {
    address: alloy_primitives::Address,
}

/// One row of the explorer's CSV export.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CsvRow {
    seq: u64,
    block_number: u64,
    transaction_hash: alloy_primitives::B256,
    action: String,
    org: String,
    actor: alloy_primitives::Address,
    detail: String,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Export {
            endpoint,
            from,
            out,
        } => {
            let client = endpoint.rest()?;
            let mut bundles: Vec<AuditBundle> = Vec::new();
            let mut next = from;
            loop {
                let bundle = audit::bundle(&client, next, MAX_BUNDLE).await?;
                let n = bundle.entries.len() as u64;
                next += n;
                bundles.push(bundle);
                if n < MAX_BUNDLE {
                    break;
                }
            }
            let frozen = frozen_snapshot(&client).await?;
            let addresses: usize = frozen.iter().map(|b| b.frozen.len()).sum();
            let chain_id = bundles.first().map_or(0, |b| b.chain_id);
            let export = Export {
                chain_id,
                from,
                bundles,
                frozen,
            };
            std::fs::write(&out, serde_json::to_vec_pretty(&export)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "exported audit entries {from}..{next} and {addresses} frozen addresses of chain {chain_id} with their proofs to {}",
                out.display()
            );
        }
        AuditCommand::Verify {
            file,
            genesis,
            csv,
            frozen_csv,
        } => {
            let export: Export = serde_json::from_slice(
                &std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?,
            )
            .with_context(|| format!("{} is not an audit export", file.display()))?;
            let trusted = Trusted::from_genesis_file(&genesis)?;
            let mut entries: Vec<AuditEntry> = Vec::new();
            let mut next = export.from;
            for bundle in &export.bundles {
                if bundle.from != next {
                    bail!(
                        "the export skips entries: a bundle starts at {} where {next} was expected",
                        bundle.from
                    );
                }
                let verified = audit::verify(bundle, &trusted).with_context(|| {
                    format!("entries from {} could not be verified", bundle.from)
                })?;
                println!(
                    "entries {}..{}: verified against {} validator signatures at height {} ({}); the log then held {} entries",
                    bundle.from,
                    bundle.from + verified.entries.len() as u64,
                    verified.signatures,
                    verified.proven_at,
                    verified.block_hash,
                    verified.total
                );
                next += verified.entries.len() as u64;
                entries.extend(verified.entries);
            }
            if let Some(csv) = csv {
                let mut reader = csv::Reader::from_path(&csv)
                    .with_context(|| format!("cannot read {}", csv.display()))?;
                let mut rows = 0;
                for row in reader.deserialize::<CsvRow>() {
                    let row = row.with_context(|| format!("{}: malformed row", csv.display()))?;
                    let Some(entry) = row
                        .seq
                        .checked_sub(export.from)
                        .and_then(|i| entries.get(i as usize))
                    else {
                        bail!("CSV row {} is not covered by the export", row.seq);
                    };
                    let same = entry.seq == row.seq
                        && entry.height == row.block_number
                        && entry.tx_hash == row.transaction_hash
                        && entry.action == row.action
                        && entry.org == row.org
                        && entry.actor == row.actor
                        && entry.detail == row.detail;
                    if !same {
                        bail!("CSV row {} differs from the proven audit entry", row.seq);
                    }
                    rows += 1;
                }
                println!("{}: {rows} rows match the proven entries", csv.display());
            }
            let frozen = verify_frozen(&export, &trusted)?;
            if frozen.is_none() {
                println!(
                    "the export holds no freeze list (written before freeze lists were exported)"
                );
            }
            if let Some(path) = frozen_csv {
                let Some(frozen) = &frozen else {
                    bail!("--frozen-csv needs an export with a freeze list: export again");
                };
                let mut reader = csv::Reader::from_path(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let mut rows = 0;
                for row in reader.deserialize::<FrozenCsvRow>() {
                    let row = row.with_context(|| format!("{}: malformed row", path.display()))?;
                    if frozen.get(rows) != Some(&row.address) {
                        bail!(
                            "{}: row {} ({}) is not the proven frozen address at that position",
                            path.display(),
                            rows + 1,
                            row.address
                        );
                    }
                    rows += 1;
                }
                if rows != frozen.len() {
                    bail!(
                        "{}: {rows} rows, but the proven freeze list holds {} addresses",
                        path.display(),
                        frozen.len()
                    );
                }
                println!(
                    "{}: {rows} rows match the proven freeze list (addresses and order; the proposal columns are read from governance, not proven by the bundle)",
                    path.display()
                );
            }
            println!(
                "verified: {} audit entries and {} frozen addresses of chain {}",
                entries.len(),
                frozen.as_ref().map_or(0, Vec::len),
                export.chain_id
            );
        }
    }
    Ok(())
}

/// Attempts at fetching the whole freeze list proven at one height.
const SNAPSHOT_ATTEMPTS: usize = 10;

/// The whole freeze list in bundles all proven at one height. Each bundle is proven at the
/// tip when it is served, and removing an address moves another one into its position, so
/// bundles of different heights could skip or repeat addresses: fetch again until all share
/// one height (a list of up to 100 addresses is one bundle, always consistent).
async fn frozen_snapshot(client: &trellis_sdk::RestClient) -> anyhow::Result<Vec<FrozenBundle>> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let mut bundles: Vec<FrozenBundle> = Vec::new();
        let mut next = 0;
        loop {
            let bundle = audit::frozen_bundle(client, next, MAX_BUNDLE).await?;
            let n = bundle.frozen.len() as u64;
            next += n;
            bundles.push(bundle);
            if n < MAX_BUNDLE {
                break;
            }
        }
        if bundles
            .iter()
            .all(|b| b.proof.height == bundles[0].proof.height)
        {
            return Ok(bundles);
        }
    }
    bail!(
        "the freeze list spans several bundles and a block committed while each of {SNAPSHOT_ATTEMPTS} attempts fetched them; try again"
    )
}

/// Checks the export's freeze-list bundles: consecutive from the start, each proven, all at
/// one block, the last reaching the end of the list as proven there. Returns the addresses,
/// or `None` for an export without a freeze list (written before freeze lists were
/// exported).
fn verify_frozen(
    export: &Export,
    trusted: &Trusted,
) -> anyhow::Result<Option<Vec<alloy_primitives::Address>>> {
    if export.frozen.is_empty() {
        return Ok(None);
    }
    let mut frozen = Vec::new();
    let mut total = 0;
    let mut proven_at: Option<alloy_primitives::B256> = None;
    for bundle in &export.frozen {
        if bundle.from != frozen.len() as u64 {
            bail!(
                "the export skips frozen addresses: a bundle starts at {} where {} was expected",
                bundle.from,
                frozen.len()
            );
        }
        let verified = audit::verify_frozen(bundle, trusted).with_context(|| {
            format!(
                "frozen addresses from {} could not be verified",
                bundle.from
            )
        })?;
        println!(
            "frozen addresses {}..{}: verified against {} validator signatures at height {} ({}); the list then held {}",
            bundle.from,
            bundle.from + verified.frozen.len() as u64,
            verified.signatures,
            verified.proven_at,
            verified.block_hash,
            verified.total
        );
        if *proven_at.get_or_insert(verified.block_hash) != verified.block_hash {
            bail!(
                "the freeze list's bundles are proven at different blocks: a list read at several heights can skip or repeat addresses"
            );
        }
        total = verified.total;
        frozen.extend(verified.frozen);
    }
    if (frozen.len() as u64) < total {
        bail!(
            "the export holds {} of the {total} frozen addresses",
            frozen.len()
        );
    }
    Ok(Some(frozen))
}
