//! The evidence (notarization) system contract: digests of documents with who submitted them,
//! their organisation, the block and its timestamp.
//!
//! A record takes four storage slots at `keccak256("trellis.evidence" || id)` + 0..4, so a
//! batch of 1,000 writes 4,000 slots and a client proves a record with four storage proofs
//! ([`Evidence::record_slots`]); content type and metadata, when present, are one [`kv`]
//! record beside it.
//!
//! | slot | contents |
//! |------|----------|
//! | +0 | submitter (20 bytes) ‖ algorithm (1) ‖ flags (1: has metadata) ‖ 0 (2) ‖ height (8) |
//! | +1 | digest |
//! | +2 | organisation id, zero-padded (all zero: the submitter had none) |
//! | +3 | block timestamp in ms (low 8 bytes) |

use alloy_primitives::{address, keccak256, Address, Bytes, Log, B256, U256};
use alloy_sol_types::{sol, SolEvent, SolInterface, SolValue};
use serde::{Deserialize, Serialize};
use std::fmt;
use trellis_primitives::OrgId;

use crate::kv::{self, SlotError, Slots};
use crate::{revert, CallContext, CallError, CallOutput, Result};

sol!(
    #[sol(all_derives)]
    "../../contracts/src/ITrellisEvidence.sol"
);

pub use ITrellisEvidence as abi;

/// Reserved address of the evidence contract.
pub const EVIDENCE_ADDRESS: Address = address!("0000000000000000000000000000000000001001");

/// Most submissions in one `submitBatch`.
pub const MAX_BATCH: usize = 1_000;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 128;
/// Largest metadata, in bytes.
pub const MAX_METADATA_BYTES: usize = 4_096;
/// Storage slots of one record (without metadata).
pub const RECORD_SLOTS: usize = 4;

const FLAG_METADATA: u8 = 1;

/// How a digest was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    Sha256 = 1,
    Keccak256 = 2,
    Sm3 = 3,
}

impl HashAlgorithm {
    pub fn from_code(code: u8) -> Option<HashAlgorithm> {
        match code {
            1 => Some(HashAlgorithm::Sha256),
            2 => Some(HashAlgorithm::Keccak256),
            3 => Some(HashAlgorithm::Sm3),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Keccak256 => "keccak256",
            HashAlgorithm::Sm3 => "sm3",
        }
    }

    pub fn parse(name: &str) -> Option<HashAlgorithm> {
        [
            HashAlgorithm::Sha256,
            HashAlgorithm::Keccak256,
            HashAlgorithm::Sm3,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A notarized digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: B256,
    pub algorithm: HashAlgorithm,
    pub digest: B256,
    pub submitter: Address,
    /// The organisation of the transaction's sender when it was submitted.
    pub org: Option<OrgId>,
    pub height: u64,
    pub timestamp_ms: u64,
    pub content_type: String,
    pub metadata: Bytes,
}

/// The evidence id of a digest: keccak256(algorithm ‖ digest).
pub fn evidence_id(algorithm: HashAlgorithm, digest: &B256) -> B256 {
    let mut preimage = [0u8; 33];
    preimage[0] = algorithm.code();
    preimage[1..].copy_from_slice(digest.as_slice());
    keccak256(preimage)
}

fn record_base(id: &B256) -> U256 {
    let mut preimage = Vec::with_capacity(16 + 32);
    preimage.extend_from_slice(b"trellis.evidence");
    preimage.extend_from_slice(id.as_slice());
    U256::from_be_bytes(keccak256(preimage).0)
}

fn metadata_key(id: &B256) -> Vec<u8> {
    let mut key = b"evidence.meta".to_vec();
    key.extend_from_slice(id.as_slice());
    key
}

fn count_slot() -> U256 {
    U256::from_be_bytes(keccak256(b"trellis.evidence.count").0)
}

/// What a caller may submit, checked before anything is written.
struct Submission<'a> {
    algorithm: HashAlgorithm,
    digest: B256,
    content_type: &'a str,
    metadata: &'a [u8],
}

fn check<'a>(
    algorithm: u8,
    digest: B256,
    content_type: &'a str,
    metadata: &'a [u8],
) -> Result<Submission<'a>> {
    let Some(algorithm) = HashAlgorithm::from_code(algorithm) else {
        return revert(format!(
            "unknown hash algorithm {algorithm} (1 sha256, 2 keccak256, 3 sm3)"
        ));
    };
    if digest.is_zero() {
        return revert("digest is zero");
    }
    if content_type.len() > MAX_CONTENT_TYPE_BYTES {
        return revert(format!(
            "content type longer than {MAX_CONTENT_TYPE_BYTES} bytes"
        ));
    }
    if content_type
        .chars()
        .any(|c| !c.is_ascii_graphic() && c != ' ')
    {
        return revert("content type must be printable ASCII");
    }
    if metadata.len() > MAX_METADATA_BYTES {
        return revert(format!(
            "metadata of {} bytes exceeds {MAX_METADATA_BYTES}",
            metadata.len()
        ));
    }
    Ok(Submission {
        algorithm,
        digest,
        content_type,
        metadata,
    })
}

