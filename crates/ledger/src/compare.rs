//! How revealed results are compared. A deterministic task's results agree when their output
//! hashes are equal, bit for bit. A task that declared itself non-deterministic
//! (`TaskTerms::nondeterministic`) is compared by the summaries its runs wrote (fixed-point
//! numbers, bound by each commitment): two results agree when every number is within the
//! declared tolerance of the other's, pure integer math. Everything else follows the policy as
//! for hashes (audit, referee, replica committee, dispute), with two differences:
//!
//! - The vote: a result wins when the results within tolerance of it (itself included) are a
//!   strict majority of the voters asked for; the first such result with the most agreeing
//!   wins, and the majority is every result within tolerance of it.
//! - Who is slashed outside that majority: in `tolerance` mode only a result outside the
//!   tolerance of a strict majority of the voters (honest results within tolerance of each other
//!   never are); in `committee` mode nobody (such a result is not paid, that is all), so a
//!   requester whose tolerance may not cover every honest difference never gets an honest node
//!   slashed.

use crate::state::{ResultCommit, Reveal};
use aicpw_types::task::CompareMode;
use aicpw_types::{Hash32, TaskTerms};
use aicpw_verify::replication::{quorum, QuorumOutcome, RevealedOutput};

/// One revealed result in a vote: who revealed it, its hash and summary.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ballot<'a> {
    pub voter: [u8; 32],
    pub output_hash: Hash32,
    pub summary: &'a [i64],
}

impl<'a> Ballot<'a> {
    pub fn of_reveal(voter: [u8; 32], reveal: &'a Reveal) -> Self {
        Ballot { voter, output_hash: reveal.output_hash, summary: &reveal.summary }
    }
    pub fn of_result(voter: [u8; 32], result: &'a ResultCommit) -> Self {
        Ballot { voter, output_hash: result.output_hash, summary: &result.summary }
    }
}

/// Whether two results agree under the task's terms: equal hashes, or for a non-deterministic
/// task summaries within its tolerance.
pub(crate) fn agree(terms: &TaskTerms, a: &Ballot<'_>, b: &Ballot<'_>) -> bool {
    match &terms.nondeterministic {
        None => a.output_hash == b.output_hash,
        Some(rule) => rule.agree(a.summary, b.summary),
    }
}

/// The strict-majority vote over `ballots` of `voters` asked for (absent ones vote for nothing).
pub(crate) fn vote(terms: &TaskTerms, voters: u32, ballots: &[Ballot<'_>]) -> QuorumOutcome {
    let no_quorum = QuorumOutcome { no_quorum: true, ..QuorumOutcome::default() };
    if terms.nondeterministic.is_none() {
        let reveals: Vec<RevealedOutput> = ballots
            .iter()
            .map(|b| RevealedOutput { provider: b.voter, output_hash: b.output_hash.0 })
            .collect();
        return quorum(voters, &reveals).unwrap_or(no_quorum);
    }
    let agreeing = |b: &Ballot<'_>| ballots.iter().filter(|o| agree(terms, b, o)).count();
    let mut best: Option<(usize, &Ballot<'_>)> = None;
    for ballot in ballots {
        let count = agreeing(ballot);
        if best.is_none_or(|(most, _)| count > most) {
            best = Some((count, ballot));
        }
    }
    let Some((_, winner)) = best.filter(|(count, _)| 2 * *count > voters as usize) else {
        return no_quorum;
    };
    let (mut majority, mut minority): (Vec<[u8; 32]>, Vec<[u8; 32]>) = (Vec::new(), Vec::new());
    for ballot in ballots {
        let side = if agree(terms, winner, ballot) { &mut majority } else { &mut minority };
        side.push(ballot.voter);
    }
    majority.sort_unstable();
    minority.sort_unstable();
    QuorumOutcome {
        majority_hash: Some(winner.output_hash.0),
        majority,
        minority,
        no_quorum: false,
    }
}

/// Whether `ballot`, outside the winning majority of a vote over `ballots` among `voters`, is
/// slashed: always for a deterministic task; for a non-deterministic one in `tolerance` mode
/// only when it is outside the tolerance of a strict majority of the voters; in `committee`
/// mode never.
pub(crate) fn slashable(
    terms: &TaskTerms,
    voters: u32,
    ballot: &Ballot<'_>,
    ballots: &[Ballot<'_>],
) -> bool {
    match terms.nondeterministic.as_ref().map(|rule| rule.mode) {
        None => true,
        Some(CompareMode::Committee) => false,
        Some(CompareMode::Tolerance) => {
            let apart = ballots.iter().filter(|other| !agree(terms, ballot, other)).count();
            2 * apart > voters as usize
        }
    }
}

/// Whether a result that differs from the one the task ended with may be slashed for it (a late
/// reveal, a result a dispute's committee overturned): not in `committee` mode.
pub(crate) fn slashes_differences(terms: &TaskTerms) -> bool {
    terms.nondeterministic.as_ref().is_none_or(|rule| rule.mode == CompareMode::Tolerance)
}
