//! Storage engine comparison on the workload a Trellis node puts on its database:
//! durable block commits (block body, transaction index, account records in plain and
//! hashed tables, all in one atomic, fsynced write) and random account reads.
//!
//! Usage: `cargo run --release -- [blocks] [reads]` (see scripts/bench-storage).

use rand::{Rng, RngCore, SeedableRng};
use redb::{ReadableTable, TableDefinition};
use std::time::Instant;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const TX_INDEX: TableDefinition<&[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");
const ACCOUNTS: TableDefinition<&[u8; 20], &[u8]> = TableDefinition::new("accounts");
const HASHED: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("hashed_accounts");

const TXS_PER_BLOCK: usize = 1_000;
const ACCOUNTS_PER_BLOCK: usize = 2_000;
const BLOCK_BYTES: usize = 110 * 1_000;

struct BlockData {
    body: Vec<u8>,
    tx_hashes: Vec<[u8; 32]>,
    accounts: Vec<([u8; 20], [u8; 32])>,
}

fn gen_block(rng: &mut impl RngCore) -> BlockData {
    let mut body = vec![0u8; BLOCK_BYTES];
    rng.fill_bytes(&mut body);
    let tx_hashes = (0..TXS_PER_BLOCK)
        .map(|_| {
            let mut h = [0u8; 32];
            rng.fill_bytes(&mut h);
            h
        })
        .collect();
    let accounts = (0..ACCOUNTS_PER_BLOCK)
        .map(|_| {
            let mut a = [0u8; 20];
            let mut h = [0u8; 32];
            rng.fill_bytes(&mut a);
            rng.fill_bytes(&mut h);
            (a, h)
        })
        .collect();
    BlockData {
        body,
        tx_hashes,
        accounts,
    }
}

trait Engine {
    fn name(&self) -> &'static str;
    fn commit(&mut self, height: u64, block: &BlockData);
    fn read_account(&self, address: &[u8; 20]) -> bool;
}

struct Redb(redb::Database);

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb 2.6"
    }

    fn commit(&mut self, height: u64, b: &BlockData) {
        let wtx = self.0.begin_write().expect("begin");
        {
            wtx.open_table(BLOCKS).expect("t").insert(height, b.body.as_slice()).expect("w");
            let mut idx = wtx.open_table(TX_INDEX).expect("t");
            for (i, h) in b.tx_hashes.iter().enumerate() {
                idx.insert(h, (height, i as u32)).expect("w");
            }
            let mut acc = wtx.open_table(ACCOUNTS).expect("t");
            let mut hashed = wtx.open_table(HASHED).expect("t");
            let record = [7u8; 104];
            for (a, h) in &b.accounts {
                acc.insert(a, record.as_slice()).expect("w");
                hashed.insert(h, record.as_slice()).expect("w");
            }
        }
        wtx.commit().expect("commit");
    }

    fn read_account(&self, address: &[u8; 20]) -> bool {
        let rtx = self.0.begin_read().expect("read");
        let t = rtx.open_table(ACCOUNTS).expect("t");
        t.get(address).expect("get").is_some()
    }
}

struct Rocks(rocksdb::DB);

fn key(prefix: u8, k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.len() + 1);
    v.push(prefix);
    v.extend_from_slice(k);
    v
}

impl Engine for Rocks {
    fn name(&self) -> &'static str {
        "RocksDB (rust-rocksdb 0.24)"
    }

    fn commit(&mut self, height: u64, b: &BlockData) {
        let mut batch = rocksdb::WriteBatch::default();
        batch.put(key(0, &height.to_be_bytes()), &b.body);
        for (i, h) in b.tx_hashes.iter().enumerate() {
            let mut v = height.to_be_bytes().to_vec();
            v.extend_from_slice(&(i as u32).to_be_bytes());
            batch.put(key(1, h), v);
        }
        let record = [7u8; 104];
        for (a, h) in &b.accounts {
            batch.put(key(2, a), record);
            batch.put(key(3, h), record);
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.0.write_opt(batch, &opts).expect("write");
    }

    fn read_account(&self, address: &[u8; 20]) -> bool {
        self.0.get(key(2, address)).expect("get").is_some()
    }
}

fn run(engine: &mut dyn Engine, blocks: u64, reads: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut written: Vec<[u8; 20]> = Vec::new();
    let data: Vec<BlockData> = (0..blocks).map(|_| gen_block(&mut rng)).collect();
    let start = Instant::now();
    for (h, b) in data.iter().enumerate() {
        engine.commit(h as u64, b);
    }
    let commit_secs = start.elapsed().as_secs_f64();
    for b in &data {
        written.extend(b.accounts.iter().map(|(a, _)| *a));
    }
    let probes: Vec<[u8; 20]> = (0..reads).map(|_| written[rng.gen_range(0..written.len())]).collect();
    let start = Instant::now();
    let found = probes.iter().filter(|a| engine.read_account(a)).count();
    let read_secs = start.elapsed().as_secs_f64();
    assert_eq!(found, reads, "every written account is found");
    println!(
        "{:<28} commit: {:>7.1} blocks/s ({:>6.2} ms/block, {} tx-index + {} account records each)   reads: {:>9.0} accounts/s over {} accounts",
        engine.name(),
        blocks as f64 / commit_secs,
        commit_secs * 1000.0 / blocks as f64,
        TXS_PER_BLOCK,
        2 * ACCOUNTS_PER_BLOCK,
        reads as f64 / read_secs,
        written.len()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let blocks: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let reads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");

    let mut redb = Redb(redb::Database::create(dir.path().join("bench.redb")).expect("redb"));
    run(&mut redb, blocks, reads);

    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let mut rocks = Rocks(rocksdb::DB::open(&opts, dir.path().join("rocks")).expect("rocksdb"));
    run(&mut rocks, blocks, reads);
}
