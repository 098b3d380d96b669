//! `trellis bench`: a load generator. Funds fresh sender accounts from a dev account, signs
//! all transfers up front, submits them in JSON-RPC batches to one or more nodes (flat out or
//! at a target rate), and reports submitted and finalized TPS, finality latency, and the
//! machine's signature-recovery ceiling measured in the same run.

use alloy_consensus::TxLegacy;
use alloy_primitives::{Address, Bytes, TxKind, B256, U256, U64};
use alloy_rpc_types_eth::{BlockId, BlockNumberOrTag, TransactionRequest};
use anyhow::{bail, Context as _};
use clap::Args;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::http_client::HttpClient;
use jsonrpsee::rpc_params;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trellis_api::EthApiClient;
use trellis_crypto::AccountKey;

use crate::client::{client, nonce, signed};

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// JSON-RPC endpoint; repeat to spread load over several nodes.
    #[arg(long = "rpc", default_value = "http://127.0.0.1:8545")]
    pub rpc: Vec<String>,
    /// Number of transfers to send.
    #[arg(long, default_value_t = 10_000)]
    pub txs: usize,
    /// Number of distinct sender accounts.
    #[arg(long, default_value_t = 200)]
    pub senders: usize,
    /// Target rate in transactions per second; 0 sends flat out.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Transactions per JSON-RPC batch request.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Send every batch to this many endpoints at once (a client flooding the network with
    /// duplicates); a transaction counts as accepted when one copy is, and the refused copies
    /// are reported as duplicates.
    #[arg(long, default_value_t = 1)]
    pub copies: usize,
    /// Index of the funded dev account that pays for the senders.
    #[arg(long, default_value_t = 0)]
    pub funder: u32,
    /// Validators in the network, for the signature ceiling (default: number of --rpc).
    #[arg(long)]
    pub validators: Option<usize>,
    /// Give up waiting for finality after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// What each transaction does.
    #[arg(long, value_enum, default_value_t = Workload::Transfer)]
    pub workload: Workload,
    /// Evidence records per `submitBatch` transaction (evidence workload).
    #[arg(long, default_value_t = 1_000)]
    pub records_per_tx: usize,
    /// The operation the worst-case workload repeats: a workload name of `trellis bench-gas`
    /// (a precompile case, `keccak-32k` or `arithmetic`).
    #[arg(long, default_value = "blake2f-1")]
    pub worst: String,
    /// Gas of each worst-case transaction (the chain's per-transaction limit by default).
    #[arg(long, default_value_t = trellis_primitives::DEFAULT_MAX_TRANSACTION_GAS)]
    pub tx_gas: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Plain value transfers (21,000 gas).
    Transfer,
    /// `transfer` calls on the example ERC-20 (contracts/src/TrellisToken.sol), deployed first.
    Erc20,
    /// Evidence `submitDigests` calls of `--records-per-tx` random SHA-256 digests each.
    Evidence,
    /// Transactions of `--tx-gas` each that repeat the slowest operation per unit of gas
    /// (`--worst`, after the gas schedule's surcharges): the worst full block, reproduced on
    /// a running chain. The report gives gas finalized per second.
    WorstCase,
}

/// Calldata of one evidence batch of `n` fresh random digests.
fn evidence_batch(n: usize) -> Bytes {
    let digests: Vec<B256> = (0..n)
        .map(|_| B256::from(rand::random::<[u8; 32]>()))
        .collect();
    trellis_sdk::evidence::submit_digests_calldata(
        trellis_system::evidence::HashAlgorithm::Sha256,
        &digests,
    )
}

/// Gas for one evidence batch: four slot writes, an existence read and a log per record
/// (22,700 gas a record measured), within the per-transaction limit.
fn evidence_gas(n: usize) -> u64 {
    (60_000 + 24_000 * n as u64).min(trellis_primitives::DEFAULT_MAX_TRANSACTION_GAS)
}

/// The example ERC-20's build artifact, compiled from contracts/src by contracts/build.mjs.
const TOKEN_ARTIFACT: &str = include_str!("../../../contracts/artifacts/TrellisToken.json");

fn token_deploy_code() -> anyhow::Result<Bytes> {
    use alloy_sol_types::SolValue;
    let artifact: serde_json::Value = serde_json::from_str(TOKEN_ARTIFACT)?;
    let code: Bytes = artifact["bytecode"]
        .as_str()
        .context("artifact has no bytecode")?
        .parse()?;
    let supply = U256::from(10u64).pow(U256::from(30u64));
    let args = ("Bench Token".to_string(), "BEN".to_string(), supply).abi_encode_params();
    Ok([code.to_vec(), args].concat().into())
}

