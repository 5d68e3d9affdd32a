//! Sealed boxes and content encryption: X25519 key agreement, HKDF-SHA256, ChaCha20-Poly1305.
//!
//! `seal` encrypts to a recipient's X25519 public key with a fresh ephemeral key, so only the
//! recipient can open it. `encrypt` encrypts bulk content under a random 32-byte content key; the
//! content key is what gets sealed to providers.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};

/// Bytes a sealed box adds to its plaintext: ephemeral public key and tag.
pub const SEAL_OVERHEAD: usize = 32 + 16;
/// Bytes `encrypt` adds: nonce and tag.
pub const ENCRYPT_OVERHEAD: usize = 12 + 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("ciphertext is too short")]
    TooShort,
    #[error("decryption failed: wrong key or tampered ciphertext")]
    Decrypt,
    #[error("the X25519 key is of small order: anything sealed with it could be opened by anyone")]
    WeakKey,
}

/// Whether an X25519 public key is safe to seal to (or to accept as a sealed box's ephemeral
/// key). A point of small order, on the curve or its twist, gives an all-zero shared secret
/// whatever the other side's secret, so the box key would be public. Every X25519 scalar is a
/// multiple of the cofactor after clamping, so one fixed scalar sends exactly those points to zero.
pub fn key_is_usable(public: &[u8; 32]) -> bool {
    StaticSecret::from([0x5a; 32]).diffie_hellman(&PublicKey::from(*public)).was_contributory()
}

fn box_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Key {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut key = [0u8; 32];
    hk.expand(b"aicpw 2026-11 sealed box v1", &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Key::from(key)
}

/// Seals `plaintext` to `recipient`: ephemeral public key, then ciphertext and tag. The key is
/// used once, so a fixed nonce is safe. A recipient key of small order is refused.
pub fn seal(recipient: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    if !key_is_usable(recipient) {
        return Err(SealError::WeakKey);
    }
    let ephemeral = EphemeralSecret::random_from_rng(OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(*recipient));
    let cipher = ChaCha20Poly1305::new(&box_key(shared.as_bytes(), &ephemeral_public, recipient));
    let body = cipher
        .encrypt(&Nonce::default(), plaintext)
        .expect("ChaCha20-Poly1305 encrypts any in-memory length");
    let mut out = ephemeral_public.to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn open(secret: &StaticSecret, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::TooShort);
    }
    let (ephemeral, body) = sealed.split_at(32);
    let ephemeral: [u8; 32] = ephemeral.try_into().map_err(|_| SealError::TooShort)?;
    if !key_is_usable(&ephemeral) {
        return Err(SealError::WeakKey);
    }
    let recipient = PublicKey::from(secret).to_bytes();
    let shared = secret.diffie_hellman(&PublicKey::from(ephemeral));
    let cipher = ChaCha20Poly1305::new(&box_key(shared.as_bytes(), &ephemeral, &recipient));
    cipher.decrypt(&Nonce::default(), body).map_err(|_| SealError::Decrypt)
}

/// Bytes of a result envelope's head: the content key sealed to the requester.
pub const RESULT_KEY_BYTES: usize = 32 + SEAL_OVERHEAD;

/// The result envelope a provider uploads: a fresh content key sealed to the requester's
/// `result_key`, then the plain result bundle encrypted under it. The one definition the
/// provider seals with and every requester (the CLI, the web page's `seal.js`) opens.
pub fn seal_result(result_key: &[u8; 32], plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let content_key = random_key();
    let mut blob = seal(result_key, &content_key)?;
    blob.extend_from_slice(&encrypt(&content_key, plain));
    Ok(blob)
}

/// Opens a result envelope with the requester's X25519 secret: the plain result bundle.
pub fn open_result(secret: &StaticSecret, blob: &[u8]) -> Result<Vec<u8>, SealError> {
    if blob.len() < RESULT_KEY_BYTES {
        return Err(SealError::TooShort);
    }
    let (head, body) = blob.split_at(RESULT_KEY_BYTES);
    let content_key: [u8; 32] = open(secret, head)?.try_into().map_err(|_| SealError::Decrypt)?;
    decrypt(&content_key, body)
}

