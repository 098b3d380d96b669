//! Who may read, at the door of a live node (`rpc.read_access`): callers without a token,
//! with an unknown, revoked or expired token, or with another organisation's token are
//! refused (401/403) and served nothing; the node's organisation, supervisors and its
//! operator read; the resolution paths stay public when asked; a WebSocket connection stops
//! being served once its token is revoked. Tokens are issued and revoked on chain through
//! the CLI.

mod common;

use alloy_primitives::B256;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use trellis_crypto::AccountKey;

const ADMIN_TOKEN: &str = "operator-secret-0123456789";
const LIMIT: Duration = Duration::from_secs(60);
/// Admins of the organisations the test adds (dev accounts the genesis does not register).
const OTHER_MEMBER: u32 = 5;
const REGULATOR: u32 = 30;

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// `eth_blockNumber` over HTTP with an optional bearer token: status, head and body.
async fn block_number_as(port: u16, token: Option<&str>) -> (u16, String, Value) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    block_number_over(tcp, token).await
}

/// `eth_blockNumber` over `stream` (plain or TLS) with an optional bearer token.
async fn block_number_over<S>(stream: S, token: Option<&str>) -> (u16, String, Value)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let (status, head, body) = http_exchange(
        stream,
        "POST",
        "/",
        &headers,
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
    )
    .await;
    let body = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON body: {body}"));
    (status, head, body)
}

/// Asserts that `token` is refused with `status` and a message containing `expected`.
async fn refused(port: u16, token: Option<&str>, status: u16, expected: &str) {
    let (got, head, body) = block_number_as(port, token).await;
    assert_eq!(got, status, "{head}\n{body}");
    assert!(body.get("result").is_none(), "nothing is served: {body}");
    assert_eq!(body["error"]["code"], -32001, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    if status == 401 {
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
    }
}

async fn served(port: u16, token: &str) {
    let (status, head, body) = block_number_as(port, Some(token)).await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body["result"].is_string(), "{body}");
}

/// Runs `trellis <command> --rpc URL --token ADMIN <args>` against the node, as the
/// operator.
fn cli(dir: &Path, url: &str, command: &[&str], args: &[&str]) -> String {
    let mut all = command.to_vec();
    all.extend_from_slice(&["--rpc", url, "--token", ADMIN_TOKEN]);
    all.extend_from_slice(args);
    run_cli(dir, &all)
}

/// Issues a read token as dev account `admin`; returns the token.
fn issue(dir: &Path, url: &str, admin: u32, extra: &[&str]) -> String {
    let admin = admin.to_string();
    let mut args = vec!["--dev-account", admin.as_str()];
    args.extend_from_slice(extra);
    let out = cli(dir, url, &["org", "token", "issue"], &args);
    out.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_owned()
}