/// Block context a submission is recorded with.
#[derive(Clone, Debug)]
pub struct Submitter {
    pub address: Address,
    pub org: Option<OrgId>,
    pub timestamp_ms: u64,
}

/// The evidence contract over one storage.
pub struct Evidence<'s, S: Slots> {
    slots: &'s mut S,
    logs: Vec<Log>,
}

impl<'s, S: Slots> Evidence<'s, S> {
    pub fn new(slots: &'s mut S) -> Self {
        Evidence {
            slots,
            logs: Vec::new(),
        }
    }

    /// The storage slots of `id`'s fixed part, for storage proofs.
    pub fn record_slots(id: &B256) -> [U256; RECORD_SLOTS] {
        let base = record_base(id);
        std::array::from_fn(|i| base + U256::from(i))
    }

    /// Every slot a client needs to read `id`'s record, metadata included (empty if absent).
    pub fn proof_slots(&mut self, id: &B256) -> Result<Vec<U256>, SlotError> {
        let head = self.slots.load(record_base(id))?.to_be_bytes::<32>();
        if head == [0u8; 32] {
            return Ok(Vec::new());
        }
        let mut slots = Self::record_slots(id).to_vec();
        if head[21] & FLAG_METADATA != 0 {
            slots.extend(kv::proof_slots(self.slots, &metadata_key(id))?);
        }
        Ok(slots)
    }

    pub fn count(&mut self) -> Result<u64, SlotError> {
        Ok(self.slots.load(count_slot())?.saturating_to())
    }

    pub fn exists(&mut self, id: &B256) -> Result<bool, SlotError> {
        Ok(!self.slots.load(record_base(id))?.is_zero())
    }

    /// The record of `id`, if notarized.
    pub fn get(&mut self, id: &B256) -> Result<Option<Record>, SlotError> {
        let [head, digest, org, time] = Self::record_slots(id);
        let head = self.slots.load(head)?.to_be_bytes::<32>();
        if head == [0u8; 32] {
            return Ok(None);
        }
        let corrupt =
            |what: &str| SlotError::invalid(format!("corrupt evidence record {id}: {what}"));
        let algorithm = HashAlgorithm::from_code(head[20]).ok_or_else(|| corrupt("algorithm"))?;
        let org = self.slots.load(org)?.to_be_bytes::<32>();
        let org_len = org.iter().position(|b| *b == 0).unwrap_or(32);
        let org = match org_len {
            0 => None,
            n => Some(
                std::str::from_utf8(&org[..n])
                    .ok()
                    .and_then(|s| OrgId::parse(s).ok())
                    .ok_or_else(|| corrupt("organisation"))?,
            ),
        };
        let (content_type, metadata) = if head[21] & FLAG_METADATA != 0 {
            let bytes = kv::get(self.slots, &metadata_key(id))?
                .ok_or_else(|| corrupt("metadata missing"))?;
            let (content_type, metadata) = <(String, Bytes)>::abi_decode(&bytes)
                .map_err(|e| corrupt(&format!("metadata: {e}")))?;
            (content_type, metadata)
        } else {
            (String::new(), Bytes::new())
        };
        let mut height = [0u8; 8];
        height.copy_from_slice(&head[24..]);
        Ok(Some(Record {
            id: *id,
            algorithm,
            digest: B256::from(self.slots.load(digest)?.to_be_bytes::<32>()),
            submitter: Address::from_slice(&head[..20]),
            org,
            height: u64::from_be_bytes(height),
            timestamp_ms: self.slots.load(time)?.saturating_to(),
            content_type,
            metadata,
        }))
    }

