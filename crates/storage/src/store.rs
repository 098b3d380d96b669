//! redb tables and the atomic block commit.

use alloy_consensus::ReceiptEnvelope;
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use redb::{Database, ReadOnlyTable, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use std::sync::Arc;
use trellis_primitives::{Block, Height};

use crate::account::{AccountState, StateChanges};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_BY_HASH: TableDefinition<&[u8; 32], u64> = TableDefinition::new("block_by_hash");
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
const SENDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("senders");
const TX_INDEX: TableDefinition<&[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");
const ACCOUNTS: TableDefinition<&[u8; 20], &[u8]> = TableDefinition::new("accounts");
const STORAGE: TableDefinition<&[u8; 52], &[u8; 32]> = TableDefinition::new("storage");
const CODE: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("code");
/// Tables of keccak-keyed copies of accounts and slots that earlier versions kept for
/// rebuilding the state root; dropped on open (the tries are stored node by node now).
const RETIRED_TABLES: [&str; 2] = ["hashed_accounts", "hashed_storage"];

/// Merkle-Patricia trie nodes by (owner, path): updated in place, so a block re-hashes only
/// the paths it changed.
const TRIE_NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trie_nodes");
/// (height, block hash) → encoded block: proposals built or verified but not yet decided,
/// kept so that a restarted node can still commit a block decided before it crashed, and
/// re-propose a block its consensus log locked on.
const PROPOSALS: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("proposals");
/// (height, round) → hash of the block this node built as that round's proposer: a restarted
/// proposer proposes the same block again instead of building a second one (which would be
/// an equivocation). Pruned with the proposals.
const BUILT: TableDefinition<(u64, u32), &[u8; 32]> = TableDefinition::new("built");
/// (height, index) → the data a reverted transaction returned (see `BlockCommit::reverts`).
const REVERTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("reverts");
/// (address, height, index) → role byte ‖ transaction hash: every transaction an address
/// sent, received or created, in chain order, so that one address's history is one range
/// scan and never a scan of the blocks. Kept per key: a busy address is many small rows.
const ADDRESS_TXS: TableDefinition<(&[u8; 20], u64, u32), &[u8; 33]> =
    TableDefinition::new("address_txs");

const TIP_KEY: &str = "tip";
/// First height whose transactions [`ADDRESS_TXS`] holds: 0 for a database created with the
/// index, the next height for an older data directory (earlier blocks are not re-read).
const ADDRESS_INDEX_FROM_KEY: &str = "address_index_from";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(Box<redb::Error>),
    #[error("cannot create the database directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record in table {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("block {got} does not extend the tip {tip}")]
    NotNextHeight { tip: Height, got: Height },
    #[error("the blocking worker reading the database failed: {0}")]
    Worker(String),
}

impl StoreError {
    /// The database is open already: by another process, or by a chain of this process that
    /// is still letting go of it.
    pub fn is_already_open(&self) -> bool {
        matches!(
            self,
            StoreError::Db(e) if matches!(**e, redb::Error::DatabaseAlreadyOpen)
        )
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn corrupt(table: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

/// Where a transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxLocation {
    pub height: Height,
    pub index: u32,
}

/// How a transaction involves an address (see [`StateView::address_transactions`]); an
/// address can be both sender and recipient of one transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressRole {
    /// The address signed and sent the transaction.
    pub sent: bool,
    /// The transaction called the address, paid it, or created it as a contract.
    pub received: bool,
}

impl AddressRole {
    const SENT: u8 = 1;
    const RECEIVED: u8 = 2;

    fn to_byte(self) -> u8 {
        (if self.sent { Self::SENT } else { 0 }) | (if self.received { Self::RECEIVED } else { 0 })
    }

    fn from_byte(b: u8) -> Option<AddressRole> {
        (b != 0 && b & !(Self::SENT | Self::RECEIVED) == 0).then_some(AddressRole {
            sent: b & Self::SENT != 0,
            received: b & Self::RECEIVED != 0,
        })
    }
}

/// One transaction in an address's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressTx {
    pub location: TxLocation,
    pub hash: B256,
    pub role: AddressRole,
}

/// Everything one decided block writes, committed in a single transaction.
pub struct BlockCommit<'a> {
    pub block: &'a Block,
    /// Opaque encoding of the commit certificate (owned by the consensus crate).
    pub certificate: &'a [u8],
    pub receipts: &'a [ReceiptEnvelope],
    pub senders: &'a [Address],
    /// The data reverted transactions returned, by index in the block.
    pub reverts: &'a [(u32, Bytes)],
    pub changes: &'a StateChanges,
}