fn add_org(dir: &Path, url: &str, id: &str, admin: u32, supervisor: bool) {
    let admin = AccountKey::dev(admin).address().to_string();
    let mut args = vec![
        "--dev-account",
        "0",
        "add-org",
        "--id",
        id,
        "--admin",
        &admin,
    ];
    if supervisor {
        args.extend_from_slice(&["--supervisor", "--no-member"]);
    }
    let out = cli(dir, url, &["gov", "propose"], &args);
    assert!(out.contains("passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_nodes_organisation_supervisors_and_the_operator_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut node, url) = start_single_node(
        dir,
        &format!(
            "[rpc]\nadmin_token = \"{ADMIN_TOKEN}\"\nread_access = \"organization\"\npublic_resolution = true\n"
        ),
    )
    .await;
    let port = port_of(&url);

    // Nobody without a token; the operator with the admin token.
    refused(port, None, 401, "authentication required").await;
    refused(port, Some("short"), 401, "malformed read token").await;
    refused(
        port,
        Some(&format!("trt_{}", "0".repeat(64))),
        401,
        "unknown read token",
    )
    .await;
    served(port, ADMIN_TOKEN).await;
    // REST answers in its own shape; the resolution paths and /health stay public.
    let (status, _, body) = http_request(port, "GET", "/health", &[], "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http_request(port, "GET", "/health/ready", &[], "").await;
    assert_eq!(
        status, 200,
        "a single validator that commits is ready: {body}"
    );
    assert!(body.contains(r#""status":"ready""#), "{body}");
    let (status, _, body) = http_request(
        port,
        "GET",
        &format!("/v1/evidence/{}", B256::repeat_byte(7)),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 404, "served (and not found), not refused: {body}");
    let (status, _, body) = http_request(port, "GET", "/v1/other", &[], "").await;
    assert_eq!(status, 401, "{body}");
    let body: Value = serde_json::from_str(&body).expect("REST error");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    // A transaction without a token changes nothing.
    let sender = AccountKey::dev(1);
    let raw = transfer(&sender, 0, sender.address(), 0);
    let (status, _, body) = http_request(
        port,
        "POST",
        "/",
        &[("Content-Type", "application/json")],
        &format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["{raw}"]}}"#
        ),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    // A second member and a supervisor join; each organisation's admin issues a token.
    // (The supervisor first: while org1 is the only member its approval passes each.)
    add_org(dir, &url, "regulator", REGULATOR, true);
    add_org(dir, &url, "org2", OTHER_MEMBER, false);
    let operator = client_with(&url, ADMIN_TOKEN);
    let h = block_number(&operator).await;
    wait_height(&operator, h + 1, LIMIT).await;
    let own = issue(dir, &url, 0, &["--label", "org1 app"]);
    let other = issue(dir, &url, OTHER_MEMBER, &["--label", "org2 app"]);
    let supervisor = issue(dir, &url, REGULATOR, &["--label", "audit"]);

    served(port, &own).await;
    served(port, &supervisor).await;
    refused(
        port,
        Some(&other),
        403,
        "this node serves organisation org1",
    )
    .await;
    // The CLI reads with a token too, and lists what was issued (hashes, never tokens).
    let listed = run_cli(
        dir,
        &[
            "org", "token", "list", "org2", "--rpc", &url, "--token", &own,
        ],
    );
    assert!(listed.contains("org2 app"), "{listed}");
    assert!(!listed.contains(&other), "a listing never shows a token");
    let refused_cli = cli_fails(dir, &["org", "list", "--rpc", &url]);
    assert!(refused_cli.contains("401"), "{refused_cli}");
    assert!(
        refused_cli.contains("hint: the node restricts reads: pass --token"),
        "{refused_cli}"
    );
    assert_eq!(
        nonce(&client_with(&url, &own), sender.address(), "latest").await,
        0
    );

    // The explorer in a browser: refused with a page that links to signing in; a token pasted
    // there becomes a session cookie that explorer pages (and nothing else) accept.
    let (status, _, body) = http_request(port, "GET", "/explorer", &[], "").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("href=\"/explorer/login\""), "{body}");
    let (status, _, body) = http_request(port, "GET", "/explorer/login", &[], "").await;
    assert_eq!(status, 200, "{body}");
    let (status, head, _) = http_request(
        port,
        "POST",
        "/explorer/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={own}"),
    )
    .await;
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {head}"))
        .to_owned();
    let (status, _, body) =
        http_request(port, "GET", "/explorer", &[("Cookie", &cookie)], "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = http_request(
        port,
        "POST",
        "/",
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
    )
    .await;
    assert_eq!(status, 401, "JSON-RPC never reads the cookie");
    let (_, head, _) = http_request(
        port,
        "POST",
        "/explorer/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={other}"),
    )
    .await;
    let other_cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_owned();
    let (status, _, body) =
        http_request(port, "GET", "/explorer", &[("Cookie", &other_cookie)], "").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("this node serves organisation org1"),
        "{body}"
    );

    // A WebSocket connection opened with a token is served until the token is revoked.
    let ws = WsClientBuilder::default()
        .set_headers(bearer(&supervisor))
        .build(url.replace("http://", "ws://"))
        .await
        .expect("WebSocket with a supervisor's token");
    let _: alloy_primitives::U64 = ws
        .request("eth_blockNumber", rpc_params![])
        .await
        .expect("served");
    assert!(
        WsClientBuilder::default()
            .build(url.replace("http://", "ws://"))
            .await
            .is_err(),
        "no WebSocket without a token"
    );
    // Revoked by its own organisation's admin (with its own token as the read credential).
    run_cli(
        dir,
        &[
            "org",
            "token",
            "revoke",
            &supervisor,
            "--dev-account",
            &REGULATOR.to_string(),
            "--rpc",
            &url,
            "--token",
            &own,
        ],
    );
    refused(port, Some(&supervisor), 401, "was revoked at block").await;
    let err = ws
        .request::<alloy_primitives::U64, _>("eth_blockNumber", rpc_params![])
        .await
        .expect_err("the open connection is refused too");
    assert!(err.to_string().contains("revoked"), "{err}");

    // Expiry, by the node's clock.
    let short = issue(dir, &url, 0, &["--label", "short", "--expires-in", "2s"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let h = block_number(&client_with(&url, &own)).await;
    wait_height(&client_with(&url, &own), h + 1, LIMIT).await;
    refused(port, Some(&short), 401, "expired").await;

    // Under `consortium` every member organisation reads; revoked tokens stay refused.
    node.sigkill();
    let config = std::fs::read_to_string(dir.join("node.toml")).expect("config");
    std::fs::write(
        dir.join("node.toml"),
        config.replace("\"organization\"", "\"consortium\""),
    )
    .expect("config");
    let _node = Proc::spawn(
        &[
            "node",
            "--config",
            dir.join("node.toml").to_str().expect("path"),
        ],
        &dir.join("node2.log"),
    );
    wait_for_http(port, LIMIT).await;
    served(port, &other).await;
    served(port, &own).await;
    refused(port, Some(&supervisor), 401, "revoked").await;
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    headers
}

fn client_with(url: &str, token: &str) -> jsonrpsee::http_client::HttpClient {
    jsonrpsee::http_client::HttpClientBuilder::default()
        .set_headers(bearer(token))
        .build(url)
        .expect("client")
}

/// Writes `name.crt` and `name.key` (PEM) into `dir`; returns their paths.
fn write_pem(
    dir: &Path,
    name: &str,
    cert: &rcgen::Certificate,
    key: &rcgen::KeyPair,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).expect("certificate");
    std::fs::write(&k, key.serialize_pem()).expect("key");
    (c, k)
}