    fn put(&mut self, ctx: &CallContext, by: &Submitter, item: &Submission<'_>) -> Result<B256> {
        let id = evidence_id(item.algorithm, &item.digest);
        if let Some(existing) = self.get(&id)? {
            return revert(format!(
                "digest already notarized as evidence {id} at block {}",
                existing.height
            ));
        }
        let has_metadata = !item.content_type.is_empty() || !item.metadata.is_empty();
        let mut head = [0u8; 32];
        head[..20].copy_from_slice(by.address.as_slice());
        head[20] = item.algorithm.code();
        head[21] = if has_metadata { FLAG_METADATA } else { 0 };
        head[24..].copy_from_slice(&ctx.height.to_be_bytes());
        let mut org = [0u8; 32];
        if let Some(id) = &by.org {
            let bytes = id.as_str().as_bytes();
            org[..bytes.len()].copy_from_slice(bytes);
        }
        let [s_head, s_digest, s_org, s_time] = Self::record_slots(&id);
        self.slots.store(s_head, U256::from_be_bytes(head))?;
        self.slots
            .store(s_digest, U256::from_be_bytes(item.digest.0))?;
        if by.org.is_some() {
            self.slots.store(s_org, U256::from_be_bytes(org))?;
        }
        self.slots.store(s_time, U256::from(by.timestamp_ms))?;
        if has_metadata {
            let bytes = (item.content_type, Bytes::copy_from_slice(item.metadata)).abi_encode();
            kv::put(self.slots, &metadata_key(&id), &bytes)?;
        }
        self.logs.push(Log {
            address: EVIDENCE_ADDRESS,
            data: abi::EvidenceSubmitted {
                id,
                submitter: by.address,
                algorithm: item.algorithm.code(),
                digest: item.digest,
            }
            .encode_log_data(),
        });
        Ok(id)
    }

    /// Notarizes `len` items atomically (the EVM journal drops every write of a reverted
    /// call); a refusal names the item.
    fn put_batch<'a>(
        &mut self,
        ctx: &CallContext,
        by: &Submitter,
        len: usize,
        items: impl Iterator<Item = (u8, B256, &'a str, &'a [u8])>,
    ) -> Result<Vec<B256>> {
        if len == 0 || len > MAX_BATCH {
            return revert(format!(
                "a batch holds 1 to {MAX_BATCH} submissions, got {len}"
            ));
        }
        let mut ids = Vec::with_capacity(len);
        for (i, (algorithm, digest, content_type, metadata)) in items.enumerate() {
            let id = check(algorithm, digest, content_type, metadata)
                .and_then(|item| self.put(ctx, by, &item))
                .map_err(|e| match e {
                    CallError::Revert(reason) => CallError::Revert(format!("item {i}: {reason}")),
                    other => other,
                })?;
            ids.push(id);
        }
        self.add_to_count(ids.len() as u64)?;
        Ok(ids)
    }

    fn add_to_count(&mut self, n: u64) -> Result<(), SlotError> {
        let count = self.count()?;
        self.slots.store(count_slot(), U256::from(count + n))
    }

    /// Runs one ABI-encoded call by `by` (its org and the block time resolved by the caller).
    pub fn call(&mut self, ctx: &CallContext, by: &Submitter, input: &[u8]) -> Result<CallOutput> {
        use abi::ITrellisEvidenceCalls as C;
        let call = C::abi_decode(input).map_err(|e| {
            CallError::revert(format!(
                "evidence: unknown function or malformed arguments ({e})"
            ))
        })?;
        let writes = matches!(call, C::submit(_) | C::submitBatch(_) | C::submitDigests(_));
        if writes && ctx.is_static {
            return revert("evidence: state change in a static call");
        }
        let output = match call {
            C::submit(c) => {
                let item = check(c.algorithm, c.digest, &c.contentType, &c.metadata)?;
                let id = self.put(ctx, by, &item)?;
                self.add_to_count(1)?;
                id.abi_encode()
            }
            C::submitBatch(c) => {
                let items = c.items.iter().map(|s| {
                    (
                        s.algorithm,
                        s.digest,
                        s.contentType.as_str(),
                        &s.metadata[..],
                    )
                });
                self.put_batch(ctx, by, c.items.len(), items)?.abi_encode()
            }
            C::submitDigests(c) => {
                let items = c.digests.iter().map(|d| (c.algorithm, *d, "", &[][..]));
                self.put_batch(ctx, by, c.digests.len(), items)?
                    .abi_encode()
            }
            C::get(c) => match self.get(&c.id)? {
                Some(record) => to_abi(&record).abi_encode(),
                None => return revert(format!("evidence {} not found", c.id)),
            },
            C::exists(c) => self.exists(&c.id)?.abi_encode(),
            C::evidenceId(c) => match HashAlgorithm::from_code(c.algorithm) {
                Some(a) => evidence_id(a, &c.digest).abi_encode(),
                None => return revert(format!("unknown hash algorithm {}", c.algorithm)),
            },
            C::count(_) => self.count()?.abi_encode(),
        };
        Ok(CallOutput {
            output: output.into(),
            logs: std::mem::take(&mut self.logs),
            ..CallOutput::default()
        })
    }
}

