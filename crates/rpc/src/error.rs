//! Mapping of internal errors onto JSON-RPC error objects, in the codes Ethereum clients know.

use alloy_primitives::Bytes;
use jsonrpsee::types::ErrorObjectOwned;
use trellis_mempool::AdmissionError;

pub const INVALID_PARAMS: i32 = -32602;
pub const INTERNAL: i32 = -32603;
/// Geth's code for rejected transactions and unavailable data.
pub const SERVER: i32 = -32000;
/// Geth's code for execution reverted, with the revert data attached.
pub const REVERTED: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error("{0}")]
    Rejected(#[from] AdmissionError),
    #[error("{0}")]
    Unavailable(String),
    #[error("execution reverted")]
    Reverted(Bytes),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<trellis_storage::StoreError> for RpcError {
    fn from(e: trellis_storage::StoreError) -> Self {
        RpcError::Internal(e.to_string())
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(e: RpcError) -> Self {
        let message = e.to_string();
        match e {
            RpcError::InvalidParams(_) => {
                ErrorObjectOwned::owned(INVALID_PARAMS, message, None::<()>)
            }
            RpcError::Rejected(_) | RpcError::Unavailable(_) => {
                ErrorObjectOwned::owned(SERVER, message, None::<()>)
            }
            RpcError::Reverted(data) => {
                let reason = decode_revert_reason(&data);
                let message = match reason {
                    Some(r) => format!("execution reverted: {r}"),
                    None => message,
                };
                ErrorObjectOwned::owned(REVERTED, message, Some(data))
            }
            RpcError::Internal(_) => ErrorObjectOwned::owned(INTERNAL, message, None::<()>),
        }
    }
}

/// Decodes a Solidity `Error(string)` revert payload.
pub fn decode_revert_reason(data: &[u8]) -> Option<String> {
    const SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
    if data.len() < 4 + 64 || data[..4] != SELECTOR {
        return None;
    }
    let body = &data[4..];
    let len_word = &body[32..64];
    if len_word[..24].iter().any(|b| *b != 0) {
        return None;
    }
    let len = u64::from_be_bytes(len_word[24..].try_into().ok()?) as usize;
    let text = body.get(64..64usize.checked_add(len)?)?;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_error_string() {
        // Error("no") ABI encoding.
        let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
        let mut word = [0u8; 32];
        word[31] = 0x20;
        data.extend_from_slice(&word);
        let mut len = [0u8; 32];
        len[31] = 2;
        data.extend_from_slice(&len);
        let mut text = [0u8; 32];
        text[..2].copy_from_slice(b"no");
        data.extend_from_slice(&text);
        assert_eq!(decode_revert_reason(&data).as_deref(), Some("no"));
        assert_eq!(decode_revert_reason(&data[..40]), None);
    }

    #[test]
    fn codes_follow_ethereum_conventions() {
        let e: ErrorObjectOwned = RpcError::InvalidParams("x".into()).into();
        assert_eq!(e.code(), INVALID_PARAMS);
        let e: ErrorObjectOwned = RpcError::Rejected(AdmissionError::MissingChainId).into();
        assert_eq!(e.code(), SERVER);
        let e: ErrorObjectOwned = RpcError::Reverted(Bytes::new()).into();
        assert_eq!(e.code(), REVERTED);
    }
}
