//! Transactions, signed transactions and blocks.

use crate::codec::{CodecError, Decode, Decoder, Encode, Encoder};
use crate::task::{hex_array, FailureReason, TaskTerms};
use crate::{
    codec_struct, AccountId, Amount, ChallengeId, ComputeUnits, Hardware, Hash32, NodeId, TaskId,
};
use curve25519_dalek::constants::EIGHT_TORSION;
use ed25519_zebra::{batch, Signature, VerificationKey, VerificationKeyBytes};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Largest encoded signed transaction, in bytes.
pub const TX_BYTES_MAX: usize = 64 * 1024;
/// Most transactions in one block.
pub const BLOCK_TXS_MAX: usize = 16_384;
/// Domain separation for transaction signatures.
const TX_SIGNING_CONTEXT: &str = "aicpw 2026-11 transaction signature v1";

/// The task's content key sealed to one node's X25519 key, so that node alone can open the inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGrant {
    pub node: NodeId,
    #[serde(with = "hex_bytes")]
    pub sealed_key: Vec<u8>,
}
codec_struct!(KeyGrant { node, sealed_key });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TxBody {
    Transfer {
        to: AccountId,
        amount: Amount,
    },
    Bond {
        amount: Amount,
    },
    Unbond {
        amount: Amount,
    },
    Withdraw,
    RegisterNode {
        hardware: Hardware,
        #[serde(with = "hex_array")]
        x25519_key: [u8; 32],
        endpoint: String,
        price_per_hour: Amount,
    },
    UpdateNode {
        node: NodeId,
        hardware: Hardware,
        #[serde(with = "hex_array")]
        x25519_key: [u8; 32],
        endpoint: String,
        price_per_hour: Amount,
    },
    DeregisterNode {
        node: NodeId,
    },
    NodeHeartbeat {
        node: NodeId,
    },
    /// An encrypted task's content key is granted after placement, to the nodes placed on it
    /// (`GrantKeys`), never at submission.
    SubmitTask {
        terms: TaskTerms,
        /// A commitment to the known answer of a known-answer task, or random bytes: providers
        /// cannot tell which tasks the network already knows the answer of.
        answer_commitment: Hash32,
    },
    CancelTask {
        task: TaskId,
    },
    TaskHeartbeat {
        task: TaskId,
        node: NodeId,
        progress_permille: u16,
    },
    /// A lease holder's binding commitment to its result, made before it learns whether it is
    /// audited and before any other lease of the task reveals: `verify::replication::commitment`,
    /// with the result's equality `tag` (`verify::replication::equality_tag`), which tells the
    /// ledger whether the round's results agree before any of them is revealed.
    CommitResult {
        task: TaskId,
        node: NodeId,
        commitment: Hash32,
        tag: Hash32,
    },
    ReportFailure {
        task: TaskId,
        node: NodeId,
        reason: FailureReason,
    },
    AcceptResult {
        task: TaskId,
    },
    RateTask {
        task: TaskId,
        stars: u8,
    },
    SettleExpired {
        task: TaskId,
    },
    /// The requester seals the task's content key to nodes holding an open lease of it.
    GrantKeys {
        task: TaskId,
        key_grants: Vec<KeyGrant>,
    },
    /// Opens a commitment once every lease of the task's current round has committed.
    RevealResult {
        task: TaskId,
        node: NodeId,
        output_hash: Hash32,
        salt: Hash32,
        result_cid: String,
        /// A non-deterministic task's summary, in micro-units (bound by the commitment); empty
        /// for a deterministic task.
        #[serde(default)]
        summary: Vec<i64>,
    },
    /// The requester challenges a result during its acceptance window, locking `bond`.
    DisputeResult {
        task: TaskId,
        bond: Amount,
    },
    /// The submitter of a known-answer task opens its `answer_commitment`.
    RevealAnswer {
        task: TaskId,
        answer_hash: Hash32,
        salt: Hash32,
    },
    /// The owner of a frozen node asks the stakers to unfreeze it.
    Appeal {
        node: NodeId,
    },
    /// A staker's vote on an open appeal, weighted by its bonded stake.
    VoteAppeal {
        node: NodeId,
        approve: bool,
    },
    /// A challenged node's commitment to its matrix product: the BLAKE3 tile-tree root of `C`
    /// (`verify::merkle`), before the challenge's deadline.
    ChallengeCommit {
        challenge: ChallengeId,
        root: Hash32,
    },
    /// Merkle paths of the drawn tiles, continuing from drawn tile number `first`; the ledger
    /// recomputes each tile from the seed, so no tile values travel.
    ChallengeOpen {
        challenge: ChallengeId,
        first: u32,
        paths: Vec<Vec<Hash32>>,
    },
    /// A solution of a hash-puzzle challenge.
    SubmitPuzzle {
        challenge: ChallengeId,
        nonce: u64,
    },
    /// The capacity a node claims: it sizes the node's matrix challenges and their deadlines.
    ClaimCapacity {
        node: NodeId,
        units: ComputeUnits,
    },
}