pub fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}

/// Encrypts content under a 32-byte key: random nonce, then ciphertext and tag.
pub fn encrypt(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let body = cipher
        .encrypt(&Nonce::from(nonce), plaintext)
        .expect("ChaCha20-Poly1305 encrypts any in-memory length");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    out
}

pub fn decrypt(key: &[u8; 32], ciphertext: &[u8]) -> Result<Vec<u8>, SealError> {
    if ciphertext.len() < ENCRYPT_OVERHEAD {
        return Err(SealError::TooShort);
    }
    let (nonce, body) = ciphertext.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| SealError::TooShort)?;
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    cipher.decrypt(&Nonce::from(nonce), body).map_err(|_| SealError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    #[test]
    fn sealed_box_opens_only_for_its_recipient() {
        let alice = Keypair::dev(1);
        let mallory = Keypair::dev(2);
        let sealed = seal(&alice.x25519_public(), b"content key").expect("a usable key");
        assert_eq!(open(&alice.x25519_secret(), &sealed), Ok(b"content key".to_vec()));
        assert_eq!(open(&mallory.x25519_secret(), &sealed), Err(SealError::Decrypt));
    }

    /// The points of small order of Curve25519 and its twist, as u-coordinates (little-endian):
    /// 0, 1, p - 1, the two of order 8, the non-canonical encodings p and p + 1, and p - 1 with
    /// the top bit (which X25519 ignores) set.
    fn small_order_keys() -> Vec<[u8; 32]> {
        let p = |last: u8, first: u8| {
            let mut k = [0xff; 32];
            k[0] = first;
            k[31] = last;
            k
        };
        let hex = |h: &str| <[u8; 32]>::try_from(hex::decode(h).expect("hex")).expect("32 bytes");
        let mut keys = vec![
            [0; 32],
            {
                let mut one = [0; 32];
                one[0] = 1;
                one
            },
            p(0x7f, 0xec), // p - 1
            p(0x7f, 0xed), // p (= 0)
            p(0x7f, 0xee), // p + 1 (= 1)
            hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        ];
        keys.push(p(0xff, 0xec)); // p - 1 with the ignored top bit set
        keys
    }

    #[test]
    fn small_order_keys_are_refused_for_sealing_and_opening() {
        let alice = Keypair::dev(1);
        assert!(key_is_usable(&alice.x25519_public()));
        for i in 0..64 {
            assert!(key_is_usable(&Keypair::dev(i).x25519_public()), "dev key {i}");
        }
        for weak in small_order_keys() {
            assert!(!key_is_usable(&weak), "{}", hex::encode(weak));
            assert_eq!(seal(&weak, b"content key"), Err(SealError::WeakKey));
            // The attack: with a small-order ephemeral key the box key is derived from an
            // all-zero secret, which anyone can compute; such a box is never opened.
            let mut forged = weak.to_vec();
            forged.extend_from_slice(&[0; 48]);
            assert_eq!(open(&alice.x25519_secret(), &forged), Err(SealError::WeakKey));
        }
    }

    #[test]
    fn a_result_envelope_opens_only_for_its_requester() {
        let (requester, other) = (Keypair::dev(1), Keypair::dev(2));
        let blob = seal_result(&requester.x25519_public(), b"outputs").expect("a usable key");
        assert_eq!(open_result(&requester.x25519_secret(), &blob), Ok(b"outputs".to_vec()));
        assert_eq!(open_result(&other.x25519_secret(), &blob), Err(SealError::Decrypt));
        assert_eq!(open_result(&requester.x25519_secret(), &blob[..40]), Err(SealError::TooShort));
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let key = random_key();
        let mut ciphertext = encrypt(&key, b"weights");
        assert_eq!(decrypt(&key, &ciphertext), Ok(b"weights".to_vec()));
        let last = ciphertext.len() - 1;
        ciphertext[last] ^= 1;
        assert_eq!(decrypt(&key, &ciphertext), Err(SealError::Decrypt));
        assert_eq!(decrypt(&key, &[0u8; 5]), Err(SealError::TooShort));
    }
}
