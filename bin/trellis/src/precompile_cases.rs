//! Worst-case inputs of Ethereum's precompiles for `trellis bench-gas`, from
//! `precompile_cases.json`: each valid (the precompile does its whole work: real signatures,
//! points on their curves and in their subgroups, a KZG proof that verifies) and chosen among
//! the slowest per unit of gas it is charged (after revm's own benchmark cases and EEST's).
//! `gas` is what Ethereum's Prague schedule charges for one call.

use alloy_primitives::Bytes;
use anyhow::Context as _;

use crate::gasbench::PrecompileCase;

#[derive(serde::Deserialize)]
struct Entry {
    name: String,
    what: String,
    address: u64,
    gas: u64,
    input: Bytes,
}

pub fn cases() -> anyhow::Result<Vec<PrecompileCase>> {
    let entries: Vec<Entry> = serde_json::from_str(include_str!("precompile_cases.json"))
        .context("precompile_cases.json")?;
    Ok(entries
        .into_iter()
        .map(|e| PrecompileCase {
            name: e.name,
            what: format!("{} ({} gas a call on Ethereum)", e.what, e.gas),
            address: e.address,
            input: e.input,
        })
        .collect())
}