macro_rules! tx_body_codec {
    ($($tag:literal => $variant:ident { $($field:ident),* }),* $(,)?) => {
        impl Encode for TxBody {
            fn encode(&self, e: &mut Encoder) {
                match self {
                    $(TxBody::$variant { $($field),* } => {
                        e.tag($tag);
                        $($field.encode(e);)*
                    })*
                }
            }
        }
        impl Decode for TxBody {
            fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
                match d.tag()? {
                    $($tag => Ok(TxBody::$variant { $($field: Decode::decode(d)?),* }),)*
                    tag => Err(CodecError::UnknownTag { what: "TxBody", tag }),
                }
            }
        }
    };
}

tx_body_codec! {
    0 => Transfer { to, amount },
    1 => Bond { amount },
    2 => Unbond { amount },
    3 => Withdraw {},
    4 => RegisterNode { hardware, x25519_key, endpoint, price_per_hour },
    5 => UpdateNode { node, hardware, x25519_key, endpoint, price_per_hour },
    6 => DeregisterNode { node },
    7 => NodeHeartbeat { node },
    8 => SubmitTask { terms, answer_commitment },
    9 => CancelTask { task },
    10 => TaskHeartbeat { task, node, progress_permille },
    11 => CommitResult { task, node, commitment, tag },
    12 => ReportFailure { task, node, reason },
    13 => AcceptResult { task },
    14 => RateTask { task, stars },
    15 => SettleExpired { task },
    16 => GrantKeys { task, key_grants },
    17 => ChallengeCommit { challenge, root },
    18 => ChallengeOpen { challenge, first, paths },
    19 => SubmitPuzzle { challenge, nonce },
    20 => ClaimCapacity { node, units },
    // Tags 24 and up: result verification (17-23 are left to capacity challenges).
    24 => RevealResult { task, node, output_hash, salt, result_cid, summary },
    25 => DisputeResult { task, bond },
    26 => RevealAnswer { task, answer_hash, salt },
    27 => Appeal { node },
    28 => VoteAppeal { node, approve },
}

impl TxBody {
    /// The transaction type's name, as in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::Transfer { .. } => "transfer",
            TxBody::Bond { .. } => "bond",
            TxBody::Unbond { .. } => "unbond",
            TxBody::Withdraw => "withdraw",
            TxBody::RegisterNode { .. } => "register_node",
            TxBody::UpdateNode { .. } => "update_node",
            TxBody::DeregisterNode { .. } => "deregister_node",
            TxBody::NodeHeartbeat { .. } => "node_heartbeat",
            TxBody::SubmitTask { .. } => "submit_task",
            TxBody::CancelTask { .. } => "cancel_task",
            TxBody::TaskHeartbeat { .. } => "task_heartbeat",
            TxBody::CommitResult { .. } => "commit_result",
            TxBody::ReportFailure { .. } => "report_failure",
            TxBody::AcceptResult { .. } => "accept_result",
            TxBody::RateTask { .. } => "rate_task",
            TxBody::SettleExpired { .. } => "settle_expired",
            TxBody::GrantKeys { .. } => "grant_keys",
            TxBody::RevealResult { .. } => "reveal_result",
            TxBody::DisputeResult { .. } => "dispute_result",
            TxBody::RevealAnswer { .. } => "reveal_answer",
            TxBody::Appeal { .. } => "appeal",
            TxBody::VoteAppeal { .. } => "vote_appeal",
            TxBody::ChallengeCommit { .. } => "challenge_commit",
            TxBody::ChallengeOpen { .. } => "challenge_open",
            TxBody::SubmitPuzzle { .. } => "submit_puzzle",
            TxBody::ClaimCapacity { .. } => "claim_capacity",
        }
    }
}

/// An unsigned transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tx {
    pub chain_id: String,
    pub signer: AccountId,
    pub nonce: u64,
    pub fee: Amount,
    pub body: TxBody,
}
codec_struct!(Tx { chain_id, signer, nonce, fee, body });

