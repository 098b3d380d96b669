//! Trellis's gas schedule: Ethereum's (Prague) with surcharges on the operations that take
//! this kind of machine more time per unit of gas than the block gas limit can afford.
//!
//! The limit that matters is time: a full block must execute within about 300 ms on a
//! 2-core machine so that no transaction, however crafted, holds validators for longer.
//! `trellis bench-gas` measures each operation's gas per second (docs/BENCHMARKS.md, "gas
//! per second"); an operation below [`MIN_GAS_PER_SECOND`] gets a multiplier here that brings
//! it above, so the worst full block at the default limit stays within the budget while
//! ordinary work (transfers, ERC-20, storage, system contracts) keeps Ethereum's prices.
//!
//! Dynamic costs live in revm's [`GasParams`] table (overridden by [`gas_params`]);
//! precompiles are wrapped by the precompile provider, which multiplies what revm charges by
//! [`precompile_multiplier`].

use alloy_primitives::Address;
use revm::context_interface::cfg::gas_params::{GasId, GasParams};
use revm::primitives::hardfork::SpecId;

/// Gas per second every operation should reach here: the default block gas limit
/// (80,000,000) executed within 200 ms, leaving room for the machine's variation from one
/// sitting to the next (±25 % seen) within the 300 ms budget. Plain transfers, whose price
/// wallets fix at 21,000, run at 320–410 Mgas/s and are what sizes the limit.
pub const MIN_GAS_PER_SECOND: u64 = 400_000_000;

/// Multipliers on what revm charges for the precompile at an address, each set from the
/// measured gas per second of its slowest input (docs/BENCHMARKS.md, "Gas per second"): the
/// factor that brings it above [`MIN_GAS_PER_SECOND`].
const PRECOMPILE_MULTIPLIERS: &[(u64, u64)] = &[
    (0x01, 6),  // ecrecover: 78 Mgas/s at Ethereum's price
    (0x02, 2),  // sha256 of small inputs: 292 Mgas/s
    (0x05, 3),  // modexp, on Osaka's price (EIP-7883): 197 Mgas/s for 32-byte operands
    (0x06, 8),  // bn254 add: 64 Mgas/s
    (0x07, 9),  // bn254 mul: 56 Mgas/s
    (0x08, 6),  // bn254 pairing: 85 Mgas/s
    (0x09, 4),  // blake2f: 118 Mgas/s
    (0x0a, 18), // KZG point evaluation: 26 Mgas/s
    (0x0b, 5),  // BLS12-381 G1 add: 116 Mgas/s
    (0x0c, 5),  // G1 MSM: 90 Mgas/s
    (0x0d, 5),  // G2 add: 114 Mgas/s
    (0x0e, 5),  // G2 MSM: 101 Mgas/s
    (0x0f, 5),  // pairing: 100 Mgas/s
    (0x10, 5),  // map to G1: 121 Mgas/s
    (0x11, 5),  // map to G2: 157 Mgas/s
];

/// Gas every call of an Ethereum precompile costs on top of its price: the call itself
/// (frame, input copy) takes about 0.6 µs here, which the cheapest precompiles (identity,
/// one blake2f round: 1 to 30 gas) do not cover.
pub const PRECOMPILE_CALL_GAS: u64 = 150;

/// Overrides of Ethereum's dynamic costs, by revm's gas id name.
const DYNAMIC_OVERRIDES: &[(&str, u64)] = &[
    // KECCAK256 per 32-byte word (Ethereum: 6): hashing memory ran at 93 Mgas/s.
    ("keccak256_per_word", 30),
];

/// How many times revm's price the precompile at `address` costs on Trellis.
pub fn precompile_multiplier(address: &Address) -> u64 {
    let id = u64::from_be_bytes(address.0[12..].try_into().unwrap_or_default());
    if address.0[..12] != [0u8; 12] {
        return 1;
    }
    PRECOMPILE_MULTIPLIERS
        .iter()
        .find(|(a, _)| *a == id)
        .map_or(1, |(_, m)| *m)
}

/// revm's gas table for `spec` with Trellis's overrides.
pub fn gas_params(spec: SpecId) -> GasParams {
    let mut params = GasParams::new_spec(spec);
    params.override_gas(
        DYNAMIC_OVERRIDES
            .iter()
            .filter_map(|(name, v)| GasId::from_name(name).map(|id| (id, *v))),
    );
    params
}

/// The schedule's differences from Ethereum's, for documentation and the benchmark report.
pub fn surcharges() -> Vec<String> {
    std::iter::once(format!(
        "every precompile call +{PRECOMPILE_CALL_GAS}; modexp priced as from Osaka"
    ))
    .chain(
        PRECOMPILE_MULTIPLIERS
            .iter()
            .map(|(a, m)| format!("precompile {a:#04x}: {m}x")),
    )
    .chain(DYNAMIC_OVERRIDES.iter().map(|(n, v)| format!("{n}: {v}")))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_name_real_gas_ids() {
        for (name, _) in DYNAMIC_OVERRIDES {
            assert!(GasId::from_name(name).is_some(), "{name}");
        }
        assert_eq!(precompile_multiplier(&Address::repeat_byte(1)), 1);
    }
}
