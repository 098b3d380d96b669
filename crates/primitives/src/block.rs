//! Block header and block, with their RLP encodings and hashes.
//!
//! The header commits to everything a light client needs: the parent, the transactions,
//! the receipts, the post-execution state and the validator set that must sign the next
//! commit certificate.

use alloy_consensus::{TxEnvelope, Typed2718};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bloom, B256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};

/// Upper bound on an encoded block, enforced when decoding blocks received from peers.
pub const MAX_BLOCK_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
#[rlp(trailing)]
pub struct Header {
    pub chain_id: u64,
    pub height: u64,
    pub parent_hash: B256,
    /// Milliseconds since the Unix epoch, as chosen by the proposer.
    pub timestamp_ms: u64,
    /// Consensus address of the validator that proposed the block.
    pub proposer: Address,
    pub transactions_root: B256,
    pub receipts_root: B256,
    /// State root after executing this block.
    pub state_root: B256,
    pub logs_bloom: Bloom,
    pub gas_limit: u64,
    pub gas_used: u64,
    /// Hash of the validator set that decides this block.
    pub validators_hash: B256,
    /// Hash of the validator set that decides the next block: what this block's governance
    /// effects made it (equal to `validators_hash` when they changed nothing). A light client
    /// follows set changes through it, one header at a time. Every block after genesis
    /// carries it; genesis blocks and blocks of data directories older than the field do not
    /// (omitted from the encoding, so their hashes are unchanged).
    pub next_validators_hash: Option<B256>,
}

impl Header {
    /// keccak-256 of the header's RLP encoding; this is the block hash and consensus value id.
    pub fn hash(&self) -> B256 {
        let mut buf = Vec::with_capacity(512);
        self.encode(&mut buf);
        keccak256(&buf)
    }

    /// Timestamp in seconds, as Ethereum clients expect it.
    pub fn timestamp_secs(&self) -> u64 {
        self.timestamp_ms / 1000
    }
}

#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Block {
    pub header: Header,
    pub transactions: Vec<TxEnvelope>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockDecodeError {
    #[error("block of {0} bytes exceeds the {MAX_BLOCK_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed block: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    #[error("{0} trailing bytes after block")]
    Trailing(usize),
    #[error("transaction type {0} is not accepted on Trellis chains")]
    UnsupportedTxType(u8),
}

impl Block {
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }

    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.length());
        self.encode(&mut buf);
        buf
    }

    /// Decodes a block received from the network or storage, rejecting oversized input,
    /// trailing bytes and transaction types Trellis does not run (blobs, EIP-7702).
    pub fn decode_bytes(mut bytes: &[u8]) -> Result<Block, BlockDecodeError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(BlockDecodeError::TooLarge(bytes.len()));
        }
        let block = Block::decode(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(BlockDecodeError::Trailing(bytes.len()));
        }
        for tx in &block.transactions {
            if matches!(tx, TxEnvelope::Eip4844(_) | TxEnvelope::Eip7702(_)) {
                return Err(BlockDecodeError::UnsupportedTxType(tx.ty()));
            }
        }
        Ok(block)
    }

    pub fn compute_transactions_root(txs: &[TxEnvelope]) -> B256 {
        alloy_consensus::proofs::calculate_transaction_root(txs)
    }

    /// Checks that the header's transaction root matches the body.
    pub fn body_matches_header(&self) -> bool {
        Self::compute_transactions_root(&self.transactions) == self.header.transactions_root
    }

    pub fn tx_hashes(&self) -> impl Iterator<Item = B256> + '_ {
        self.transactions.iter().map(|tx| tx.trie_hash())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{SignableTransaction, TxLegacy};
    use alloy_primitives::{Signature, TxKind, U256};

    fn sample_block() -> Block {
        let tx = TxLegacy {
            chain_id: Some(7),
            nonce: 3,
            gas_price: 1,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(9)),
            value: U256::from(5),
            input: Default::default(),
        };
        let sig = Signature::new(U256::from(1), U256::from(2), false);
        let txs = vec![TxEnvelope::Legacy(tx.into_signed(sig))];
        Block {
            header: Header {
                chain_id: 7,
                height: 1,
                parent_hash: B256::repeat_byte(1),
                timestamp_ms: 1_700_000_000_000,
                proposer: Address::repeat_byte(2),
                transactions_root: Block::compute_transactions_root(&txs),
                receipts_root: B256::ZERO,
                state_root: B256::repeat_byte(3),
                logs_bloom: Bloom::ZERO,
                gas_limit: 30_000_000,
                gas_used: 21_000,
                validators_hash: B256::repeat_byte(4),
                next_validators_hash: Some(B256::repeat_byte(5)),
            },
            transactions: txs,
        }
    }

    #[test]
    fn block_roundtrips_through_rlp() {
        let block = sample_block();
        let bytes = block.encode_to_vec();
        let decoded = Block::decode_bytes(&bytes).expect("decodes");
        assert_eq!(decoded, block);
        assert_eq!(decoded.hash(), block.hash());
        assert!(decoded.body_matches_header());
    }

    #[test]
    fn trailing_and_truncated_bytes_are_rejected() {
        let mut bytes = sample_block().encode_to_vec();
        bytes.push(0);
        assert!(matches!(
            Block::decode_bytes(&bytes),
            Err(BlockDecodeError::Trailing(1))
        ));
        bytes.truncate(bytes.len() - 10);
        assert!(matches!(
            Block::decode_bytes(&bytes),
            Err(BlockDecodeError::Rlp(_))
        ));
    }

    #[test]
    fn hash_changes_with_any_header_field() {
        let block = sample_block();
        let mut other = block.header.clone();
        other.state_root = B256::repeat_byte(0xee);
        assert_ne!(block.header.hash(), other.hash());
        let mut other = block.header.clone();
        other.next_validators_hash = Some(B256::repeat_byte(0xee));
        assert_ne!(block.header.hash(), other.hash());
    }

    #[test]
    fn a_header_without_the_next_set_keeps_the_older_encoding_and_hash() {
        let mut header = sample_block().header;
        header.next_validators_hash = None;
        let mut new = Vec::new();
        header.encode(&mut new);
        // The header as blocks written before the field existed encode it: twelve fields.
        #[derive(RlpEncodable)]
        struct Older {
            chain_id: u64,
            height: u64,
            parent_hash: B256,
            timestamp_ms: u64,
            proposer: Address,
            transactions_root: B256,
            receipts_root: B256,
            state_root: B256,
            logs_bloom: Bloom,
            gas_limit: u64,
            gas_used: u64,
            validators_hash: B256,
        }
        let h = &header;
        let mut old = Vec::new();
        Older {
            chain_id: h.chain_id,
            height: h.height,
            parent_hash: h.parent_hash,
            timestamp_ms: h.timestamp_ms,
            proposer: h.proposer,
            transactions_root: h.transactions_root,
            receipts_root: h.receipts_root,
            state_root: h.state_root,
            logs_bloom: h.logs_bloom,
            gas_limit: h.gas_limit,
            gas_used: h.gas_used,
            validators_hash: h.validators_hash,
        }
        .encode(&mut old);
        assert_eq!(new, old);
        assert_eq!(header.hash(), keccak256(&old));
        assert_eq!(Header::decode(&mut old.as_slice()).ok(), Some(header));
    }

    #[test]
    fn tampered_body_is_detected() {
        let mut block = sample_block();
        block.transactions.clear();
        assert!(!block.body_matches_header());
    }
}