/// Bytes of a database held in memory and shared, so that a store can be closed and opened
/// again on them (see [`Store::open_on`]).
#[derive(Clone, Debug, Default)]
pub struct MemoryDisk(Arc<parking_lot::Mutex<Vec<u8>>>);

impl MemoryDisk {
    /// An independent copy of the bytes as they are now: what a disk holds when its process
    /// is killed (the store handles still open on `self` can no longer touch it).
    pub fn image(&self) -> MemoryDisk {
        MemoryDisk(Arc::new(parking_lot::Mutex::new(self.bytes().clone())))
    }

    fn bytes(&self) -> parking_lot::MutexGuard<'_, Vec<u8>> {
        self.0.lock()
    }
}

impl redb::StorageBackend for MemoryDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.bytes().len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, std::io::Error> {
        let bytes = self.bytes();
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        bytes
            .get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past end"))
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        self.bytes().resize(len, 0);
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut bytes = self.bytes();
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let end = start + data.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[start..end].copy_from_slice(data);
        Ok(())
    }
}

/// Handle to the node's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

fn slot_key(address: &Address, slot: &U256) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    key
}

impl Store {
    /// Opens (or creates) the database file and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Self::prepare(Database::create(path)?)
    }

    /// Opens a store kept in `disk` (deterministic simulations): dropping every handle and
    /// opening `disk` again is a process crash and restart, with everything committed kept.
    pub fn open_on(disk: &MemoryDisk) -> Result<Store, StoreError> {
        Self::prepare(Database::builder().create_with_backend(disk.clone())?)
    }

    fn prepare(db: Database) -> Result<Store, StoreError> {
        let wtx = db.begin_write()?;
        {
            wtx.open_table(META)?;
            wtx.open_table(BLOCKS)?;
            wtx.open_table(BLOCK_BY_HASH)?;
            wtx.open_table(CERTIFICATES)?;
            wtx.open_table(RECEIPTS)?;
            wtx.open_table(SENDERS)?;
            wtx.open_table(TX_INDEX)?;
            wtx.open_table(ACCOUNTS)?;
            wtx.open_table(STORAGE)?;
            wtx.open_table(CODE)?;
            wtx.open_table(TRIE_NODES)?;
            wtx.open_table(PROPOSALS)?;
            wtx.open_table(BUILT)?;
            wtx.open_table(ADDRESS_TXS)?;
            wtx.open_table(REVERTS)?;
            let mut meta = wtx.open_table(META)?;
            if meta.get(ADDRESS_INDEX_FROM_KEY)?.is_none() {
                let from = meta.get(TIP_KEY)?.map_or(0, |tip| tip.value() + 1);
                meta.insert(ADDRESS_INDEX_FROM_KEY, from)?;
            }
        }
        for name in RETIRED_TABLES {
            let table: TableDefinition<&[u8], &[u8]> = TableDefinition::new(name);
            wtx.delete_table(table)?;
        }
        wtx.commit()?;
        Ok(Store { db: Arc::new(db) })
    }

    /// Height of the last committed block, or `None` before genesis state is written.
    pub fn tip(&self) -> Result<Option<Height>, StoreError> {
        let rtx = self.db.begin_read()?;
        let meta = rtx.open_table(META)?;
        Ok(meta.get(TIP_KEY)?.map(|v| Height(v.value())))
    }

    /// Writes the genesis state (height 0). Does nothing if the store already has a tip.
    pub fn init_genesis(
        &self,
        changes: &StateChanges,
        genesis_block: &Block,
    ) -> Result<bool, StoreError> {
        if self.tip()?.is_some() {
            return Ok(false);
        }
        let wtx = self.db.begin_write()?;
        write_state(&wtx, changes)?;
        {
            let hash = genesis_block.hash();
            wtx.open_table(BLOCKS)?
                .insert(0, genesis_block.encode_to_vec().as_slice())?;
            wtx.open_table(BLOCK_BY_HASH)?.insert(&hash.0, 0)?;
            wtx.open_table(META)?.insert(TIP_KEY, 0)?;
        }
        wtx.commit()?;
        Ok(true)
    }

    /// Commits a decided block with its certificate, receipts, indexes and state changes
    /// atomically. The block must sit directly on the current tip.
    pub fn commit_block(&self, commit: BlockCommit<'_>) -> Result<(), StoreError> {
        let height = Height(commit.block.header.height);
        let wtx = self.db.begin_write()?;
        {
            let mut meta = wtx.open_table(META)?;
            let tip = meta.get(TIP_KEY)?.map(|v| Height(v.value()));
            if tip.map(Height::next) != Some(height) {
                return Err(StoreError::NotNextHeight {
                    tip: tip.unwrap_or_default(),
                    got: height,
                });
            }
            meta.insert(TIP_KEY, height.0)?;
        }
        {
            let hash = commit.block.hash();
            wtx.open_table(BLOCKS)?
                .insert(height.0, commit.block.encode_to_vec().as_slice())?;
            wtx.open_table(BLOCK_BY_HASH)?.insert(&hash.0, height.0)?;
            wtx.open_table(CERTIFICATES)?
                .insert(height.0, commit.certificate)?;
            let mut receipts = Vec::new();
            alloy_rlp::encode_list::<Bytes, Bytes>(
                &commit
                    .receipts
                    .iter()
                    .map(|r| Bytes::from(r.encoded_2718()))
                    .collect::<Vec<_>>(),
                &mut receipts,
            );
            wtx.open_table(RECEIPTS)?
                .insert(height.0, receipts.as_slice())?;
            let senders: Vec<u8> = commit.senders.iter().flat_map(|a| a.0 .0).collect();
            wtx.open_table(SENDERS)?
                .insert(height.0, senders.as_slice())?;
            let mut index = wtx.open_table(TX_INDEX)?;
            for (i, tx_hash) in commit.block.tx_hashes().enumerate() {
                index.insert(&tx_hash.0, (height.0, i as u32))?;
            }
            write_address_index(&wtx, height, commit.block, commit.senders)?;
            let mut reverts = wtx.open_table(REVERTS)?;
            for (index, data) in commit.reverts {
                reverts.insert((height.0, *index), data.as_ref())?;
            }
        }
        write_state(&wtx, commit.changes)?;
        wtx.open_table(PROPOSALS)?
            .retain_in::<(u64, &[u8; 32]), _>(
                (0, &[0u8; 32])..=(height.0, &[0xffu8; 32]),
                |_, _| false,
            )?;
        wtx.open_table(BUILT)?
            .retain_in::<(u64, u32), _>((0, 0)..=(height.0, u32::MAX), |_, _| false)?;
        wtx.commit()?;
        Ok(())
    }

    /// Writes trie nodes outside a block (filling in the tries of an older data directory).
    pub fn write_trie_nodes(
        &self,
        nodes: &std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        let wtx = self.db.begin_write()?;
        apply_trie_nodes(&mut wtx.open_table(TRIE_NODES)?, nodes)?;
        wtx.commit()?;
        Ok(())
    }

    /// Keeps an undecided proposal, durably: after every validator restarts inside a height,
    /// the block its consensus logs locked on exists only on disk (an fsync costs well under
    /// a millisecond here, once per proposal).
    pub fn save_proposal(
        &self,
        height: Height,
        hash: &B256,
        block: &[u8],
    ) -> Result<(), StoreError> {
        let wtx = self.db.begin_write()?;
        wtx.open_table(PROPOSALS)?
            .insert((height.0, &hash.0), block)?;
        wtx.commit()?;
        Ok(())
    }

    /// Keeps the block this node built as the proposer of `round` at `height`, durably,
    /// before consensus signs a proposal for it.
    pub fn save_built(
        &self,
        height: Height,
        round: u32,
        hash: &B256,
        block: &[u8],
    ) -> Result<(), StoreError> {
        let wtx = self.db.begin_write()?;
        wtx.open_table(PROPOSALS)?
            .insert((height.0, &hash.0), block)?;
        wtx.open_table(BUILT)?.insert((height.0, round), &hash.0)?;
        wtx.commit()?;
        Ok(())
    }

    /// The block this node built as the proposer of `round` at `height`, if it kept one.
    pub fn built(&self, height: Height, round: u32) -> Result<Option<(B256, Vec<u8>)>, StoreError> {
        let rtx = self.db.begin_read()?;
        let Some(hash) = rtx
            .open_table(BUILT)?
            .get((height.0, round))?
            .map(|h| *h.value())
        else {
            return Ok(None);
        };
        let block = rtx
            .open_table(PROPOSALS)?
            .get((height.0, &hash))?
            .map(|b| b.value().to_vec());
        Ok(block.map(|b| (B256::from(hash), b)))
    }

    /// The undecided proposal kept for `height` under `hash`, if any.
    pub fn proposal(&self, height: Height, hash: &B256) -> Result<Option<Vec<u8>>, StoreError> {
        let rtx = self.db.begin_read()?;
        let table = rtx.open_table(PROPOSALS)?;
        Ok(table.get((height.0, &hash.0))?.map(|b| b.value().to_vec()))
    }

    /// Undecided proposals kept for `height`.
    pub fn proposals(&self, height: Height) -> Result<Vec<Vec<u8>>, StoreError> {
        let rtx = self.db.begin_read()?;
        let table = rtx.open_table(PROPOSALS)?;
        let mut out = Vec::new();
        for entry in
            table.range::<(u64, &[u8; 32])>((height.0, &[0u8; 32])..=(height.0, &[0xffu8; 32]))?
        {
            out.push(entry?.1.value().to_vec());
        }
        Ok(out)
    }

    /// A consistent snapshot for reads and block execution.
    pub fn view(&self) -> Result<StateView, StoreError> {
        let rtx = self.db.begin_read()?;
        Ok(StateView {
            meta: rtx.open_table(META)?,
            blocks: rtx.open_table(BLOCKS)?,
            block_by_hash: rtx.open_table(BLOCK_BY_HASH)?,
            certificates: rtx.open_table(CERTIFICATES)?,
            receipts: rtx.open_table(RECEIPTS)?,
            senders: rtx.open_table(SENDERS)?,
            tx_index: rtx.open_table(TX_INDEX)?,
            accounts: rtx.open_table(ACCOUNTS)?,
            storage: rtx.open_table(STORAGE)?,
            code: rtx.open_table(CODE)?,
            trie_nodes: rtx.open_table(TRIE_NODES)?,
            address_txs: rtx.open_table(ADDRESS_TXS)?,
            reverts: rtx.open_table(REVERTS)?,
        })
    }
}