/// A self-signed client certificate named `name`, written into `dir`.
fn client_certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    write_pem(dir, name, &cert, &key)
}

/// `eth_blockNumber` over TLS, trusting `ca` and presenting `identity` (certificate and
/// key files) if given, with an optional bearer token.
async fn tls_block_number(
    port: u16,
    ca: &Path,
    identity: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    token: Option<&str>,
) -> (u16, String, Value) {
    let files = trellis_sdk::tls::TlsFiles {
        ca_cert: Some(ca),
        client_cert: identity.map(|(c, k)| (c.as_path(), k.as_path())),
    };
    let config = trellis_sdk::tls::client_config(&files).expect("client TLS");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    block_number_over(stream, token).await
}

/// Over TLS (`[rpc.tls]`) a client certificate that the node's organisation registered on
/// chain reads like its read token; no certificate, an unregistered one and a revoked one
/// are refused and served nothing; tokens still work over TLS; plain HTTP gets no answer;
/// the CLI reaches the node with --ca-cert and authenticates with --client-cert.
#[tokio::test(flavor = "multi_thread")]
async fn a_registered_client_certificate_reads_over_tls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir).expect("dir");
    // A CA, and the node's certificate for `localhost` signed by it.
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let (ca_pem, _) = write_pem(dir, "ca", &ca, &ca_key);
    let node_key = rcgen::KeyPair::generate().expect("key");
    let node_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&node_key, &ca, &ca_key)
        .expect("node certificate");
    write_pem(dir, "node", &node_cert, &node_key);
    let member = client_certificate(dir, "org1-reader");
    let stranger = client_certificate(dir, "stranger");

    let (_node, url) = start_single_node(
        dir,
        &format!(
            "[rpc]\nadmin_token = \"{ADMIN_TOKEN}\"\nread_access = \"organization\"\n[rpc.tls]\ncert = \"node.crt\"\nkey = \"node.key\"\n"
        ),
    )
    .await;
    let port = port_of(&url);
    let ca_arg = ca_pem.to_str().expect("path");

    // Plain HTTP gets no HTTP answer from a TLS port.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        tcp.write_all(b"GET /health HTTP/1.0\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
        assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    }

    // Wait for the chain over TLS, as the operator.
    let start = std::time::Instant::now();
    while tls_block_number(port, &ca_pem, None, Some(ADMIN_TOKEN))
        .await
        .0
        != 200
    {
        assert!(start.elapsed() < LIMIT, "the node does not answer over TLS");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let expect_refused = |(status, head, body): (u16, String, Value), code: u16, text: &str| {
        assert_eq!(status, code, "{head}\n{body}");
        assert!(body.get("result").is_none(), "nothing is served: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(text), "{message:?} lacks {text:?}");
    };
    expect_refused(
        tls_block_number(port, &ca_pem, None, None).await,
        401,
        "authentication required",
    );
    expect_refused(
        tls_block_number(port, &ca_pem, Some(&member), None).await,
        401,
        "unknown read token or client certificate",
    );

    // org1's admin registers the member certificate through the CLI, over TLS.
    let out = run_cli(
        dir,
        &[
            "org",
            "token",
            "issue",
            "--rpc",
            &url,
            "--ca-cert",
            ca_arg,
            "--token",
            ADMIN_TOKEN,
            "--dev-account",
            "0",
            "--label",
            "org1 reader",
            "--cert",
            member.0.to_str().expect("path"),
        ],
    );
    assert!(!out.contains("token: "), "no token is generated: {out}");
    let hash = out
        .lines()
        .find_map(|l| l.strip_prefix("hash: "))
        .unwrap_or_else(|| panic!("no hash in {out}"))
        .to_owned();
    let h = u64::from_str_radix(
        tls_block_number(port, &ca_pem, None, Some(ADMIN_TOKEN))
            .await
            .2["result"]
            .as_str()
            .expect("height")
            .trim_start_matches("0x"),
        16,
    )
    .expect("height");
    // The verdict cache holds for one height: wait for the next.
    loop {
        let (_, _, body) = tls_block_number(port, &ca_pem, None, Some(ADMIN_TOKEN)).await;
        let now = u64::from_str_radix(
            body["result"]
                .as_str()
                .expect("height")
                .trim_start_matches("0x"),
            16,
        )
        .expect("height");
        if now > h {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, head, body) = tls_block_number(port, &ca_pem, Some(&member), None).await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body["result"].is_string(), "{body}");
    expect_refused(
        tls_block_number(port, &ca_pem, Some(&stranger), None).await,
        401,
        "unknown read token",
    );

    // The CLI authenticates with the certificate alone.
    let cert_args = [
        "--rpc",
        &url,
        "--ca-cert",
        ca_arg,
        "--client-cert",
        member.0.to_str().expect("path"),
        "--client-key",
        member.1.to_str().expect("path"),
    ];
    let mut list = vec!["org", "token", "list", "org1"];
    list.extend_from_slice(&cert_args);
    let listed = run_cli(dir, &list);
    assert!(
        listed.contains(&hash) && listed.contains("org1 reader"),
        "{listed}"
    );
    let untrusted = cli_fails(dir, &["org", "list", "--rpc", &url]);
    assert!(
        untrusted.contains("certificate") || untrusted.contains("UnknownIssuer"),
        "without --ca-cert the node's certificate is not trusted: {untrusted}"
    );

    // Revoked on chain: refused from the next block on.
    run_cli(
        dir,
        &[
            "org",
            "token",
            "revoke",
            "--rpc",
            &url,
            "--ca-cert",
            ca_arg,
            "--token",
            ADMIN_TOKEN,
            "--dev-account",
            "0",
            "--cert",
            member.0.to_str().expect("path"),
        ],
    );
    let start = std::time::Instant::now();
    loop {
        let (status, _, body) = tls_block_number(port, &ca_pem, Some(&member), None).await;
        if status == 401 {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("was revoked at block"),
                "{body}"
            );
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "the revoked certificate still reads"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
