//! The invariant checker itself: a state broken on purpose (a cloned state, corrupted) is caught,
//! and so are a task that never ends and a slashed honest party.

use aicpw_ledger::money::Offence;
use aicpw_ledger::{Event, State};
use aicpw_sim::chain::BlockOutcome;
use aicpw_sim::rng::SimRng;
use aicpw_sim::scenarios::base_setup;
use aicpw_sim::setup::{account, RequesterSpec};
use aicpw_sim::watch::{check_state, check_withheld, Watch};
use aicpw_types::{Amount, NodeId, TaskId, TaskState, Verification};
use std::collections::BTreeSet;

/// A state a minute into an honest run, with tasks in escrow, and its genesis supply.
fn busy_state() -> (State, u128) {
    let mut rng = SimRng::new(5, "invariant test");
    let mut setup = base_setup(5, &mut rng, 4);
    setup.requesters = vec![RequesterSpec::honest(12, vec![Verification::Audit])];
    setup.submit_window_ms = 30_000;
    let mut world = setup.build();
    world.run(60_000);
    let supply = world.chain.state.meta.supply.0 + world.chain.state.meta.burned.0;
    (world.chain.state.clone(), supply)
}

#[test]
fn a_consistent_state_passes() {
    let (state, supply) = busy_state();
    assert!(state.tasks.values().any(|t| !t.escrow.is_zero()), "some escrow to corrupt");
    check_state(&state, supply).expect("an honest run keeps every invariant");
}

#[test]
fn minted_tokens_are_caught() {
    let (mut state, supply) = busy_state();
    let account = state.accounts.values_mut().next().expect("an account");
    account.balance = Amount(account.balance.0 + 1);
    assert!(check_state(&state, supply).is_err());
}

#[test]
fn escrow_that_does_not_add_up_is_caught() {
    let (mut state, supply) = busy_state();
    let task = state.tasks.values_mut().find(|t| !t.escrow.is_zero()).expect("a task in escrow");
    task.escrow = Amount(task.escrow.0 - 1);
    task.refunded = Amount(task.refunded.0 + 1);
    let error = check_state(&state, supply).expect_err("escrow moved without the money");
    assert!(error.contains("supply") || error.contains("escrow"), "{error}");
}

#[test]
fn a_terminal_task_holding_escrow_is_caught() {
    let (mut state, supply) = busy_state();
    let task = state.tasks.values_mut().find(|t| !t.escrow.is_zero()).expect("a task in escrow");
    task.state = TaskState::Completed;
    assert!(check_state(&state, supply).is_err());
}

#[test]
fn a_lease_judged_wrong_that_kept_its_released_intervals_is_caught() {
    let (mut state, supply) = busy_state();
    let task = state.tasks.values_mut().find(|t| !t.leases.is_empty()).expect("a leased task");
    let lease = &mut task.leases[0];
    lease.verdict = aicpw_ledger::state::Verdict::Overruled;
    lease.released = Amount(1);
    let error = check_state(&state, supply).expect_err("a caught cheat kept its pay");
    assert!(error.contains("judged wrong"), "{error}");
}

#[test]
fn a_burn_that_did_not_come_from_supply_is_caught() {
    let (mut state, supply) = busy_state();
    state.meta.burned = Amount(state.meta.burned.0 + 5);
    let error = check_state(&state, supply).expect_err("burned out of nothing");
    assert!(error.contains("genesis supply"), "{error}");
}

#[test]
fn the_watch_counts_a_broken_state_a_late_task_and_an_honest_slash() {
    let (mut state, supply) = busy_state();
    let honest = account(0);
    let mut watch = Watch::new(supply, BTreeSet::from([honest]), 1_000);
    let submitted =
        Event::TaskSubmitted { task: TaskId(999), requester: honest, budget: Amount(1) };
    let outcome = BlockOutcome { height: 1, events: vec![submitted], ..BlockOutcome::default() };
    watch.after_block(&state, &outcome, 10);
    assert_eq!(watch.violations, 0);
    let slashed = Event::Penalized {
        task: None,
        node: NodeId(0),
        owner: honest,
        offence: Offence::CapacityChallengeFailed,
        amount: Amount(1),
        burned: Amount(1),
        challengers: Vec::new(),
        treasury: Amount(0),
    };
    let outcome = BlockOutcome { height: 2, events: vec![slashed], ..BlockOutcome::default() };
    watch.after_block(&state, &outcome, 2_000);
    assert_eq!(watch.violations, 1, "task 999 missed its deadline: {:?}", watch.messages);
    assert_eq!(watch.honest_slashed, 1);
    state.meta.supply = Amount(state.meta.supply.0 + 1);
    watch.after_block(&state, &BlockOutcome::default(), 3_000);
    assert_eq!(watch.violations, 2, "{:?}", watch.messages);
}

#[test]
fn a_withheld_lease_left_past_its_late_window_or_never_judged_is_caught() {
    let (mut state, supply) = busy_state();
    check_withheld(&state, 60_000).expect("nothing withheld in an honest minute");
    let task = state.tasks.values_mut().find(|t| !t.leases.is_empty()).expect("a leased task");
    let lease = &mut task.leases[0];
    lease.verdict = aicpw_ledger::state::Verdict::Withheld;
    lease.withheld_until_ms = Some(50_000);
    lease.reveal = None;
    let (id, tasks) = (task.id, state.tasks.clone());
    // Rebuilt as a restarted node would: the derived deadline index includes the lease.
    let state = State::from_tables(state.params, state.meta, state.accounts, state.nodes, tasks);
    assert_eq!(state.index.withheld.first(), Some(&(50_000, id)));
    check_withheld(&state, 49_999).expect("not due yet");
    assert!(check_withheld(&state, 50_000).is_err(), "due and not settled");
    let mut watch = Watch::new(supply, BTreeSet::new(), 1_000);
    watch.finish(&state);
    assert_eq!(watch.violations, 1, "never judged: {:?}", watch.messages);
}
