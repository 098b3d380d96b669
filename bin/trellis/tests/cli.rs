//! The command line as a user meets it: errors in one line without backtraces, logs without
//! terminal colours when written to a file, and JSON logs whose every line parses.

mod common;

use common::*;
use std::time::Duration;

/// A user error is one line with its causes, never a backtrace, whatever RUST_BACKTRACE says.
#[test]
fn errors_print_one_line_without_a_backtrace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let out = std::process::Command::new(bin())
        .args(["org", "list", "--rpc", &format!("http://127.0.0.1:{port}")])
        .current_dir(tmp.path())
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .expect("run trellis");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: trellis_getOrganizations on"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("Caused by"),
        "{stderr}"
    );
}

/// A node writing to a file logs plain text (no ANSI colours); with `log_format = "json"`
/// every line is a JSON object, and consensus lines carry the chain and round spans.
#[tokio::test(flavor = "multi_thread")]
async fn logs_are_plain_text_or_json_lines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut text_node, url) = start_single_node(&tmp.path().join("text"), "").await;
    wait_height(&client(&url), 2, Duration::from_secs(60)).await;
    text_node.sigkill();
    let text = std::fs::read_to_string(tmp.path().join("text/node.log")).expect("log");
    assert!(text.contains("committed block"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "colour codes in a log file:\n{text}"
    );

    let dir = tmp.path().join("json");
    let (mut json_node, url) = start_single_node(&dir, "log_format = \"json\"\n").await;
    wait_height(&client(&url), 2, Duration::from_secs(60)).await;
    json_node.sigkill();
    let log = std::fs::read_to_string(dir.join("node.log")).expect("log");
    // Lines the node prints for its operator (addresses) are not logs.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].is_string() && l["level"].is_string()));
    let committed = lines
        .iter()
        .find(|l| l["fields"]["message"] == "committed block")
        .unwrap_or_else(|| panic!("no committed block line in {log}"));
    let spans = committed["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("no span list: {committed}"));
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "consensus" && s["chain"].is_number()),
        "{committed}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "round" && s["height"].is_number()),
        "{committed}"
    );
    assert!(
        !log.lines()
            .any(|l| !l.starts_with('{') && l.contains("INFO")),
        "text log lines in a JSON log:\n{log}"
    );
}
