//! Account keys: an ed25519 signing key, and an X25519 key derived from the same secret seed.

use crate::tx::{SignedTx, Tx};
use crate::AccountId;
use ed25519_zebra::SigningKey;
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("key file {path} is not a valid AICPW key file: {reason}")]
    Invalid { path: String, reason: String },
}

/// Most bytes read from a key file.
const KEY_FILE_BYTES_MAX: u64 = 4096;

/// A key file on disk: JSON with the hex secret seed and, for people, the address.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    secret_key: String,
    address: String,
}

#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    pub fn generate() -> Keypair {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        Keypair::from_seed(seed)
    }
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair { signing: SigningKey::from(seed) }
    }
    /// The deterministic dev account number `index`: the same on every machine, never for real money.
    pub fn dev(index: u32) -> Keypair {
        let mut hasher = blake3::Hasher::new_derive_key("aicpw 2026-11 dev account seed");
        hasher.update(&index.to_le_bytes());
        Keypair::from_seed(*hasher.finalize().as_bytes())
    }
    pub fn account(&self) -> AccountId {
        AccountId(ed25519_zebra::VerificationKeyBytes::from(&self.signing).into())
    }
    pub fn sign(&self, tx: Tx) -> SignedTx {
        let signature = self.sign_message(&tx.signing_bytes());
        SignedTx { tx, signature }
    }
    /// Signs bytes that are not a transaction (a signed request to the node, such as an upload);
    /// each such message starts with its own domain tag, so it can never pass for a transaction.
    pub fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
    /// The X25519 secret for sealed boxes, derived from the seed with HKDF-SHA256.
    pub fn x25519_secret(&self) -> x25519_dalek::StaticSecret {
        let hk = Hkdf::<Sha256>::new(Some(b"aicpw x25519"), self.signing.as_ref());
        let mut okm = [0u8; 32];
        hk.expand(b"aicpw 2026-11 x25519 key v1", &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        x25519_dalek::StaticSecret::from(okm)
    }
    pub fn x25519_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.x25519_secret()).to_bytes()
    }
    /// The content key of a task this account submits with `task_salt` (its answer commitment:
    /// unique per task and public), derived from the seed: any tool holding the key file can
    /// grant it to the nodes placed on the task later, and nothing has to be stored.
    pub fn content_key(&self, task_salt: &[u8; 32]) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(Some(task_salt), self.signing.as_bytes());
        let mut okm = [0u8; 32];
        hk.expand(b"aicpw 2026-12 task content key v1", &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        okm
    }

    /// The key of content this account sealed with `store add --seal` (`seal_stream`), derived
    /// from the seed and the content's random nonce prefix, which its header carries: whoever
    /// holds the key file can open the content from its CID alone, and nothing has to be stored.
    pub fn sealed_content_key(&self, prefix: &[u8; crate::seal_stream::PREFIX]) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(Some(prefix), self.signing.as_bytes());
        let mut okm = [0u8; 32];
        hk.expand(b"aicpw 2026-12 sealed content key v1", &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        okm
    }

    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let file = KeyFile {
            secret_key: hex::encode(self.signing.as_ref()),
            address: self.account().to_string(),
        };
        let text = serde_json::to_string_pretty(&file).expect("a key file always serializes");
        write_private(path, &text)
            .map_err(|source| KeyError::Io { path: path.display().to_string(), source })
    }

    pub fn load(path: &Path) -> Result<Keypair, KeyError> {
        let name = path.display().to_string();
        let invalid = |reason: String| KeyError::Invalid { path: name.clone(), reason };
        let io = |source| KeyError::Io { path: name.clone(), source };
        // A key file is small: never read a FIFO, a device or a huge file without end.
        if !std::fs::metadata(path).map_err(io)?.is_file() {
            return Err(invalid("not a regular file".into()));
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, KEY_FILE_BYTES_MAX),
            &mut text,
        )
        .map_err(io)?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(file.secret_key.trim(), &mut seed)
            .map_err(|_| invalid("secret_key must be 64 hex characters".into()))?;
        let keypair = Keypair::from_seed(seed);
        if keypair.account().to_string() != file.address {
            return Err(invalid("address does not match secret_key".into()));
        }
        Ok(keypair)
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
