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
        stderr.starts_with("error: reading organisations from http://127.0.0.1:"),
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

/// `keys new --account` writes an Ethereum keystore (v3 JSON) readable by its owner only;
/// `--keystore` signs with it once its password is given, and a wrong password is one clear
/// line.
#[tokio::test(flavor = "multi_thread")]
async fn keystores_sign_transactions_and_refuse_wrong_passwords() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (_dev, url) = start_dev(&dir.join("dev"), "dev.log").await;
    let password = dir.join("password.txt");
    std::fs::write(&password, "correct horse battery staple\n").expect("password");
    let keystore = dir.join("admin.json");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let out = run_cli(
        dir,
        &[
            "keys",
            "new",
            "--account",
            "--out",
            &path(&keystore),
            "--password-file",
            &path(&password),
        ],
    );
    let address: alloy_primitives::Address = out
        .lines()
        .find_map(|l| l.strip_prefix("address: "))
        .expect("address printed")
        .parse()
        .expect("address");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&keystore).expect("keystore")).expect("JSON");
    assert_eq!(json["version"], 3, "{json}");
    assert_eq!(json["crypto"]["kdf"], "scrypt", "{json}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&keystore)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The dev organisation's admin registers the account; the account then notarizes a file
    // signed from its keystore.
    run_cli(
        dir,
        &[
            "org",
            "add-accounts",
            "--rpc",
            &url,
            "--dev-account",
            "0",
            &address.to_string(),
        ],
    );
    let file = dir.join("report.txt");
    std::fs::write(&file, "signed from a keystore").expect("file");
    let out = run_cli(
        dir,
        &[
            "evidence",
            "submit",
            "--rpc",
            &url,
            "--keystore",
            &path(&keystore),
            "--password-file",
            &path(&password),
            &path(&file),
        ],
    );
    assert!(
        out.contains("1 records in block") || out.contains("record"),
        "{out}"
    );
    assert_eq!(nonce(&client(&url), address, "latest").await, 1);

    std::fs::write(&password, "wrong\n").expect("password");
    let err = cli_fails(
        dir,
        &[
            "evidence",
            "submit",
            "--rpc",
            &url,
            "--keystore",
            &path(&keystore),
            "--password-file",
            &path(&password),
            &path(&file),
        ],
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.ends_with(&format!("{}: wrong password\n", keystore.display())),
        "{err}"
    );
    // Without a terminal and without a password file it says what to pass.
    let err = cli_fails(
        dir,
        &[
            "evidence",
            "submit",
            "--rpc",
            &url,
            "--keystore",
            &path(&keystore),
            &path(&file),
        ],
    );
    assert!(err.contains("pass --password-file"), "{err}");
}

/// Under a terminal a multi-file submission draws a progress bar (on stderr); piped, the same
/// command prints only its results, with no bar and no escape codes.
#[tokio::test(flavor = "multi_thread")]
async fn progress_bars_show_on_a_terminal_and_never_in_pipes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (_dev, url) = start_dev(&dir.join("dev"), "dev.log").await;
    // Two sets of 40 files (a digest is notarized once).
    let files = |set: usize| -> Vec<String> {
        (0..40)
            .map(|i| {
                let f = dir.join(format!("lot-{set}-{i}.txt"));
                std::fs::write(&f, format!("set {set}, lot {i}")).expect("file");
                f.to_str().expect("utf-8").to_owned()
            })
            .collect()
    };
    let submit = |set: usize| {
        let mut args = vec![
            "evidence".to_string(),
            "submit".into(),
            "--rpc".into(),
            url.clone(),
            "--dev-account".into(),
            "1".into(),
        ];
        args.extend(files(set));
        args
    };

    // A pseudo-terminal (util-linux `script`) around the command.
    let command = std::iter::once(bin().to_str().expect("utf-8").to_owned())
        .chain(submit(0))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(dir)
        .output()
        .expect("script(1)");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(
        terminal.contains("files hashed") || terminal.contains("records final"),
        "no progress bar on a terminal:\n{terminal}"
    );
    assert!(terminal.contains("40 records in block"), "{terminal}");

    // Piped: results only.
    let args = submit(1);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = std::process::Command::new(bin())
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("run trellis");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("records final") && !text.contains("files hashed"),
            "{text}"
        );
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    }
    assert!(stdout.contains("40 records in block"), "{stdout}");
}
