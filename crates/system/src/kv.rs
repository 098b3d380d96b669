//! Byte records over 32-byte storage slots, so that system contracts keep their state in
//! ordinary account storage (covered by the state root and provable with `eth_getProof`).
//!
//! A record under `key` lives at `base = keccak256("trellis.kv" || key)`: slot `base` holds
//! the length plus one (zero means absent) and slots `base + 1 ..` hold the bytes in 32-byte
//! chunks, zero-padded.

use alloy_primitives::{keccak256, U256};

/// Storage of one system contract, as the EVM journal, a snapshot or a test map sees it.
pub trait Slots {
    fn load(&mut self, slot: U256) -> Result<U256, SlotError>;
    fn store(&mut self, slot: U256, value: U256) -> Result<(), SlotError>;
}

/// The storage underneath failed, or a write reached read-only storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("system storage: {0}")]
pub struct SlotError(pub String);

/// Largest record the layout accepts (a bound against runaway writes, not a target).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

fn base(key: &[u8]) -> U256 {
    let mut preimage = Vec::with_capacity(10 + key.len());
    preimage.extend_from_slice(b"trellis.kv");
    preimage.extend_from_slice(key);
    U256::from_be_bytes(keccak256(preimage).0)
}

fn chunks(len: usize) -> usize {
    len.div_ceil(32)
}

/// The length of the record at `base` from its header slot alone (`None`: absent).
fn stored_len(slots: &mut impl Slots, base: U256) -> Result<Option<usize>, SlotError> {
    let header = slots.load(base)?;
    if header.is_zero() {
        return Ok(None);
    }
    usize::try_from(header - U256::from(1))
        .ok()
        .filter(|l| *l <= MAX_RECORD_BYTES)
        .map(Some)
        .ok_or_else(|| SlotError(format!("corrupt record length {header}")))
}

/// Reads the record under `key`.
pub fn get(slots: &mut impl Slots, key: &[u8]) -> Result<Option<Vec<u8>>, SlotError> {
    let base = base(key);
    let Some(len) = stored_len(slots, base)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(chunks(len) * 32);
    for i in 0..chunks(len) {
        let word = slots.load(base + U256::from(1 + i))?;
        out.extend_from_slice(&word.to_be_bytes::<32>());
    }
    out.truncate(len);
    Ok(Some(out))
}

/// Writes `value` under `key`, clearing chunks a longer previous value left behind.
pub fn put(slots: &mut impl Slots, key: &[u8], value: &[u8]) -> Result<(), SlotError> {
    if value.len() > MAX_RECORD_BYTES {
        return Err(SlotError(format!(
            "record of {} bytes exceeds {MAX_RECORD_BYTES}",
            value.len()
        )));
    }
    let base = base(key);
    let old = slots.load(base)?;
    let old_chunks = usize::try_from(old.saturating_sub(U256::from(1)))
        .map(chunks)
        .unwrap_or(0);
    slots.store(base, U256::from(value.len() + 1))?;
    for (i, chunk) in value.chunks(32).enumerate() {
        let mut word = [0u8; 32];
        word[..chunk.len()].copy_from_slice(chunk);
        slots.store(base + U256::from(1 + i), U256::from_be_bytes(word))?;
    }
    for i in chunks(value.len())..old_chunks {
        slots.store(base + U256::from(1 + i), U256::ZERO)?;
    }
    Ok(())
}

/// Reads the record under `key` as a postcard-encoded `T` (`what` names it in errors).
pub fn get_decoded<T: serde::de::DeserializeOwned>(
    slots: &mut impl Slots,
    key: &[u8],
    what: &str,
) -> Result<Option<T>, SlotError> {
    match get(slots, key)? {
        None => Ok(None),
        Some(bytes) => postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| SlotError(format!("corrupt {what} record: {e}"))),
    }
}

