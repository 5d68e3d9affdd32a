//! What validators gossip: a ledger block with the threshold seed its randomness comes from, and
//! the rules a proposal must meet before a validator votes for it.

use crate::Scheme;
use aicpw_ledger::{Executed, State};
use aicpw_types::codec::{Decode, Encode};
use aicpw_types::tx::{tx_root, verify_batch};
use aicpw_types::{AccountId, Block, BlockEnv, BlockHeader, Hash32};
use commonware_codec::{DecodeExt, Encode as _};
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::Seed;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
pub use commonware_cryptography::sha256::Digest;

/// A proposal's time may run ahead of the verifier's clock by this much, no more.
pub const CLOCK_SKEW_MAX_MS: u64 = 5_000;

/// A block as validators exchange it: the block and the seed of its parent's view (none when the
/// parent is the genesis), from which the block's randomness is derived.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub block: Block,
    pub seed: Option<Seed<MinSig>>,
}

/// The consensus payload of a block: its header's hash.
pub fn digest(header: &BlockHeader) -> Digest {
    Digest(header.hash().0)
}

/// The digest every first block names as its parent.
pub fn genesis_digest(chain_id: &str) -> Digest {
    let mut hasher = blake3::Hasher::new_derive_key("aicpw 2026-12 consensus genesis");
    hasher.update(chain_id.as_bytes());
    Digest(*hasher.finalize().as_bytes())
}

/// The beacon: a block's randomness is BLAKE3 of the threshold signature over its parent's view.
/// No validator (nor f of them) can compute it before 2f+1 validators voted on the parent, whose
/// content is fixed by then, and nobody can choose among values: the signature is unique. The
/// first block, whose parent is the genesis, draws from the genesis digest.
pub fn randomness(parent: &Digest, seed: Option<&Seed<MinSig>>) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key("aicpw 2026-12 consensus beacon");
    match seed {
        Some(seed) => hasher.update(&seed.signature.encode()),
        None => hasher.update(&parent.0),
    };
    Hash32(*hasher.finalize().as_bytes())
}

impl Envelope {
    pub fn digest(&self) -> Digest {
        digest(&self.block.header)
    }

    pub fn parent(&self) -> Digest {
        Digest(self.block.header.parent.0)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let seed = self.seed.as_ref().map(|seed| seed.encode().to_vec()).unwrap_or_default();
        let mut bytes = Vec::with_capacity(seed.len() + 4);
        bytes.extend_from_slice(&(seed.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&seed);
        bytes.extend_from_slice(&self.block.to_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Envelope> {
        let length = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let seed_bytes = bytes.get(4..4 + length)?;
        let seed = match length {
            0 => None,
            _ => Some(Seed::<MinSig>::decode(seed_bytes.to_vec()).ok()?),
        };
        let block = Block::from_bytes(bytes.get(4 + length..)?).ok()?;
        Some(Envelope { block, seed })
    }
}

/// Why a proposal is refused (a validator votes to skip its view).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the block does not extend the parent consensus named")]
    Parent,
    #[error("the block's height is not its parent's plus one")]
    Height,
    #[error("the block's proposer is not the view's leader")]
    Proposer,
    #[error("the block's time is not after its parent's or too far ahead of the verifier's clock")]
    Time,
    #[error("the seed is not the threshold signature of the parent's view")]
    Seed,
    #[error("the block's randomness is not the one its parent's seed gives")]
    Randomness,
    #[error("the transaction root does not match the transactions")]
    TxRoot,
    #[error("a transaction of the block does not apply: {0}")]
    Transaction(String),
    #[error("the block's state root is not the one re-executing it gives")]
    StateRoot,
    #[error("re-executing the block broke conservation: {0}")]
    Conservation(String),
}

/// What a proposal is checked against: its parent (block header, view) as consensus names it.
pub struct Expected<'a> {
    pub parent: &'a Digest,
    pub parent_view: u64,
    pub parent_header: Option<&'a BlockHeader>,
    pub leader: AccountId,
    pub now_ms: u64,
}

/// Checks a proposal and re-executes it on its parent's state (a copy): every transaction must
/// apply and the state root must be the one the block names. Returns the state after the block.
pub fn verify(
    envelope: &Envelope,
    expected: &Expected<'_>,
    parent_state: &State,
    scheme: &Scheme,
) -> Result<(State, Executed), Invalid> {
    let header = &envelope.block.header;
    if envelope.parent() != *expected.parent {
        return Err(Invalid::Parent);
    }
    let parent_height = expected.parent_header.map_or(0, |h| h.height);
    let parent_time = expected.parent_header.map_or(0, |h| h.time_ms);
    if header.height != parent_height + 1 {
        return Err(Invalid::Height);
    }
    if header.proposer != expected.leader {
        return Err(Invalid::Proposer);
    }
    if header.time_ms <= parent_time || header.time_ms > expected.now_ms + CLOCK_SKEW_MAX_MS {
        return Err(Invalid::Time);
    }
    match (&envelope.seed, expected.parent_header) {
        (None, None) => {}
        (Some(seed), Some(_))
            if seed.round.view().get() == expected.parent_view && seed.verify(scheme) => {}
        _ => return Err(Invalid::Seed),
    }
    if header.randomness != randomness(expected.parent, envelope.seed.as_ref()) {
        return Err(Invalid::Randomness);
    }
    if header.tx_root != tx_root(&envelope.block.txs) {
        return Err(Invalid::TxRoot);
    }
    let verified = verify_batch(&envelope.block.txs);
    let mut state = parent_state.clone();
    let executed = aicpw_ledger::execute_block(
        &mut state,
        &header.env(),
        envelope.block.txs.clone(),
        &verified,
    )
    .map_err(|violation| Invalid::Conservation(violation.to_string()))?;
    if let Some((_, reject)) = executed.rejected.first() {
        return Err(Invalid::Transaction(reject.to_string()));
    }
    if executed.state_root != header.state_root {
        return Err(Invalid::StateRoot);
    }
    Ok((state, executed))
}

/// Builds the block a leader proposes on `parent_state`: the transactions that apply, in the
/// order given (the rest are left out), its randomness from the parent's seed.
pub fn build(
    parent_state: &State,
    expected: &Expected<'_>,
    seed: Option<Seed<MinSig>>,
    txs: Vec<aicpw_types::SignedTx>,
) -> Result<(Envelope, State), Invalid> {
    let parent_height = expected.parent_header.map_or(0, |h| h.height);
    let parent_time = expected.parent_header.map_or(0, |h| h.time_ms);
    let env = BlockEnv {
        chain_id: parent_state.meta.chain_id.clone(),
        height: parent_height + 1,
        time_ms: expected.now_ms.max(parent_time + 1),
        proposer: expected.leader,
        randomness: randomness(expected.parent, seed.as_ref()),
    };
    let verified = verify_batch(&txs);
    let mut state = parent_state.clone();
    let executed = aicpw_ledger::execute_block(&mut state, &env, txs, &verified)
        .map_err(|violation| Invalid::Conservation(violation.to_string()))?;
    let header = BlockHeader {
        chain_id: env.chain_id,
        height: env.height,
        parent: Hash32(expected.parent.0),
        time_ms: env.time_ms,
        proposer: env.proposer,
        randomness: env.randomness,
        tx_root: tx_root(&executed.included),
        state_root: executed.state_root,
        tx_count: executed.included.len() as u32,
    };
    let block = Block { header, txs: executed.included };
    Ok((Envelope { block, seed }, state))
}
