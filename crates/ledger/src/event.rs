//! What the ledger tells the world: events in receipts and in block outcomes.

use crate::challenge::{ChallengeFailure, ChallengeKind, ChallengeSanction};
use crate::money::Offence;
use crate::state::{DisputeOutcome, Role, Round};
use aicpw_types::task::FailureReason;
use aicpw_types::{
    AccountId, Amount, ChallengeId, ComputeUnits, Hash32, NodeId, TaskId, TaskState,
};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Transferred {
        from: AccountId,
        to: AccountId,
        amount: Amount,
    },
    Bonded {
        account: AccountId,
        amount: Amount,
    },
    Unbonded {
        account: AccountId,
        amount: Amount,
        release_height: u64,
    },
    Withdrawn {
        account: AccountId,
        amount: Amount,
    },
    NodeRegistered {
        node: NodeId,
        owner: AccountId,
    },
    NodeUpdated {
        node: NodeId,
    },
    NodeDeregistered {
        node: NodeId,
    },
    NodeOffline {
        node: NodeId,
    },
    TaskSubmitted {
        task: TaskId,
        requester: AccountId,
        budget: Amount,
    },
    TaskAssigned {
        task: TaskId,
        node: NodeId,
        attempt: u32,
        role: Role,
    },
    /// The requester granted this node the task's content key (`GrantKeys`): its agent can
    /// open the inputs now.
    KeyGranted {
        task: TaskId,
        node: NodeId,
    },
    TaskProgress {
        task: TaskId,
        node: NodeId,
        progress_permille: u16,
    },
    ResultCommitted {
        task: TaskId,
        node: NodeId,
        role: Role,
    },
    TaskRequeued {
        task: TaskId,
        node: NodeId,
        reason: FailureReason,
    },
    /// A lease committed but did not reveal within the reveal window: withheld (a fault, no
    /// pay, excluded from the task). It must open its commitment before `deadline_ms` or be
    /// slashed `reveal-withheld` (`ledger::withheld`).
    RevealWithheld {
        task: TaskId,
        node: NodeId,
        deadline_ms: u64,
    },
    /// A withheld lease opened late with the result that stands (or none stands): not slashed.
    LateRevealCleared {
        task: TaskId,
        node: NodeId,
    },
    Paid {
        task: TaskId,
        node: NodeId,
        owner: AccountId,
        amount: Amount,
    },
    Refunded {
        task: TaskId,
        requester: AccountId,
        amount: Amount,
    },
    /// What a lease was released per interval, taken back from its owner's stake because its
    /// result was proven wrong (`offence`, as in the `Penalized` event that follows) and returned
    /// where it came from: the open task's escrow (refunded with what nobody earns) or dispute
    /// bond, or the requester once the task has ended. `amount` is what was taken: less than
    /// released only where the stake was short (`ledger::release`).
    ClawedBack {
        task: TaskId,
        node: NodeId,
        owner: AccountId,
        amount: Amount,
        offence: Offence,
    },
    /// The requester cancelled a task whose revealed results disagree and are being judged in
    /// `round`: the task ends `cancelled` once the verdict is in (`until`: `"verdict"`), the
    /// loser slashed as it would have been (`ledger::cancel`).
    CancelDeferred {
        task: TaskId,
        round: Round,
        until: &'static str,
    },
    TaskEnded {
        task: TaskId,
        state: TaskState,
        reason: Option<FailureReason>,
    },
    TaskRated {
        task: TaskId,
        node: NodeId,
        stars: u8,
        weight: u64,
    },
    RevealsOpened {
        task: TaskId,
        round: Round,
    },
    ResultRevealed {
        task: TaskId,
        node: NodeId,
        output_hash: Hash32,
    },
    AuditDrawn {
        task: TaskId,
        node: NodeId,
        audited: bool,
    },
    RoundStarted {
        task: TaskId,
        round: Round,
    },
    AuditPassed {
        task: TaskId,
        node: NodeId,
    },
    VoteDecided {
        task: TaskId,
        round: Round,
        output_hash: Option<Hash32>,
        majority: Vec<NodeId>,
        minority: Vec<NodeId>,
    },
    ResultVerified {
        task: TaskId,
        node: NodeId,
        output_hash: Hash32,
    },
    /// Every slash: a task offence (`task` is the task) or a failed capacity challenge (none).
    Penalized {
        task: Option<TaskId>,
        node: NodeId,
        owner: AccountId,
        offence: Offence,
        amount: Amount,
        burned: Amount,
        challengers: Vec<AccountId>,
        treasury: Amount,
    },
    /// An ended task left the state `task_retention_ms` after it ended.
    TaskPruned {
        task: TaskId,
    },
    /// An ejected or deregistered node left the state: no task refers to it any more.
    NodePruned {
        node: NodeId,
    },
    NodeFrozen {
        node: NodeId,
        score_permille: u16,
    },
    NodeEjected {
        node: NodeId,
    },
    DisputeOpened {
        task: TaskId,
        bond: Amount,
    },
    DisputeResolved {
        task: TaskId,
        outcome: DisputeOutcome,
        returned: Amount,
    },
    KnownAnswerRevealed {
        task: TaskId,
        matched: bool,
    },
    AppealOpened {
        node: NodeId,
        closes_ms: u64,
    },
    AppealVoted {
        node: NodeId,
        voter: AccountId,
        approve: bool,
        weight: Amount,
    },
    /// A full appeal's lightest vote gave way to a heavier one; its stake stays locked until the
    /// vote closes.
    AppealVoteDisplaced {
        node: NodeId,
        voter: AccountId,
        weight: Amount,
    },
    AppealClosed {
        node: NodeId,
        approved: bool,
        approve: Amount,
        reject: Amount,
    },
    ChallengeIssued {
        challenge: ChallengeId,
        node: NodeId,
        kind: ChallengeKind,
        deadline_ms: u64,
    },
    ChallengeCommitted {
        challenge: ChallengeId,
        node: NodeId,
        response_ms: u64,
    },
    ChallengeOpeningsDrawn {
        challenge: ChallengeId,
        node: NodeId,
        open_deadline_ms: u64,
    },
    ChallengePassed {
        challenge: ChallengeId,
        node: NodeId,
        kind: ChallengeKind,
        units: ComputeUnits,
        proven_units: ComputeUnits,
    },
    ChallengeFailed {
        challenge: ChallengeId,
        node: NodeId,
        kind: ChallengeKind,
        reason: ChallengeFailure,
        sanction: ChallengeSanction,
        proven_units: ComputeUnits,
    },
    CapacityClaimed {
        node: NodeId,
        units: ComputeUnits,
    },
    /// A node frozen for missed challenges passed one.
    NodeThawed {
        node: NodeId,
    },
}