/// Adds the block's transactions to [`ADDRESS_TXS`] under their senders and recipients
/// (the `to` address, or the created contract's), in key order.
fn write_address_index(
    wtx: &redb::WriteTransaction,
    height: Height,
    block: &Block,
    senders: &[Address],
) -> Result<(), StoreError> {
    let mut rows: Vec<([u8; 20], u32, AddressRole, B256)> =
        Vec::with_capacity(block.transactions.len() * 2);
    let (sent, received) = (
        AddressRole {
            sent: true,
            received: false,
        },
        AddressRole {
            sent: false,
            received: true,
        },
    );
    for (i, (tx, sender)) in block.transactions.iter().zip(senders).enumerate() {
        let hash = tx.trie_hash();
        let recipient = match alloy_consensus::Transaction::kind(tx) {
            alloy_primitives::TxKind::Call(to) => to,
            alloy_primitives::TxKind::Create => {
                sender.create(alloy_consensus::Transaction::nonce(tx))
            }
        };
        if recipient == *sender {
            let both = AddressRole {
                sent: true,
                received: true,
            };
            rows.push((sender.0 .0, i as u32, both, hash));
        } else {
            rows.push((sender.0 .0, i as u32, sent, hash));
            rows.push((recipient.0 .0, i as u32, received, hash));
        }
    }
    rows.sort_unstable_by_key(|a| (a.0, a.1));
    let mut table = wtx.open_table(ADDRESS_TXS)?;
    let mut value = [0u8; 33];
    for (address, index, role, hash) in &rows {
        value[0] = role.to_byte();
        value[1..].copy_from_slice(hash.as_slice());
        table.insert((address, height.0, *index), &value)?;
    }
    Ok(())
}