/// Calldata of ERC-20 `transfer(to, value)`.
fn erc20_transfer(to: Address, value: U256) -> Bytes {
    let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
    data.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(to.as_slice());
    data.extend_from_slice(&value.to_be_bytes::<32>());
    data.into()
}

#[derive(Serialize)]
pub struct Report {
    pub workload: Workload,
    /// Work items per transaction (evidence records per batch; 1 otherwise).
    pub units_per_tx: usize,
    pub finalized_units_per_sec: f64,
    pub endpoints: usize,
    pub validators: usize,
    pub sent: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Copies refused because another copy got there first (`--copies`).
    pub duplicates_refused: usize,
    pub finalized: usize,
    pub submit_secs: f64,
    pub submitted_tps: f64,
    pub finalized_tps: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub recoveries_per_core: f64,
    /// Gas of the blocks that carried the workload, per second of the run.
    pub finalized_mgas_per_sec: f64,
    /// The most gas one of those blocks used.
    pub max_block_gas: u64,
    pub cores: usize,
    pub ceiling_tps: f64,
    pub share_of_ceiling: f64,
}

fn transfer(key: &AccountKey, chain_id: u64, nonce: u64, to: Address, value: U256) -> Bytes {
    signed(
        key,
        chain_id,
        nonce,
        TxKind::Call(to),
        value,
        21_000,
        Bytes::new(),
    )
}

/// What the workload's transactions add to: the sink's ether, its token balance for the
/// ERC-20 workload, the number of evidence records for the evidence workload.
async fn sink_value(
    c: &HttpClient,
    workload: Workload,
    token: Option<Address>,
    sink: Address,
) -> anyhow::Result<U256> {
    if workload == Workload::Evidence {
        let data =
            alloy_sol_types::SolCall::abi_encode(&trellis_system::evidence::abi::countCall {});
        let call = TransactionRequest::default()
            .to(trellis_system::EVIDENCE_ADDRESS)
            .input(Bytes::from(data).into());
        let out = c.call(call, BlockId::latest()).await?;
        return Ok(U256::from_be_slice(&out));
    }
    match token {
        None => Ok(c.balance(sink, BlockId::latest()).await?),
        Some(token) => {
            let mut data = vec![0x70, 0xa0, 0x82, 0x31];
            data.extend_from_slice(&[0u8; 12]);
            data.extend_from_slice(sink.as_slice());
            let call = TransactionRequest::default()
                .to(token)
                .input(Bytes::from(data).into());
            let out = c.call(call, BlockId::latest()).await?;
            Ok(U256::from_be_slice(&out))
        }
    }
}

