//! Signed store uploads: every byte a node's content store takes is charged to an account.
//!
//! The uploader signs the chain, the route, the CID it uploads and the body size, with the time;
//! the node checks the signature, that the time is near its clock, that the body is no longer than
//! signed and that the content really has that CID. A replayed header can only upload the same
//! content again for the same account, which the node counts once.

use crate::keys::Keypair;
use crate::tx::verify_signature;
use crate::AccountId;

/// The HTTP header that carries an upload's signature.
pub const UPLOAD_HEADER: &str = "aicpw-upload";
/// The HTTP header naming the offset in the content at which an upload request's body starts
/// (absent: 0); a broken upload resumes from the offset the node answers with.
pub const UPLOAD_OFFSET_HEADER: &str = "aicpw-upload-offset";
/// How far an upload's signed time may be from the node's clock, either way.
pub const UPLOAD_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

const UPLOAD_SIGNING_CONTEXT: &str = "aicpw 2026-12 store upload signature v1";

/// What the uploader signed, as the `aicpw-upload` header carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadAuth {
    pub account: AccountId,
    pub time_ms: u64,
    /// The body's length in bytes; the node reads no more.
    pub size: u64,
    pub signature: [u8; 64],
}

/// What an upload signature covers: the chain, the route (`PUT /store` or `PUT /store/car`), the
/// CID the content must have (the CAR's root for `/store/car`), the body size and the time.
fn signing_bytes(chain_id: &str, route: &str, cid: &str, size: u64, time_ms: u64) -> Vec<u8> {
    format!("{UPLOAD_SIGNING_CONTEXT}\n{chain_id}\nPUT {route}\n{cid}\n{size}\n{time_ms}")
        .into_bytes()
}

impl UploadAuth {
    pub fn sign(
        key: &Keypair,
        chain_id: &str,
        route: &str,
        cid: &str,
        size: u64,
        time_ms: u64,
    ) -> UploadAuth {
        let message = signing_bytes(chain_id, route, cid, size, time_ms);
        UploadAuth { account: key.account(), time_ms, size, signature: key.sign_message(&message) }
    }

    pub fn verify(&self, chain_id: &str, route: &str, cid: &str) -> bool {
        let message = signing_bytes(chain_id, route, cid, self.size, self.time_ms);
        verify_signature(&self.account, &message, &self.signature)
    }

    /// Whether the signed time is within [`UPLOAD_CLOCK_SKEW_MS`] of `now_ms`.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        self.time_ms.abs_diff(now_ms) <= UPLOAD_CLOCK_SKEW_MS
    }

    /// `<account> <time_ms> <size> <signature hex>`.
    pub fn to_header(&self) -> String {
        format!("{} {} {} {}", self.account, self.time_ms, self.size, hex::encode(self.signature))
    }

    pub fn from_header(text: &str) -> Option<UploadAuth> {
        let mut fields = text.split(' ');
        let account = fields.next()?.parse().ok()?;
        let time_ms = fields.next()?.parse().ok()?;
        let size = fields.next()?.parse().ok()?;
        let signature = hex::decode(fields.next()?).ok()?.try_into().ok()?;
        fields.next().is_none().then_some(UploadAuth { account, time_ms, size, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_upload_verifies_only_for_what_was_signed() {
        let key = Keypair::dev(3);
        let auth = UploadAuth::sign(&key, "aicpw-dev", "/store", "bafyone", 10, 1_000);
        let parsed = UploadAuth::from_header(&auth.to_header()).expect("round trip");
        assert_eq!(parsed, auth);
        assert!(parsed.verify("aicpw-dev", "/store", "bafyone"));
        assert!(!parsed.verify("aicpw-dev", "/store", "bafytwo"));
        assert!(!parsed.verify("aicpw-dev", "/store/car", "bafyone"));
        assert!(!parsed.verify("other-chain", "/store", "bafyone"));
        let bigger = UploadAuth { size: 11, ..parsed.clone() };
        assert!(!bigger.verify("aicpw-dev", "/store", "bafyone"));
        let other = UploadAuth { account: Keypair::dev(4).account(), ..parsed };
        assert!(!other.verify("aicpw-dev", "/store", "bafyone"));
        assert!(auth.is_fresh(1_000 + UPLOAD_CLOCK_SKEW_MS));
        assert!(!auth.is_fresh(1_001 + UPLOAD_CLOCK_SKEW_MS));
        assert!(UploadAuth::from_header("not a header").is_none());
    }
}