impl Tx {
    /// The bytes that are signed: a domain tag, then the canonical encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.bytes_fixed(TX_SIGNING_CONTEXT.as_bytes());
        self.encode(&mut e);
        e.bytes
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    pub tx: Tx,
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
}
codec_struct!(SignedTx { tx, signature });

impl SignedTx {
    /// The transaction's id: the hash of its signed encoding, so two signatures of the same
    /// transaction are two ids and nobody but the signer can make a transaction with a given id.
    pub fn id(&self) -> Hash32 {
        Hash32::of(&self.to_bytes())
    }

    /// Checks this one signature by the rule of [`verify_batch`]; for many at once use that.
    pub fn verify_signature(&self) -> bool {
        verify_signature(&self.tx.signer, &self.tx.signing_bytes(), &self.signature)
    }
}

/// Whether `signature` is `signer`'s signature over `message` by the one rule (see
/// [`verify_batch`]): for transactions and for the node's signed requests (store uploads) alike.
pub fn verify_signature(signer: &AccountId, message: &[u8], signature: &[u8; 64]) -> bool {
    signer_key(signer)
        .is_some_and(|key| key.verify(&Signature::from_bytes(signature), message).is_ok())
}

/// The signer's key, when it may sign at all: an encoding of a curve point that is not of small
/// order (a small-order key verifies a zero signature on every message, so anyone could sign).
fn signer_key(signer: &AccountId) -> Option<VerificationKey> {
    if small_order(&signer.0) {
        return None;
    }
    VerificationKey::try_from(signer.0).ok()
}

/// Whether `encoding` decodes to a point of small order, by its bytes alone (no decompression):
/// the `y` of the eight torsion points, and `y = p` and `y = p + 1`, the non-canonical encodings
/// of `y = 0` and `y = 1`; with either sign bit, since `x = ±x` when `x = 0` and the torsion
/// points come in pairs `±x` otherwise.
fn small_order(encoding: &[u8; 32]) -> bool {
    static SMALL_ORDER_Y: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    let ys = SMALL_ORDER_Y.get_or_init(|| {
        let mut p = [0xff; 32];
        (p[0], p[31]) = (0xed, 0x7f);
        let mut p_plus_1 = p;
        p_plus_1[0] = 0xee;
        let torsion = EIGHT_TORSION.iter().map(|point| point.compress().0);
        torsion.chain([p, p_plus_1]).map(|y| without_sign(&y)).collect()
    });
    ys.contains(&without_sign(encoding))
}

fn without_sign(encoding: &[u8; 32]) -> [u8; 32] {
    let mut y = *encoding;
    y[31] &= 0x7f;
    y
}

/// Verifies many signatures at once; returns, for each transaction, whether its signature is valid.
///
/// AICPW has one signature rule, whichever way it is checked (alone or batched, at admission, in
/// block production, in replay): ZIP-215, the cofactored equation `[8][s]B = [8]R + [8][k]A`
/// with `s` canonical and any encoding of the points `R` and `A` accepted, and the signer's key
/// `A` not of small order. The cofactored equation is what makes a batch agree with the checks
/// one by one (the cofactorless one lets a small-order part of `R` or `A` pass or fail with the
/// batch's random weights). Signatures are checked in groups of [`BATCH_GROUP`], one batch check
/// each (as cheap per signature as one large batch); a group that fails is checked again in
/// groups of [`BATCH_GROUP_FAILED`], and only a small group that fails is checked one by one, so
/// a forged signature costs its neighbours a few small batches, not a check each.
pub fn verify_batch(txs: &[SignedTx]) -> Vec<bool> {
    let mut valid = Vec::with_capacity(txs.len());
    for group in txs.chunks(BATCH_GROUP) {
        verify_group(group, BATCH_GROUP_FAILED, &mut valid);
    }
    valid
}

/// Signatures checked in one batch, as the first try.
pub const BATCH_GROUP: usize = 64;
/// Signatures checked in one batch after their group's batch failed.
pub const BATCH_GROUP_FAILED: usize = 8;

/// Pushes whether each signature of `txs` is valid: all at once if the batch verifies, else
/// in groups of `then` (one by one below that).
fn verify_group(txs: &[SignedTx], then: usize, valid: &mut Vec<bool>) {
    if batch_verifies(txs) {
        valid.extend(std::iter::repeat_n(true, txs.len()));
    } else if then > 1 && txs.len() > then {
        for group in txs.chunks(then) {
            verify_group(group, 1, valid);
        }
    } else {
        valid.extend(txs.iter().map(SignedTx::verify_signature));
    }
}

