//! Conversion of stored blocks, transactions and receipts into Ethereum RPC objects.

use alloy_consensus::{Transaction as _, TxEnvelope, EMPTY_OMMER_ROOT_HASH};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, B256, B64, U256};
use alloy_rpc_types_eth::{Block, BlockTransactions, Header, Log, Transaction, TransactionReceipt};
use trellis_primitives::{Block as TrellisBlock, ReceiptEnvelope};

pub fn header(block: &TrellisBlock) -> Header {
    let h = &block.header;
    let inner = alloy_consensus::Header {
        parent_hash: h.parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: h.proposer,
        state_root: h.state_root,
        transactions_root: h.transactions_root,
        receipts_root: h.receipts_root,
        logs_bloom: h.logs_bloom,
        difficulty: U256::ZERO,
        number: h.height,
        gas_limit: h.gas_limit,
        gas_used: h.gas_used,
        timestamp: h.timestamp_secs(),
        extra_data: Bytes::new(),
        mix_hash: B256::ZERO,
        nonce: B64::ZERO,
        base_fee_per_gas: Some(0),
        ..Default::default()
    };
    Header {
        hash: block.hash(),
        inner,
        total_difficulty: Some(U256::ZERO),
        size: Some(U256::from(alloy_rlp::Encodable::length(block))),
    }
}

pub fn transaction(
    tx: &TxEnvelope,
    sender: Address,
    block: &TrellisBlock,
    index: usize,
) -> Transaction {
    Transaction {
        inner: alloy_consensus::transaction::Recovered::new_unchecked(tx.clone(), sender),
        block_hash: Some(block.hash()),
        block_number: Some(block.header.height),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(tx.effective_gas_price(Some(0))),
        block_timestamp: Some(block.header.timestamp_secs()),
    }
}

pub fn block(block: &TrellisBlock, senders: &[Address], full: bool) -> Block {
    let transactions = if full {
        BlockTransactions::Full(
            block
                .transactions
                .iter()
                .zip(senders)
                .enumerate()
                .map(|(i, (tx, s))| transaction(tx, *s, block, i))
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(block.transactions.iter().map(|t| t.trie_hash()).collect())
    };
    Block {
        header: header(block),
        uncles: vec![],
        transactions,
        withdrawals: None,
    }
}

/// One transaction's logs as RPC logs; `first_log_index` is the block-wide index of its first.
fn tx_logs(
    block: &TrellisBlock,
    block_hash: B256,
    index: usize,
    receipt: &ReceiptEnvelope,
    first_log_index: u64,
) -> Vec<Log> {
    let tx_hash = block.transactions.get(index).map(|tx| tx.trie_hash());
    receipt
        .logs()
        .iter()
        .zip(first_log_index..)
        .map(|(log, log_index)| Log {
            inner: log.clone(),
            block_hash: Some(block_hash),
            block_number: Some(block.header.height),
            block_timestamp: Some(block.header.timestamp_secs()),
            transaction_hash: tx_hash,
            transaction_index: Some(index as u64),
            log_index: Some(log_index),
            removed: false,
        })
        .collect()
}

/// Every log of a block as RPC logs, with block-wide log indices.
pub fn block_logs(block: &TrellisBlock, receipts: &[ReceiptEnvelope]) -> Vec<Vec<Log>> {
    let block_hash = block.hash();
    let mut first = 0u64;
    receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let logs = tx_logs(block, block_hash, i, r, first);
            first += logs.len() as u64;
            logs
        })
        .collect()
}

pub fn receipt(
    block: &TrellisBlock,
    senders: &[Address],
    receipts: &[ReceiptEnvelope],
    index: usize,
) -> Option<TransactionReceipt> {
    let tx = block.transactions.get(index)?;
    let stored = receipts.get(index)?;
    let sender = *senders.get(index)?;
    let previous_cumulative = index
        .checked_sub(1)
        .and_then(|i| receipts.get(i))
        .map(|r| r.cumulative_gas_used())
        .unwrap_or(0);
    let block_hash = block.hash();
    let first_log_index: usize = receipts[..index].iter().map(|r| r.logs().len()).sum();
    let mut logs = tx_logs(block, block_hash, index, stored, first_log_index as u64).into_iter();
    let inner = stored.clone().map_logs(|l| {
        logs.next().unwrap_or_else(|| Log {
            inner: l,
            ..Default::default()
        })
    });
    let contract_address = tx.kind().is_create().then(|| sender.create(tx.nonce()));
    Some(TransactionReceipt {
        inner,
        transaction_hash: tx.trie_hash(),
        transaction_index: Some(index as u64),
        block_hash: Some(block_hash),
        block_number: Some(block.header.height),
        gas_used: stored.cumulative_gas_used() - previous_cumulative,
        effective_gas_price: tx.effective_gas_price(Some(0)),
        blob_gas_used: None,
        blob_gas_price: None,
        from: sender,
        to: tx.to(),
        contract_address,
    })
}
