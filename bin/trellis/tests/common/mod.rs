//! Helpers for end-to-end tests: real `trellis` processes on loopback ports chosen at run
//! time, driven through their JSON-RPC API.

#![allow(dead_code)]

#[path = "../../src/ports.rs"]
mod ports;

use alloy_consensus::{TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, B256, U256, U64};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use trellis_crypto::AccountKey;

pub const CHAIN_ID: u64 = 1337;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_trellis"))
}

pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free loopback ports, below the kernel's ephemeral range (`src/ports.rs`):
/// a port from that range may be taken by the nodes' dials or this test's requests before the
/// node listens on it (seen once: a hosted chain whose RPC port was taken stopped its
/// process). Every listener is held until all are chosen: a node whose consensus port equals
/// its RPC port runs without a consensus listener (seen once in the garbage-proposer test).
pub fn free_ports(n: usize) -> Vec<u16> {
    ports::free_ports(n).expect("free loopback ports")
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(args: &[&str], log: &Path) -> Proc {
        Proc::spawn_with_env(args, log, &[])
    }

    /// Like [`Proc::spawn`] with extra environment variables.
    pub fn spawn_with_env(args: &[&str], log: &Path, env: &[(&str, &str)]) -> Proc {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(bin())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn trellis");
        Proc { child }
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.sigkill();
    }
}

pub fn client(url: &str) -> HttpClient {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .build(url)
        .expect("http client")
}

/// The status, head and body of one HTTP/1.0 request to a loopback port (the server closes
/// the connection when done).
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    http_exchange(stream, method, path, headers, body).await
}

/// One HTTP/1.0 request over `stream` (plain or TLS): status, head and body.
pub async fn http_exchange<S>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw).await {
        Ok(_) => {}
        // A TLS peer may close without close_notify once it has answered.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => panic!("reading the response: {e}"),
    }
    let response = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head.to_string(), body.to_string())
}

/// The body of `GET path` on a loopback port; panics unless the answer is 200.
pub async fn http_get(port: u16, path: &str) -> String {
    let (status, head, body) = http_request(port, "GET", path, &[], "").await;
    assert_eq!(status, 200, "{head}");
    body
}

pub async fn wait_for_rpc(url: &str, limit: Duration) {
    let c = client(url);
    let start = Instant::now();
    loop {
        if c.request::<U64, _>("eth_blockNumber", rpc_params![])
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "node at {url} did not answer within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `trellis dev` in `dir` on a free port; returns the process and its RPC URL.
pub async fn start_dev(dir: &Path, log_name: &str) -> (Proc, String) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let proc = Proc::spawn(
        &[
            "dev",
            "--data-dir",
            dir.to_str().expect("utf-8 path"),
            "--rpc",
            &format!("127.0.0.1:{port}"),
            "--block-interval-ms",
            "200",
        ],
        &dir.with_file_name(log_name),
    );
    wait_for_rpc(&url, Duration::from_secs(60)).await;
    (proc, url)
}

pub fn legacy(
    key: &AccountKey,
    nonce: u64,
    to: TxKind,
    value: U256,
    gas_limit: u64,
    input: Bytes,
) -> TxEnvelope {
    key.sign_tx(TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce,
        gas_price: 0,
        gas_limit,
        to,
        value,
        input,
    })
}

pub fn transfer(key: &AccountKey, nonce: u64, to: Address, value: u64) -> Bytes {
    Bytes::from(
        legacy(
            key,
            nonce,
            TxKind::Call(to),
            U256::from(value),
            21_000,
            Bytes::new(),
        )
        .encoded_2718(),
    )
}

/// Sends a raw transaction; returns the JSON-RPC error (code, message) on rejection.
pub async fn send_raw(c: &HttpClient, raw: &Bytes) -> Result<B256, (i32, String)> {
    c.request::<B256, _>("eth_sendRawTransaction", rpc_params![raw])
        .await
        .map_err(|e| match e {
            jsonrpsee::core::ClientError::Call(obj) => (obj.code(), obj.message().to_string()),
            other => (0, other.to_string()),
        })
}

