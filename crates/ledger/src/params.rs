//! The ledger's parameters, fixed at genesis: fees, stakes, timeouts, verification and
//! challenge rules.

use aicpw_types::{AccountId, Amount};
use serde::{Deserialize, Serialize};

/// Network parameters, fixed at genesis. A genesis file that omits a parameter gets its default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Params {
    pub fee_min: Amount,
    /// Paid by a transaction's signer to the proposer for every state entry it creates (an
    /// account, a node, a task), on top of its fee: what the network stores for it.
    pub storage_fee_per_entry: Amount,
    /// An ended task is removed from the state this long after it ended (once no withheld lease
    /// of it awaits its late verdict); rate it before then.
    pub task_retention_ms: u64,
    /// Blocks between `Unbond` and the moment `Withdraw` may release the amount.
    pub unbonding_blocks: u64,
    /// Stake an account must keep bonded for each node it registers.
    pub node_stake_min: Amount,
    pub nodes_per_account_max: u32,
    /// A running task whose provider sends no heartbeat for this long is reassigned.
    pub lease_ms: u64,
    /// How long a lease of an encrypted task waits for the requester's key grant (`GrantKeys`)
    /// after its placement; past it, the node is released without blame and paid its waiting
    /// time, and the seat is refilled like a requeue (`FailureReason::KeysNotGranted`).
    pub grant_wait_ms: u64,
    /// Extra time past the task's own limit before its lease expires regardless of heartbeats.
    pub time_limit_grace_ms: u64,
    /// A node that sends no heartbeat for this long is offline and gets no new work.
    pub node_offline_ms: u64,
    /// A committed result the requester neither accepts nor disputes is accepted after this long.
    pub acceptance_window_ms: u64,
    /// Attempts (assignments) per task before it fails with `AttemptsExhausted`.
    pub attempts_max: u32,
    pub tasks_queued_max: u32,
    /// A task queued this long (since its submission or its last requeue) with no node placed
    /// fails `no-eligible-provider` with a full refund, settled by the block like an expired lease.
    pub queue_timeout_ms: u64,
    /// Placements the matcher makes per block.
    pub placements_per_block_max: u32,
    /// Verification: audits, slashing and disputes (see `ledger::verdict`).
    pub verification: VerificationParams,
    /// Capacity challenges (see `ledger::challenge`); off unless a genesis sets an interval.
    pub challenges: crate::challenge::ChallengeParams,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fee_min: Amount(10),
            storage_fee_per_entry: Amount(10_000),
            task_retention_ms: 7 * 86_400_000,
            unbonding_blocks: 100,
            node_stake_min: Amount::tokens(1_000),
            nodes_per_account_max: 16,
            lease_ms: 15_000,
            grant_wait_ms: 30_000,
            time_limit_grace_ms: 30_000,
            node_offline_ms: 60_000,
            acceptance_window_ms: 600_000,
            attempts_max: 3,
            tasks_queued_max: 100_000,
            queue_timeout_ms: 86_400_000,
            placements_per_block_max: 1_024,
            verification: VerificationParams::default(),
            challenges: crate::challenge::ChallengeParams::default(),
        }
    }
}

/// Most a per-interval release of escrow may cover (the design's "≤ 60 s of service").
pub const RELEASE_INTERVAL_MS_MAX: u64 = 60_000;

/// The rules of result verification, slashing, graded responses, disputes and appeals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerificationParams {
    /// Audit floor, slash multiple, the worst cheat to deter and the split of slashed stake.
    pub economics: aicpw_verify::EconomicParams,
    /// Below this clean streak every result is audited (BOINC's rule).
    pub audit_streak_always: u32,
    /// How long a lease holder has to reveal once its round's reveals open. A holder that lets
    /// it pass is *withheld* (like an expired lease: reputation, no pay, excluded; the round is
    /// judged without it) and must still open its commitment in the late reveal window.
    pub reveal_window_ms: u64,
    /// How long after its reveal window a withheld lease may still open its commitment
    /// (`ledger::withheld`): opened with the upheld hash it is cleared, with another hash
    /// slashed like a lost vote, never opened slashed `reveal-withheld`.
    pub late_reveal_window_ms: u64,
    /// How long a verification seat (auditor, referee, replacement replica, committee member)
    /// may wait for a node before the verification is given up.
    pub seat_wait_ms: u64,
    /// Every running lease is paid per verified interval of this length, on its first heartbeat
    /// after it (`ledger::release`); at most [`RELEASE_INTERVAL_MS_MAX`].
    pub release_interval_ms: u64,
    /// Receives the treasury share of slashed stake.
    pub treasury: AccountId,
    /// Proven offences (slashes) after which a node is ejected for good.
    pub offences_eject: u32,
    /// A node whose score falls below this, with at least `freeze_faults_min` faults on record,
    /// is frozen (gets no work) until an appeal succeeds.
    pub freeze_score_permille: u16,
    pub freeze_faults_min: u64,
    /// How long the stakers vote on an appeal.
    pub appeal_voting_ms: u64,
    /// Appeals a node may make in its life.
    pub appeals_max: u32,
    /// The least bonded stake that may vote on an appeal, so the voter seats cannot be filled
    /// with dust.
    pub vote_stake_min: Amount,
    /// A rating weighs 1 + (rater's bonded stake / this), at most `rating_weight_max`.
    pub rating_stake_unit: Amount,
    pub rating_weight_max: u64,
}

/// The treasury's account: BLAKE3 of a public string, so nobody holds its key; governance (not
/// yet built) spends it.
pub fn treasury_default() -> AccountId {
    AccountId(*blake3::hash(b"AICPW 2026-01 treasury v1").as_bytes())
}

impl Default for VerificationParams {
    fn default() -> Self {
        VerificationParams {
            economics: aicpw_verify::EconomicParams::default(),
            audit_streak_always: aicpw_verify::AuditPolicy::default().streak_always,
            reveal_window_ms: 60_000,
            late_reveal_window_ms: 86_400_000,
            seat_wait_ms: 600_000,
            release_interval_ms: RELEASE_INTERVAL_MS_MAX,
            treasury: treasury_default(),
            offences_eject: 3,
            freeze_score_permille: 200,
            freeze_faults_min: 5,
            appeal_voting_ms: 86_400_000,
            appeals_max: 3,
            vote_stake_min: Amount::tokens(1_000),
            rating_stake_unit: Amount::tokens(1_000),
            rating_weight_max: 10,
        }
    }
}

impl VerificationParams {
    /// The spot-check policy these parameters imply.
    pub fn audit_policy(&self) -> aicpw_verify::AuditPolicy {
        aicpw_verify::AuditPolicy {
            streak_always: self.audit_streak_always,
            rate_min_ppm: self.economics.audit_rate_min_ppm,
        }
    }

    /// Checks ranges, and that the worst cheat the economics name does not pay.
    pub fn validate(&self) -> Result<(), String> {
        self.economics.validate().map_err(|e| e.to_string())?;
        self.audit_policy().validate().map_err(|e| e.to_string())?;
        if self.release_interval_ms == 0 || self.release_interval_ms > RELEASE_INTERVAL_MS_MAX {
            return Err("release_interval_ms must be in 1..=60000".into());
        }
        if self.offences_eject == 0 || self.rating_stake_unit.is_zero() {
            return Err("offences_eject and rating_stake_unit must be positive".into());
        }
        if self.vote_stake_min.is_zero() {
            return Err("vote_stake_min must be positive".into());
        }
        Ok(())
    }
}
