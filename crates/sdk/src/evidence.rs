//! Evidence (notarization): hashing, submission payloads, lookups and verification.

use crate::proof::ProvenStorage as _;
use alloy_primitives::{Bytes, B256};
use alloy_sol_types::SolCall;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;
use trellis_system::evidence::{abi, evidence_id, HashAlgorithm, Record, MAX_BATCH};
use trellis_system::proof::StateProof;
use trellis_system::{Evidence, EVIDENCE_ADDRESS};

pub use crate::proof::VerifyError;
use crate::proof::{self, Trusted};
use crate::rest::{RestClient, RestError};

pub use trellis_system::evidence::{EVIDENCE_ADDRESS as ADDRESS, MAX_METADATA_BYTES};

/// The digest of `data` under `algorithm`.
pub fn hash_bytes(algorithm: HashAlgorithm, data: &[u8]) -> B256 {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(data);
    hasher.finish()
}

/// The digest of a file, read in chunks (the file never leaves the machine).
pub fn hash_file(algorithm: HashAlgorithm, path: &Path) -> std::io::Result<B256> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    Keccak256(Box<alloy_primitives::Keccak256>),
    Sm3(sm3::Sm3),
}

impl Hasher {
    fn new(algorithm: HashAlgorithm) -> Hasher {
        use sha2::Digest;
        match algorithm {
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Keccak256 => {
                Hasher::Keccak256(Box::new(alloy_primitives::Keccak256::new()))
            }
            HashAlgorithm::Sm3 => Hasher::Sm3(sm3::Sm3::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Keccak256(h) => h.update(data),
            Hasher::Sm3(h) => h.update(data),
        }
    }

    fn finish(self) -> B256 {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => B256::from_slice(&h.finalize()),
            Hasher::Keccak256(h) => (*h).finalize(),
            Hasher::Sm3(h) => B256::from_slice(&h.finalize()),
        }
    }
}

/// One digest to notarize.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    pub algorithm: HashAlgorithm,
    pub digest: B256,
    pub content_type: String,
    pub metadata: Bytes,
}

impl Submission {
    pub fn id(&self) -> B256 {
        evidence_id(self.algorithm, &self.digest)
    }
}

/// Calldata of `submitBatch` for up to [`MAX_BATCH`] submissions, to send to [`ADDRESS`].
pub fn submit_batch_calldata(items: &[Submission]) -> Bytes {
    debug_assert!(items.len() <= MAX_BATCH);
    abi::submitBatchCall {
        items: items
            .iter()
            .map(|s| abi::Submission {
                algorithm: s.algorithm.code(),
                digest: s.digest,
                contentType: s.content_type.clone(),
                metadata: s.metadata.clone(),
            })
            .collect(),
    }
    .abi_encode()
    .into()
}

/// Calldata of `submitDigests`: up to [`MAX_BATCH`] digests of one algorithm without content
/// type or metadata (32 bytes per record, so 1,000 fit well inside a transaction).
pub fn submit_digests_calldata(algorithm: HashAlgorithm, digests: &[B256]) -> Bytes {
    debug_assert!(digests.len() <= MAX_BATCH);
    abi::submitDigestsCall {
        algorithm: algorithm.code(),
        digests: digests.to_vec(),
    }
    .abi_encode()
    .into()
}

/// Calldata for `items`: the compact `submitDigests` when none has a content type or
/// metadata and all share one algorithm, `submitBatch` otherwise.
pub fn submission_calldata(items: &[Submission]) -> Bytes {
    let plain = items
        .iter()
        .all(|s| s.content_type.is_empty() && s.metadata.is_empty());
    match items.first() {
        Some(first) if plain && items.iter().all(|s| s.algorithm == first.algorithm) => {
            let digests: Vec<B256> = items.iter().map(|s| s.digest).collect();
            submit_digests_calldata(first.algorithm, &digests)
        }
        _ => submit_batch_calldata(items),
    }
}

/// A record as a node serves it, with the proof that backs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvidenceResponse {
    pub record: Record,
    pub proof: StateProof,
}

/// A record checked against a finalized header of the trusted chain.
#[derive(Clone, Debug)]
pub struct VerifiedRecord {
    pub record: Record,
    /// Height and hash of the finalized block whose state holds the record.
    pub proven_at: u64,
    pub block_hash: B256,
}

/// Verifies `response` without trusting the node: the proof against `trusted`, then the
/// record decoded from the proven slots alone.
pub fn verify(
    response: &EvidenceResponse,
    trusted: &Trusted,
) -> Result<VerifiedRecord, VerifyError> {
    let state = proof::verify_contract(&response.proof, trusted, EVIDENCE_ADDRESS)?;
    let mut slots = state.storage();
    let id = response.record.id;
    let proven = Evidence::new(&mut slots)
        .get(&id)
        .map_err(|e| VerifyError::NotProven(e.to_string()))?
        .ok_or_else(|| VerifyError::NotProven(format!("evidence {id} is absent")))?;
    if proven != response.record {
        return Err(VerifyError::RecordMismatch);
    }
    if evidence_id(proven.algorithm, &proven.digest) != id {
        return Err(VerifyError::WrongId { id });
    }
    Ok(VerifiedRecord {
        record: proven,
        proven_at: state.header.height,
        block_hash: state.header.hash(),
    })
}

/// `GET /v1/evidence/{id}`.
pub async fn get(client: &RestClient, id: &B256) -> Result<EvidenceResponse, RestError> {
    client.get(&format!("/v1/evidence/{id}")).await
}

/// `GET /v1/evidence/{algorithm}/{digest}`.
pub async fn find(
    client: &RestClient,
    algorithm: HashAlgorithm,
    digest: &B256,
) -> Result<EvidenceResponse, RestError> {
    client
        .get(&format!("/v1/evidence/{algorithm}/{digest}"))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_standard_test_vectors() {
        // FIPS 180-2 and GB/T 32905-2016 examples for "abc".
        assert_eq!(
            hash_bytes(HashAlgorithm::Sha256, b"abc").to_string(),
            "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash_bytes(HashAlgorithm::Sm3, b"abc").to_string(),
            "0x66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hash_bytes(HashAlgorithm::Keccak256, b"abc"),
            alloy_primitives::keccak256(b"abc")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data = vec![7u8; 200_000];
        std::fs::write(&path, &data).expect("write");
        assert_eq!(
            hash_file(HashAlgorithm::Sm3, &path).expect("hash"),
            hash_bytes(HashAlgorithm::Sm3, &data)
        );
    }
}