impl Event {
    /// The task an event is about, if any: lets watchers filter one task's events.
    pub fn task(&self) -> Option<TaskId> {
        match self {
            Event::TaskSubmitted { task, .. }
            | Event::TaskAssigned { task, .. }
            | Event::TaskProgress { task, .. }
            | Event::ResultCommitted { task, .. }
            | Event::TaskRequeued { task, .. }
            | Event::RevealWithheld { task, .. }
            | Event::LateRevealCleared { task, .. }
            | Event::Paid { task, .. }
            | Event::Refunded { task, .. }
            | Event::ClawedBack { task, .. }
            | Event::CancelDeferred { task, .. }
            | Event::TaskEnded { task, .. }
            | Event::TaskRated { task, .. }
            | Event::RevealsOpened { task, .. }
            | Event::ResultRevealed { task, .. }
            | Event::AuditDrawn { task, .. }
            | Event::RoundStarted { task, .. }
            | Event::AuditPassed { task, .. }
            | Event::VoteDecided { task, .. }
            | Event::ResultVerified { task, .. }
            | Event::DisputeOpened { task, .. }
            | Event::DisputeResolved { task, .. }
            | Event::KnownAnswerRevealed { task, .. }
            | Event::TaskPruned { task } => Some(*task),
            Event::Penalized { task, .. } => *task,
            _ => None,
        }
    }
}
