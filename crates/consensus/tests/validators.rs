//! Validators on Commonware's deterministic runtime and simulated network, running the shipped
//! application and engine.

use aicpw_consensus::sim::{run, Faults, Scenario};

fn scenario(seed: u64, faults: Faults) -> Scenario {
    Scenario { seed, validators: 4, blocks: 30, faults, txs_per_tick: 8 }
}

#[test]
fn four_validators_finalize_the_same_blocks_and_state_roots() {
    let outcome = run(&scenario(1, Faults::default()));
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.heights.iter().all(|h| *h >= 30), "{:?}", outcome.heights);
    assert!(outcome.txs > 50, "blocks carry the clients' transfers: {}", outcome.txs);
    assert!(!outcome.state_hash.is_empty());
    assert_eq!(outcome.refused, 0, "honest leaders' blocks are all accepted");
}

#[test]
fn a_crashed_validator_restarts_and_catches_up() {
    let outcome = run(&scenario(2, Faults { crash: true, ..Faults::default() }));
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.heights.iter().all(|h| *h >= 30), "{:?}", outcome.heights);
}

#[test]
fn a_partitioned_validator_does_not_fork_and_catches_up() {
    let outcome = run(&scenario(3, Faults { partition: true, ..Faults::default() }));
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.heights.iter().all(|h| *h >= 30), "{:?}", outcome.heights);
}

#[test]
fn the_same_seed_gives_the_same_state_hash_under_every_fault() {
    let first = run(&scenario(4, Faults::ALL));
    let again = run(&scenario(4, Faults::ALL));
    assert!(first.violations.is_empty(), "{:?}", first.violations);
    assert_eq!(first.state_hash, again.state_hash);
    assert_eq!(first.heights, again.heights);
    assert_eq!(first.txs, again.txs);
}

#[test]
fn a_leader_naming_a_wrong_state_root_is_refused_and_the_chain_goes_on() {
    let outcome = run(&scenario(5, Faults { liar: true, ..Faults::default() }));
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.heights.iter().all(|h| *h >= 30), "{:?}", outcome.heights);
    assert!(outcome.refused > 0, "the liar led some views and its blocks were refused");
    assert_eq!(outcome.liar_finalized, 0, "none of its blocks was finalized");
}
