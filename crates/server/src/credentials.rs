//! Root credentials and the server's token key, kept in the data directory with mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::cli::{MintArgs, MintRole};

/// File with the generated root key pair.
pub(crate) const ROOT_CREDENTIALS_FILE: &str = "root-credentials.json";
/// File with the HMAC key for temporary credentials (and, later, playback and TURN tokens).
const TOKEN_KEY_FILE: &str = "server-key.hex";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RootCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

fn random_string(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// Writes `data` to `path` atomically, readable by the owner only.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Loads the generated root pair, creating it on first start. Returns it and whether it is new.
pub(crate) fn load_or_generate_root(data_dir: &Path) -> anyhow::Result<(RootCredentials, bool)> {
    let path = data_dir.join(ROOT_CREDENTIALS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let c: RootCredentials = serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not valid; delete it to generate a new key pair",
                    path.display()
                )
            })?;
            Ok((c, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let c = RootCredentials {
                access_key_id: format!(
                    "AKIA{}",
                    random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
                ),
                secret_access_key: random_string(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                    40,
                ),
            };
            write_private(&path, &serde_json::to_vec_pretty(&c)?)?;
            Ok((c, true))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Loads the token key, creating 32 random bytes on first start.
pub(crate) fn load_or_generate_token_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path: PathBuf = data_dir.join(TOKEN_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => hex::decode(s.trim()).with_context(|| format!("{} is not hex", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::rng().random();
            write_private(&path, hex::encode(key).as_bytes())?;
            Ok(key.to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Shortest shared token key accepted, in bytes (the generated key's length).
const MIN_TOKEN_KEY_BYTES: usize = 32;

/// Loads a token key file shared by several nodes (`--token-key-file`): hex like
/// `server-key.hex`, at least [`MIN_TOKEN_KEY_BYTES`] bytes. Never creates it: nodes that each
/// generated their own would silently refuse each other's URLs. Warns when the file is readable
/// by group or others.
pub(crate) fn load_shared_token_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "token key file {} does not exist; create it once (e.g. `openssl rand -hex 32 > {}; chmod 600 {}`) and give every node the same file",
            path.display(),
            path.display(),
            path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("reading token key file {}", path.display()));
        }
    };
    let key = hex::decode(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "token key file {} must hold hex digits only ({e}); e.g. `openssl rand -hex 32`",
            path.display()
        )
    })?;
    if key.len() < MIN_TOKEN_KEY_BYTES {
        anyhow::bail!(
            "token key file {} holds {} bytes; at least {MIN_TOKEN_KEY_BYTES} bytes ({} hex digits) are needed",
            path.display(),
            key.len(),
            2 * MIN_TOKEN_KEY_BYTES
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading token key file {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the token key file is readable by group or others; anyone who can read it can forge playback URLs and temporary credentials (chmod 600)"
            );
        }
    }
    Ok(key)
}

/// `openkvs credentials mint`.
pub(crate) fn mint_command(a: &MintArgs) -> anyhow::Result<()> {
    let key = if let Some(path) = &a.token_key_file {
        load_shared_token_key(path)?
    } else if !a.data_dir.join(TOKEN_KEY_FILE).exists() {
        anyhow::bail!(
            "{} has no {TOKEN_KEY_FILE}; run `openkvs serve --data-dir {}` once first",
            a.data_dir.display(),
            a.data_dir.display()
        );
    } else {
        load_or_generate_token_key(&a.data_dir)?
    };
    let auth = api::Authenticator::new(key);
    let role = match a.role {
        MintRole::Admin => api::Role::Admin,
        MintRole::Viewer => api::Role::Viewer,
    };
    let creds = auth.mint(role, a.ttl, api::now_ms() / 1000);
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &creds)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_token_key_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.hex");
        let err = format!("{:#}", load_shared_token_key(&path).unwrap_err());
        assert!(err.contains("does not exist"), "{err}");

        std::fs::write(&path, "zz").unwrap();
        let err = format!("{:#}", load_shared_token_key(&path).unwrap_err());
        assert!(err.contains("hex digits only"), "{err}");

        std::fs::write(&path, hex::encode([7u8; 16])).unwrap();
        let err = format!("{:#}", load_shared_token_key(&path).unwrap_err());
        assert!(err.contains("holds 16 bytes"), "{err}");

        // The generated file's format (no newline) and a hand-made one (newline) both load.
        std::fs::write(&path, format!("{}\n", hex::encode([9u8; 32]))).unwrap();
        assert_eq!(load_shared_token_key(&path).unwrap(), vec![9u8; 32]);
        let generated = load_or_generate_token_key(dir.path()).unwrap();
        assert_eq!(
            load_shared_token_key(&dir.path().join(TOKEN_KEY_FILE)).unwrap(),
            generated
        );
    }
}