fn apply_trie_nodes(
    table: &mut redb::Table<&[u8], &[u8]>,
    nodes: &std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Result<(), StoreError> {
    for (key, node) in nodes {
        match node {
            Some(node) => table.insert(key.as_slice(), node.as_slice())?,
            None => table.remove(key.as_slice())?,
        };
    }
    Ok(())
}

fn write_state(wtx: &redb::WriteTransaction, changes: &StateChanges) -> Result<(), StoreError> {
    let mut accounts = wtx.open_table(ACCOUNTS)?;
    let mut storage = wtx.open_table(STORAGE)?;
    let mut code = wtx.open_table(CODE)?;
    let mut trie_nodes = wtx.open_table(TRIE_NODES)?;

    for address in &changes.wiped_storage {
        let mut lo = [0u8; 52];
        lo[..20].copy_from_slice(address.as_slice());
        let mut hi = [0xffu8; 52];
        hi[..20].copy_from_slice(address.as_slice());
        storage.retain_in::<&[u8; 52], _>(&lo..=&hi, |_, _| false)?;
        let hashed = keccak256(address);
        // Trie node keys are the owner followed by at most 64 nibbles (each below 0x10).
        let mut thi = [0xffu8; 33];
        thi[..32].copy_from_slice(hashed.as_slice());
        trie_nodes.retain_in::<&[u8], _>(hashed.as_slice()..=&thi[..], |_, _| false)?;
    }
    apply_trie_nodes(&mut trie_nodes, &changes.trie_nodes)?;
    for (address, slots) in &changes.storage {
        for (slot, value) in slots {
            let key = slot_key(address, slot);
            if value.is_zero() {
                storage.remove(&key)?;
            } else {
                storage.insert(&key, &value.to_be_bytes::<32>())?;
            }
        }
    }
    for (address, account) in &changes.accounts {
        match account {
            Some(acc) => {
                accounts.insert(&address.0 .0, acc.to_bytes().as_slice())?;
            }
            None => {
                accounts.remove(&address.0 .0)?;
            }
        }
    }
    for (hash, bytecode) in &changes.codes {
        code.insert(&hash.0, bytecode.as_ref())?;
    }
    Ok(())
}

/// A read snapshot of the whole database. Later commits do not affect it.
pub struct StateView {
    meta: ReadOnlyTable<&'static str, u64>,
    blocks: ReadOnlyTable<u64, &'static [u8]>,
    block_by_hash: ReadOnlyTable<&'static [u8; 32], u64>,
    certificates: ReadOnlyTable<u64, &'static [u8]>,
    receipts: ReadOnlyTable<u64, &'static [u8]>,
    senders: ReadOnlyTable<u64, &'static [u8]>,
    tx_index: ReadOnlyTable<&'static [u8; 32], (u64, u32)>,
    accounts: ReadOnlyTable<&'static [u8; 20], &'static [u8]>,
    storage: ReadOnlyTable<&'static [u8; 52], &'static [u8; 32]>,
    code: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    trie_nodes: ReadOnlyTable<&'static [u8], &'static [u8]>,
    address_txs: ReadOnlyTable<(&'static [u8; 20], u64, u32), &'static [u8; 33]>,
    reverts: ReadOnlyTable<(u64, u32), &'static [u8]>,
}

impl StateView {
    pub fn tip(&self) -> Result<Option<Height>, StoreError> {
        Ok(self.meta.get(TIP_KEY)?.map(|v| Height(v.value())))
    }

    pub fn account(&self, address: &Address) -> Result<Option<AccountState>, StoreError> {
        match self.accounts.get(&address.0 .0)? {
            None => Ok(None),
            Some(v) => AccountState::from_bytes(v.value())
                .map(Some)
                .ok_or_else(|| corrupt("accounts", "wrong record length")),
        }
    }

    pub fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError> {
        Ok(self
            .storage
            .get(&slot_key(address, slot))?
            .map(|v| U256::from_be_bytes(*v.value()))
            .unwrap_or_default())
    }

    pub fn code(&self, hash: &B256) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .code
            .get(&hash.0)?
            .map(|v| Bytes::copy_from_slice(v.value())))
    }

    pub fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        match self.blocks.get(height.0)? {
            None => Ok(None),
            Some(v) => Block::decode_bytes(v.value())
                .map(Some)
                .map_err(|e| corrupt("blocks", e)),
        }
    }

    pub fn height_of(&self, hash: &B256) -> Result<Option<Height>, StoreError> {
        Ok(self.block_by_hash.get(&hash.0)?.map(|v| Height(v.value())))
    }

    pub fn certificate(&self, height: Height) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.certificates.get(height.0)?.map(|v| v.value().to_vec()))
    }

    pub fn receipts(&self, height: Height) -> Result<Option<Vec<ReceiptEnvelope>>, StoreError> {
        let Some(v) = self.receipts.get(height.0)? else {
            return Ok(None);
        };
        let mut raw = v.value();
        let encoded: Vec<Bytes> =
            alloy_rlp::Decodable::decode(&mut raw).map_err(|e| corrupt("receipts", e))?;
        encoded
            .iter()
            .map(|bytes| {
                ReceiptEnvelope::decode_2718(&mut bytes.as_ref())
                    .map_err(|e| corrupt("receipts", e))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub fn senders(&self, height: Height) -> Result<Option<Vec<Address>>, StoreError> {
        Ok(self.senders.get(height.0)?.map(|v| {
            v.value()
                .chunks_exact(20)
                .map(Address::from_slice)
                .collect()
        }))
    }

    pub fn tx_location(&self, tx_hash: &B256) -> Result<Option<TxLocation>, StoreError> {
        Ok(self.tx_index.get(&tx_hash.0)?.map(|v| {
            let (height, index) = v.value();
            TxLocation {
                height: Height(height),
                index,
            }
        }))
    }

    /// The data the transaction at `at` returned when it reverted (`None` when it did not
    /// revert, or failed without returning any, e.g. out of gas).
    pub fn revert_data(&self, at: TxLocation) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .reverts
            .get((at.height.0, at.index))?
            .map(|v| Bytes::copy_from_slice(v.value())))
    }

    /// Up to `limit` transactions that `address` sent, received or created, newest first,
    /// strictly before `before` when given (the last location of the previous page). Only
    /// heights from [`StateView::address_index_from`] on are indexed.
    pub fn address_transactions(
        &self,
        address: &Address,
        before: Option<TxLocation>,
        limit: usize,
    ) -> Result<Vec<AddressTx>, StoreError> {
        let key = &address.0 .0;
        let lo = (key, 0u64, 0u32);
        let rows = match before {
            Some(b) => self.address_txs.range(lo..(key, b.height.0, b.index))?,
            None => self.address_txs.range(lo..=(key, u64::MAX, u32::MAX))?,
        };
        let mut out = Vec::with_capacity(limit.min(1_000));
        for entry in rows.rev().take(limit) {
            let (k, v) = entry?;
            let (_, height, index) = k.value();
            let v = v.value();
            let role = AddressRole::from_byte(v[0])
                .ok_or_else(|| corrupt("address_txs", format!("role byte {}", v[0])))?;
            out.push(AddressTx {
                location: TxLocation {
                    height: Height(height),
                    index,
                },
                hash: B256::from_slice(&v[1..]),
                role,
            });
        }
        Ok(out)
    }

    /// First height whose transactions [`StateView::address_transactions`] finds (0 unless
    /// the data directory predates the index).
    pub fn address_index_from(&self) -> Result<Height, StoreError> {
        Ok(Height(
            self.meta
                .get(ADDRESS_INDEX_FROM_KEY)?
                .map_or(0, |v| v.value()),
        ))
    }

    /// Every account, ordered by address.
    pub fn for_each_account(
        &self,
        mut f: impl FnMut(Address, AccountState),
    ) -> Result<(), StoreError> {
        for entry in self.accounts.iter()? {
            let (k, v) = entry?;
            let account = AccountState::from_bytes(v.value())
                .ok_or_else(|| corrupt("accounts", "wrong record length"))?;
            f(Address::from(*k.value()), account);
        }
        Ok(())
    }

    /// One account's storage, ordered by slot.
    pub fn for_each_slot(
        &self,
        address: &Address,
        mut f: impl FnMut(U256, U256),
    ) -> Result<(), StoreError> {
        let lo = slot_key(address, &U256::ZERO);
        let hi = slot_key(address, &U256::MAX);
        for entry in self.storage.range::<&[u8; 52]>(&lo..=&hi)? {
            let (k, v) = entry?;
            f(
                U256::from_be_slice(&k.value()[20..]),
                U256::from_be_bytes(*v.value()),
            );
        }
        Ok(())
    }

    /// The trie node stored under `key` (see [`crate::trie_node_key`]).
    pub fn trie_node(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.trie_nodes.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Whether any trie node is stored (false for data written before tries were stored).
    pub fn has_trie_nodes(&self) -> Result<bool, StoreError> {
        Ok(!self.trie_nodes.is_empty()?)
    }

    pub fn account_count(&self) -> Result<u64, StoreError> {
        Ok(self.accounts.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{Eip658Value, Receipt, ReceiptWithBloom};
    use alloy_primitives::{Bloom, Log};
    use trellis_primitives::Header;

    /// Commits `block` with no transactions, receipts or state changes.
    fn commit_empty(store: &Store, block: &Block) {
        store
            .commit_block(BlockCommit {
                block,
                certificate: b"",
                receipts: &[],
                senders: &[],
                reverts: &[],
                changes: &StateChanges::default(),
            })
            .expect("commit");
    }

    fn block_at(height: u64, parent: B256) -> Block {
        Block {
            header: Header {
                chain_id: 1,
                height,
                parent_hash: parent,
                timestamp_ms: height,
                proposer: Address::ZERO,
                transactions_root: Block::compute_transactions_root(&[]),
                receipts_root: B256::ZERO,
                state_root: B256::ZERO,
                logs_bloom: Bloom::ZERO,
                gas_limit: 1,
                gas_used: 0,
                validators_hash: B256::ZERO,
                next_validators_hash: None,
            },
            transactions: vec![],
        }
    }

    #[test]
    fn commit_is_atomic_and_ordered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        assert_eq!(store.tip().expect("tip"), None);

        let alice = Address::repeat_byte(0xa1);
        let mut genesis_state = StateChanges::default();
        genesis_state.accounts.insert(
            alice,
            Some(AccountState {
                balance: U256::from(100),
                ..Default::default()
            }),
        );
        genesis_state
            .storage
            .insert(alice, [(U256::from(1), U256::from(9))].into());
        let genesis = block_at(0, B256::ZERO);
        assert!(store
            .init_genesis(&genesis_state, &genesis)
            .expect("genesis"));
        assert!(!store
            .init_genesis(&genesis_state, &genesis)
            .expect("idempotent"));

        let b1 = block_at(1, genesis.hash());
        let mut changes = StateChanges::default();
        changes
            .storage
            .insert(alice, [(U256::from(1), U256::ZERO)].into());
        let receipt = ReceiptEnvelope::Legacy(ReceiptWithBloom {
            receipt: Receipt {
                status: Eip658Value::Eip658(true),
                cumulative_gas_used: 21_000,
                logs: vec![Log::empty()],
            },
            logs_bloom: Bloom::ZERO,
        });
        store
            .commit_block(BlockCommit {
                block: &b1,
                certificate: b"cert",
                receipts: std::slice::from_ref(&receipt),
                senders: &[],
                reverts: &[],
                changes: &changes,
            })
            .expect("commit");

        let skipped = block_at(3, b1.hash());
        assert!(matches!(
            store.commit_block(BlockCommit {
                block: &skipped,
                certificate: b"",
                receipts: &[],
                senders: &[],
                reverts: &[],
                changes: &StateChanges::default(),
            }),
            Err(StoreError::NotNextHeight { .. })
        ));

        let view = store.view().expect("view");
        assert_eq!(view.tip().expect("tip"), Some(Height(1)));
        assert_eq!(view.block(Height(1)).expect("read"), Some(b1.clone()));
        assert_eq!(view.height_of(&b1.hash()).expect("read"), Some(Height(1)));
        assert_eq!(
            view.certificate(Height(1)).expect("read"),
            Some(b"cert".to_vec())
        );
        assert_eq!(view.receipts(Height(1)).expect("read"), Some(vec![receipt]));
        assert_eq!(
            view.storage(&alice, &U256::from(1)).expect("read"),
            U256::ZERO
        );
        assert_eq!(
            view.account(&alice).expect("read").map(|a| a.balance),
            Some(U256::from(100))
        );
        let mut slots = 0;
        view.for_each_slot(&alice, |_, _| slots += 1)
            .expect("iterate");
        assert_eq!(slots, 0, "zeroed slot is removed");
    }

    #[test]
    fn proposals_are_kept_until_their_height_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let genesis = block_at(0, B256::ZERO);
        store
            .init_genesis(&StateChanges::default(), &genesis)
            .expect("genesis");
        let b1 = block_at(1, genesis.hash());
        store
            .save_proposal(Height(1), &b1.hash(), &b1.encode_to_vec())
            .expect("save");
        store
            .save_proposal(Height(2), &B256::repeat_byte(2), b"later")
            .expect("save");
        assert_eq!(
            store.proposals(Height(1)).expect("read"),
            vec![b1.encode_to_vec()]
        );
        assert_eq!(
            store.proposal(Height(1), &b1.hash()).expect("read"),
            Some(b1.encode_to_vec())
        );
        assert_eq!(store.proposal(Height(2), &b1.hash()).expect("read"), None);
        commit_empty(&store, &b1);
        assert!(store.proposals(Height(1)).expect("read").is_empty());
        assert_eq!(
            store.proposals(Height(2)).expect("read"),
            vec![b"later".to_vec()]
        );
    }

    /// A restarted proposer finds the block it built for a round (and only for that round),
    /// until the height commits.
    #[test]
    fn a_built_block_is_found_by_its_round_until_its_height_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let genesis = block_at(0, B256::ZERO);
        let b1 = block_at(1, genesis.hash());
        {
            let store = Store::open(&path).expect("open");
            store
                .init_genesis(&StateChanges::default(), &genesis)
                .expect("genesis");
            store
                .save_built(Height(1), 3, &b1.hash(), &b1.encode_to_vec())
                .expect("save");
        }
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            store.built(Height(1), 3).expect("read"),
            Some((b1.hash(), b1.encode_to_vec()))
        );
        assert_eq!(store.built(Height(1), 2).expect("read"), None);
        assert_eq!(store.proposals(Height(1)).expect("read").len(), 1);
        commit_empty(&store, &b1);
        assert_eq!(store.built(Height(1), 3).expect("read"), None);
    }

    /// A transaction signed with a placeholder signature: the index reads only its fields
    /// and hash, and the sender comes from the commit.
    fn tx(to: Option<Address>, nonce: u64) -> alloy_consensus::TxEnvelope {
        use alloy_consensus::SignableTransaction;
        alloy_consensus::TxLegacy {
            chain_id: Some(1),
            nonce,
            gas_price: 1,
            gas_limit: 21_000,
            to: to.map_or(
                alloy_primitives::TxKind::Create,
                alloy_primitives::TxKind::Call,
            ),
            value: U256::from(1),
            input: Bytes::new(),
        }
        .into_signed(alloy_primitives::Signature::test_signature())
        .into()
    }

    #[test]
    fn address_history_is_indexed_newest_first_and_paged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let genesis = block_at(0, B256::ZERO);
        store
            .init_genesis(&StateChanges::default(), &genesis)
            .expect("genesis");
        let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb0));
        let created = bob.create(0);
        let mut b1 = block_at(1, genesis.hash());
        b1.transactions = vec![tx(Some(bob), 0), tx(None, 0), tx(Some(alice), 1)];
        store
            .commit_block(BlockCommit {
                block: &b1,
                certificate: b"",
                receipts: &[],
                senders: &[alice, bob, alice],
                reverts: &[(1, Bytes::from_static(b"no"))],
                changes: &StateChanges::default(),
            })
            .expect("commit");
        let mut b2 = block_at(2, b1.hash());
        b2.transactions = vec![tx(Some(alice), 1)];
        store
            .commit_block(BlockCommit {
                block: &b2,
                certificate: b"",
                receipts: &[],
                senders: &[bob],
                reverts: &[],
                changes: &StateChanges::default(),
            })
            .expect("commit");

        let view = store.view().expect("view");
        assert_eq!(view.address_index_from().expect("read"), Height(0));
        let at = |h, i| TxLocation {
            height: Height(h),
            index: i,
        };
        let summary = |txs: Vec<AddressTx>| {
            txs.into_iter()
                .map(|t| (t.location, t.role.sent, t.role.received, t.hash))
                .collect::<Vec<_>>()
        };
        let h1: Vec<B256> = b1.tx_hashes().collect();
        let h2 = b2.tx_hashes().next().expect("one tx");
        assert_eq!(
            summary(view.address_transactions(&alice, None, 10).expect("read")),
            vec![
                (at(2, 0), false, true, h2),
                (at(1, 2), true, true, h1[2]),
                (at(1, 0), true, false, h1[0]),
            ]
        );
        assert_eq!(
            summary(view.address_transactions(&bob, None, 10).expect("read")),
            vec![
                (at(2, 0), true, false, h2),
                (at(1, 1), true, false, h1[1]),
                (at(1, 0), false, true, h1[0]),
            ]
        );
        assert_eq!(
            summary(view.address_transactions(&created, None, 10).expect("read")),
            vec![(at(1, 1), false, true, h1[1])]
        );
        // Pages: each starts strictly before the last row of the previous one.
        let first = view.address_transactions(&alice, None, 2).expect("read");
        assert_eq!(first.len(), 2);
        let rest = view
            .address_transactions(&alice, Some(first[1].location), 2)
            .expect("read");
        assert_eq!(summary(rest), vec![(at(1, 0), true, false, h1[0])]);
        assert_eq!(
            view.revert_data(at(1, 1)).expect("read"),
            Some(Bytes::from_static(b"no"))
        );
        assert_eq!(view.revert_data(at(1, 0)).expect("read"), None);
        assert!(view
            .address_transactions(&Address::repeat_byte(0xcc), None, 10)
            .expect("read")
            .is_empty());
    }

    /// A data directory written before the index existed starts indexing at its next block,
    /// and says so, instead of presenting its history as empty.
    #[test]
    fn an_older_data_directory_indexes_from_its_next_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        {
            let db = Database::create(&path).expect("create");
            let wtx = db.begin_write().expect("write");
            wtx.open_table(META)
                .expect("meta")
                .insert(TIP_KEY, 41)
                .expect("tip");
            wtx.commit().expect("commit");
        }
        let store = Store::open(&path).expect("open");
        assert_eq!(
            store
                .view()
                .expect("view")
                .address_index_from()
                .expect("read"),
            Height(42)
        );
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            store
                .view()
                .expect("view")
                .address_index_from()
                .expect("read"),
            Height(42),
            "kept, not moved forward on every open"
        );
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let genesis = block_at(0, B256::ZERO);
        {
            let store = Store::open(&path).expect("open");
            store
                .init_genesis(&StateChanges::default(), &genesis)
                .expect("genesis");
        }
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.tip().expect("tip"), Some(Height(0)));
        assert_eq!(
            store.view().expect("view").block(Height(0)).expect("read"),
            Some(genesis)
        );
    }
}