fn to_abi(r: &Record) -> abi::Record {
    abi::Record {
        id: r.id,
        algorithm: r.algorithm.code(),
        digest: r.digest,
        submitter: r.submitter,
        org: r
            .org
            .as_ref()
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default(),
        height: r.height,
        timestampMs: r.timestamp_ms,
        contentType: r.content_type.clone(),
        metadata: r.metadata.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MapSlots;

    fn ctx(height: u64) -> CallContext {
        CallContext {
            caller: Address::repeat_byte(1),
            height,
            tx_hash: B256::ZERO,
            is_static: false,
        }
    }

    fn by(org: Option<&str>) -> Submitter {
        Submitter {
            address: Address::repeat_byte(1),
            org: org.map(|o| OrgId::parse(o).expect("org")),
            timestamp_ms: 1_700_000_000_123,
        }
    }

    fn submit(
        slots: &mut MapSlots,
        algorithm: u8,
        digest: B256,
        content_type: &str,
        metadata: &[u8],
    ) -> Result<CallOutput> {
        let input = abi::submitCall {
            algorithm,
            digest,
            contentType: content_type.into(),
            metadata: Bytes::copy_from_slice(metadata),
        }
        .abi_encode();
        Evidence::new(slots).call(&ctx(7), &by(Some("acme")), &input)
    }

    fn reason(r: Result<CallOutput>) -> String {
        match r {
            Err(CallError::Revert(reason)) => reason,
            Err(other) => panic!("storage error {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    use alloy_sol_types::SolCall;

    #[test]
    fn submitted_record_reads_back_with_its_context() {
        let mut slots = MapSlots::empty();
        let digest = B256::repeat_byte(0xab);
        let out = submit(&mut slots, 1, digest, "application/pdf", b"{\"lot\":7}").expect("ok");
        let id = B256::abi_decode(&out.output).expect("id");
        assert_eq!(id, evidence_id(HashAlgorithm::Sha256, &digest));
        assert_eq!(out.logs.len(), 1);
        let record = Evidence::new(&mut slots)
            .get(&id)
            .expect("read")
            .expect("exists");
        assert_eq!(
            record,
            Record {
                id,
                algorithm: HashAlgorithm::Sha256,
                digest,
                submitter: Address::repeat_byte(1),
                org: Some(OrgId::parse("acme").expect("org")),
                height: 7,
                timestamp_ms: 1_700_000_000_123,
                content_type: "application/pdf".into(),
                metadata: Bytes::from_static(b"{\"lot\":7}"),
            }
        );
        assert_eq!(Evidence::new(&mut slots).count().expect("count"), 1);
        // The same digest under another algorithm is another record.
        submit(&mut slots, 2, digest, "", b"").expect("keccak");
        let bare = Evidence::new(&mut slots)
            .get(&evidence_id(HashAlgorithm::Keccak256, &digest))
            .expect("read")
            .expect("exists");
        assert_eq!(bare.content_type, "");
        assert!(bare.metadata.is_empty());
    }

    #[test]
    fn refusals_name_the_reason_and_change_nothing() {
        let mut slots = MapSlots::empty();
        let digest = B256::repeat_byte(1);
        submit(&mut slots, 1, digest, "", b"").expect("first");
        let before = slots.writes.clone();
        let cases: Vec<(Result<CallOutput>, &str)> = vec![
            (submit(&mut slots, 1, digest, "", b""), "already notarized"),
            (
                submit(&mut slots, 9, B256::repeat_byte(2), "", b""),
                "unknown hash algorithm",
            ),
            (submit(&mut slots, 1, B256::ZERO, "", b""), "digest is zero"),
            (
                submit(&mut slots, 1, B256::repeat_byte(2), &"x".repeat(129), b""),
                "content type longer",
            ),
            (
                submit(&mut slots, 1, B256::repeat_byte(2), "a\nb", b""),
                "printable ASCII",
            ),
            (
                submit(&mut slots, 1, B256::repeat_byte(2), "", &[0u8; 4097]),
                "metadata of 4097 bytes",
            ),
            (
                Evidence::new(&mut slots).call(&ctx(1), &by(None), &[1, 2, 3]),
                "unknown function",
            ),
        ];
        for (result, expected) in cases {
            let reason = reason(result);
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
        }
        // A failed call's writes are dropped by the EVM journal; here none were made.
        assert_eq!(slots.writes, before);
    }

    #[test]
    fn batches_are_bounded_and_name_the_failing_item() {
        let mut slots = MapSlots::empty();
        let item = |d: u8| abi::Submission {
            algorithm: 1,
            digest: B256::repeat_byte(d),
            contentType: String::new(),
            metadata: Bytes::new(),
        };
        let batch = |items: Vec<abi::Submission>| abi::submitBatchCall { items }.abi_encode();
        let ok = Evidence::new(&mut slots)
            .call(&ctx(1), &by(None), &batch((1..=3).map(item).collect()))
            .expect("batch");
        let ids = <Vec<B256>>::abi_decode(&ok.output).expect("ids");
        assert_eq!(ids.len(), 3);
        assert_eq!(ok.logs.len(), 3);
        assert_eq!(Evidence::new(&mut slots).count().expect("count"), 3);
        let record = Evidence::new(&mut slots)
            .get(&ids[0])
            .expect("read")
            .expect("exists");
        assert_eq!(record.org, None);

        let r = Evidence::new(&mut slots).call(&ctx(1), &by(None), &batch(vec![]));
        assert!(reason(r).contains("1 to 1000"));

        let digests = abi::submitDigestsCall {
            algorithm: 2,
            digests: vec![B256::repeat_byte(0x31), B256::repeat_byte(0x32)],
        };
        let out = Evidence::new(&mut slots)
            .call(&ctx(1), &by(None), &digests.abi_encode())
            .expect("digests");
        let ids = <Vec<B256>>::abi_decode(&out.output).expect("ids");
        assert_eq!(
            ids[1],
            evidence_id(HashAlgorithm::Keccak256, &B256::repeat_byte(0x32))
        );
        assert_eq!(Evidence::new(&mut slots).count().expect("count"), 5);
        let bad = abi::submitDigestsCall {
            algorithm: 2,
            digests: vec![B256::repeat_byte(0x33), B256::ZERO],
        };
        let r = Evidence::new(&mut slots).call(&ctx(1), &by(None), &bad.abi_encode());
        assert_eq!(reason(r), "item 1: digest is zero");
        let r = Evidence::new(&mut slots).call(
            &ctx(1),
            &by(None),
            &batch((0..1001).map(|i| item(i as u8)).collect()),
        );
        assert!(reason(r).contains("got 1001"));
        let r = Evidence::new(&mut slots).call(&ctx(1), &by(None), &batch(vec![item(9), item(2)]));
        assert!(reason(r).starts_with("item 1: digest already notarized"));
        let r = Evidence::new(&mut slots).call(&ctx(1), &by(None), &batch(vec![item(8), item(8)]));
        assert!(reason(r).starts_with("item 1:"));
    }

    #[test]
    fn reads_work_in_static_calls_and_writes_do_not() {
        let mut slots = MapSlots::empty();
        let mut static_ctx = ctx(1);
        static_ctx.is_static = true;
        let input = abi::submitCall {
            algorithm: 1,
            digest: B256::repeat_byte(1),
            contentType: String::new(),
            metadata: Bytes::new(),
        }
        .abi_encode();
        let r = Evidence::new(&mut slots).call(&static_ctx, &by(None), &input);
        assert!(reason(r).contains("static call"));
        let missing = abi::getCall {
            id: B256::repeat_byte(3),
        }
        .abi_encode();
        let r = Evidence::new(&mut slots).call(&static_ctx, &by(None), &missing);
        assert!(reason(r).contains("not found"));
        let count = abi::countCall {}.abi_encode();
        let out = Evidence::new(&mut slots)
            .call(&static_ctx, &by(None), &count)
            .expect("count");
        assert_eq!(u64::abi_decode(&out.output).expect("u64"), 0);
    }
}
