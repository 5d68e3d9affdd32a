//! Commit-reveal of replica results and the quorum rule.
//!
//! Each of the `k` replicas first publishes `commitment(task, provider, output_hash, summary,
//! result_cid, salt)`, and reveals `(output_hash, summary, result_cid, salt)` only once all
//! commitments are in (`summary`: the numbers a non-deterministic task's results are compared
//! by, empty for a deterministic task). The
//! provider key binds a commitment to its author (a replica cannot re-publish another's), the
//! salt hides the output hash (a lazy replica cannot test guesses of a likely output against
//! others' commitments), and the result's CID is fixed with the hash: a reveal cannot name
//! another location for the result than the one committed to before anyone revealed.
//!
//! Quorum rule: an output hash wins if it was revealed by a **strict majority of the k replicas
//! asked for** (more than `k/2`), counting absent reveals as votes for nothing. Replicas that
//! revealed another hash form the minority and are slashed. Without a winner there is no quorum:
//! nobody is slashed on the vote, and the task escalates (re-execution by a committee).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::VerifyError;

/// Most replicas a task may ask for.
pub const REPLICAS_MAX: u32 = 16;
/// Derive-key context of replica commitments.
pub const COMMIT_CONTEXT: &str = "AICPW 2026-12 verify replica commitment v3";

type Hash = [u8; 32];

/// `BLAKE3-derive-key(COMMIT_CONTEXT, task_id LE || provider || output_hash || len(summary) u32
/// LE || each summary number i64 LE || len(result_cid) u32 LE || result_cid || salt)`.
pub fn commitment(
    task_id: u64,
    provider: &Hash,
    output_hash: &Hash,
    summary: &[i64],
    result_cid: &str,
    salt: &Hash,
) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key(COMMIT_CONTEXT);
    hasher.update(&task_id.to_le_bytes());
    hasher.update(provider);
    hasher.update(output_hash);
    hasher.update(&u32::try_from(summary.len()).unwrap_or(u32::MAX).to_le_bytes());
    for value in summary {
        hasher.update(&value.to_le_bytes());
    }
    let length = u32::try_from(result_cid.len()).unwrap_or(u32::MAX);
    hasher.update(&length.to_le_bytes());
    hasher.update(result_cid.as_bytes());
    hasher.update(salt);
    *hasher.finalize().as_bytes()
}

/// Derive-key context of equality tags.
pub const TAG_CONTEXT: &str = "AICPW 2026-12 verify result equality tag v1";

/// A result's equality tag, published beside its commitment: `BLAKE3-derive-key(TAG_CONTEXT,
/// task_id LE || output_hash || len(summary) u32 LE || each summary number i64 LE)`. Equal
/// results of one task have equal tags whoever computed them, so a round's split is known before
/// anyone reveals; a tag names no output, and only a holder of the output (or of a guess of it)
/// can make one. Unsalted by design: a task whose outputs are few enough to enumerate can be
/// matched against its tags.
pub fn equality_tag(task_id: u64, output_hash: &Hash, summary: &[i64]) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key(TAG_CONTEXT);
    hasher.update(&task_id.to_le_bytes());
    hasher.update(output_hash);
    hasher.update(&u32::try_from(summary.len()).unwrap_or(u32::MAX).to_le_bytes());
    for value in summary {
        hasher.update(&value.to_le_bytes());
    }
    *hasher.finalize().as_bytes()
}

/// Checks that a reveal opens the commitment published earlier.
pub fn check_reveal(
    committed: &Hash,
    task_id: u64,
    provider: &Hash,
    output_hash: &Hash,
    summary: &[i64],
    result_cid: &str,
    salt: &Hash,
) -> Result<(), VerifyError> {
    if &commitment(task_id, provider, output_hash, summary, result_cid, salt) != committed {
        return Err(VerifyError::RevealMismatch);
    }
    Ok(())
}

/// A reveal that passed [`check_reveal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedOutput {
    /// The replica's provider key.
    pub provider: Hash,
    /// The output hash it revealed.
    pub output_hash: Hash,
}

/// Result of the vote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumOutcome {
    /// The winning output hash, if any.
    pub majority_hash: Option<Hash>,
    /// Providers that revealed the winning hash, ascending.
    pub majority: Vec<Hash>,
    /// Providers that revealed another hash, ascending; empty when there is no quorum.
    pub minority: Vec<Hash>,
    /// No hash reached a strict majority of `replicas`.
    pub no_quorum: bool,
}

/// Applies the quorum rule to the reveals of a task that asked for `replicas` replicas.
pub fn quorum(replicas: u32, reveals: &[RevealedOutput]) -> Result<QuorumOutcome, VerifyError> {
    if replicas == 0 || replicas > REPLICAS_MAX || reveals.len() > replicas as usize {
        return Err(VerifyError::ReplicaCountInvalid {
            reveals: reveals.len(),
            replicas,
            max: REPLICAS_MAX,
        });
    }
    let mut providers = BTreeSet::new();
    let mut votes: BTreeMap<Hash, u32> = BTreeMap::new();
    for reveal in reveals {
        if !providers.insert(reveal.provider) {
            return Err(VerifyError::RevealDuplicate);
        }
        *votes.entry(reveal.output_hash).or_default() += 1;
    }
    let winner = votes.iter().find(|(_, count)| 2 * **count > replicas).map(|(hash, _)| *hash);
    let Some(majority_hash) = winner else {
        return Ok(QuorumOutcome { no_quorum: true, ..QuorumOutcome::default() });
    };
    let (mut majority, mut minority): (Vec<&RevealedOutput>, Vec<&RevealedOutput>) =
        reveals.iter().partition(|reveal| reveal.output_hash == majority_hash);
    majority.sort_by_key(|reveal| reveal.provider);
    minority.sort_by_key(|reveal| reveal.provider);
    Ok(QuorumOutcome {
        majority_hash: Some(majority_hash),
        majority: majority.iter().map(|reveal| reveal.provider).collect(),
        minority: minority.iter().map(|reveal| reveal.provider).collect(),
        no_quorum: false,
    })
}
