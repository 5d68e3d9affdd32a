//! Commit-reveal and the quorum rule.

use aicpw_verify::replication::REPLICAS_MAX;
use aicpw_verify::{check_reveal, commitment, quorum, QuorumOutcome, RevealedOutput, VerifyError};

/// Replicas asked for, reveals, winning output byte, majority and minority provider bytes.
type QuorumCase = (u32, Vec<RevealedOutput>, Option<u8>, Vec<u8>, Vec<u8>);
/// Task, provider, output hash, summary, result CID and salt of a reveal.
type Opening<'a> = (u64, [u8; 32], [u8; 32], &'a [i64], &'a str, [u8; 32]);

fn reveal(provider: u8, output: u8) -> RevealedOutput {
    RevealedOutput { provider: [provider; 32], output_hash: [output; 32] }
}

#[test]
fn a_reveal_opens_only_its_own_commitment() {
    let cid = "bafkreiresult";
    let summary: &[i64] = &[1_250_000, -3];
    let committed = commitment(7, &[1; 32], &[2; 32], summary, cid, &[3; 32]);
    assert_eq!(check_reveal(&committed, 7, &[1; 32], &[2; 32], summary, cid, &[3; 32]), Ok(()));
    let wrong: [Opening<'_>; 9] = [
        (8, [1; 32], [2; 32], summary, cid, [3; 32]),
        (7, [9; 32], [2; 32], summary, cid, [3; 32]),
        (7, [1; 32], [9; 32], summary, cid, [3; 32]),
        (7, [1; 32], [2; 32], &[1_250_001, -3], cid, [3; 32]),
        (7, [1; 32], [2; 32], &[1_250_000], cid, [3; 32]),
        (7, [1; 32], [2; 32], &[], cid, [3; 32]),
        (7, [1; 32], [2; 32], summary, "bafkreijunk", [3; 32]),
        (7, [1; 32], [2; 32], summary, "", [3; 32]),
        (7, [1; 32], [2; 32], summary, cid, [9; 32]),
    ];
    for (task, provider, output, summary, cid, salt) in wrong {
        let result = check_reveal(&committed, task, &provider, &output, summary, cid, &salt);
        assert_eq!(result, Err(VerifyError::RevealMismatch));
    }
}

#[test]
fn quorum_needs_a_strict_majority_of_the_replicas_asked_for() {
    let cases: Vec<QuorumCase> = vec![
        (3, vec![reveal(1, 9), reveal(2, 9), reveal(3, 9)], Some(9), vec![1, 2, 3], vec![]),
        (3, vec![reveal(3, 9), reveal(1, 8), reveal(2, 9)], Some(9), vec![2, 3], vec![1]),
        (3, vec![reveal(1, 9), reveal(2, 9)], Some(9), vec![1, 2], vec![]),
        (3, vec![reveal(1, 9), reveal(2, 8), reveal(3, 7)], None, vec![], vec![]),
        (3, vec![reveal(1, 9)], None, vec![], vec![]),
        (4, vec![reveal(1, 9), reveal(2, 9), reveal(3, 8), reveal(4, 8)], None, vec![], vec![]),
        (
            4,
            vec![reveal(1, 9), reveal(2, 9), reveal(3, 9), reveal(4, 8)],
            Some(9),
            vec![1, 2, 3],
            vec![4],
        ),
        (1, vec![reveal(1, 9)], Some(9), vec![1], vec![]),
        (2, vec![reveal(1, 9)], None, vec![], vec![]),
        (5, vec![], None, vec![], vec![]),
    ];
    for (replicas, reveals, winner, majority, minority) in cases {
        let outcome = quorum(replicas, &reveals).expect("valid");
        let expected = QuorumOutcome {
            majority_hash: winner.map(|byte| [byte; 32]),
            majority: majority.iter().map(|&byte| [byte; 32]).collect(),
            minority: minority.iter().map(|&byte| [byte; 32]).collect(),
            no_quorum: winner.is_none(),
        };
        assert_eq!(outcome, expected, "k {replicas} reveals {reveals:?}");
    }
}

#[test]
fn duplicate_and_surplus_reveals_are_refused() {
    assert_eq!(quorum(3, &[reveal(1, 9), reveal(1, 9)]), Err(VerifyError::RevealDuplicate));
    assert!(matches!(
        quorum(1, &[reveal(1, 9), reveal(2, 9)]),
        Err(VerifyError::ReplicaCountInvalid { .. })
    ));
    assert!(matches!(quorum(0, &[]), Err(VerifyError::ReplicaCountInvalid { .. })));
    assert!(matches!(quorum(REPLICAS_MAX + 1, &[]), Err(VerifyError::ReplicaCountInvalid { .. })));
}