/// Writes `value` postcard-encoded under `key`.
pub fn put_encoded<T: serde::Serialize>(
    slots: &mut impl Slots,
    key: &[u8],
    value: &T,
    what: &str,
) -> Result<(), SlotError> {
    let bytes = postcard::to_allocvec(value)
        .map_err(|e| SlotError(format!("cannot encode {what} record: {e}")))?;
    put(slots, key, &bytes)
}

/// The slots that prove the record under `key` as it is now: its header and chunks, or the
/// (zero) header alone when the record is absent.
pub fn proof_slots(slots: &mut impl Slots, key: &[u8]) -> Result<Vec<U256>, SlotError> {
    let len = stored_len(slots, base(key))?.unwrap_or(0);
    Ok(record_slots(key, len))
}

/// The slots a record of `len` bytes under `key` occupies (header first), for storage proofs.
fn record_slots(key: &[u8], len: usize) -> Vec<U256> {
    let base = base(key);
    (0..=chunks(len)).map(|i| base + U256::from(i)).collect()
}

/// Removes the record under `key`.
pub fn delete(slots: &mut impl Slots, key: &[u8]) -> Result<(), SlotError> {
    let base = base(key);
    let old = slots.load(base)?;
    if old.is_zero() {
        return Ok(());
    }
    let old_chunks = usize::try_from(old - U256::from(1))
        .map(chunks)
        .unwrap_or(0);
    slots.store(base, U256::ZERO)?;
    for i in 0..old_chunks {
        slots.store(base + U256::from(1 + i), U256::ZERO)?;
    }
    Ok(())
}

/// Slots in memory over an optional read-through source: genesis, end-of-block work and
/// tests. Writes stay in `writes`.
pub struct MapSlots<'a> {
    pub writes: std::collections::BTreeMap<U256, U256>,
    source: Box<dyn FnMut(U256) -> Result<U256, SlotError> + 'a>,
}

impl<'a> MapSlots<'a> {
    /// Empty storage.
    pub fn empty() -> MapSlots<'static> {
        MapSlots {
            writes: Default::default(),
            source: Box::new(|_| Ok(U256::ZERO)),
        }
    }

    /// Storage whose unwritten slots are read from `source`.
    pub fn over(source: impl FnMut(U256) -> Result<U256, SlotError> + 'a) -> Self {
        MapSlots {
            writes: Default::default(),
            source: Box::new(source),
        }
    }
}

impl Slots for MapSlots<'_> {
    fn load(&mut self, slot: U256) -> Result<U256, SlotError> {
        match self.writes.get(&slot) {
            Some(v) => Ok(*v),
            None => (self.source)(slot),
        }
    }

    fn store(&mut self, slot: U256, value: U256) -> Result<(), SlotError> {
        self.writes.insert(slot, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_shrink_and_vanish() {
        let mut s = MapSlots::empty();
        assert_eq!(get(&mut s, b"k").unwrap(), None);
        let long = vec![7u8; 100];
        put(&mut s, b"k", &long).unwrap();
        assert_eq!(get(&mut s, b"k").unwrap(), Some(long));
        put(&mut s, b"k", b"short").unwrap();
        assert_eq!(get(&mut s, b"k").unwrap(), Some(b"short".to_vec()));
        // The chunks the long value used beyond the short one are cleared.
        assert_eq!(s.writes.values().filter(|v| !v.is_zero()).count(), 2);
        put(&mut s, b"empty", b"").unwrap();
        assert_eq!(get(&mut s, b"empty").unwrap(), Some(vec![]));
        delete(&mut s, b"k").unwrap();
        assert_eq!(get(&mut s, b"k").unwrap(), None);
        assert_eq!(s.writes.values().filter(|v| !v.is_zero()).count(), 1);
    }

    #[test]
    fn oversized_records_and_corrupt_lengths_are_errors() {
        let mut s = MapSlots::empty();
        assert!(put(&mut s, b"k", &vec![0; MAX_RECORD_BYTES + 1]).is_err());
        s.store(base(b"bad"), U256::MAX).unwrap();
        assert!(get(&mut s, b"bad").is_err());
    }
}
