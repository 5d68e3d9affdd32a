//! State that pays for itself: a storage fee for every entry a transaction creates, and pruning
//! of ended tasks no rule needs any more.

use crate::state::Params;
use crate::tests::{key, Net};
use crate::verification_tests::policy;
use aicpw_types::task::Verification;
use aicpw_types::{Amount, Hash32, Reject, TaskState, TxBody};

const STORAGE: u128 = 10_000;

fn stranger() -> aicpw_types::AccountId {
    aicpw_types::AccountId(Hash32::of(b"a new account").0)
}

#[test]
fn a_transfer_that_creates_an_account_pays_for_its_storage() {
    let mut net = Net::with_params(Params::default());
    let (before, proposer) = (net.balance(0), net.balance(7));
    net.run(0, TxBody::Transfer { to: stranger(), amount: Amount(1) }).expect("transfer");
    assert_eq!(net.balance(0), Amount(before.0 - 1 - 10 - STORAGE), "fee + one entry");
    assert_eq!(net.balance(7), Amount(proposer.0 + 10 + STORAGE));
    // The account exists now: a second transfer pays the fee only.
    let before = net.balance(0);
    net.run(0, TxBody::Transfer { to: stranger(), amount: Amount(1) }).expect("transfer");
    assert_eq!(net.balance(0), Amount(before.0 - 1 - 10));
}

#[test]
fn dust_cannot_be_spread_over_new_accounts_for_the_fee_alone() {
    let mut net = Net::with_params(Params::default());
    // An account holding just enough for the fee and the dust, not for the storage.
    let poor = key(6).account();
    let all = net.balance(6).0;
    net.run(6, TxBody::Transfer { to: key(5).account(), amount: Amount(all - 21) }).expect("spend");
    let refused = net.run(6, TxBody::Transfer { to: stranger(), amount: Amount(1) });
    assert_eq!(refused.expect_err("storage unpaid"), Reject::StorageFeeUnpaid);
    assert!(!net.state.accounts.contains_key(&stranger()), "nothing half-applied");
    assert_eq!(net.state.accounts[&poor].balance, Amount(11), "not even the fee");
}

#[test]
fn submitting_a_task_and_registering_a_node_pay_for_one_entry_each() {
    let mut net = Net::with_params(Params::default());
    let before = net.balance(1);
    net.provider(1, 1_000);
    let bond = Amount::tokens(1_000).0;
    assert_eq!(net.balance(1), Amount(before.0 - bond - 2 * 10 - STORAGE));
    let before = net.balance(0);
    let terms = policy(Verification::Spot);
    let budget = terms.budget.0;
    net.submit(0, terms);
    assert_eq!(net.balance(0), Amount(before.0 - budget - 10 - STORAGE));
}

#[test]
fn an_ended_task_is_pruned_after_its_retention_and_the_root_stays_deterministic() {
    let mut net = Net::with_params(Params::default());
    let id = net.submit(0, policy(Verification::Spot));
    net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    assert_eq!(net.task(id).state, TaskState::Cancelled);
    let retention = net.state.params.task_retention_ms;
    net.idle(retention - 10_000);
    assert!(net.state.tasks.contains_key(&id), "kept for its retention");
    net.idle(20_000);
    assert!(!net.state.tasks.contains_key(&id), "pruned once it ran out");
    assert!(net.log.iter().any(|e| matches!(e, crate::Event::TaskPruned { task } if *task == id)));
    assert_eq!(net.run(0, TxBody::RateTask { task: id, stars: 5 }), Err(Reject::UnknownTask));
    // The pruned entry left the root as it left the tables: a restarted node agrees.
    let root = net.state.finalize_root().0;
    assert_eq!(net.rebuilt().finalize_root().0, root);
    assert!(net.state.index.ended.is_empty());
}

#[test]
fn an_account_left_empty_that_never_signed_is_not_stored() {
    let mut net = Net::with_params(Params::default());
    let env = net.env();
    let mut delta = crate::delta::Delta::new(&net.state, &env);
    delta.set_account(stranger(), Default::default());
    let changes = delta.into_changes();
    net.state.commit(changes);
    assert!(!net.state.accounts.contains_key(&stranger()));
    let root = net.state.finalize_root().0;
    assert_eq!(net.rebuilt().finalize_root().0, root);
}

#[test]
fn a_deregistered_node_leaves_the_state_once_no_task_refers_to_it() {
    let mut net = Net::with_params(Params::default());
    let idle = net.provider(1, 1_000_000);
    let worked = net.provider(2, 500_000);
    let id = net.submit(0, policy(Verification::Spot));
    assert_eq!(net.worker(id), worked, "the cheaper node");
    net.finish_lease(id, worked, b"out");
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    net.run(1, TxBody::DeregisterNode { node: idle }).expect("deregister");
    net.run(2, TxBody::DeregisterNode { node: worked }).expect("deregister");
    assert!(!net.state.nodes.contains_key(&idle), "no task refers to it");
    assert!(net
        .log
        .iter()
        .any(|e| matches!(e, crate::Event::NodePruned { node } if *node == idle)));
    assert!(net.state.nodes.contains_key(&worked), "its task is still in the state");
    let retention = net.state.params.task_retention_ms;
    net.idle(retention + 1_000);
    assert!(!net.state.tasks.contains_key(&id));
    assert!(!net.state.nodes.contains_key(&worked), "pruned after the last task naming it");
    let root = net.state.finalize_root().0;
    let rebuilt = net.rebuilt();
    assert_eq!(rebuilt.index.node_tasks, net.state.index.node_tasks);
    assert_eq!(rebuilt.index.ejected, net.state.index.ejected);
    assert_eq!(net.rebuilt().finalize_root().0, root);
}