pub async fn send_batch(c: &HttpClient, raws: &[Bytes]) -> Vec<Result<B256, String>> {
    let mut batch = BatchRequestBuilder::new();
    for raw in raws {
        batch
            .insert("eth_sendRawTransaction", rpc_params![raw])
            .expect("params");
    }
    c.batch_request::<B256>(batch)
        .await
        .expect("batch request")
        .into_iter()
        .map(|r| r.map_err(|e| e.message().to_string()))
        .collect()
}

pub async fn block_number(c: &HttpClient) -> u64 {
    c.request::<U64, _>("eth_blockNumber", rpc_params![])
        .await
        .expect("eth_blockNumber")
        .to()
}

pub async fn nonce(c: &HttpClient, a: Address, tag: &str) -> u64 {
    c.request::<U64, _>("eth_getTransactionCount", rpc_params![a, tag])
        .await
        .expect("eth_getTransactionCount")
        .to()
}

pub async fn balance(c: &HttpClient, a: Address) -> U256 {
    c.request::<U256, _>("eth_getBalance", rpc_params![a, "latest"])
        .await
        .expect("eth_getBalance")
}

pub async fn block(c: &HttpClient, n: u64) -> Value {
    c.request::<Value, _>("eth_getBlockByNumber", rpc_params![U64::from(n), false])
        .await
        .expect("eth_getBlockByNumber")
}

pub async fn receipt(c: &HttpClient, hash: B256) -> Option<Value> {
    let r: Value = c
        .request("eth_getTransactionReceipt", rpc_params![hash])
        .await
        .expect("eth_getTransactionReceipt");
    (!r.is_null()).then_some(r)
}

/// Like [`receipt`] but reports transport failures (e.g. a killed node) instead of panicking.
pub async fn try_receipt(
    c: &HttpClient,
    hash: B256,
) -> Result<Option<Value>, jsonrpsee::core::ClientError> {
    let r: Value = c
        .request("eth_getTransactionReceipt", rpc_params![hash])
        .await?;
    Ok((!r.is_null()).then_some(r))
}