/// Whether every signature of `txs` is valid, by one batch check (`false` when a signer's key
/// is of small order: the batch equation would accept it).
fn batch_verifies(txs: &[SignedTx]) -> bool {
    let mut verifier = batch::Verifier::new();
    for tx in txs {
        if small_order(&tx.tx.signer.0) {
            return false;
        }
        let key = VerificationKeyBytes::from(tx.tx.signer.0);
        let signature = Signature::from_bytes(&tx.signature);
        verifier.queue((key, signature, &tx.tx.signing_bytes()));
    }
    verifier.verify(OsRng).is_ok()
}

/// What the block producer gives the ledger besides the transactions: the ledger reads no clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEnv {
    pub chain_id: String,
    pub height: u64,
    pub time_ms: u64,
    pub proposer: AccountId,
    /// Unpredictable before the block is made; drives audits, challenges and tie-breaks.
    pub randomness: Hash32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub chain_id: String,
    pub height: u64,
    pub parent: Hash32,
    pub time_ms: u64,
    pub proposer: AccountId,
    pub randomness: Hash32,
    pub tx_root: Hash32,
    pub state_root: Hash32,
    pub tx_count: u32,
}
codec_struct!(BlockHeader {
    chain_id,
    height,
    parent,
    time_ms,
    proposer,
    randomness,
    tx_root,
    state_root,
    tx_count
});

impl BlockHeader {
    pub fn hash(&self) -> Hash32 {
        Hash32::of(&self.to_bytes())
    }
    pub fn env(&self) -> BlockEnv {
        BlockEnv {
            chain_id: self.chain_id.clone(),
            height: self.height,
            time_ms: self.time_ms,
            proposer: self.proposer,
            randomness: self.randomness,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<SignedTx>,
}

impl Encode for Block {
    fn encode(&self, e: &mut Encoder) {
        assert!(self.txs.len() <= BLOCK_TXS_MAX, "a block holds at most {BLOCK_TXS_MAX} txs");
        self.header.encode(e);
        (self.txs.len() as u32).encode(e);
        for tx in &self.txs {
            tx.encode(e);
        }
    }
}
impl Decode for Block {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        let header = BlockHeader::decode(d)?;
        let count = u32::decode(d)? as usize;
        if count > BLOCK_TXS_MAX {
            return Err(CodecError::TooLong { length: count, limit: BLOCK_TXS_MAX });
        }
        let txs = (0..count).map(|_| SignedTx::decode(d)).collect::<Result<_, _>>()?;
        Ok(Block { header, txs })
    }
}

/// The root committing to a block's transactions: BLAKE3 over their ids in order.
pub fn tx_root(txs: &[SignedTx]) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    for tx in txs {
        hasher.update(&tx.id().0);
    }
    Hash32(*hasher.finalize().as_bytes())
}

/// Hex serialization for byte vectors in JSON.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::small_order;
    use curve25519_dalek::edwards::CompressedEdwardsY;

    /// Encodings of `y` for `y` near 0 and near `p` (both sides), with either sign bit.
    fn encodings_near_the_ends() -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        for low in 0u8..=38 {
            let mut near_zero = [0u8; 32];
            near_zero[0] = low;
            // p - 20 + low: from p - 20 to p + 18 = 2^255 - 1 (values from p on are non-canonical).
            let mut near_p = [0xff; 32];
            near_p[31] = 0x7f;
            near_p[0] = 0xed - 20 + low;
            for mut encoding in [near_zero, near_p] {
                out.push(encoding);
                encoding[31] |= 0x80;
                out.push(encoding);
            }
        }
        out
    }

    #[test]
    fn small_order_by_bytes_is_small_order_after_decompression() {
        let torsion = curve25519_dalek::constants::EIGHT_TORSION.map(|p| p.compress().0);
        let hashed = (0u32..2_000).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes());
        let mut small = 0;
        for encoding in encodings_near_the_ends().into_iter().chain(torsion).chain(hashed) {
            let decoded = CompressedEdwardsY(encoding).decompress();
            let expected = decoded.is_some_and(|point| point.is_small_order());
            assert_eq!(small_order(&encoding), expected, "{}", hex::encode(encoding));
            small += usize::from(expected);
        }
        assert!(small >= 14, "every small-order encoding near the ends, and the torsion points");
    }
}
