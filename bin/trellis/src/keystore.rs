//! Account keys in Ethereum keystore files (v3 JSON, scrypt and AES-128-CTR, as geth, Foundry
//! and web3 libraries write them), through the `eth-keystore` crate. Passwords come from a file
//! (`--password-file`, first line) or are asked for on the terminal, never from arguments.

use anyhow::{bail, Context as _};
use std::io::IsTerminal;
use std::path::Path;
use trellis_crypto::AccountKey;

/// The password in `file` (its first line), or asked for on the terminal (twice when
/// `confirm`, for a new keystore).
pub fn password(file: Option<&Path>, confirm: bool) -> anyhow::Result<String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the password file {}", file.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the keystore password on: pass --password-file");
    }
    let password = rpassword::prompt_password("keystore password: ")?;
    if confirm && rpassword::prompt_password("again: ")? != password {
        bail!("the passwords differ");
    }
    Ok(password)
}

/// The account key in the keystore at `path`.
pub fn decrypt(path: &Path, password_file: Option<&Path>) -> anyhow::Result<AccountKey> {
    let password = password(password_file, false)?;
    Ok(trellis_crypto::keystore::decrypt(path, &password)?)
}

/// Writes `key` to a new keystore file at `out` (readable by its owner only).
pub fn encrypt(key: &AccountKey, out: &Path, password: &str) -> anyhow::Result<()> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .context("the keystore path needs a file name")?;
    eth_keystore::encrypt_key(
        dir,
        &mut rand::thread_rng(),
        key.secret_bytes(),
        password,
        Some(name),
    )
    .with_context(|| format!("cannot write the keystore {}", out.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