pub async fn wait_receipt(c: &HttpClient, hash: B256, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        if let Some(r) = receipt(c, hash).await {
            return r;
        }
        assert!(
            start.elapsed() < limit,
            "no receipt for {hash} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_height(c: &HttpClient, height: u64, limit: Duration) {
    let start = Instant::now();
    while block_number(c).await < height {
        assert!(
            start.elapsed() < limit,
            "height {height} not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_nonce(c: &HttpClient, a: Address, n: u64, limit: Duration) {
    let start = Instant::now();
    while nonce(c, a, "latest").await < n {
        assert!(
            start.elapsed() < limit,
            "nonce {n} of {a} not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a `trellis` command in `dir` (without backtraces) and returns what it did.
pub fn cli_output(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run trellis")
}

/// Runs a `trellis` command in `dir` and returns its standard output; panics on failure.
pub fn run_cli(dir: &Path, args: &[&str]) -> String {
    let out = cli_output(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the CLI in `dir` expecting it to fail; returns its stderr.
pub fn cli_fails(dir: &Path, args: &[&str]) -> String {
    let out = cli_output(dir, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[derive(serde::Deserialize)]
pub struct TestnetInfo {
    pub nodes: Vec<TestnetNode>,
    #[serde(default)]
    pub subchains: Vec<TestnetSubchain>,
}

#[derive(serde::Deserialize)]
pub struct TestnetSubchain {
    pub chain_id: u64,
    pub rpc: Vec<String>,
}

#[derive(serde::Deserialize)]
pub struct TestnetNode {
    pub pid: u32,
    pub rpc: String,
    pub p2p: String,
    #[serde(default)]
    pub gossip: String,
    pub config: PathBuf,
}

/// A `trellis testnet up` network whose processes are killed however the test ends.
pub struct Testnet {
    pub info: TestnetInfo,
}

impl Testnet {
    /// Starts `n` validators (one organisation each, administered by dev account i) with
    /// `accounts` funded dev accounts.
    pub fn up(dir: &Path, n: usize, accounts: u32) -> Testnet {
        Testnet::up_with(dir, n, accounts, &[])
    }

    /// [`Testnet::up`] with more `trellis testnet up` arguments (`--subchains 2`).
    pub fn up_with(dir: &Path, n: usize, accounts: u32, extra: &[&str]) -> Testnet {
        let out = Command::new(bin())
            .args([
                "testnet",
                "up",
                "-n",
                &n.to_string(),
                "--accounts",
                &accounts.to_string(),
            ])
            .args(extra)
            .arg("--dir")
            .arg(dir)
            .output()
            .expect("testnet up");
        let info: TestnetInfo = serde_json::from_str(
            &std::fs::read_to_string(dir.join("testnet.json")).expect("testnet.json"),
        )
        .expect("testnet info");
        let net = Testnet { info };
        assert!(
            out.status.success(),
            "testnet up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        net
    }

    pub fn urls(&self) -> Vec<String> {
        self.info.nodes.iter().map(|n| n.rpc.clone()).collect()
    }

    pub fn kill(&self, i: usize) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.info.nodes[i].pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for i in 0..self.info.nodes.len() {
            self.kill(i);
        }
    }
}

/// Starts a one-validator chain from `trellis keys` and `trellis genesis` (three funded dev
/// accounts) with `extra` added to its `node.toml`; returns the process and RPC URL.
pub async fn start_single_node(dir: &Path, extra: &str) -> (Proc, String) {
    std::fs::create_dir_all(dir).expect("node directory");
    let shown = run_cli(dir, &["keys", "new", "--out", "node_key.json"]);
    let public = shown
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("public key printed")
        .to_string();
    run_cli(
        dir,
        &[
            "genesis",
            "--validator",
            &public,
            "--dev-accounts",
            "3",
            "--out",
            "genesis.json",
        ],
    );
    let [port, p2p, gossip] = free_ports(3)[..] else {
        unreachable!("three ports asked for")
    };
    // `extra` is `[rpc]` keys, other tables, or top-level keys.
    let (top, rpc, rest) = match extra.strip_prefix("[rpc]\n") {
        Some(rpc_keys) => ("", rpc_keys, ""),
        None if extra.starts_with('[') => ("", "", extra),
        None => (extra, "", ""),
    };
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "moniker = \"single\"\n{top}[rpc]\nlisten = \"127.0.0.1:{port}\"\n{rpc}[p2p]\nlisten = \"/ip4/127.0.0.1/tcp/{p2p}\"\ngossip_listen = \"/ip4/127.0.0.1/tcp/{gossip}\"\n{rest}",
        ),
    )
    .expect("config");
    let node = Proc::spawn(
        &[
            "node",
            "--config",
            dir.join("node.toml").to_str().expect("path"),
        ],
        &dir.join("node.log"),
    );
    // A node that serves TLS (its certificate names `localhost`) is only waited for here.
    if extra.contains("[rpc.tls]") {
        wait_for_port(port, Duration::from_secs(60)).await;
        return (node, format!("https://localhost:{port}"));
    }
    let url = format!("http://127.0.0.1:{port}");
    wait_for_http(port, Duration::from_secs(60)).await;
    (node, url)
}

/// Waits until a loopback port answers HTTP at all (a node that restricts reads answers
/// 401 without a token, which still says it serves).
pub async fn wait_for_http(port: u16, limit: Duration) {
    wait_for_port(port, limit).await;
    http_request(port, "GET", "/health", &[], "").await;
}

/// Waits until a loopback port accepts connections.
pub async fn wait_for_port(port: u16, limit: Duration) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < limit,
            "nothing answered on port {port} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `trellis gov <args[0]> --rpc RPC --dev-account N <args[1..]>` in `dir`.
pub fn gov(dir: &Path, rpc: &str, dev_account: u32, args: &[&str]) -> String {
    let account = dev_account.to_string();
    let mut all = vec!["gov", args[0], "--rpc", rpc, "--dev-account", &account];
    all.extend_from_slice(&args[1..]);
    run_cli(dir, &all)
}

/// The id in the CLI's "proposal N created" line.
pub fn proposal_id(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("proposal ")?
                .split_once(" created")
                .map(|(id, _)| id.to_owned())
        })
        .unwrap_or_else(|| panic!("no proposal created in: {out}"))
}
