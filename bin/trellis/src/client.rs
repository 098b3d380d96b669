//! JSON-RPC client helpers shared by the CLI's commands: an HTTP client, signing, nonces.

use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256, U64};
use alloy_rpc_types_eth::BlockId;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use std::time::Duration;
use trellis_api::EthApiClient;
use trellis_crypto::AccountKey;

pub fn client(url: &str) -> anyhow::Result<HttpClient> {
    authorized_client(url, None, None)
}

/// A client that presents `token` (a read token or the node's admin token) as
/// `Authorization: Bearer <token>` on every request, using `tls` for an https:// URL.
pub fn authorized_client(
    url: &str,
    token: Option<&str>,
    tls: Option<rustls::ClientConfig>,
) -> anyhow::Result<HttpClient> {
    let mut headers = http::HeaderMap::new();
    if let Some(token) = token {
        let mut value =
            http::HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                anyhow::anyhow!("the token holds characters an HTTP header cannot carry")
            })?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
    let mut builder = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(60))
        .max_request_size(64 * 1024 * 1024)
        .set_headers(headers);
    if let Some(tls) = tls {
        builder = builder.with_custom_cert_store(tls);
    }
    Ok(builder.build(url)?)
}

pub fn signed(
    key: &AccountKey,
    chain_id: u64,
    nonce: u64,
    to: TxKind,
    value: U256,
    gas_limit: u64,
    input: Bytes,
) -> Bytes {
    Bytes::from(
        key.sign_tx(TxLegacy {
            chain_id: Some(chain_id),
            nonce,
            gas_price: 0,
            gas_limit,
            to,
            value,
            input,
        })
        .encoded_2718(),
    )
}

/// The nonce of `a` at `block` (`BlockId::pending()` counts the pool's transactions).
pub async fn nonce(c: &HttpClient, a: Address, block: BlockId) -> anyhow::Result<u64> {
    let n: U64 = c.transaction_count(a, block).await?;
    Ok(n.to())
}
