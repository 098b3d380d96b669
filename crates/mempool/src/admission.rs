//! Stateless admission: everything that can be checked about a raw transaction without
//! reading state. Runs before a transaction may enter the pool.

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;

use crate::PoolError;

/// Largest raw transaction accepted (128 KiB), as in geth.
pub const MAX_TX_BYTES: usize = 128 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("transaction of {0} bytes exceeds the {MAX_TX_BYTES}-byte limit")]
    Oversized(usize),
    #[error("cannot decode transaction: {0}")]
    Undecodable(String),
    #[error("transaction type {0} is not supported (legacy, EIP-2930 and EIP-1559 are)")]
    UnsupportedType(u8),
    #[error("legacy transactions must carry an EIP-155 chain id")]
    MissingChainId,
    #[error("invalid chain id: expected {expected}, got {got}")]
    WrongChainId { expected: u64, got: u64 },
    #[error("gas limit {got} exceeds the {limit} gas one transaction may use on this chain (its per-transaction limit; a block may hold several)")]
    GasLimitTooHigh { got: u64, limit: u64 },
    #[error("invalid sender signature: {0}")]
    BadSignature(String),
    #[error("transaction not permitted: {0}")]
    NotPermitted(String),
    #[error("{0}")]
    Pool(#[from] PoolError),
    #[error("node unavailable: {0}")]
    Unavailable(String),
}

impl AdmissionError {
    /// A short, fixed name of the reason, for metrics labels (never free text).
    pub fn reason(&self) -> &'static str {
        match self {
            AdmissionError::Oversized(_) => "oversized",
            AdmissionError::Undecodable(_) => "undecodable",
            AdmissionError::UnsupportedType(_) => "unsupported_type",
            AdmissionError::MissingChainId => "missing_chain_id",
            AdmissionError::WrongChainId { .. } => "wrong_chain_id",
            AdmissionError::GasLimitTooHigh { .. } => "gas_limit_too_high",
            AdmissionError::BadSignature(_) => "bad_signature",
            AdmissionError::NotPermitted(_) => "not_permitted",
            AdmissionError::Pool(PoolError::NonceTooLow { .. }) => "nonce_too_low",
            AdmissionError::Pool(PoolError::NonceGap { .. }) => "nonce_gap",
            AdmissionError::Pool(PoolError::AlreadyKnown) => "already_known",
            AdmissionError::Pool(PoolError::ReplacementUnderpriced) => "replacement_underpriced",
            AdmissionError::Pool(PoolError::PoolFull) => "pool_full",
            AdmissionError::Unavailable(_) => "unavailable",
        }
    }
}

/// Decodes `raw` and checks everything that does not depend on state or the signature;
/// `max_tx_gas` is the chain's per-transaction gas limit.
pub fn decode_and_check(
    raw: &[u8],
    chain_id: u64,
    max_tx_gas: u64,
) -> Result<TxEnvelope, AdmissionError> {
    if raw.len() > MAX_TX_BYTES {
        return Err(AdmissionError::Oversized(raw.len()));
    }
    let mut buf = raw;
    let tx = TxEnvelope::decode_2718(&mut buf)
        .map_err(|e| AdmissionError::Undecodable(e.to_string()))?;
    if !buf.is_empty() {
        return Err(AdmissionError::Undecodable(format!(
            "{} trailing bytes",
            buf.len()
        )));
    }
    if matches!(tx, TxEnvelope::Eip4844(_) | TxEnvelope::Eip7702(_)) {
        return Err(AdmissionError::UnsupportedType(
            alloy_consensus::Typed2718::ty(&tx),
        ));
    }
    match tx.chain_id() {
        None => return Err(AdmissionError::MissingChainId),
        Some(got) if got != chain_id => {
            return Err(AdmissionError::WrongChainId {
                expected: chain_id,
                got,
            })
        }
        Some(_) => {}
    }
    if tx.gas_limit() > max_tx_gas {
        return Err(AdmissionError::GasLimitTooHigh {
            got: tx.gas_limit(),
            limit: max_tx_gas,
        });
    }
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::TxLegacy;
    use alloy_eips::eip2718::Encodable2718;
    use alloy_primitives::{Address, TxKind, U256};
    use trellis_crypto::AccountKey;

    fn raw(chain_id: Option<u64>, gas_limit: u64) -> Vec<u8> {
        AccountKey::dev(0)
            .sign_tx(TxLegacy {
                chain_id,
                nonce: 0,
                gas_price: 0,
                gas_limit,
                to: TxKind::Call(Address::ZERO),
                value: U256::ZERO,
                input: Default::default(),
            })
            .encoded_2718()
    }

    #[test]
    fn each_stateless_check_has_its_error() {
        assert!(decode_and_check(&raw(Some(7), 21_000), 7, 1_000_000).is_ok());
        assert_eq!(
            decode_and_check(&raw(Some(8), 21_000), 7, 1_000_000),
            Err(AdmissionError::WrongChainId {
                expected: 7,
                got: 8
            })
        );
        assert_eq!(
            decode_and_check(&raw(None, 21_000), 7, 1_000_000),
            Err(AdmissionError::MissingChainId)
        );
        assert!(matches!(
            decode_and_check(&raw(Some(7), 2_000_000), 7, 1_000_000),
            Err(AdmissionError::GasLimitTooHigh { .. })
        ));
        assert!(matches!(
            decode_and_check(&[0xde, 0xad], 7, 1_000_000),
            Err(AdmissionError::Undecodable(_))
        ));
        assert!(matches!(
            decode_and_check(&vec![0u8; MAX_TX_BYTES + 1], 7, 1_000_000),
            Err(AdmissionError::Oversized(_))
        ));
        let mut trailing = raw(Some(7), 21_000);
        trailing.push(0);
        assert!(matches!(
            decode_and_check(&trailing, 7, 1_000_000),
            Err(AdmissionError::Undecodable(_))
        ));
    }

    #[test]
    fn tampered_signature_recovers_someone_else_or_fails() {
        let mut bytes = raw(Some(7), 21_000);
        let n = bytes.len();
        bytes[n - 5] ^= 0x01;
        let tx = decode_and_check(&bytes, 7, 1_000_000).expect("still decodes");
        let recovered = trellis_crypto::recover_sender(&tx);
        assert_ne!(recovered, Ok(AccountKey::dev(0).address()));
    }
}
