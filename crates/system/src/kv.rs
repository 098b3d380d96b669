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

/// A borrowed storage is a storage, so contracts run over `&mut dyn Slots` as well.
impl<S: Slots + ?Sized> Slots for &mut S {
    fn load(&mut self, slot: U256) -> Result<U256, SlotError> {
        (**self).load(slot)
    }

    fn store(&mut self, slot: U256, value: U256) -> Result<(), SlotError> {
        (**self).store(slot, value)
    }
}

/// Why a slot operation failed. The two kinds must stay apart: one is a property of the
/// state, the same on every node, so a call fails and the block goes on; the other is a fault
/// of this node, and turning it into a failed call would make this node's state differ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The storage underneath failed (a database read error): this node cannot execute the
    /// block, though every other node may.
    #[error("system storage unavailable: {0}")]
    Unavailable(String),
    /// The state holds, or a call would write, something the layout refuses: a record over
    /// [`MAX_RECORD_BYTES`], a corrupt record, a write through read-only storage.
    #[error("system storage: {0}")]
    Invalid(String),
}

impl SlotError {
    pub fn invalid(message: impl Into<String>) -> SlotError {
        SlotError::Invalid(message.into())
    }

    pub fn unavailable(message: impl ToString) -> SlotError {
        SlotError::Unavailable(message.to_string())
    }
}

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
        .ok_or_else(|| SlotError::invalid(format!("corrupt record length {header}")))
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
        return Err(SlotError::invalid(format!(
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
            .map_err(|e| SlotError::invalid(format!("corrupt {what} record: {e}"))),
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
        .map_err(|e| SlotError::invalid(format!("cannot encode {what} record: {e}")))?;
    put(slots, key, &bytes)
}

/// The slots that prove the record under `key` as it is now: its header and chunks, or the
/// (zero) header alone when the record is absent.
pub fn proof_slots(slots: &mut impl Slots, key: &[u8]) -> Result<Vec<U256>, SlotError> {
    let len = stored_len(slots, base(key))?.unwrap_or(0);
    Ok(record_slots(key, len))
}

/// The slots a record of `len` bytes under `key` occupies (header first), for storage proofs.
pub(crate) fn record_slots(key: &[u8], len: usize) -> Vec<U256> {
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

/// The slot holding a counter or position named by `tag` and `parts`, each part
/// length-prefixed so that no two (tag, parts) pairs share a preimage.
pub(crate) fn word_slot(tag: &[u8], parts: &[&[u8]]) -> U256 {
    let mut preimage = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    preimage.extend_from_slice(tag);
    for p in parts {
        preimage.extend_from_slice(&(p.len() as u32).to_be_bytes());
        preimage.extend_from_slice(p);
    }
    U256::from_be_bytes(keccak256(preimage).0)
}

fn load_u64(slots: &mut impl Slots, slot: U256) -> Result<u64, SlotError> {
    let v = slots.load(slot)?;
    u64::try_from(v).map_err(|_| SlotError::invalid(format!("corrupt counter {v:#x}")))
}

/// A set of byte strings kept per member, the way a Solidity enumerable mapping is: adding,
/// removing and testing a member cost a handful of slots whatever the set's size, and listing
/// reads one page by position. Removal moves the last member into the freed position, so
/// positions (and page contents) are stable only while nothing is removed.
///
/// Layout under `name`: slot `keccak256("trellis.set.n" ‖ name)` holds the count; the record
/// `name ‖ 0x00 ‖ be64(i)` holds member `i`; slot `keccak256("trellis.set.p" ‖ name ‖ member)`
/// holds its position plus one (zero: absent). Names and members are length-prefixed in the
/// hashes.
#[derive(Clone, Copy, Debug)]
pub struct Set<'n> {
    name: &'n [u8],
}

impl<'n> Set<'n> {
    pub const fn new(name: &'n [u8]) -> Self {
        Set { name }
    }

    fn count_slot(&self) -> U256 {
        word_slot(b"trellis.set.n", &[self.name])
    }

    fn position_slot(&self, member: &[u8]) -> U256 {
        word_slot(b"trellis.set.p", &[self.name, member])
    }

    fn member_key(&self, i: u64) -> Vec<u8> {
        [self.name, &[0], &i.to_be_bytes()].concat()
    }

    pub fn len(&self, slots: &mut impl Slots) -> Result<u64, SlotError> {
        load_u64(slots, self.count_slot())
    }

    pub fn is_empty(&self, slots: &mut impl Slots) -> Result<bool, SlotError> {
        Ok(self.len(slots)? == 0)
    }

    pub fn contains(&self, slots: &mut impl Slots, member: &[u8]) -> Result<bool, SlotError> {
        Ok(!slots.load(self.position_slot(member))?.is_zero())
    }

    /// Adds `member`; `false` if it was there already.
    pub fn insert(&self, slots: &mut impl Slots, member: &[u8]) -> Result<bool, SlotError> {
        let position = self.position_slot(member);
        if !slots.load(position)?.is_zero() {
            return Ok(false);
        }
        let n = self.len(slots)?;
        put(slots, &self.member_key(n), member)?;
        slots.store(position, U256::from(n + 1))?;
        slots.store(self.count_slot(), U256::from(n + 1))?;
        Ok(true)
    }

    /// Removes `member`; `false` if it was not there.
    pub fn remove(&self, slots: &mut impl Slots, member: &[u8]) -> Result<bool, SlotError> {
        let position = self.position_slot(member);
        let index = load_u64(slots, position)?;
        if index == 0 {
            return Ok(false);
        }
        let (i, n) = (index - 1, self.len(slots)?);
        if n == 0 || i >= n {
            return Err(SlotError::invalid(format!(
                "corrupt set position {index} of {n}"
            )));
        }
        let last = n - 1;
        if i != last {
            let moved = self.get(slots, last)?;
            put(slots, &self.member_key(i), &moved)?;
            slots.store(self.position_slot(&moved), U256::from(i + 1))?;
        }
        delete(slots, &self.member_key(last))?;
        slots.store(position, U256::ZERO)?;
        slots.store(self.count_slot(), U256::from(last))?;
        Ok(true)
    }

    /// The member at position `i` (below [`Set::len`]).
    pub fn get(&self, slots: &mut impl Slots, i: u64) -> Result<Vec<u8>, SlotError> {
        get(slots, &self.member_key(i))?
            .ok_or_else(|| SlotError::invalid(format!("set member {i} is missing")))
    }

    /// Up to `limit` members from position `offset` on.
    pub fn page(
        &self,
        slots: &mut impl Slots,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Vec<u8>>, SlotError> {
        let end = self.len(slots)?.min(offset.saturating_add(limit));
        (offset..end).map(|i| self.get(slots, i)).collect()
    }

    /// The slots that prove the count and the members at positions `offset..offset+limit`
    /// (those that exist), for storage proofs: reading [`Set::len`] and [`Set::page`] over
    /// the proven slots gives the same answer.
    pub fn page_proof_slots(
        &self,
        slots: &mut impl Slots,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<U256>, SlotError> {
        let end = self.len(slots)?.min(offset.saturating_add(limit));
        let mut out = vec![self.count_slot()];
        for i in offset..end {
            out.extend(proof_slots(slots, &self.member_key(i))?);
        }
        Ok(out)
    }

    /// Every member, in position order (for sets whose size is bounded by the caller).
    pub fn all(&self, slots: &mut impl Slots) -> Result<Vec<Vec<u8>>, SlotError> {
        self.page(slots, 0, u64::MAX)
    }

    /// Removes every member (cost proportional to the size: for bounded sets).
    pub fn clear(&self, slots: &mut impl Slots) -> Result<(), SlotError> {
        let n = self.len(slots)?;
        for i in 0..n {
            let member = self.get(slots, i)?;
            slots.store(self.position_slot(&member), U256::ZERO)?;
            delete(slots, &self.member_key(i))?;
        }
        slots.store(self.count_slot(), U256::ZERO)
    }
}

/// A named counter in one slot (`keccak256("trellis.count" ‖ name)`).
pub fn counter(slots: &mut impl Slots, name: &[u8]) -> Result<u64, SlotError> {
    load_u64(slots, word_slot(b"trellis.count", &[name]))
}

/// Sets the counter `name`.
pub fn set_counter(slots: &mut impl Slots, name: &[u8], value: u64) -> Result<(), SlotError> {
    slots.store(word_slot(b"trellis.count", &[name]), U256::from(value))
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

    /// Random inserts and removals against a model; every member stays findable by position
    /// and by value, and removing everything leaves no slot behind.
    /// Reading a page back from only the slots its proof names gives the same page; a wider
    /// page needs slots the proof lacks.
    #[test]
    fn a_page_reads_back_from_its_proof_slots_alone() {
        let mut s = MapSlots::empty();
        let set = Set::new(b"frozen");
        for i in 0u8..10 {
            set.insert(&mut s, &[i; 20]).expect("insert");
        }
        let proven: std::collections::BTreeMap<U256, U256> = set
            .page_proof_slots(&mut s, 3, 4)
            .expect("slots")
            .into_iter()
            .map(|slot| (slot, s.writes.get(&slot).copied().unwrap_or_default()))
            .collect();
        let mut only = MapSlots::over(|slot| {
            proven
                .get(&slot)
                .copied()
                .ok_or_else(|| SlotError::unavailable(format!("slot {slot:#x} not proven")))
        });
        assert_eq!(set.len(&mut only).expect("count"), 10);
        assert_eq!(
            set.page(&mut only, 3, 4).expect("page"),
            set.page(&mut s, 3, 4).expect("page")
        );
        assert!(set.page(&mut only, 3, 5).is_err(), "member 7 is not proven");
        // Past the end: the count alone.
        assert_eq!(set.page_proof_slots(&mut s, 10, 5).expect("slots").len(), 1);
    }

    #[test]
    fn sets_match_a_model_and_leave_nothing_behind() {
        use rand::{Rng, SeedableRng};
        for seed in 0..20u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut s = MapSlots::empty();
            let set = Set::new(b"things");
            let other = Set::new(b"things2");
            let mut model = std::collections::BTreeSet::new();
            for _ in 0..400 {
                let member = vec![rng.gen_range(0..60u8); rng.gen_range(0..40usize)];
                if rng.gen_bool(0.6) {
                    assert_eq!(set.insert(&mut s, &member).unwrap(), model.insert(member));
                } else {
                    assert_eq!(set.remove(&mut s, &member).unwrap(), model.remove(&member));
                }
            }
            assert!(
                other.is_empty(&mut s).unwrap(),
                "sets under other names are apart"
            );
            assert_eq!(set.len(&mut s).unwrap(), model.len() as u64);
            let listed: std::collections::BTreeSet<_> =
                set.all(&mut s).unwrap().into_iter().collect();
            assert_eq!(listed, model, "seed {seed}");
            let paged: Vec<_> = (0..model.len() as u64)
                .step_by(7)
                .flat_map(|o| set.page(&mut s, o, 7).unwrap())
                .collect();
            assert_eq!(paged.len(), model.len());
            for m in &model {
                assert!(set.contains(&mut s, m).unwrap());
            }
            if seed % 2 == 0 {
                set.clear(&mut s).unwrap();
            } else {
                for m in &model {
                    assert!(set.remove(&mut s, m).unwrap());
                }
            }
            assert!(set.is_empty(&mut s).unwrap());
            assert!(
                s.writes.values().all(|v| v.is_zero()),
                "seed {seed}: an emptied set left slots behind"
            );
        }
    }

    #[test]
    fn oversized_records_and_corrupt_lengths_are_errors() {
        let mut s = MapSlots::empty();
        assert!(put(&mut s, b"k", &vec![0; MAX_RECORD_BYTES + 1]).is_err());
        s.store(base(b"bad"), U256::MAX).unwrap();
        assert!(get(&mut s, b"bad").is_err());
    }
}
