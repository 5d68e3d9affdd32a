//! Money in one place: checked arithmetic and the end-of-block conservation check.

use crate::delta::Delta;
use crate::end_block;
use crate::money::{self, Offence, Slash};
use crate::tests::{key, terms, Net};
use aicpw_types::{Amount, NodeId, Reject, TaskId, TxBody};

/// Commits one change made behind the rules' back, as a buggy rule would.
fn tamper(net: &mut Net, change: impl FnOnce(&mut Delta<'_>)) {
    let env = net.env();
    let mut delta = Delta::new(&net.state, &env);
    change(&mut delta);
    let changes = delta.into_changes();
    net.state.commit(changes);
}

#[test]
fn a_block_that_creates_money_is_refused_at_its_end() {
    let mut net = Net::new();
    net.run(0, TxBody::Transfer { to: key(1).account(), amount: Amount(5) }).expect("transfer");
    tamper(&mut net, |delta| {
        let mut account = delta.account(&key(2).account());
        account.balance = Amount(account.balance.0 + 1);
        delta.set_account(key(2).account(), account);
    });
    let env = net.env();
    let violation = end_block(&mut net.state, &env).expect_err("one token appeared from nowhere");
    assert!(violation.0.contains("supply"), "{violation}");
    // It stays refused: a later block cannot make it right by itself.
    assert!(end_block(&mut net.state, &env).is_err());
    assert!(net.state.check_invariants().is_err());
}

#[test]
fn a_burn_not_recorded_as_burned_is_a_violation() {
    let mut net = Net::new();
    tamper(&mut net, |delta| {
        let mut account = delta.account(&key(3).account());
        account.balance = Amount(account.balance.0 - 7);
        delta.set_account(key(3).account(), account);
        let mut meta = delta.meta();
        meta.supply = Amount(meta.supply.0 - 7);
        delta.set_meta(meta);
    });
    let env = net.env();
    let violation = end_block(&mut net.state, &env).expect_err("supply + burned != genesis");
    assert!(violation.0.contains("genesis"), "{violation}");
}

#[test]
fn escrow_that_is_not_the_budget_left_is_a_violation() {
    let mut net = Net::new();
    net.run(
        0,
        TxBody::SubmitTask {
            terms: terms(crate::market::budget_min(&terms(0)).0),
            answer_commitment: Default::default(),
        },
    )
    .expect("submit");
    // Money moved out of the escrow to an account, but the task's books do not say so.
    tamper(&mut net, |delta| {
        let mut task = delta.task(TaskId(0)).expect("task");
        task.escrow = Amount(task.escrow.0 - 3);
        delta.set_task(task);
        money::credit(delta, key(4).account(), Amount(3)).expect("credit");
    });
    let env = net.env();
    let violation = end_block(&mut net.state, &env).expect_err("escrow != budget - paid");
    assert!(violation.0.contains("task 0 escrow"), "{violation}");
}

#[test]
fn an_overflowing_credit_is_an_error_not_a_saturation() {
    let net = Net::new();
    let env = net.env();
    let mut delta = Delta::new(&net.state, &env);
    let mut account = delta.account(&key(5).account());
    account.balance = Amount(u128::MAX - 1);
    delta.set_account(key(5).account(), account);
    assert_eq!(money::credit(&mut delta, key(5).account(), Amount(2)), Err(Reject::AmountOverflow));
    assert_eq!(delta.account(&key(5).account()).balance, Amount(u128::MAX - 1));
}

#[test]
fn every_slash_is_one_event_and_its_shares_add_up_to_what_was_taken() {
    let mut net = Net::new();
    net.run(0, TxBody::Bond { amount: Amount(1_001) }).expect("bond");
    let env = net.env();
    let mut delta = Delta::new(&net.state, &env);
    let challengers = [key(1).account(), key(2).account(), key(3).account()];
    let slash = Slash {
        task: Some(TaskId(9)),
        node: NodeId(4),
        owner: key(0).account(),
        offence: Offence::Minority,
        amount: Amount(1_001),
        challengers: &challengers,
    };
    let taken = money::slash(&mut delta, slash).expect("slash");
    let changes = delta.into_changes();
    let events = net.state.commit(changes);
    assert_eq!(events.len(), 1, "{events:?}");
    let crate::Event::Penalized { amount, burned, treasury, .. } = &events[0] else {
        panic!("{events:?}")
    };
    let shares = net.state.params.verification.economics.split.split(1_001).expect("split");
    let each = shares.challenger / 3;
    assert_eq!(
        (taken, *amount, *treasury),
        (Amount(1_001), Amount(1_001), Amount(shares.treasury))
    );
    assert_eq!(burned.0 + each * 3 + treasury.0, 1_001, "nothing created, nothing lost");
    assert_eq!(net.state.meta.burned, *burned);
    let env = net.env();
    end_block(&mut net.state, &env).expect("a slash conserves money");
    net.state.check_invariants().expect("totals equal the tables");
}