/// Sends set-up transactions from one account and waits until they are all final.
async fn send_setup(
    c: &HttpClient,
    from: Address,
    raws: &[Bytes],
    batch_len: usize,
    final_nonce: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    for chunk in raws.chunks(batch_len) {
        let mut batch = BatchRequestBuilder::new();
        for raw in chunk {
            batch.insert("eth_sendRawTransaction", rpc_params![raw])?;
        }
        let responses = c.batch_request::<B256>(batch).await?;
        if responses.num_failed_calls() > 0 {
            let first = responses.into_iter().find_map(|r| r.err());
            bail!("set-up transactions rejected: {first:?}");
        }
    }
    let deadline = Instant::now() + timeout;
    while nonce(c, from, alloy_rpc_types_eth::BlockId::latest()).await? < final_nonce {
        if Instant::now() > deadline {
            bail!("set-up transactions did not finalize in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Single-core secp256k1 recovery rate, measured on `sample` signed transfers.
fn recovery_rate(sample: usize) -> f64 {
    let key = AccountKey::dev(9_999);
    let txs: Vec<_> = (0..sample as u64)
        .map(|n| {
            key.sign_tx(TxLegacy {
                chain_id: Some(1),
                nonce: n,
                gas_price: 0,
                gas_limit: 21_000,
                to: TxKind::Call(Address::ZERO),
                value: U256::from(1),
                input: Default::default(),
            })
        })
        .collect();
    let start = Instant::now();
    let ok = txs
        .iter()
        .filter(|tx| trellis_crypto::recover_sender(tx).is_ok())
        .count();
    ok as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = execute(args.clone()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "endpoints {}  validators {}",
            report.endpoints, report.validators
        );
        println!(
            "sent {}  accepted {}  rejected {}  finalized {}",
            report.sent, report.accepted, report.rejected, report.finalized
        );
        if report.duplicates_refused > 0 {
            println!("duplicate copies refused {}", report.duplicates_refused);
        }
        println!(
            "submitted {:.0} tx/s over {:.2} s",
            report.submitted_tps, report.submit_secs
        );
        println!("finalized {:.0} tx/s", report.finalized_tps);
        println!(
            "finalized {:.1} Mgas/s; fullest block {} gas",
            report.finalized_mgas_per_sec, report.max_block_gas
        );
        if report.units_per_tx > 1 {
            println!(
                "finalized {:.0} records/s ({} per transaction)",
                report.finalized_units_per_sec, report.units_per_tx
            );
        }
        println!(
            "finality latency p50 {:.0} ms  p99 {:.0} ms",
            report.latency_p50_ms, report.latency_p99_ms
        );
        println!(
            "signature ceiling: {} cores x {:.0} recoveries/s / {} validators = {:.0} tx/s; finalized = {:.1}% of it",
            report.cores,
            report.recoveries_per_core,
            report.validators,
            report.ceiling_tps,
            report.share_of_ceiling * 100.0
        );
    }
    Ok(())
}

pub async fn execute(args: BenchArgs) -> anyhow::Result<Report> {
    if args.rpc.is_empty() || args.senders == 0 || args.txs == 0 || args.batch == 0 {
        bail!("need at least one endpoint, sender, transaction and a non-zero batch size");
    }
    if !(1..=trellis_system::evidence::MAX_BATCH).contains(&args.records_per_tx) {
        bail!(
            "--records-per-tx must be 1 to {}",
            trellis_system::evidence::MAX_BATCH
        );
    }
    let clients: Vec<HttpClient> = args
        .rpc
        .iter()
        .map(|u| client(u))
        .collect::<anyhow::Result<_>>()?;
    let main = &clients[0];
    let chain_id: U64 = main.chain_id().await.context("eth_chainId")?;
    let chain_id: u64 = chain_id.to();

    // Fund fresh senders from the dev account (and deploy the token for the ERC-20 workload).
    let funder = AccountKey::dev(args.funder);
    let mut next_nonce = nonce(
        main,
        funder.address(),
        alloy_rpc_types_eth::BlockId::pending(),
    )
    .await?;
    let senders: Vec<AccountKey> = (0..args.senders).map(|_| AccountKey::random()).collect();
    let per_sender = args.txs.div_ceil(args.senders);
    let mut setup = Vec::new();
    // Fresh senders must belong to an organisation: the funder (an organisation admin)
    // registers them to its own.
    for chunk in senders.chunks(trellis_system::governance::MAX_ACCOUNTS_PER_CALL) {
        let call = trellis_system::governance::abi::addAccountsCall {
            accounts: chunk.iter().map(|s| s.address()).collect(),
        };
        setup.push(signed(
            &funder,
            chain_id,
            next_nonce,
            TxKind::Call(trellis_system::GOVERNANCE_ADDRESS),
            U256::ZERO,
            20_000_000,
            alloy_sol_types::SolCall::abi_encode(&call).into(),
        ));
        next_nonce += 1;
    }
    let worst = match args.workload {
        Workload::WorstCase => {
            let (runtime, input) = crate::gasbench::loop_contract(&args.worst)?;
            let address = funder.address().create(next_nonce);
            setup.push(signed(
                &funder,
                chain_id,
                next_nonce,
                TxKind::Create,
                U256::ZERO,
                3_000_000,
                crate::gasbench::deploy_code(&runtime),
            ));
            next_nonce += 1;
            Some((address, input))
        }
        _ => None,
    };
    let token = match args.workload {
        Workload::Transfer | Workload::Evidence | Workload::WorstCase => None,
        Workload::Erc20 => {
            let address = funder.address().create(next_nonce);
            setup.push(signed(
                &funder,
                chain_id,
                next_nonce,
                TxKind::Create,
                U256::ZERO,
                3_000_000,
                token_deploy_code()?,
            ));
            next_nonce += 1;
            Some(address)
        }
    };
    for s in &senders {
        setup.push(transfer(
            &funder,
            chain_id,
            next_nonce,
            s.address(),
            U256::from(10u64).pow(U256::from(18u64)),
        ));
        next_nonce += 1;
        if let Some(token) = token {
            let data = erc20_transfer(s.address(), U256::from(10u64).pow(U256::from(24u64)));
            setup.push(signed(
                &funder,
                chain_id,
                next_nonce,
                TxKind::Call(token),
                U256::ZERO,
                100_000,
                data,
            ));
            next_nonce += 1;
        }
    }
    send_setup(
        main,
        funder.address(),
        &setup,
        args.batch,
        next_nonce,
        Duration::from_secs(args.timeout_secs),
    )
    .await?;

    // Pre-sign everything, interleaving senders so each sender's nonces arrive in order.
    let sink = Address::repeat_byte(0x5e);
    let mut txs: Vec<(B256, Bytes)> = Vec::with_capacity(args.txs);
    'outer: for n in 0..per_sender as u64 {
        for s in &senders {
            if txs.len() == args.txs {
                break 'outer;
            }
            let raw = match token {
                None if worst.is_some() => {
                    let (contract, input) = worst.clone().unwrap_or_default();
                    signed(
                        s,
                        chain_id,
                        n,
                        TxKind::Call(contract),
                        U256::ZERO,
                        args.tx_gas,
                        input,
                    )
                }
                None if args.workload == Workload::Evidence => signed(
                    s,
                    chain_id,
                    n,
                    TxKind::Call(trellis_system::EVIDENCE_ADDRESS),
                    U256::ZERO,
                    evidence_gas(args.records_per_tx),
                    evidence_batch(args.records_per_tx),
                ),
                None => transfer(s, chain_id, n, sink, U256::from(1)),
                Some(token) => signed(
                    s,
                    chain_id,
                    n,
                    TxKind::Call(token),
                    U256::ZERO,
                    100_000,
                    erc20_transfer(sink, U256::from(1)),
                ),
            };
            txs.push((alloy_primitives::keccak256(&raw), raw));
        }
    }

    let sink_before = sink_value(main, args.workload, token, sink).await?;
    let validators = args.validators.unwrap_or(args.rpc.len());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let recoveries_per_core = tokio::task::spawn_blocking(|| recovery_rate(20_000)).await?;

    // Watch committed blocks and note when each transaction first appears, and each
    // block's gas.
    let seen: Arc<Mutex<HashMap<B256, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let block_gas: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let watcher = {
        let c = main.clone();
        let seen = seen.clone();
        let block_gas = block_gas.clone();
        tokio::spawn(async move {
            let mut next: u64 = match c.block_number().await {
                Ok(n) => n.to::<u64>() + 1,
                Err(_) => return,
            };
            loop {
                let tip: u64 = match c.block_number().await {
                    Ok(n) => n.to(),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                while next <= tip {
                    let block = c
                        .block_by_number(BlockNumberOrTag::Number(next), false)
                        .await;
                    let Ok(Some(block)) = block else { break };
                    let now = Instant::now();
                    if !block.transactions.is_empty() {
                        block_gas.lock().push(block.header.gas_used);
                    }
                    let mut seen = seen.lock();
                    for h in block.transactions.hashes() {
                        seen.entry(h).or_insert(now);
                    }
                    next += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // Submit.
    let submitted: Arc<Mutex<HashMap<B256, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let rejected = Arc::new(Mutex::new(0usize));
    let duplicates = Arc::new(Mutex::new(0usize));
    let copies = args.copies.clamp(1, clients.len());
    let start = Instant::now();
    let batches: Vec<Vec<(B256, Bytes)>> = txs.chunks(args.batch).map(|c| c.to_vec()).collect();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut handles = Vec::new();
    let sending = crate::progress::bar(txs.len() as u64, "transactions sent");
    for (i, batch) in batches.into_iter().enumerate() {
        if args.rate > 0 {
            let due = start + Duration::from_secs_f64((i * args.batch) as f64 / args.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = semaphore.clone().acquire_owned().await?;
        let targets: Vec<_> = (0..copies)
            .map(|k| clients[(i + k) % clients.len()].clone())
            .collect();
        let submitted = submitted.clone();
        let rejected = rejected.clone();
        let duplicates = duplicates.clone();
        let sending = sending.clone();
        handles.push(tokio::spawn(async move {
            let _permit = permit;
            let _sent = scopeguard_inc(&sending, batch.len() as u64);
            let request = || {
                let mut req = BatchRequestBuilder::new();
                for (_, raw) in &batch {
                    req.insert("eth_sendRawTransaction", rpc_params![raw])
                        .ok()?;
                }
                Some(req)
            };
            let sent_at = Instant::now();
            let answers = futures::future::join_all(targets.iter().map(|c| async move {
                match request() {
                    Some(req) => c.batch_request::<B256>(req).await.ok(),
                    None => None,
                }
            }))
            .await;
            // Per transaction: how many copies were accepted.
            let mut accepted = vec![0usize; batch.len()];
            for responses in answers.into_iter().flatten() {
                for (n, r) in accepted.iter_mut().zip(responses) {
                    *n += usize::from(r.is_ok());
                }
            }
            let mut sub = submitted.lock();
            for ((hash, _), n) in batch.iter().zip(accepted) {
                if n == 0 {
                    *rejected.lock() += 1;
                } else {
                    sub.insert(*hash, sent_at);
                    *duplicates.lock() += copies - n;
                }
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    sending.finish_and_clear();
    let submit_secs = start.elapsed().as_secs_f64();
    let submitted = Arc::try_unwrap(submitted)
        .map_err(|_| anyhow::anyhow!("submission tasks still running"))?
        .into_inner();

    // Wait for finality.
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let finalizing = crate::progress::bar(submitted.len() as u64, "transactions final");
    loop {
        let done = {
            let seen = seen.lock();
            if finalizing.is_hidden() {
                // No terminal: stop at the first one missing (counting costs the machine
                // under test CPU).
                submitted.keys().all(|h| seen.contains_key(h))
            } else {
                let n = submitted.keys().filter(|h| seen.contains_key(*h)).count();
                finalizing.set_position(n as u64);
                n == submitted.len()
            }
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    finalizing.finish_and_clear();
    watcher.abort();
    let seen = seen.lock().clone();
    let mut latencies: Vec<f64> = Vec::new();
    let mut last = start;
    for (h, sent) in &submitted {
        if let Some(at) = seen.get(h) {
            latencies.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
            last = last.max(*at);
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    // Every finalized transaction must also have done its work (no silent reverts).
    let units_per_tx = match args.workload {
        Workload::Evidence => args.records_per_tx,
        Workload::Transfer | Workload::Erc20 | Workload::WorstCase => 1,
    };
    let moved = sink_value(main, args.workload, token, sink).await? - sink_before;
    if args.workload == Workload::WorstCase {
        // The loop contract keeps no state: its transactions must not have failed.
        for (h, _) in submitted.iter().take(200) {
            if let Some(receipt) = main.transaction_receipt(*h).await? {
                if !receipt.status() {
                    bail!(
                        "worst-case transaction {h} failed in block {}",
                        crate::gov::block_of(&receipt)
                    );
                }
            }
        }
    } else if moved != U256::from(latencies.len() * units_per_tx) {
        bail!(
            "{} transactions finalized but they added {moved} (expected {}): some reverted",
            latencies.len(),
            latencies.len() * units_per_tx
        );
    }
    let finalized = latencies.len();
    let finalized_secs = last.duration_since(start).as_secs_f64().max(f64::EPSILON);
    let ceiling_tps = cores as f64 * recoveries_per_core / validators.max(1) as f64;
    let finalized_tps = finalized as f64 / finalized_secs;
    let rejected = *rejected.lock();
    let duplicates_refused = *duplicates.lock();
    let block_gas = block_gas.lock().clone();
    Ok(Report {
        finalized_mgas_per_sec: block_gas.iter().sum::<u64>() as f64 / finalized_secs / 1e6,
        max_block_gas: block_gas.iter().copied().max().unwrap_or(0),
        workload: args.workload,
        units_per_tx,
        finalized_units_per_sec: finalized_tps * units_per_tx as f64,
        endpoints: clients.len(),
        validators,
        sent: txs.len(),
        accepted: submitted.len(),
        rejected,
        duplicates_refused,
        finalized,
        submit_secs,
        submitted_tps: submitted.len() as f64 / submit_secs.max(f64::EPSILON),
        finalized_tps,
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p99_ms: percentile(&latencies, 0.99),
        recoveries_per_core,
        cores,
        ceiling_tps,
        share_of_ceiling: finalized_tps / ceiling_tps,
    })
}

/// Advances `bar` by `n` when dropped (when a batch's task ends, however it ends).
fn scopeguard_inc(bar: &indicatif::ProgressBar, n: u64) -> impl Drop {
    struct Inc(indicatif::ProgressBar, u64);
    impl Drop for Inc {
        fn drop(&mut self) {
            self.0.inc(self.1);
        }
    }
    Inc(bar.clone(), n)
}
